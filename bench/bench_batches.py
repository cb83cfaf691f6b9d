"""Benchmark batch upload validation: a 100,000-line OpenAI batch JSONL, time and peak memory.

    .venv/bin/python bench/bench_batches.py [--lines 10000,100000] [--create]

For each size, a JSONL file of OpenAI batch request lines (system + user message, two
models, some parameters, realistic prompt lengths) is written to a temporary folder, then
each case runs in its own subprocess so its peak memory (VmHWM: the process's RSS
high-water mark, interpreter and imports included) is its own; for ours the mark is reset
once the app is built (its start-up peaks higher than the reading), and the RSS of the
ready app is printed beside it:

* baseline: ``json.loads`` of every line (the least any validation must do),
* app: the migrated app alone, reading no line (the floor of ours' peak memory), and
* ours: ``services.batches.validate_file`` — parse, check every field with the task form's
  and the API's rules, look up the models, collect errors and the per-model summary —
  inside a migrated app on a fresh SQLite file (what the admin's preview does).
* with ``--create``: ours again through ``create_batch_from_file``, in two parts: the web
  request (store the VALIDATING batch row and enqueue its job: ``request``) and the job that
  a worker runs (``services.batch_creation.run_creation``: read and check every line again,
  insert the tasks 1,000 per chunk, each chunk committed with the batch's progress and
  dispatched into a private embedded Redis; no worker executes the tasks).

Targets (issue 12): validation of 100,000 lines ≤ 15 s and ≤ 200 MB, flat in the size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PROMPT = (
    "请把下面这段客户来信归类为退款、投诉、咨询或其他，并用一句话说明理由。"
    "Customer wrote: my order arrived late and the box was damaged, I would like "
)


def write_file(path: str, lines: int) -> None:
    """Write ``lines`` OpenAI batch request lines naming two models."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(lines):
            body = {
                "model": "Bench A" if i % 2 else "Bench B",
                "messages": [
                    {"role": "system", "content": "You are a careful classifier."},
                    {"role": "user", "content": f"{PROMPT}#{i} to be handled."},
                ],
                "temperature": 0.2,
                "max_tokens": 200,
            }
            line = {
                "custom_id": f"request-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": body,
            }
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def peak_mb() -> float:
    """The process's own RSS high-water mark (VmHWM) in MB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """The process's current RSS (VmRSS) in MB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux: clear_refs 5), so a case's peak is its own."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")


def case_baseline(path: str) -> dict:
    started = time.perf_counter()
    count = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            json.loads(line)
            count += 1
    return {"seconds": time.perf_counter() - started, "lines": count}


def build_app(folder: str):
    os.environ["LLMADMIN_INSTANCE"] = folder
    from flask_migrate import upgrade

    from llmadmin import create_app
    from llmadmin.queues import ensure_embedded_redis

    redis_url = ensure_embedded_redis(os.path.join(folder, "redis"))
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.db",
            "REDIS_URL": redis_url,
        }
    )
    with app.app_context():
        upgrade()
        from llmadmin.extensions import db
        from llmadmin.models import LLMModel
        from llmadmin.services.people import create_user

        create_user("bench@example.com", "bench-password", admin=True)
        for name in ("Bench A", "Bench B"):
            db.session.add(LLMModel(name=name, base_url="http://127.0.0.1:9/v1", model_name="b"))
        db.session.commit()
    return app


def case_app(folder: str) -> dict:
    """The migrated app alone: what ours costs before reading a line."""
    started = time.perf_counter()
    build_app(folder)
    return {"seconds": time.perf_counter() - started, "lines": 0}


def case_ours(path: str, folder: str, create: bool) -> dict:
    app = build_app(folder)
    with app.app_context():
        from llmadmin.services import batches

        before = rss_mb()
        reset_peak()  # the app's start-up (migrations) peaks higher than reading lines
        started = time.perf_counter()
        if create:
            from llmadmin.extensions import db
            from llmadmin.models import Batch
            from llmadmin.services.batch_creation import run_creation

            batch = batches.create_batch_from_file(path, "jsonl", 1, source_name="bench.jsonl")
            request_seconds = time.perf_counter() - started
            batch_id, job_id = batch.id, batch.job_id
            job_started = time.perf_counter()
            outcome = run_creation(batch_id, job_id)
            job_seconds = time.perf_counter() - job_started
            db.session.expire_all()
            batch = db.session.get(Batch, batch_id)
            result = {
                "lines": batch.lines,
                "valid": batch.total,
                "invalid": batch.invalid_lines,
                "request_seconds": request_seconds,
                "job_seconds": job_seconds,
                "outcome": outcome,
            }
        else:
            summary = batches.validate_file(path, "jsonl", 1)
            result = {"lines": summary.lines, "valid": summary.valid, "invalid": summary.invalid}
        result["seconds"] = time.perf_counter() - started
        result["rss_before_mb"] = before
    return result


def child(args) -> None:
    """Run one case in this process and print its figures as JSON."""
    if args.case == "baseline":
        result = case_baseline(args.file)
    else:
        from llmadmin.queues import stop_embedded_redis

        try:
            if args.case == "app":
                result = case_app(args.folder)
            else:
                result = case_ours(args.file, args.folder, args.case == "create")
        finally:
            stop_embedded_redis(os.path.join(args.folder, "redis"))
    result["peak_mb"] = peak_mb()
    print(json.dumps(result))


def run_case(case: str, path: str, folder: str) -> dict:
    os.makedirs(folder, exist_ok=True)
    command = [sys.executable, __file__, "--child", case, "--file", path, "--folder", folder]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="10000,100000")
    parser.add_argument("--create", action="store_true", help="also insert and dispatch")
    parser.add_argument("--child", dest="case", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        child(args)
        return
    sizes = [int(n) for n in args.lines.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as folder:
        for size in sizes:
            path = os.path.join(folder, f"batch-{size}.jsonl")
            write_file(path, size)
            megabytes = os.path.getsize(path) / 1e6
            cases = ["baseline", "app", "validate", *(["create"] if args.create else [])]
            for case in cases:
                figures = run_case(case, path, os.path.join(folder, f"{case}-{size}"))
                results[(size, case)] = figures
                if case == "app":
                    print(
                        f"{'':>8} app alone (migrated, no line read): peak "
                        f"{figures['peak_mb']:6.1f} MB",
                        flush=True,
                    )
                    continue
                ratio = figures["seconds"] / results[(size, "baseline")]["seconds"]
                before = figures.get("rss_before_mb")
                added = f"  (app ready: {before:.1f} MB)" if before else ""
                if "request_seconds" in figures:
                    added += (
                        f"  [web request {figures['request_seconds'] * 1000:.1f} ms, "
                        f"job {figures['job_seconds']:.2f} s, {figures['outcome']}, "
                        f"{figures['valid']:,} tasks]"
                    )
                print(
                    f"{size:>8,} lines ({megabytes:.1f} MB)  {case:<9} "
                    f"{figures['seconds']:7.2f} s  {figures['lines'] / figures['seconds']:>9,.0f} "
                    f"lines/s  peak {figures['peak_mb']:6.1f} MB{added}  "
                    f"time × json.loads {ratio:5.1f}",
                    flush=True,
                )
    if len(sizes) > 1:
        small, big = min(sizes), max(sizes)
        for case in ("baseline", "app", "validate", *(["create"] if args.create else [])):
            growth = results[(big, case)]["peak_mb"] / results[(small, case)]["peak_mb"]
            print(f"peak memory {big:,} / {small:,} lines, {case}: {growth:.2f}×")


if __name__ == "__main__":
    main()
