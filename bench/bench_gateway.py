"""Benchmark the gateway: /v1/chat/completions through llmadmin vs direct to the same endpoint.

    [DATABASE_URL=postgresql://…/postgres] .venv/bin/python bench/bench_gateway.py \
        [--workers 2] [--web-processes 4] [--web-threads 32] [--rounds 4] [--only 0/1 200/64]

Real processes in a temporary folder: the simulated endpoint (uvicorn), the web app under
gunicorn (gthread), ``--workers`` worker.py processes, a fresh SQLite file (or a fresh
PostgreSQL database on the server DATABASE_URL names) and a private embedded Redis. The same async httpx clients send the same request (0 ms or 200 ms of
simulated latency, set per request with a ``[[sim: latency_ms=…]]`` directive) to the
endpoint directly and through the gateway, with 1 and 64 clients at once. Printed per case:
p50 latency of each, the added p50 (target <= 30 ms), the throughput ratio (target at
64 clients >= 0.5x direct) and the gateway's CPU per call: CPU time (user + system, /proc) of
the gunicorn processes and of the worker processes over the case, divided by its calls (far
less noisy than the ratio on a shared machine). Every gateway call is a real task (row, audit,
queue, worker).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CASES = [(0, 1), (0, 64), (200, 1), (200, 64)]  # (latency ms, clients)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def fresh_postgres(admin_url: str) -> str:
    """Create an empty PostgreSQL database for this run; return its URL."""
    from urllib.parse import urlsplit, urlunsplit

    from sqlalchemy import create_engine, text

    from llmadmin.database import normalise_url

    admin_url = normalise_url(admin_url)
    name = f"llmadmin_bench_gateway_{os.getpid()}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_postgres(url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    from sqlalchemy import create_engine, text

    parts = urlsplit(url)
    engine = create_engine(
        urlunsplit(parts._replace(path="/postgres")), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)'))
    engine.dispose()


def prepare(folder: str, sim_url: str, database_url: str) -> tuple[dict, str]:
    """Migrate a fresh database, add a person, a token and the model; return (env, token)."""
    from llmadmin.queues import ensure_embedded_redis

    env = dict(os.environ)
    env.update(
        {
            "LLMADMIN_INSTANCE": folder,
            "DATABASE_URL": database_url or f"sqlite:///{folder}/bench.db",
            "REDIS_URL": ensure_embedded_redis(os.path.join(folder, "redis")),
            "SECRET_KEY": "bench-secret",
            "LOG_LEVEL": "WARNING",
            "API_RATE_PER_MINUTE": "0",
        }
    )
    os.environ.update({k: env[k] for k in ("LLMADMIN_INSTANCE", "DATABASE_URL", "REDIS_URL")})
    os.environ["SECRET_KEY"] = env["SECRET_KEY"]
    from flask_migrate import upgrade

    from llmadmin import create_app
    from llmadmin.extensions import db
    from llmadmin.models import LLMModel
    from llmadmin.services.api_tokens import create_token
    from llmadmin.services.people import create_user

    app = create_app()
    with app.app_context():
        upgrade()
        person = create_user("bench@example.com", "bench-password", admin=True)
        db.session.add(
            LLMModel(
                name="Bench",
                base_url=sim_url,
                model_name="sim-chat",
                simulated=True,
                max_concurrency=64,
                max_attempts=1,
                timeout_seconds=30,
            )
        )
        db.session.commit()
        token = create_token(person.id, "bench")[1]
        db.engine.dispose()
    return env, token


async def run_case(url: str, headers: dict, body: dict, clients: int, per_client: int):
    """Send ``clients`` x ``per_client`` calls (each client one after another)."""
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one_client() -> None:
            for _ in range(per_client):
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=body, headers=headers)
                except httpx.TransportError as exc:  # e.g. a kept-alive connection closed
                    errors.append(f"{type(exc).__name__} {exc}"[:200])
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:  # counted and shown, not hidden in the median
                    errors.append(f"{response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    for error in sorted(set(errors)):
        print(f"  {url}: {errors.count(error)} x {error}")
    return statistics.median(latencies) * 1000, len(latencies) / elapsed, len(errors)


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system, with reaped children) of ``roots`` and their descendants."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        # after "pid (comm)": state ppid … utime(12) stime(13) cutime(14) cstime(15)
        stats[int(entry)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    wanted, found = set(roots), True
    while found:
        found = False
        for pid, (ppid, _ticks) in stats.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                found = True
    return sum(stats[pid][1] for pid in wanted if pid in stats) / os.sysconf("SC_CLK_TCK")


def measure(sim_url, gateway_url, token, rounds, cases, web=(), workers=()) -> list[tuple]:
    """Run the cases; each row ends with the gateway's CPU ms per call (web, workers)."""
    rows = []
    for latency, clients in cases:
        prompt = f"benchmark prompt [[sim: latency_ms={latency}]]"
        per_client = max(2, rounds * 10 // clients) if clients == 1 else rounds
        direct_body = {"model": "sim-chat", "messages": [{"role": "user", "content": prompt}]}
        gateway_body = {"model": "Bench", "messages": [{"role": "user", "content": prompt}]}
        auth = {"Authorization": f"Bearer {token}"}
        direct = asyncio.run(
            run_case(f"{sim_url}/chat/completions", {}, direct_body, clients, per_client)
        )
        before = tree_cpu(list(web)), tree_cpu(list(workers))
        gateway = asyncio.run(
            run_case(f"{gateway_url}/chat/completions", auth, gateway_body, clients, per_client)
        )
        calls = clients * per_client
        cpu = (
            (tree_cpu(list(web)) - before[0]) * 1000 / calls,
            (tree_cpu(list(workers)) - before[1]) * 1000 / calls,
        )
        rows.append((latency, clients, calls, direct, gateway, cpu))
    return rows


def report(rows: list[tuple]) -> None:
    print(
        f"{'latency':>8} {'clients':>7} {'calls':>6} {'direct p50':>11} {'gateway p50':>12} "
        f"{'added p50':>10} {'direct/s':>9} {'gateway/s':>10} {'ratio':>6} {'errors':>7} "
        f"{'CPU ms/call web+workers':>24}"
    )
    for latency, clients, calls, direct, gateway, (web, workers) in rows:
        (d_p50, d_rate, d_err), (g_p50, g_rate, g_err) = direct, gateway
        print(
            f"{latency:>6}ms {clients:>7} {calls:>6} {d_p50:>9.1f}ms {g_p50:>10.1f}ms "
            f"{g_p50 - d_p50:>8.1f}ms {d_rate:>9.1f} {g_rate:>10.1f} {g_rate / d_rate:>5.2f}x "
            f"{d_err + g_err:>7} {web:>8.1f} + {workers:>4.1f} = {web + workers:>5.1f}"
        )
    added = max(g[0] - d[0] for _l, _n, _c, d, g, _cpu in rows)
    ratios = [g[1] / d[1] for _l, clients, _c, d, g, _cpu in rows if clients == 64]
    print(
        f"target: added p50 <= 30 ms: {'met' if added <= 30 else 'MISSED'} (worst {added:.1f} ms)"
    )
    if not ratios:
        print("target: throughput at 64 clients >= 0.5x direct: not measured in this run")
        return
    print(
        f"target: throughput at 64 clients >= 0.5x direct: "
        f"{'met' if min(ratios) >= 0.5 else 'MISSED'} (worst {min(ratios):.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker.py processes")
    parser.add_argument("--web-processes", type=int, default=4, help="gunicorn processes")
    parser.add_argument("--web-threads", type=int, default=32, help="gunicorn threads each")
    parser.add_argument("--rounds", type=int, default=4, help="calls per client at 64 clients")
    parser.add_argument("--log", help="keep the processes' output in this file")
    parser.add_argument("--only", nargs="*", help="cases as LATENCY/CLIENTS, e.g. 0/1 200/64")
    args = parser.parse_args()
    # DATABASE_URL=postgresql://…/postgres: a fresh database on that server (else SQLite).
    database_url = (
        fresh_postgres(os.environ["DATABASE_URL"]) if os.environ.get("DATABASE_URL") else ""
    )
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder:
        from llmadmin.queues import stop_embedded_redis

        try:
            sim_port, web_port = free_port(), free_port()
            sim_url = f"http://127.0.0.1:{sim_port}/v1"
            log = open(args.log or os.path.join(folder, "processes.log"), "wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "llmadmin.llm.simulator", "--port", str(sim_port)]
                    + ["--latency-ms", "0"],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            env, token = prepare(folder, sim_url, database_url)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-k", "gthread"]
                    + ["-w", str(args.web_processes)]
                    + ["--threads", str(args.web_threads), "-b", f"127.0.0.1:{web_port}"]
                    # gunicorn closes idle keep-alive connections after 2 s by default, racing
                    # the clients' reuse of them (httpx.ReadError); proxies keep them ~75 s.
                    + ["--keep-alive", "75"]
                    + ["app:app"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            for _ in range(args.workers):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "worker.py"],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its job processes are stopped with it
                    )
                )
            wait_http(f"http://127.0.0.1:{sim_port}/_sim/stats")
            wait_http(
                f"http://127.0.0.1:{web_port}/healthz", 120
            )  # slow to start on a busy machine
            gateway_url = f"http://127.0.0.1:{web_port}/v1"
            cases = [c for c in CASES if not args.only or f"{c[0]}/{c[1]}" in args.only]
            measure(sim_url, gateway_url, token, 1, cases)  # warm-up: imports, connections, forks
            web, workers = [procs[1].pid], [proc.pid for proc in procs[2:]]
            rows = measure(sim_url, gateway_url, token, args.rounds, cases, web, workers)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for proc in procs[2:]:  # the workers' groups: a job process left behind goes too
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            stop_embedded_redis(os.path.join(folder, "redis"))
            if database_url:
                drop_postgres(database_url)
    print(
        f"database: {'PostgreSQL' if database_url else 'SQLite'}; workers: {args.workers}; "
        f"web: gunicorn gthread {args.web_processes} x {args.web_threads} threads"
    )
    report(rows)


if __name__ == "__main__":
    main()
