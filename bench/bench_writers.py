#!/usr/bin/env python
"""Benchmark the export writers: rows/s and peak RSS, each in a fresh process.

    .venv/bin/python bench/bench_writers.py --rows 200000

Every measurement runs in its own subprocess so one writer's memory peak cannot hide
another's; with --repeat N (default 3) the cases run round-robin N times and the table shows
the fastest run and the highest peak, which keeps a busy machine's noise out of the ratio. "generate" only drains the row generator (the floor for time and memory);
"bare xlsxwriter" is a plain constant_memory ``write_row`` loop, the baseline for write_xlsx.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEADERS = ["id", "name", "status", "prompt", "output", "created_at", "tokens", "cost"]
CASES = ["generate", "bare_xlsx", "write_csv", "write_xlsx", "write_zip_bundle"]
LABELS = {"bare_xlsx": "bare xlsxwriter loop", "generate": "generate rows only"}
WORDS = "the model answer prompt token 用户 请求 数据 export review summary fix list".split()
STATUSES = ["success", "failure", "queued", "running", "cancelled"]


def _text_pool(rng: random.Random, size: int, length: int) -> list[str]:
    pool = []
    for _ in range(size):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < length:
            words.append(rng.choice(WORDS))
        pool.append(" ".join(words)[:length])
    return pool


def make_rows(count: int) -> Iterator[tuple]:
    """Yield realistic task rows lazily (prompt ~200 chars, output ~500 chars)."""
    rng = random.Random(42)
    prompts, outputs = _text_pool(rng, 61, 200), _text_pool(rng, 67, 500)
    costs = [Decimal(rng.randrange(1, 500_000)) / Decimal(1_000_000) for _ in range(101)]
    start = datetime(2024, 1, 1)
    for i in range(count):
        yield (
            i + 1,
            f"任务 task {i + 1}",
            STATUSES[i % len(STATUSES)],
            f"#{i} {prompts[i % 61]}",
            f"#{i} {outputs[i % 67]}",
            start + timedelta(seconds=17 * i),
            (i * 7) % 4000,
            costs[i % 101],
        )


def _bare_xlsx(path: str, rows: Iterator[tuple]) -> None:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(
        path, {"constant_memory": True, "default_date_format": "yyyy-mm-dd hh:mm:ss"}
    )
    sheet = workbook.add_worksheet("Export")
    sheet.write_row(0, 0, HEADERS)
    for number, row in enumerate(rows, start=1):
        sheet.write_row(number, 0, row)
    workbook.close()


def _task_files(row: tuple) -> list[tuple[str, str]]:
    return [(f"task-{row[0]}/prompt.txt", row[3]), (f"task-{row[0]}/output.txt", row[4])]


def _case_function(case: str) -> tuple[str, Callable[[str, Iterator[tuple]], object]]:
    from llmadmin.exports import write_csv, write_xlsx, write_zip_bundle

    return {
        "generate": ("", lambda _path, rows: sum(1 for _ in rows)),
        "bare_xlsx": (".xlsx", _bare_xlsx),
        "write_csv": (".csv", lambda path, rows: write_csv(path, HEADERS, rows)),
        "write_xlsx": (".xlsx", lambda path, rows: write_xlsx(path, HEADERS, rows)),
        "write_zip_bundle": (
            ".zip",
            lambda path, rows: write_zip_bundle(path, HEADERS, rows, text_files=_task_files),
        ),
    }[case]


def _peak_rss_mb() -> float:
    # VmHWM is this process's own peak; ru_maxrss would include the parent's RSS at fork.
    if os.path.exists("/proc/self/status"):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def run_child(case: str, rows: int, directory: str) -> None:
    """Run one measurement in this process and print it as JSON."""
    suffix, function = _case_function(case)
    path = os.path.join(directory, f"{case}{suffix}")
    started = time.perf_counter()
    function(path, make_rows(rows))
    elapsed = time.perf_counter() - started
    size = os.path.getsize(path) if suffix else 0
    if suffix:
        os.remove(path)
    print(json.dumps({"seconds": elapsed, "rss_mb": _peak_rss_mb(), "size_mb": size / 1e6}))


def _measure(case: str, rows: int, scratch: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--rows", str(rows), "--case", case, "--dir", scratch]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_parent(rows: int, repeat: int, directory: str | None) -> None:
    """Measure every case in fresh subprocesses and print a table."""
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        for _ in range(repeat):
            for case in CASES:
                run = _measure(case, rows, scratch)
                best = results.setdefault(case, run)
                best["seconds"] = min(best["seconds"], run["seconds"])
                best["rss_mb"] = max(best["rss_mb"], run["rss_mb"])
    print(f"rows: {rows:,}   best of {repeat}   python {sys.version.split()[0]}")
    print(f"{'case':<22}{'rows/s':>12}{'seconds':>10}{'peak RSS MB':>13}{'file MB':>10}")
    for case in CASES:
        r = results[case]
        print(
            f"{LABELS.get(case, case):<22}{rows / r['seconds']:>12,.0f}{r['seconds']:>10.2f}"
            f"{r['rss_mb']:>13.1f}{r['size_mb']:>10.1f}"
        )
    ratio = results["bare_xlsx"]["seconds"] / results["write_xlsx"]["seconds"]
    print(f"write_xlsx speed / bare xlsxwriter loop: {ratio:.2f}x (1.00 = no overhead)")


def main() -> None:
    """Parse arguments and run the whole benchmark, or one case when --case is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best is shown)")
    parser.add_argument("--dir", help="scratch directory (default: system temp)")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_child(args.case, args.rows, args.dir or tempfile.gettempdir())
    else:
        run_parent(args.rows, args.repeat, args.dir)


if __name__ == "__main__":
    main()
