#!/usr/bin/env python3
"""One-command set-up and run for llmadmin (standard library only, so it works on a fresh machine).

python3 run.py          # venv + install + migrate + demo admin + web, worker, embedded Redis, simulator
python3 run.py test     # the whole test suite (embedded services; also PostgreSQL/Redis when
                        # DATABASE_URL / REDIS_URL are set)
python3 run.py lint     # ruff format --check, ruff check, lint-imports (the CI lint gate)

The venv is installed from requirements.lock (every package pinned with hashes, pip's
--require-hashes mode) and reinstalled whenever that file changes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
# The full resolved set with hashes, compiled from requirements.txt (see README "Operations").
LOCK = ROOT / "requirements.lock"


def ensure_venv() -> None:
    """Create .venv and install requirements.lock (hash-checked) when the lock changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py may be started by an older python3
        sys.exit("llmadmin needs Python 3.11 or newer.")
    if not PY.exists():
        print("Creating virtualenv in .venv …", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".requirements.lock.sha256"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print("Installing requirements.lock (hash-checked) …", flush=True)
        subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run(
            [str(PY), "-m", "pip", "install", "-q", "--require-hashes", "-r", str(LOCK)],
            check=True,
        )
        stamp.write_text(digest)


def flask(*args: str, env: dict) -> None:
    subprocess.run([str(PY), "-m", "flask", "--app", "app", *args], check=True, cwd=ROOT, env=env)


def run_tests(extra: list[str]) -> int:
    """Run pytest on the embedded services, then on DATABASE_URL/REDIS_URL when set."""
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    runs = [("SQLite + embedded Redis", base)]
    if os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL"):
        runs.append(("DATABASE_URL + REDIS_URL", dict(os.environ)))
    status = 0
    for label, env in runs:
        print(f"\n=== tests on {label} ===", flush=True)
        code = subprocess.run([str(PY), "-m", "pytest", "-q", *extra], cwd=ROOT, env=env).returncode
        print(f"=== {label}: {'passed' if code == 0 else f'FAILED (exit {code})'} ===", flush=True)
        status = status or code
    return status


LINTS = (
    ("ruff format --check", [str(BIN / "ruff"), "format", "--check", "."]),
    ("ruff check", [str(BIN / "ruff"), "check", "."]),
    ("lint-imports", [str(BIN / "lint-imports")]),
)


def run_lint() -> int:
    """Run every lint; non-zero when any of them fails (all run, so one pass shows every failure)."""
    failed = []
    for label, cmd in LINTS:
        print(f"\n=== lint: {label} ===", flush=True)
        code = subprocess.run(cmd, cwd=ROOT).returncode
        print(f"=== {label}: {'passed' if code == 0 else f'FAILED (exit {code})'} ===", flush=True)
        if code:
            failed.append(label)
    if failed:
        print(f"\nLINT FAILED: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_all() -> int:
    """Migrate, seed the demo, and supervise web + worker + simulator + embedded Redis."""
    env = dict(os.environ)
    env.setdefault("LLMADMIN_INSTANCE", str(ROOT / "instance"))
    instance = Path(env["LLMADMIN_INSTANCE"])
    instance.mkdir(parents=True, exist_ok=True)
    port = env.get("PORT", "5000")
    sim_port = env.get("SIMULATOR_PORT", "8099")
    env.setdefault("SIMULATOR_URL", f"http://127.0.0.1:{sim_port}/v1")
    embedded = not env.get("REDIS_URL")
    if embedded:
        subprocess.run(
            [
                str(PY),
                "-c",
                "import sys; from llmadmin.queues import ensure_embedded_redis as e;"
                " print(e(sys.argv[1]))",
                str(instance),
            ],
            check=True,
            cwd=ROOT,
            env=env,
        )
    flask("db", "upgrade", env=env)
    email = env.get("DEMO_ADMIN_EMAIL", "admin@example.com")
    password = env.get("DEMO_ADMIN_PASSWORD", "admin12345")
    flask("seed-demo", "--admin-email", email, "--admin-password", password, env=env)
    signal.signal(signal.SIGTERM, _interrupt)  # stop everything cleanly on SIGTERM too
    procs = [
        subprocess.Popen(
            [
                str(PY),
                "-m",
                "llmadmin.llm.simulator",
                "--port",
                sim_port,
                "--latency-ms",
                env.get("SIMULATOR_LATENCY_MS", "300"),
            ],
            cwd=ROOT,
            env=env,
        ),
        subprocess.Popen([str(PY), "worker.py"], cwd=ROOT, env=env),
        subprocess.Popen(
            [
                str(PY),
                "-m",
                "flask",
                "--app",
                "app",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--no-reload",
            ],
            cwd=ROOT,
            env=env,
        ),
    ]
    print(
        f"\n  llmadmin is running at http://127.0.0.1:{port}/admin/\n  login: {email} / {password}\n"
        f"  (simulated model endpoint at {env['SIMULATOR_URL']}; Ctrl-C stops everything)\n",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("A process exited; stopping the others.", flush=True)
    except KeyboardInterrupt:
        print("\nStopping …", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if embedded:
            subprocess.run(
                [
                    str(PY),
                    "-c",
                    "import sys; from llmadmin.queues import stop_embedded_redis as s;"
                    " s(sys.argv[1])",
                    str(instance),
                ],
                cwd=ROOT,
                env=env,
            )
    return 0


def main() -> int:
    os.chdir(ROOT)
    ensure_venv()
    if len(sys.argv) > 1 and sys.argv[1] == "test":
        return run_tests(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "lint":
        return run_lint()
    return run_all()


if __name__ == "__main__":
    sys.exit(main())
