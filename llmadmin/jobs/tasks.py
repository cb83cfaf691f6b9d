"""Jobs that run LLM tasks and test model connections."""

from __future__ import annotations

from rq import get_current_job

from llmadmin.engine.executor import run_chunk
from llmadmin.jobs.context import app_context
from llmadmin.services.llm_models import test_connection


def execute_tasks(job_id: str, task_ids: list[int]) -> dict:
    """Run the tasks queued under ``job_id`` (a duplicate delivery is a no-op)."""

    job = get_current_job()
    # Keep taking same-model work for at most half the job's timeout.
    steal = job.timeout / 2 if job is not None and job.timeout and job.timeout > 0 else None
    with app_context():
        written = run_chunk(job_id, task_ids, steal_seconds=steal)
    return {"tasks": len(task_ids), "outcomes_written": written}


def test_model_connection(model_id: int) -> dict:
    """Send a tiny real request to a model and record the result on its row."""

    with app_context():
        outcome = test_connection(model_id)
    # The result is shown in the RQ dashboard: ids and numbers only, never the endpoint's
    # reply (the model row keeps that, for admins).
    return {key: outcome[key] for key in ("model_id", "status", "latency_ms")}
