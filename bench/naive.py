"""The naive baseline the engine is measured against: one RQ job per task, RQ's default
fork-per-job Worker, one blocking HTTP call per job (the "tutorial" design)."""

from __future__ import annotations

import os
import sys
import time


def naive_task(task_id: int) -> None:
    """Run one task with one blocking call (same client, same database writes)."""
    from llmadmin import crypto
    from llmadmin.extensions import db
    from llmadmin.jobs.context import app_context
    from llmadmin.lifecycle import transition
    from llmadmin.llm import ChatRequest, build_messages, chat_blocking
    from llmadmin.models import LLMModel, Task
    from llmadmin.models.task import RUNNING, SUCCESS

    with app_context():
        task = db.session.get(Task, task_id)
        model = db.session.get(LLMModel, task.model_id)
        transition([task_id], RUNNING)
        started = time.monotonic()
        result = chat_blocking(
            ChatRequest(
                base_url=model.base_url,
                api_key=crypto.decrypt(model.api_key_encrypted),
                model=model.model_name,
                messages=build_messages(task.prompt),
                temperature=model.temperature,
                max_tokens=model.max_tokens,
                timeout=model.timeout_seconds,
                stream=False,
            )
        )
        transition(
            [task_id], SUCCESS, result=result.text, latency_ms=(time.monotonic() - started) * 1000
        )


def main() -> None:
    """Run RQ's default Worker on the "naive" queue in burst mode."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rq import Worker

    from llmadmin import create_app
    from llmadmin.extensions import db
    from llmadmin.queues import get_redis

    app = create_app()
    with app.app_context():
        engines = list(db.engines.values())
        os.register_at_fork(after_in_child=lambda: [e.dispose(close=False) for e in engines])
        Worker(["naive"], connection=get_redis()).work(burst=True, logging_level="WARNING")


if __name__ == "__main__":
    main()
