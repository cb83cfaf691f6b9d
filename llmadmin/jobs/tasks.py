"""Jobs that run LLM tasks and test model connections."""

from __future__ import annotations

from rq import Retry

from llmadmin.engine.chunk_rows import prepare_chunk
from llmadmin.engine.engine import current_engine
from llmadmin.engine.executor import run_chunk
from llmadmin.jobs.context import app_context
from llmadmin.services.llm_models import test_connection

# How long a chunk of a model that already has a chunk's worth waiting in this worker is
# deferred (RQ schedules the job again); an idle worker, or this one, takes it then.
DEFER = Retry(max=1_000_000, interval=1)


def execute_tasks(job_id: str, task_ids: list[int]) -> dict | Retry:
    """Run the tasks queued under ``job_id`` (a duplicate delivery is a no-op).

    In ``worker.py`` the chunk is handed to the process's engine and the job ends at once
    (the engine runs it beside other models' chunks); under a plain RQ worker it runs here.
    """
    engine = current_engine()
    with app_context():
        if engine is None:
            written = run_chunk(job_id, task_ids)
            return {"tasks": len(task_ids), "outcomes_written": written}
        settings = prepare_chunk(job_id, task_ids)
        if settings is not None and engine.crowded(settings):
            return DEFER
        if settings is not None:
            engine.submit(job_id, task_ids, settings)
    return {"tasks": len(task_ids), "handed_to_engine": settings is not None}


def test_model_connection(model_id: int) -> dict:
    """Send a tiny real request to a model and record the result on its row."""

    with app_context():
        outcome = test_connection(model_id)
    # The result is shown in the RQ dashboard: ids and numbers only, never the endpoint's
    # reply (the model row keeps that, for admins).
    return {key: outcome[key] for key in ("model_id", "status", "latency_ms")}
