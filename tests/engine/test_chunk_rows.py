"""The database side of a chunk: a claim takes only the rows still queued for its own job."""

from llmadmin.engine import chunk_rows
from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import QUEUED, RUNNING
from llmadmin.services import tasks as svc


def queued(model, n: int = 1) -> list[int]:
    """Create ``n`` tasks and queue them (one job: the model's cap is 4)."""
    ids = [
        svc.create_task(prompt=f"prompt {i}", model_id=model.id, creator_id=None, run=False).id
        for i in range(n)
    ]
    svc.run_tasks(ids)
    return ids


def row(task_id: int) -> Task:
    db.session.expire_all()
    return db.session.get(Task, task_id)


def test_a_late_delivery_of_a_canceled_job_claims_nothing_of_the_rerun(app, sim_model):
    """Cancel, re-run (now queued under job B), then job A arrives late: B keeps the task."""
    (task_id,) = queued(sim_model)
    job_a = row(task_id).job_id
    svc.cancel_tasks([task_id])
    svc.run_tasks([task_id])
    job_b = row(task_id).job_id
    assert job_b not in (None, job_a) and row(task_id).status == QUEUED

    assert chunk_rows.claim(job_a, [task_id]) == []
    task = row(task_id)
    assert (task.status, task.job_id, task.attempts, task.started_at) == (QUEUED, job_b, 0, None)

    assert [r.id for r in chunk_rows.claim(job_b, [task_id])] == [task_id]
    task = row(task_id)
    assert (task.status, task.job_id, task.attempts) == (RUNNING, job_b, 1)


def test_a_claim_is_not_made_twice(app, sim_model):
    """The same job delivered twice: the second claim finds the rows already RUNNING."""
    ids = queued(sim_model, 2)
    job = row(ids[0]).job_id
    assert sorted(r.id for r in chunk_rows.claim(job, ids)) == ids
    assert chunk_rows.claim(job, ids) == []
    assert {row(i).attempts for i in ids} == {1}
