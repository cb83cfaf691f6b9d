"""The RQ worker class llmadmin runs: RQ's fork-per-job Worker with a graceful drain.

On SIGTERM RQ's parent stops taking jobs and waits for the running one. A chunk can
hold many calls, so the parent also forwards SIGTERM to the job process, whose handler
asks the executor to drain: finish in-flight calls within WORKER_DRAIN_SECONDS and
hand every unfinished task back to the queue, so nothing is left RUNNING.
"""

from __future__ import annotations

import os
import signal

from rq import Worker


class LLMWorker(Worker):
    def setup_work_horse_signals(self) -> None:
        """In the job process: Ctrl-C is the parent's business; SIGTERM means drain."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _drain_on_sigterm)

    def handle_warm_shutdown_request(self) -> None:
        """Forward the warm shutdown to the running job process."""
        super().handle_warm_shutdown_request()
        if self.horse_pid:
            try:
                os.kill(self.horse_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _drain_on_sigterm(signum, frame) -> None:
    from llmadmin.engine.executor import request_drain

    request_drain()
