"""Benchmark the LLM execution engine against the naive one-call-per-job baseline.

    .venv/bin/python bench/bench_engine.py            # full run (several minutes)
    .venv/bin/python bench/bench_engine.py --quick    # smaller numbers

Everything runs here, in one run: a fresh SQLite database (or DATABASE_URL), an
embedded Redis (or REDIS_URL), the simulated endpoint in its own process, and
worker.py processes. Figures are ratios against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LLMADMIN_INSTANCE", tempfile.mkdtemp(prefix="llmadmin-bench-"))
os.environ.setdefault("SECRET_KEY", "bench-secret")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from llmadmin import create_app  # noqa: E402
from llmadmin.extensions import db  # noqa: E402
from llmadmin.models import LLMModel, Task  # noqa: E402
from llmadmin.models.task import FINAL_STATUSES, SUCCESS  # noqa: E402


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (a fixed one collides with another bench or test run)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SIM_PORT = int(os.environ.get("BENCH_SIM_PORT") or free_port())


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            times = proc.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def openai_python(requested: str | None) -> str | None:
    """An interpreter that can import ``openai`` (the one asked for, or this one), or None."""
    python = requested or sys.executable
    check = subprocess.run([python, "-c", "import openai"], capture_output=True)
    return python if check.returncode == 0 else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.instance = Path(os.environ["LLMADMIN_INSTANCE"])
        self.app = create_app()
        self.ctx = self.app.app_context()
        self.ctx.push()
        from flask_migrate import upgrade

        upgrade()
        from llmadmin.queues import get_redis

        self.redis = get_redis()
        self.env = dict(
            os.environ,
            REDIS_URL=self.app.config["REDIS_URL"],
            DATABASE_URL=self.app.config["SQLALCHEMY_DATABASE_URI"],
            HOUSEKEEPING_INTERVAL="0",
        )
        self.sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmadmin.llm.simulator",
                "--port",
                str(SIM_PORT),
                "--latency-ms",
                "200",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.sim_root = f"http://127.0.0.1:{SIM_PORT}"
        for _ in range(100):
            try:
                httpx.get(self.sim_root + "/_sim/stats", timeout=1)
                break
            except httpx.HTTPError:
                if self.sim.poll() is not None:
                    sys.exit(f"The simulated endpoint exited (code {self.sim.returncode}).")
                time.sleep(0.1)

    def close(self):
        self.sim.send_signal(signal.SIGTERM)
        self.sim.wait(10)
        if self.app.config.get("REDIS_EMBEDDED"):  # leave no redis-server behind
            from llmadmin.queues import stop_embedded_redis

            stop_embedded_redis(self.app.config["EMBEDDED_REDIS_DIR"])
        self.ctx.pop()

    # --- helpers ----------------------------------------------------------------------
    def sim_config(self, **kw):
        httpx.post(self.sim_root + "/_sim/reset", timeout=5)
        httpx.post(self.sim_root + "/_sim/config", json=kw, timeout=5)

    def sim_stats(self) -> dict:
        return httpx.get(self.sim_root + "/_sim/stats", timeout=5).json()

    def fresh(self, n: int, cap: int, rpm: int = 0) -> tuple[LLMModel, list[int]]:
        db.session.execute(db.delete(Task))
        db.session.execute(db.delete(LLMModel))
        db.session.commit()
        self.redis.flushdb()
        model = LLMModel(
            name="bench",
            base_url=self.sim_root + "/v1",
            model_name="sim-chat",
            simulated=True,
            max_concurrency=cap,
            rpm_limit=rpm,
            timeout_seconds=60,
            max_attempts=1,
        )
        db.session.add(model)
        db.session.commit()
        db.session.execute(
            db.insert(Task),
            [
                {
                    "name": f"t{i}",
                    "prompt": f"benchmark prompt {i}",
                    "model_id": model.id,
                    "status": "PENDING",
                }
                for i in range(n)
            ],
        )
        db.session.commit()
        ids = list(db.session.execute(db.select(Task.id).order_by(Task.id)).scalars())
        return model, ids

    def workers(self, count: int, script: str = "worker.py", *extra) -> list[subprocess.Popen]:
        logs = self.instance / "worker-logs"
        logs.mkdir(exist_ok=True)
        procs = [
            subprocess.Popen(
                [sys.executable, script, *extra],
                cwd=ROOT,
                env=self.env,
                stdout=open(logs / f"{time.time():.0f}-{i}.log", "wb"),
                stderr=subprocess.STDOUT,
            )
            for i in range(count)
        ]
        time.sleep(1.5)  # let them start before the clock runs
        self.wait_registered(count)
        return procs

    def wait_registered(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` workers have registered with RQ (imports and start-up done),
        so that CPU per task counts the work on tasks, not the interpreter's start-up (the
        hand-written scripts, too, measure only their calls)."""
        from rq import Worker

        deadline = time.monotonic() + timeout
        while Worker.count(connection=self.redis) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)

    def wait_final(self, ids: list[int], timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            done = db.session.execute(
                db.select(db.func.count()).where(
                    Task.id.in_(ids) if len(ids) < 30000 else True, Task.status.in_(FINAL_STATUSES)
                )
            ).scalar()
            db.session.commit()
            if done >= len(ids):
                return time.monotonic() - start
            time.sleep(0.1)
        raise RuntimeError(f"tasks not final after {timeout}s")

    def throughput(self, ids: list[int]) -> float:
        first, last = db.session.execute(
            db.select(db.func.min(Task.queued_at), db.func.max(Task.finished_at)).where(
                Task.id.in_(ids)
            )
        ).one()
        ok = db.session.execute(
            db.select(db.func.count()).where(Task.id.in_(ids), Task.status == SUCCESS)
        ).scalar()
        db.session.commit()
        if ok != len(ids):
            errors = db.session.execute(
                db.select(Task.status, Task.error, db.func.count())
                .where(Task.id.in_(ids), Task.status != SUCCESS)
                .group_by(Task.status, Task.error)
            ).all()
            raise RuntimeError(f"only {ok}/{len(ids)} tasks succeeded: {errors[:5]}")
        return len(ids) / max(1e-6, (last - first).total_seconds())

    @staticmethod
    def stop(procs):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()

    # --- measurements -----------------------------------------------------------------
    def engine_rate(self, n: int, cap: int, latency_ms: int, n_workers: int = 1) -> float:
        from llmadmin.services.tasks import run_tasks

        self.sim_config(latency_ms=latency_ms)
        _, ids = self.fresh(n, cap)
        procs = self.workers(n_workers)
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        try:
            run_tasks(ids)
            self.wait_final(ids, 600)
            self.last_cpu_ms = (sum(cpu_seconds(p.pid) for p in procs) - cpu_before) / n * 1000
        finally:
            self.stop(procs)
        rate = self.throughput(ids)
        self.last_slots = self.slot_use(ids, cap)
        return rate

    def slot_use(self, ids: list[int], cap: int) -> tuple[float, float, float]:
        """(average busy slots, median and mean ms from a slot freeing to its next call).

        From the rows: a call ran from ``finished_at - latency_ms`` to ``finished_at``.
        Busy slots are averaged from the first call's start to the last call's end; the
        k-th call to start after the first ``cap`` took the slot of the (k - cap)-th to end.
        """
        rows = db.session.execute(
            db.select(Task.finished_at, Task.latency_ms).where(Task.id.in_(ids))
        ).all()
        db.session.commit()
        ends = sorted(finished.timestamp() for finished, _ in rows)
        starts = sorted(finished.timestamp() - latency / 1000 for finished, latency in rows)
        busy = sum(latency / 1000 for _, latency in rows) / max(1e-6, ends[-1] - starts[0])
        gaps = sorted(starts[k] - ends[k - cap] for k in range(cap, len(starts)))
        if not gaps:
            return busy, 0.0, 0.0
        return busy, gaps[len(gaps) // 2] * 1000, sum(gaps) / len(gaps) * 1000

    def script_rate(self, script: str, n: int, cap: int, latency_ms: int, python: str):
        """Run a hand-written baseline script; return (req/s, CPU ms per request)."""
        self.sim_config(latency_ms=latency_ms)
        out = subprocess.run(
            [python, str(ROOT / "bench" / script), self.sim_root + "/v1", str(n), str(cap)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.split()
        return float(out[0]), float(out[1])

    def naive_rate(self, n: int, latency_ms: int) -> float:
        from rq import Queue

        from bench.naive import naive_task
        from llmadmin.lifecycle import transition
        from llmadmin.models.task import QUEUED
        from llmadmin.queues import get_redis

        self.sim_config(latency_ms=latency_ms)
        _, ids = self.fresh(n, cap=1)
        transition(ids, QUEUED)
        queue = Queue("naive", connection=get_redis())
        for task_id in ids:
            queue.enqueue(naive_task, task_id)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.naive"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        try:
            self.wait_final(ids, 900)
        finally:
            self.stop(procs)
        return self.throughput(ids)

    def bulk_request_seconds(self, n: int) -> float:
        from llmadmin.services.people import create_user

        _, ids = self.fresh(n, cap=32)
        create_user("bench@example.com", "bench-password", admin=True)
        self.app.config["WTF_CSRF_ENABLED"] = False
        client = self.app.test_client()
        client.post("/login", data={"email": "bench@example.com", "password": "bench-password"})
        start = time.perf_counter()
        response = client.post(
            "/admin/task/action/",
            data={"action": "run", "all_matching": "1", "list_args": "", "rowid": [str(ids[0])]},
        )
        elapsed = time.perf_counter() - start
        assert response.status_code == 302, response.status_code
        return elapsed

    def limits_check(self, n: int, cap: int, rpm: int) -> dict:
        from llmadmin.services.tasks import run_tasks

        self.sim_config(latency_ms=200)
        _, ids = self.fresh(n, cap, rpm)
        self.app.config["TASK_CHUNK_FACTOR"] = 4
        procs = self.workers(2)
        try:
            run_tasks(ids)
            elapsed = self.wait_final(ids, 900)
        finally:
            self.stop(procs)
            self.app.config["TASK_CHUNK_FACTOR"] = 8
        stats = self.sim_stats()
        return {
            "elapsed_s": round(elapsed, 1),
            "max_in_flight": stats["max_in_flight"],
            "max_requests_per_60s": stats["max_requests_per_60s"],
            "total": stats["total_requests"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller task counts")
    parser.add_argument(
        "--skip-limits", action="store_true", help="skip the (slow) rate-limit check"
    )
    parser.add_argument(
        "--openai-python",
        default=None,
        help="interpreter with the openai package for the AsyncOpenAI baseline "
        "(default: this one, skipped when it lacks openai)",
    )
    parser.add_argument(
        "--only-baselines", action="store_true", help="only the hand-written script comparison"
    )
    args = parser.parse_args()
    n = 600 if args.quick else 2000
    bench = Bench(args)
    rows = []
    try:
        scripts = hand_written(bench, n, openai_python(args.openai_python))
        if args.only_baselines:
            return
        naive = bench.naive_rate(40 if args.quick else 100, 200)
        rows.append(("naive baseline (1 RQ job per task), 200 ms", naive, None))
        ideal = 32 / 0.2
        engine = bench.engine_rate(n, 32, 200)
        rows.append((f"engine, {n} tasks, cap 32, 200 ms, 1 worker", engine, engine / naive))
        for cap in (8, 64, 128):
            rate = bench.engine_rate(n, cap, 200)
            rows.append(
                (
                    f"engine, cap {cap}, 200 ms, 1 worker (ideal {cap / 0.2:.0f}/s)",
                    rate,
                    rate / naive,
                )
            )
        rate2 = bench.engine_rate(n * 2, 128, 200, n_workers=2)
        rows.append(("engine, cap 128, 200 ms, 2 workers (ideal 640/s)", rate2, rate2 / naive))
        zero = bench.engine_rate(n, 64, 0)
        rows.append((f"engine, {n} tasks, 0 ms latency, cap 64, 1 worker", zero, zero / naive))
        bulk = bench.bulk_request_seconds(10_000)
        limits = None if args.skip_limits else bench.limits_check(700, 8, 600)
    finally:
        bench.close()
        print_hand_written(scripts if "scripts" in locals() else {})
    print(
        f"\nDatabase: {bench.app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}; "
        f"Redis: {'embedded' if bench.app.config.get('REDIS_EMBEDDED') else 'REDIS_URL'}"
    )
    print(f"{'measurement':60} {'tasks/s':>9} {'× naive':>8}")
    for label, rate, ratio in rows:
        print(f"{label:60} {rate:9.1f} {'' if ratio is None else f'{ratio:8.1f}'}")
    print(
        f"\nengine at cap 32 / 200 ms: {engine / naive:.1f}× naive (target ≥ 25×), "
        f"{engine / ideal * 100:.0f}% of ideal 160/s (target ≥ 75%)"
    )
    print(f"0 ms latency: {zero:.0f} tasks/s per worker process (target ≥ 400)")
    print(
        f"bulk Run on all 10,000 matching rows: web request took {bulk * 1000:.0f} ms (target < 1000 ms)"
    )
    if limits:
        print(
            f"2 workers, cap 8, 600 requests/min, 700 tasks: {limits} (limits: ≤ 8 in flight, ≤ 600 per 60 s)"
        )


def hand_written(bench: Bench, n: int, oa_python: str | None) -> dict:
    """Engine against the hand-written asyncio scripts, same simulator, same run."""
    results = {}
    for latency in (200, 0):
        engine = bench.engine_rate(n, 32, latency)
        results[("engine", latency)] = (engine, bench.last_cpu_ms)
        results[("slots", latency)] = bench.last_slots
        results[("httpx", latency)] = bench.script_rate(
            "baseline_httpx.py", n, 32, latency, sys.executable
        )
        if oa_python:
            results[("openai", latency)] = bench.script_rate(
                "baseline_openai.py", n, 32, latency, oa_python
            )
    return results


def print_hand_written(results: dict) -> None:
    """Print the engine against the hand-written scripts (ratios in the same run)."""
    if not results:
        return
    print(
        f"\n{'cap 32, hand-written baselines':44} {'req/s':>8} {'CPU ms/req':>11} {'engine ×':>9}"
    )
    for latency in (200, 0):
        engine, _ = results[("engine", latency)]
        for name in ("engine", "httpx", "openai"):
            if (name, latency) not in results:
                print(f"{name + f', {latency} ms':44} {'skipped (no openai package)':>30}")
                continue
            rate, cpu = results[(name, latency)]
            label = {
                "engine": "engine (1 worker.py, database rows)",
                "httpx": "asyncio + one httpx.AsyncClient + semaphore",
                "openai": "asyncio + AsyncOpenAI + semaphore",
            }[name]
            ratio = "" if name == "engine" else f"{engine / rate:9.2f}"
            print(f"{label + f', {latency} ms':44} {rate:8.1f} {cpu:11.2f} {ratio}")
    for latency in (200, 0):
        busy, gap_p50, gap_mean = results[("slots", latency)]
        print(
            f"engine, {latency} ms: {busy:.1f} of 32 slots busy on average; from a slot freeing "
            f"to its next call {gap_p50:.1f} ms median, {gap_mean:.1f} ms mean"
        )
    print(f"load average: {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
