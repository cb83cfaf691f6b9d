"""Batched outcome writes: a result lands only on a row still RUNNING for the writer's job."""

from decimal import Decimal

from llmadmin.engine import chunk_rows
from llmadmin.engine.writer import OutcomeWriter
from llmadmin.llm.request import ChatResult
from llmadmin.models.task import CANCELED, RUNNING, SUCCESS
from llmadmin.services import tasks as svc
from tests.engine.test_chunk_rows import queued, row


def _answer(text: str) -> ChatResult:
    return ChatResult(text=text, prompt_tokens=3, completion_tokens=2, status_code=200)


def running(model) -> tuple[int, str]:
    """A task claimed (RUNNING) by its job; return (task id, job id)."""
    (task_id,) = queued(model)
    job = row(task_id).job_id
    assert [r.id for r in chunk_rows.claim(job, [task_id])] == [task_id]
    return task_id, job


def test_a_result_is_written_to_a_running_task(app, sim_model):
    task_id, job = running(sim_model)
    writer = OutcomeWriter(job)
    writer.success(task_id, _answer("the answer"), 12.0, Decimal("0.01"))
    writer.flush()
    task = row(task_id)
    assert (task.status, task.result, task.completion_tokens) == (SUCCESS, "the answer", 2)
    assert writer.written == 1


def test_a_result_arriving_after_a_cancel_does_not_overwrite_it(app, sim_model):
    """The call was in flight when the person pressed Cancel; its answer comes in later."""
    task_id, job = running(sim_model)
    svc.cancel_tasks([task_id])
    assert row(task_id).job_id == job, "a cancel keeps the job id: only the status guards"

    writer = OutcomeWriter(job)
    writer.success(task_id, _answer("too late"), 12.0, Decimal("0.01"))
    writer.flush()
    task = row(task_id)
    assert (task.status, task.error_kind) == (CANCELED, "canceled")
    assert task.result is None and task.cost is None and task.prompt_tokens is None


def test_a_failure_arriving_after_a_cancel_does_not_overwrite_it(app, sim_model):
    task_id, job = running(sim_model)
    svc.cancel_tasks([task_id])
    writer = OutcomeWriter(job)
    writer.failure(task_id, "server error (HTTP 500)", "server_error", 5.0, "partial text")
    writer.flush()
    task = row(task_id)
    assert (task.status, task.error_kind, task.result) == (CANCELED, "canceled", None)


def test_a_result_of_a_job_that_lost_its_task_is_not_written(app, sim_model):
    """The task was re-queued under another job (reconciler): the old job's answer is dropped."""
    task_id, job = running(sim_model)
    svc.cancel_tasks([task_id])
    svc.run_tasks([task_id])
    other = row(task_id).job_id
    assert [r.id for r in chunk_rows.claim(other, [task_id])] == [task_id]

    stale = OutcomeWriter(job)
    stale.success(task_id, _answer("from the old job"), 12.0, None)
    stale.partial(task_id, "old partial")
    stale.flush()
    task = row(task_id)
    assert (task.status, task.job_id, task.result) == (RUNNING, other, None)
