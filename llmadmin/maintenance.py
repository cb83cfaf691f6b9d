"""Periodic housekeeping run by every worker process (safe on many machines at once).

Each pass sends tasks that waited for the queue. Later passes (reconciler, download
sweeper, bulk operation sweeper, batch sweeper) hook in here. Everything uses conditional updates, so two machines running the
same pass at once do no harm; a short Redis lock just avoids wasted work.
"""

from __future__ import annotations

import logging
import threading

import redis

from llmadmin.engine.dispatch import dispatch_waiting
from llmadmin.errors import QueueUnavailable
from llmadmin.extensions import db
from llmadmin.services.batch_sweep import sweep_batches
from llmadmin.services.bulk_sweep import sweep_operations
from llmadmin.services.download_sweep import sweep_downloads
from llmadmin.services.reconcile import safe_reconcile

logger = logging.getLogger(__name__)


def run_pass() -> dict:
    """Run one housekeeping pass; return what it did."""

    done: dict = {}
    try:
        done["reconciled"] = safe_reconcile()
        done["dispatched"], done["still_waiting"] = dispatch_waiting()
        done["downloads"] = sweep_downloads()
        done["bulk"] = sweep_operations()
        done["batches"] = sweep_batches()
    except QueueUnavailable:
        done["queue"] = "unreachable"
    finally:
        db.session.remove()
    return done


def start_thread(app, interval: float, stop: threading.Event, also=None) -> threading.Thread:
    """Run ``run_pass`` (then ``also``) every ``interval`` seconds in a daemon thread until ``stop`` is set."""

    def loop() -> None:
        while not stop.wait(interval):
            with app.app_context():
                try:
                    result = run_pass()
                    if result.get("dispatched"):
                        logger.info("housekeeping: %s", result)
                except (redis.RedisError, OSError) as exc:
                    logger.warning("housekeeping skipped: %s", exc)
                except Exception:  # keep the thread alive whatever a pass hits
                    logger.exception("housekeeping pass failed")
                if also is not None:
                    try:
                        also()
                    except (redis.RedisError, OSError) as exc:
                        logger.warning("housekeeping extra step skipped: %s", exc)

    thread = threading.Thread(target=loop, name="llmadmin-housekeeping", daemon=True)
    thread.start()
    return thread
