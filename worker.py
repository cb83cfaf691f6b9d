"""Start an RQ worker for llmadmin: ``python worker.py [--queues llm reports] [--burst]``.

Builds the app once, pushes an app context, preloads the job modules (so each forked
job starts fast), starts the engine that runs task chunks of every model side by side
and the scheduler thread (one per site does the work, elected by RQ's lock), and runs
RQ's worker on the configured queues.
"""

from __future__ import annotations

import argparse
import os
import threading

from llmadmin import create_app
from llmadmin.engine.engine import Engine
from llmadmin.extensions import db
from llmadmin.worker_class import LLMWorker, SchedulerThread, work_until_stopped


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--queues",
        nargs="*",
        default=os.environ.get("WORKER_QUEUES", "").split() or None,
        help="Queue names to listen on (default: the llm and reports queues).",
    )
    parser.add_argument("--burst", action="store_true", help="Quit when the queues are empty.")
    parser.add_argument("--name", default=None, help="Worker name (default: RQ's).")
    parser.add_argument(
        "--no-scheduler",
        action="store_true",
        default=os.environ.get("WORKER_SCHEDULER", "1").lower() in ("0", "false", "no", "off"),
        help="Do not run the scheduler thread that moves parked tasks back to the queue "
        "(some process of the site must run it).",
    )
    parser.add_argument(
        "--housekeeping-interval",
        type=float,
        default=float(os.environ.get("HOUSEKEEPING_INTERVAL", "5")),
        help="Seconds between housekeeping passes; 0 disables them.",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    app = create_app()
    with app.app_context():
        import llmadmin.engine.executor  # noqa: F401  preload for fast forks
        import llmadmin.jobs.batches  # noqa: F401
        import llmadmin.jobs.bulk  # noqa: F401
        import llmadmin.jobs.exports  # noqa: F401
        import llmadmin.jobs.tasks  # noqa: F401
        from llmadmin.llm.pool import shared_ssl_context

        # Load the CA bundle before forking: every job would otherwise load it again (20-40
        # ms per job, which a gateway caller waits for).
        shared_ssl_context()
        # The HTTP stack loads its event-loop backend at its first call (40-80 ms of CPU that
        # the first chunk's first call waits for): load it now, with the rest.
        import anyio._backends._asyncio  # noqa: F401
        import httpcore  # noqa: F401

        from llmadmin.maintenance import start_thread
        from llmadmin.queues import all_queue_names, get_redis

        engines = list(db.engines.values())
        # A forked job must not reuse the parent's pooled database connections.
        os.register_at_fork(after_in_child=lambda: [e.dispose(close=False) for e in engines])
        stop = threading.Event()
        current: dict[str, LLMWorker] = {}
        if args.housekeeping_interval > 0 and not args.burst:
            # Each pass also puts this worker back into rq:workers if Redis lost it.
            start_thread(
                app,
                args.housekeeping_interval,
                stop,
                also=lambda: "worker" in current and current["worker"].ensure_registered(),
            )
        queues = args.queues or all_queue_names()
        engine = Engine(app).start()
        scheduler = None
        if not args.no_scheduler:
            scheduler = SchedulerThread(all_queue_names(), get_redis(), app.config["QUEUE_PREFIX"])
            scheduler.start()
        try:
            work_until_stopped(
                lambda: LLMWorker(queues, connection=get_redis(), name=args.name),
                burst=args.burst,
                on_worker=lambda worker: current.update(worker=worker),
                logging_level=os.environ.get("LOG_LEVEL", "INFO"),
            )
            if args.burst:
                engine.wait_idle()
        finally:
            stop.set()
            if scheduler is not None:
                scheduler.stop()
            engine.stop(timeout=app.config["WORKER_DRAIN_SECONDS"] + 10)


if __name__ == "__main__":
    main()
