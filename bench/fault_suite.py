"""Run the fault-injection suite (tests/faults) at benchmark size and print its summary table.

    .venv/bin/python bench/fault_suite.py                  # FAULT_TASKS=500
    .venv/bin/python bench/fault_suite.py --tasks 150 -k kill

Every scenario runs real worker.py processes, the simulated endpoint and Redis (the
embedded server, or REDIS_URL; scenarios that kill or flush Redis always start a private
redis-server). Set DATABASE_URL / REDIS_URL to measure on PostgreSQL and a real Redis.
The table lists, per scenario: tasks, lost (never final), stuck (not final at the
deadline), run twice (endpoint calls beyond what the fault explains) and recovery seconds.

The tests check behaviour only; the timing targets live here (TARGETS): a scenario whose
recovery seconds miss its target is listed after the table and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# Scenario name prefix -> (most seconds in its "recovery s" column, what that column measures).
TARGETS = {
    "kill -9 one worker": (30.0, "until every interrupted task is called again"),
    "kill -9 all workers": (30.0, "until every interrupted task is called again"),
    # The suite's workers drain for WORKER_DRAIN_SECONDS=2 (tests/integration/conftest.py).
    "SIGTERM in a long chunk": (7.0, "from SIGTERM until the worker exits (drain 2 s + 5 s)"),
}


def missed_targets(rows) -> list[str]:
    """Describe each scenario row whose recovery seconds miss (or lack) its target."""
    missed = []
    for row in rows:
        for prefix, (limit, measures) in TARGETS.items():
            if row.scenario.startswith(prefix) and (
                row.recovery_s is None or row.recovery_s > limit
            ):
                missed.append(f"{row.scenario}: {row.recovery_s} s {measures} (target {limit:g} s)")
    return missed


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks", type=int, default=500, help="FAULT_TASKS for the scaled scenarios"
    )
    return parser.parse_known_args()


def main() -> int:
    """Run pytest on tests/faults with FAULT_TASKS set and print the scenarios' table."""
    from tests.faults.harness import summary_lines

    args, pytest_args = parse_args()
    with tempfile.TemporaryDirectory(prefix="llmadmin-faults-") as tmp:
        report_path = os.path.join(tmp, "faults.json")
        env = {**os.environ, "FAULT_TASKS": str(args.tasks), "FAULT_REPORT": report_path}
        started = time.monotonic()
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "timeout=900",
                "tests/faults",
                *pytest_args,
            ],
            cwd=ROOT,
            env=env,
        ).returncode
        wall = time.monotonic() - started
        if not os.path.exists(report_path):
            print("no scenario report was written (did the suite run?)", file=sys.stderr)
            return code or 1
        with open(report_path, encoding="utf-8") as handle:
            data = json.load(handle)
    rows = [SimpleNamespace(**row) for row in data["rows"]]
    print(
        f"\nfault suite: FAULT_TASKS={data['fault_tasks']}, {data['backend']}, "
        f"wall time {wall:.0f} s, pytest exit {code}"
    )
    for line in summary_lines(rows):
        print(line)
    missed = missed_targets(rows)
    for line in missed:
        print(f"target missed: {line}")
    return code or (1 if missed else 0)


if __name__ == "__main__":
    sys.exit(main())
