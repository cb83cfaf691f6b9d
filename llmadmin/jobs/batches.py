"""Job: create the tasks of an accepted batch, in chunks (a repeated delivery resumes)."""

from __future__ import annotations

from llmadmin.jobs.context import app_context
from llmadmin.services.batch_creation import run_creation


def create_batch_tasks(batch_id: int, job_id: str) -> str:
    """Create the batch's tasks after its last committed line, while this job owns it."""

    with app_context():
        return run_creation(batch_id, job_id)
