"""Benchmark fairness: a failing or slow model must not hold up another model's tasks.

    .venv/bin/python bench/bench_fairness.py           # every case (about 3 minutes)
    .venv/bin/python bench/bench_fairness.py --quick   # 20×50 with fewer models

One ``worker.py`` process (the default set-up: engine + scheduler thread), a fresh SQLite
database and embedded Redis, the simulated endpoint in its own process (200 ms).
Model B is healthy (cap 8, 40 tasks) and is measured alone, then submitted 2 s after a
120-task backlog of model A that (a) refuses connections, (b) hangs until its timeout,
(c) answers 429 with Retry-After: 20, (d) answers in 20 s. Printed: B's makespan with A's
backlog ÷ B alone, per case (target ≤ 1.25). Then 20 models × 50 tasks (cap 4, 500 ms)
on the same single worker: total time ÷ the ideal 6.25 s (target ≤ 1.3), and the PSS
summed over the working worker's processes (target ≤ 120 MB).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_engine import Bench, cpu_seconds  # noqa: E402
from llmadmin.extensions import db  # noqa: E402
from llmadmin.models import LLMModel, Task  # noqa: E402
from llmadmin.models.task import FINAL_STATUSES  # noqa: E402

CASES = {
    "a) refuses connections": "refused",
    "b) hangs until its timeout (20 s)": "hang=1",
    "c) 429 with Retry-After: 20": "status=429, retry_after=20",
    "d) answers in 20 s": "latency_ms=20000",
}


def closed_port() -> int:
    """A local port nobody listens on: connections to it are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class Fairness(Bench):
    def reset(self) -> None:
        db.session.execute(db.delete(Task))
        db.session.execute(db.delete(LLMModel))
        db.session.commit()
        self.redis.flushdb()
        self.sim_config(latency_ms=200)

    def model(self, name: str, cap: int, base_url: str | None = None, **kw) -> LLMModel:
        model = LLMModel(
            name=name,
            base_url=base_url or self.sim_root + "/v1",
            model_name="sim-chat",
            simulated=True,
            max_concurrency=cap,
            timeout_seconds=kw.pop("timeout_seconds", 20),
            **kw,
        )
        db.session.add(model)
        db.session.commit()
        return model

    def tasks(self, model: LLMModel, n: int, directive: str = "") -> list[int]:
        suffix = f" [[sim: {directive}]]" if directive else ""
        db.session.execute(
            db.insert(Task),
            [
                {
                    "name": f"{model.name}-{i}",
                    "prompt": f"fairness {model.name} {i}{suffix}",
                    "model_id": model.id,
                    "status": "PENDING",
                }
                for i in range(n)
            ],
        )
        db.session.commit()
        return list(
            db.session.execute(
                db.select(Task.id).where(Task.model_id == model.id).order_by(Task.id)
            ).scalars()
        )

    def makespan(self, ids: list[int], timeout: float = 600) -> float:
        from llmadmin.services.tasks import run_tasks

        start = time.monotonic()
        run_tasks(ids)
        while time.monotonic() - start < timeout:
            done = db.session.execute(
                db.select(db.func.count()).where(Task.id.in_(ids), Task.status.in_(FINAL_STATUSES))
            ).scalar()
            db.session.commit()
            if done >= len(ids):
                return time.monotonic() - start
            time.sleep(0.02)
        raise RuntimeError(f"tasks not final after {timeout} s")

    def warm_up(self) -> None:
        """A few tasks on a model of their own: the worker's first chunk pays its start-up."""
        self.makespan(self.tasks(self.model("warm-up", 8), 8))

    def b_alone(self) -> float:
        self.reset()
        b = self.model("B", 8)
        b_ids = self.tasks(b, 40)
        procs = self.workers(1)
        try:
            self.warm_up()
            time.sleep(2)  # as long as A's head start in the other cases
            return self.makespan(b_ids)
        finally:
            self.stop(procs)

    def b_behind(self, directive: str) -> tuple[float, dict]:
        from llmadmin.services.tasks import cancel_tasks, run_tasks

        self.reset()
        if directive == "refused":
            a = self.model("A", 8, base_url=f"http://127.0.0.1:{closed_port()}/v1")
            a_ids = self.tasks(a, 120)
        else:
            a = self.model("A", 8)
            a_ids = self.tasks(a, 120, directive)
        b = self.model("B", 8)
        b_ids = self.tasks(b, 40)
        procs = self.workers(1)
        try:
            self.warm_up()
            run_tasks(a_ids)
            time.sleep(2)
            elapsed = self.makespan(b_ids)
            states = dict(
                db.session.execute(
                    db.select(Task.status, db.func.count())
                    .where(Task.id.in_(a_ids))
                    .group_by(Task.status)
                ).all()
            )
            db.session.commit()
            cancel_tasks(a_ids)
            return elapsed, states
        finally:
            self.stop(procs)

    def many_models(self, models: int, per_model: int) -> tuple[float, float]:
        self.reset()
        ids: list[int] = []
        for m in range(models):
            model = self.model(f"M{m}", 4)
            ids += self.tasks(model, per_model, "latency_ms=500")
        procs = self.workers(1)
        self.warm_up()
        ids = [i for i in ids]
        cpu_before = cpu_seconds(procs[0].pid)
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.25):
                peak[0] = max(peak[0], pss_mb(procs[0].pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            elapsed = self.makespan(ids)
            self.cpu_ms = (cpu_seconds(procs[0].pid) - cpu_before) / len(ids) * 1000
            return elapsed, peak
        finally:
            stop.set()
            sampler.join()
            self.stop(procs)


def pss_mb(pid: int) -> float:
    """PSS in MB summed over a process and its children (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_full_info().pss for p in procs) / 2**20
    except psutil.Error:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 models × 50 in the last case")
    parser.add_argument("--cases", default="abcd", help="which A cases to run (letters)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement; the median is used"
    )
    args = parser.parse_args()
    os.environ.setdefault("WORKER_DRAIN_SECONDS", "2")
    bench = Fairness(args)
    bench.env["WORKER_DRAIN_SECONDS"] = "2"
    rows = []
    try:
        alone = statistics.median(bench.b_alone() for _ in range(args.repeat))
        for label, directive in CASES.items():
            if label[0] not in args.cases:
                continue
            runs = [bench.b_behind(directive) for _ in range(args.repeat)]
            elapsed = statistics.median(r[0] for r in runs)
            rows.append((label, elapsed, elapsed / alone, runs[-1][1]))
        models = 5 if args.quick else 20
        total, peak = bench.many_models(models, 50)
    finally:
        bench.close()
    print(f"\nmedians of {args.repeat} runs each")
    print(f"B alone (cap 8, 40 tasks, 200 ms): {alone:.2f} s")
    print(f"{'A (120 tasks, cap 8) ...':38} {'B makespan':>10} {'÷ alone':>8}  A's tasks meanwhile")
    for label, elapsed, ratio, states in rows:
        print(f"{label:38} {elapsed:9.2f}s {ratio:8.2f}  {states}")
    worst = max((r[2] for r in rows), default=0)
    print(f"worst ratio {worst:.2f} (target ≤ 1.25)")
    ideal = 50 / 4 * 0.5
    print(
        f"{models} models × 50 tasks (cap 4, 500 ms), 1 worker: {total:.2f} s, "
        f"÷ ideal {ideal:.2f} s = {total / ideal:.2f} (target ≤ 1.3)"
    )
    print(f"  worker CPU {bench.cpu_ms:.2f} ms per task")
    print(f"PSS of the working worker (all its processes), peak: {peak[0]:.0f} MB (target ≤ 120)")


if __name__ == "__main__":
    main()
