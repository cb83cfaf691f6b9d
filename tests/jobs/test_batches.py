"""The batch-creation job: ids in, the service does the work; a stale delivery is a no-op."""

from __future__ import annotations

from llmadmin.extensions import db
from llmadmin.jobs.batches import create_batch_tasks
from llmadmin.models import Batch, Task
from llmadmin.models.batch import BatchStatus
from llmadmin.queues import JOBS
from llmadmin.services import batches


def test_the_job_creates_the_tasks_once(app, sim_model, member_user, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("prompt,model\nHello,Sim\nBye,Sim\n")
    batch = batches.create_batch_from_file(str(path), "csv", member_user.id)
    assert "llmadmin.jobs.batches.create_batch_tasks" in JOBS
    assert create_batch_tasks(batch.id, batch.job_id) == BatchStatus.IN_PROGRESS
    assert create_batch_tasks(batch.id, batch.job_id) == "skipped"
    assert create_batch_tasks(batch.id + 1, "batch-unknown") == "skipped"
    db.session.expire_all()
    assert db.session.get(Batch, batch.id).total == 2
    assert Task.query.filter_by(batch_id=batch.id).count() == 2
