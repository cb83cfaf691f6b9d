"""Benchmark the Download Center exports against Flask-Admin's built-in CSV export.

    .venv/bin/python bench/bench_exports.py [--rows 1000000] [--zip-rows 100000]

Seeds N tasks with bulk inserts into a fresh SQLite file (and, when DATABASE_URL is set,
into a fresh PostgreSQL database that is dropped afterwards), then measures each case in
its own subprocess so that its peak RSS belongs to that case alone (``VmHWM`` of
/proc/self/status: ``ru_maxrss`` would also count the seeding parent's RSS, which Linux
carries across fork and exec):

* ours CSV / XLSX / ZIP: the real job (``services.downloads.run_export``) on a Download row
  selecting all rows (ZIP: the first ``--zip-rows`` rows, selected by a status filter; "CSV,
  ZIP's rows" exports those same filtered rows as CSV, the like-for-like baseline);
* bare xlsxwriter: the same query streamed into a constant-memory workbook, nothing else;
* Flask-Admin CSV: a ModelView with ``can_export=True, export_max_rows=0`` called through
  the test client, the streamed response consumed and thrown away;
* export request: the web request (logged-in admin, test client) that starts an export of
  all matching rows, once per format, with the real queue; the slowest is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CASES = ("csv", "xlsx", "zip", "csv_zip_rows", "bare_xlsx", "flask_admin_csv")
LABELS = {
    "csv": "ours CSV",
    "xlsx": "ours XLSX",
    "zip": "ours ZIP",
    "csv_zip_rows": "ours CSV, ZIP's rows",
    "bare_xlsx": "bare xlsxwriter loop",
    "flask_admin_csv": "Flask-Admin CSV",
}
TASK_COLUMNS = (
    "name",
    "creator_id",
    "model_id",
    "prompt",
    "system_prompt",
    "status",
    "result",
    "error",
    "error_kind",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost",
)
FILLER = "The quarterly report covers revenue, churn and hiring plans across regions. "
ANSWER = "摘要：收入增长，流失率下降。 Summary: revenue grew 12%, churn fell, hiring continues. "


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="Task rows to generate.")
    parser.add_argument("--zip-rows", type=int, default=100_000, help="Rows in the ZIP case.")
    parser.add_argument(
        "--backends",
        default="sqlite,postgresql",
        help="Which to measure (PostgreSQL only when DATABASE_URL is set).",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args()


# --- seeding ---------------------------------------------------------------------------------


def make_app(db_url: str, workdir: str):
    os.environ["LLMADMIN_INSTANCE"] = os.path.join(workdir, "instance")
    from llmadmin import create_app

    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": db_url,
            "DOWNLOAD_DIR": os.path.join(workdir, "downloads"),
            "REDIS_URL": os.environ.get("REDIS_URL", ""),
        }
    )


def task_rows(n: int, zip_rows: int, creator_id: int, model_id: int):
    start = datetime(2025, 1, 1)
    for i in range(n):
        created = start + timedelta(seconds=i)
        yield (
            f"Report #{i}",
            creator_id,
            model_id,
            f"Summarise document #{i}: " + FILLER * 2,
            None,
            "FAILURE" if i < zip_rows else "SUCCESS",
            ANSWER * 3,
            "timeout" if i < zip_rows else None,
            "timeout" if i < zip_rows else None,
            1,
            created,
            created,
            created + timedelta(seconds=2),
            812.5,
            120,
            240,
            0.00042,
        )


def seed(db_url: str, workdir: str, rows: int, zip_rows: int) -> None:
    """Create the schema with the real migrations and bulk-insert the tasks."""
    from flask_migrate import upgrade

    from llmadmin.extensions import db
    from llmadmin.models import LLMModel
    from llmadmin.services.people import create_user

    app = make_app(db_url, workdir)
    with app.app_context():
        upgrade()
        admin = create_user("bench@example.com", "bench-password", name="Bench Admin", admin=True)
        model = LLMModel(
            name="Sim", base_url="http://127.0.0.1:9/v1", model_name="sim-chat", simulated=True
        )
        db.session.add(model)
        db.session.commit()
        started = time.perf_counter()
        data = task_rows(rows, zip_rows, admin.id, model.id)
        if db.engine.dialect.name == "postgresql":
            _copy_postgresql(db, data)
        else:
            _insert_sqlite(db, data)
        print(f"  seeded {rows:,} tasks in {time.perf_counter() - started:.1f} s", flush=True)
        db.engine.dispose()


def _insert_sqlite(db, data) -> None:
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        marks = ",".join("?" * len(TASK_COLUMNS))
        cursor.executemany(f"INSERT INTO task ({','.join(TASK_COLUMNS)}) VALUES ({marks})", data)
        raw.commit()
    finally:
        raw.close()


def _copy_postgresql(db, data) -> None:
    raw = db.engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY task ({','.join(TASK_COLUMNS)}) FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
        raw.commit()
        with raw.driver_connection.cursor() as cursor:
            cursor.execute("ANALYZE task")
        raw.commit()
    finally:
        raw.close()


# --- the cases (each in its own process) ------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's own RSS high-water mark (VmHWM), not counting what came before exec."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_case(args: argparse.Namespace) -> None:
    app = make_app(args.db_url, args.workdir)
    with app.app_context():
        if args.case in ("csv", "xlsx", "zip", "csv_zip_rows"):
            result = case_ours(args.case)
        elif args.case == "bare_xlsx":
            result = case_bare_xlsx(args.workdir)
        elif args.case == "request":
            result = case_request(app)
        else:
            result = case_flask_admin(app)
    result["peak_mb"] = peak_rss_mb()
    print(json.dumps(result))


def case_ours(case: str) -> dict:
    from llmadmin.extensions import db
    from llmadmin.models import Download, Person
    from llmadmin.models.base import utcnow
    from llmadmin.services import downloads as service
    from llmadmin.services.selections import Selection

    admin = db.session.execute(
        db.select(Person).where(Person.email == "bench@example.com")
    ).scalar_one()
    filters = ()
    fmt = "csv" if case == "csv_zip_rows" else case
    if case in ("zip", "csv_zip_rows"):  # the same rows: the first --zip-rows, by a status filter
        filters = (("status", "equals", "FAILURE"),)
    row = Download(
        name=f"bench {fmt}",
        file_name=service.export_file_name("Tasks", fmt, utcnow()),
        file_format=fmt,
        source="tasks",
        status="PENDING",
        creator_id=admin.id,
        selection=json.dumps(Selection("task", admin.id, filters=filters).to_dict()),
    )
    db.session.add(row)
    db.session.commit()
    download_id, baseline = row.id, rss_mb()
    started = time.perf_counter()
    outcome = service.run_export(download_id)
    seconds = time.perf_counter() - started
    db.session.expire_all()
    row = db.session.get(Download, download_id)
    assert outcome == "SUCCESS", row.error
    return {
        "rows": row.row_count,
        "seconds": seconds,
        "bytes": row.size_bytes,
        "baseline_mb": baseline,
    }


def case_bare_xlsx(workdir: str) -> dict:
    import xlsxwriter

    from llmadmin.extensions import db
    from llmadmin.services import export_sources

    columns, joins = export_sources.SOURCES["tasks"].columns()
    from llmadmin.models import Task

    stmt = db.select(*(c.expr for c in columns))
    for target, onclause in joins:
        stmt = stmt.outerjoin(target, onclause)
    stmt = stmt.order_by(Task.id)
    path = os.path.join(workdir, "bare.xlsx")
    baseline = rss_mb()
    started = time.perf_counter()
    workbook = xlsxwriter.Workbook(
        path,
        {"constant_memory": True, "tmpdir": workdir, "default_date_format": "yyyy-mm-dd hh:mm:ss"},
    )
    sheet = workbook.add_worksheet()
    sheet.write_row(0, 0, [str(c.header) for c in columns])
    count = 0
    for count, row in enumerate(db.session.execute(stmt, execution_options={"yield_per": 2000}), 1):
        sheet.write_row(count, 0, row)
    workbook.close()
    seconds = time.perf_counter() - started
    size = os.path.getsize(path)
    os.remove(path)
    return {"rows": count, "seconds": seconds, "bytes": size, "baseline_mb": baseline}


def case_flask_admin(app) -> dict:
    from flask_admin.contrib.sqla import ModelView

    from llmadmin.extensions import db
    from llmadmin.models import Task

    class BenchTaskView(ModelView):
        can_export = True
        export_max_rows = 0  # unlimited
        export_types = ["csv"]
        column_list = (
            "id",
            "name",
            "status",
            "model",
            "creator",
            "attempts",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "error_kind",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "system_prompt",
            "prompt",
            "result",
        )
        column_export_list = column_list

        def is_accessible(self):
            return True

    admin = app.extensions["llmadmin.admin"]
    admin.add_view(
        BenchTaskView(Task, db.session, name="Bench", endpoint="benchtask", url="/admin/benchtask")
    )
    client = app.test_client()
    baseline = rss_mb()
    started = time.perf_counter()
    response = client.get("/admin/benchtask/export/csv/", buffered=False)
    assert response.status_code == 200, response.status_code
    size = lines = 0
    for chunk in response.iter_encoded():
        size += len(chunk)
        lines += chunk.count(b"\n")
    response.close()
    seconds = time.perf_counter() - started
    return {"rows": lines - 1, "seconds": seconds, "bytes": size, "baseline_mb": baseline}


def case_request(app) -> dict:
    """Time the requests that start an export of all 1M rows (they must not touch the rows)."""
    from llmadmin.extensions import db
    from llmadmin.models import Task

    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    login = client.post("/login", data={"email": "bench@example.com", "password": "bench-password"})
    assert login.status_code == 302, login.status_code
    rows = db.session.execute(db.select(db.func.count(Task.id))).scalar_one()
    db.session.commit()
    timings = []
    for fmt in ("csv", "xlsx", "zip") * 2:
        started = time.perf_counter()
        response = client.post(
            "/admin/task/action/",
            data={
                "action": f"export_{fmt}",
                "all_matching": "1",
                "list_args": "",
                "url": "/admin/task/",
            },
        )
        timings.append(time.perf_counter() - started)
        assert response.status_code == 302, response.status_code
    if app.config.get("REDIS_EMBEDDED"):  # the requests started it; leave no redis-server behind
        from llmadmin.queues import stop_embedded_redis

        stop_embedded_redis(app.config["EMBEDDED_REDIS_DIR"])
    return {
        "rows": rows,
        "seconds": max(timings),
        "bytes": 0,
        "baseline_mb": 0.0,
        "median_ms": sorted(timings)[len(timings) // 2] * 1000,
    }


# --- driver ------------------------------------------------------------------------------


def spawn(case: str, db_url: str, workdir: str) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--case",
        case,
        "--db-url",
        db_url,
        "--workdir",
        workdir,
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(title: str, results: dict) -> None:
    print(f"\n{title}")
    print(
        f"{'case':<22}{'rows':>11}{'seconds':>10}{'rows/s':>11}{'peak MB':>10}{'+MB':>9}{'file MB':>10}"
    )
    for case in CASES:
        r = results[case]
        if "error" in r:
            print(f"{LABELS[case]:<22}  failed: {r['error']}")
            continue
        r["rate"] = r["rows"] / r["seconds"] if r["seconds"] else 0
        print(
            f"{LABELS[case]:<22}{r['rows']:>11,}{r['seconds']:>10.2f}{r['rate']:>11,.0f}"
            f"{r['peak_mb']:>10.0f}{r['peak_mb'] - r['baseline_mb']:>9.0f}{r['bytes'] / 2**20:>10.1f}"
        )
    if any("error" in results[c] for c in CASES):
        return
    fa, csv_, xlsx, zip_, bare = (
        results[c] for c in ("flask_admin_csv", "csv", "xlsx", "zip", "bare_xlsx")
    )
    print("ratios:")
    print(
        f"  peak memory, ours CSV / Flask-Admin CSV:   {csv_['peak_mb'] / fa['peak_mb']:.2f}"
        f"  (growth over baseline: {(csv_['peak_mb'] - csv_['baseline_mb']):.0f} MB vs "
        f"{(fa['peak_mb'] - fa['baseline_mb']):.0f} MB)"
    )
    print(f"  peak memory, ours XLSX / Flask-Admin CSV:  {xlsx['peak_mb'] / fa['peak_mb']:.2f}")
    print(f"  CSV speed, ours / Flask-Admin:             {csv_['rate'] / fa['rate']:.2f}x")
    print(f"  XLSX speed, ours / bare xlsxwriter loop:   {xlsx['rate'] / bare['rate']:.2f}x")
    same = results["csv_zip_rows"]
    print(
        f"  ZIP speed / ours CSV speed (rows/s):       {zip_['rate'] / csv_['rate']:.2f}x  (vs the CSV of "
        f"the same {zip_['rows']:,} filtered rows: {zip_['rate'] / same['rate']:.2f}x)"
    )
    request = results.get("request", {})
    if "error" in request:
        print(f"  export request: failed: {request['error']}")
    elif request:
        print(
            f"  export request (all {request['rows']:,} rows, 6 requests): slowest "
            f"{request['seconds'] * 1000:.0f} ms, median {request['median_ms']:.0f} ms (target < 200 ms)"
        )


def postgres_database(admin_url: str, name: str, create: bool) -> str:
    import psycopg

    from llmadmin.database import normalise_url

    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')
        else:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    base = normalise_url(admin_url).rsplit("/", 1)[0]
    return f"{base}/{name}"


def main() -> None:
    args = parse_args()
    if args.case:
        run_case(args)
        return
    workdir = tempfile.mkdtemp(prefix="llmadmin-bench-")
    zip_rows = min(args.zip_rows, args.rows)
    backends = {name.strip().lower() for name in args.backends.split(",")}
    targets = [("SQLite", f"sqlite:///{workdir}/bench.db", None)] if "sqlite" in backends else []
    pg_name = f"llmadmin_bench_{os.getpid()}"
    if os.environ.get("DATABASE_URL") and "postgresql" in backends:
        targets.append(
            ("PostgreSQL", postgres_database(os.environ["DATABASE_URL"], pg_name, True), pg_name)
        )
    try:
        for title, url, _ in targets:
            print(f"{title}: seeding into {url.split('@')[-1]}", flush=True)
            seed(url, workdir, args.rows, zip_rows)
            results = {}
            for case in (*CASES, "request"):
                results[case] = spawn(case, url, workdir)
                print(f"  {LABELS.get(case, case)} done", flush=True)
            print_table(f"{title}, {args.rows:,} task rows (ZIP: first {zip_rows:,})", results)
    finally:
        if any(pg for _title, _url, pg in targets):
            postgres_database(os.environ["DATABASE_URL"], pg_name, False)
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
