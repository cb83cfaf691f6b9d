"""Benchmark the task list, details and home pages at scale against Flask-Admin's defaults.

    .venv/bin/python bench/bench_lists.py [--rows 1000000] [--reps 30]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_lists.py
    ... --default-without-trigram   # PostgreSQL: the default may not use our pg_trgm indexes

For each size in ``--rows`` (comma-separated) and each backend (SQLite in a fresh file;
PostgreSQL in a fresh database that is dropped afterwards, when DATABASE_URL is set) the
schema is made by the real migrations and N tasks are bulk-loaded (the search objects of
migration 0011 are dropped for the load and rebuilt after it with the migration's own
statements; the rebuild time is printed). Then, in the same process and on the same rows,
a logged-in admin's requests go through the test client (full request: routing, login
check, queries, template):

* ours: the real ``TaskView`` (/admin/task/) and home page (/admin/);
* default: a plain Flask-Admin ``ModelView`` over Task with the same columns, filters,
  searchable columns and default sort (/admin/fatask/), and the home page's previous code
  (GROUP BY counts, latest failures sorted by NULLS LAST, models loaded per row).

Each case: 3 warm-up requests per side, then ``--reps`` timed ones (8 for a side slower than
1 s), ours and the default's taken in turns (a burst of load on a shared machine hits both),
each after an untimed full garbage collection; p50 / p95 in ms, SQL statements per request,
and the rows' ratio ours / default.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
TASK_COLUMNS = (
    "name",
    "creator_id",
    "model_id",
    "prompt",
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
ENGLISH = (
    "Summarise customer ticket {i}: the parcel arrived late and the customer asks about "
    "delivery options for the next order. Keep it short and polite."
)
REFUND = (
    "Customer ticket {i} asks for a refund of order 88{i} because the item was damaged; "
    "draft a reply that explains the refund timeline."
)
CHINESE = "请总结第{i}号工单：客户反映包裹延迟送达，希望了解下次订单的配送选项。回复要简短礼貌。"
CHINESE_REFUND = "第{i}号工单：客户因商品损坏提交退款申请，请起草回复并说明退款到账时间。"
ANSWER = "Summary: the customer wants an update; reply drafted. 摘要：已起草回复。"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="1000000", help="Task rows, e.g. 100000,1000000.")
    parser.add_argument("--reps", type=int, default=30, help="Timed requests per case.")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--only", default="", help="Measure only cases whose label has this.")
    parser.add_argument("--reuse", help="Measure an already seeded database URL (no seeding).")
    parser.add_argument(
        "--default-without-trigram",
        action="store_true",
        help="PostgreSQL: the default view's requests may not use bitmap scans, so it cannot "
        "reach our pg_trgm GIN indexes (as Flask-Admin would run without migration 0011).",
    )
    return parser.parse_args()


# --- data ------------------------------------------------------------------------------------


def prompt_of(i: int) -> str:
    """1 % English refund prompts, 1 % Chinese 退款 prompts, the rest ordinary (30 % Chinese)."""
    if i % 100 == 7:
        return REFUND.format(i=i)
    if i % 100 == 57:
        return CHINESE_REFUND.format(i=i)
    return (CHINESE if i % 10 < 3 else ENGLISH).format(i=i)


def task_rows(n: int, creators: list[int], models: list[int]):
    start = datetime(2025, 1, 1)
    for i in range(n):
        created = start + timedelta(seconds=i)
        failed = i % 50 == 3  # 2 % failures, spread over the whole table
        prompt = prompt_of(i)
        yield (
            prompt.split("：")[0][:60] if "：" in prompt[:20] else f"Ticket {i}",
            creators[i % len(creators)],
            models[i % len(models)],
            prompt,
            "FAILURE" if failed else ("PENDING" if i % 997 == 0 else "SUCCESS"),
            None if failed else ANSWER,
            "HTTP 503 from the endpoint" if failed else None,
            "server_error" if failed else None,
            1,
            created,
            created,
            created + timedelta(seconds=2),
            812.5,
            120,
            240,
            0.00042,
        )


def make_app(db_url: str, workdir: str):
    os.environ["LLMADMIN_INSTANCE"] = os.path.join(workdir, "instance")
    from llmadmin import create_app

    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": db_url,
            "REDIS_URL": "redis://127.0.0.1:1/0",  # unreachable: no Redis work in a page
            "WTF_CSRF_ENABLED": True,
        }
    )


def seed(app, rows: int) -> None:
    """Migrate, add people and models, bulk-load the tasks, rebuild the search objects."""
    import importlib.util

    from flask_migrate import upgrade

    from llmadmin.extensions import db
    from llmadmin.models import LLMModel
    from llmadmin.services.people import create_user

    spec = importlib.util.spec_from_file_location(
        "m0011", os.path.join(ROOT, "migrations/versions/0011_list_indexes_and_search.py")
    )
    m0011 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m0011)
    with app.app_context():
        upgrade()
        creators = [create_user("bench@example.com", "bench-password", name="Bench", admin=True).id]
        creators += [create_user(f"p{i}@example.com", "bench-password").id for i in range(2)]
        models = []
        for i in range(5):
            model = LLMModel(name=f"Model {i}", base_url="http://127.0.0.1:9/v1", model_name="m")
            db.session.add(model)
            db.session.flush()
            models.append(model.id)
        db.session.commit()
        postgres = db.engine.dialect.name == "postgresql"
        down, up = (
            (m0011.POSTGRESQL_DOWN, m0011.POSTGRESQL_UP)
            if postgres
            else (m0011.SQLITE_DOWN, m0011.SQLITE_UP)
        )
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for statement in down:
                cursor.execute(statement)
            started = time.perf_counter()
            data = task_rows(rows, creators, models)
            if postgres:
                with raw.driver_connection.cursor() as copy_cursor:
                    with copy_cursor.copy(f"COPY task ({','.join(TASK_COLUMNS)}) FROM STDIN") as cp:
                        for row in data:
                            cp.write_row(row)
            else:
                marks = ",".join("?" * len(TASK_COLUMNS))
                cursor.executemany(
                    f"INSERT INTO task ({','.join(TASK_COLUMNS)}) VALUES ({marks})", data
                )
            raw.commit()
            loaded = time.perf_counter()
            for statement in up:
                cursor.execute(statement)
            raw.commit()
            if postgres:  # the steady state autovacuum keeps: visibility map set, statistics
                raw.driver_connection.autocommit = True
                cursor.execute("VACUUM ANALYZE task")
            else:
                cursor.execute("ANALYZE")
                raw.commit()
            print(
                f"  loaded {rows:,} tasks in {loaded - started:.0f} s; search objects "
                f"(migration 0011's statements) built in {time.perf_counter() - loaded:.0f} s",
                flush=True,
            )
        finally:
            raw.close()


# --- the default views -----------------------------------------------------------------------


def add_default_views(app) -> None:
    from flask_admin import BaseView, expose
    from flask_admin.contrib.sqla import ModelView
    from sqlalchemy import func, select

    from llmadmin.admin import formatters
    from llmadmin.admin.home import first_steps
    from llmadmin.admin.tasks import TaskView
    from llmadmin.extensions import db
    from llmadmin.models import Task
    from llmadmin.models.task import FAILURE, STATUSES
    from llmadmin.services import activity

    class DefaultTaskView(ModelView):
        can_view_details = True
        named_filter_urls = True
        page_size = 20
        column_list = TaskView.column_list
        column_details_list = TaskView.column_details_list
        column_default_sort = TaskView.column_default_sort
        column_sortable_list = TaskView.column_sortable_list
        column_searchable_list = TaskView.column_searchable_list
        column_filters = TaskView.column_filters

        def is_accessible(self):
            return True

    class DefaultHome(BaseView):
        """The home page's code before the lists work: full counts, NULLS LAST, lazy models
        (first steps and recent activity as on the real page)."""

        def is_accessible(self):
            return True

        @expose("/")
        def index(self):
            counts = dict(
                db.session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
            )
            failures = (
                db.session.execute(
                    select(Task)
                    .where(Task.status == FAILURE)
                    .order_by(Task.finished_at.desc().nulls_last(), Task.id.desc())
                    .limit(10)
                )
                .scalars()
                .all()
            )
            # First steps and recent activity as the real page has them, so the two pages
            # differ only in the counts and the latest failures.
            return self.render(
                "admin/home.html",
                counts={s: counts.get(s, 0) for s in STATUSES},
                failures=failures,
                steps=first_steps(),
                recent=activity.recent(None),
                queue_ok=False,
                status_label=formatters.status_label,
                task_error_text=formatters.task_error_text,
            )

    admin = app.extensions["llmadmin.admin"]
    admin.add_view(DefaultTaskView(Task, db.session, name="Default", endpoint="fatask"))
    admin.add_view(DefaultHome(name="Default home", endpoint="fahome"))


# --- measuring -------------------------------------------------------------------------------


def login(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    match = CSRF_RE.search(page)
    token = match.group(1) or match.group(2)
    response = client.post(
        "/login",
        data={"email": "bench@example.com", "password": "bench-password", "csrf_token": token},
    )
    assert response.status_code in (302, 303), response.status_code


WARM_UP = 3  # untimed requests per URL before the timed ones


def measure(app, client, urls: list[str], reps: int) -> list[dict]:
    """Time ``urls`` (ours, and the default when there is one) in turns, request by request.

    Interleaved so that a burst of load on the shared machine hits both sides alike; a full
    garbage collection before each timed request (outside the timing, for both sides) so
    that one side does not pay for the other's garbage. A URL slower than 1 s on its first
    timed request gets 8 timed requests in all (enough for its p50 / p95).
    """
    from sqlalchemy import event

    from llmadmin.extensions import db

    statements = [0] * len(urls)
    current = [0]

    def count(*_args):
        statements[current[0]] += 1

    with app.app_context():
        engine = db.engine
    times: list[list[float]] = [[] for _ in urls]
    wanted = [reps] * len(urls)
    bodies = [""] * len(urls)
    event.listen(engine, "before_cursor_execute", count)
    try:
        for rep in range(reps + WARM_UP):
            for index, url in enumerate(urls):
                if rep >= WARM_UP and len(times[index]) >= wanted[index]:
                    continue
                current[0] = index
                statements[index] = 0
                gc.collect()
                started = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, (url, response.status_code)
                bodies[index] = response.get_data(as_text=True)
                if rep < WARM_UP:
                    continue
                times[index].append(elapsed)
                if len(times[index]) == 1 and elapsed > 1000:
                    wanted[index] = min(reps, 8)  # a slow default
    finally:
        event.remove(engine, "before_cursor_execute", count)
    results = []
    for index in range(len(urls)):
        ordered = sorted(times[index])
        results.append(
            {
                "p50": statistics.median(ordered),
                "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
                "n": len(ordered),
                "sql": statements[index],
                "body": bodies[index],
            }
        )
    return results


def cases(app, rows: int) -> list[tuple[str, str | None, str | None]]:
    """(label, our URL, default URL): the deep page is 40 % into the list."""
    from sqlalchemy import func, select

    from llmadmin.extensions import db
    from llmadmin.models import Task

    with app.app_context():
        newest = db.session.execute(select(func.max(Task.id))).scalar_one()
    depth = int(rows * 0.4)
    page = depth // 20
    middle = newest - rows // 2
    return [
        ("page 1", "/admin/task/", "/admin/fatask/"),
        (
            f"deep page ({depth:,} rows in; ours: keyset)",
            f"/admin/task/?after={newest - depth + 1}",
            f"/admin/fatask/?page={page}",
        ),
        (f"deep page by offset (?page={page:,})", f"/admin/task/?page={page}", None),
        (
            "status filter FAILURE",
            "/admin/task/?flt1_status_equals=FAILURE",
            "/admin/fatask/?flt1_status_equals=FAILURE",
        ),
        ("search “refund”", "/admin/task/?search=refund", "/admin/fatask/?search=refund"),
        (
            "search “退款申请” (4 chars)",
            "/admin/task/?search=退款申请",
            "/admin/fatask/?search=退款申请",
        ),
        ("search “退款” (2 chars)", "/admin/task/?search=退款", "/admin/fatask/?search=退款"),
        (
            "search + filter + sort",
            "/admin/task/?search=refund&flt1_status_equals=FAILURE&sort=0",
            "/admin/fatask/?search=refund&flt1_status_equals=FAILURE&sort=0",
        ),
        ("details", f"/admin/task/details/?id={middle}", f"/admin/fatask/details/?id={middle}"),
        ("home", "/admin/", "/admin/fahome/"),
    ]


def default_without_trigram(app) -> None:
    """Turn bitmap scans off for the default view's statements (GIN is reachable only so)."""
    from flask import has_request_context, request
    from sqlalchemy import event

    from llmadmin.extensions import db

    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "before_cursor_execute")
    def plan(_conn, cursor, _statement, _params, _context, _many):
        default = has_request_context() and request.path.startswith("/admin/fatask/")
        cursor.execute(f"SET enable_bitmapscan = {'off' if default else 'on'}")


def run(
    title: str,
    url: str,
    workdir: str,
    rows: int,
    reps: int,
    only: str = "",
    fresh: bool = True,
    no_trigram: bool = False,
) -> list:
    app = make_app(url, workdir)
    if fresh:
        print(f"{title}, {rows:,} rows: seeding", flush=True)
        seed(app, rows)
    add_default_views(app)
    if no_trigram:
        default_without_trigram(app)
    client = app.test_client()
    login(client)
    results = []
    for label, ours, default in cases(app, rows):
        if only not in label:
            continue
        measured = measure(app, client, [ours, default] if default else [ours], reps)
        mine, base = measured[0], (measured[1] if default else None)
        results.append((label, mine, base))
        line = f"  {label:<44} ours {mine['p50']:7.1f} / {mine['p95']:7.1f} ms ({mine['sql']} SQL)"
        if base:
            line += (
                f"   default {base['p50']:8.1f} / {base['p95']:8.1f} ms ({base['sql']} SQL)"
                f"   p95 ratio 1/{base['p95'] / mine['p95']:.1f}"
            )
        print(line, flush=True)
    with app.app_context():
        from llmadmin.extensions import db

        db.engine.dispose()
    return results


def print_table(title: str, rows: int, results: list) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n(load average when done: {load} on {os.cpu_count()} cores)")
    print(
        f"\n| {title}, {rows:,} rows | ours p50 / p95 ms | default p50 / p95 ms | p95 ours ÷ default |"
    )
    print("|---|---:|---:|---:|")
    for label, mine, base in results:
        default = f"{base['p50']:,.0f} / {base['p95']:,.0f}" if base else "—"
        ratio = f"1/{base['p95'] / mine['p95']:.0f}" if base else "—"
        print(f"| {label} | {mine['p50']:.0f} / {mine['p95']:.0f} | {default} | {ratio} |")
    print(flush=True)


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
    backends = {name.strip().lower() for name in args.backends.split(",")}
    sizes = [int(n) for n in args.rows.split(",")]
    admin_url = os.environ.pop("DATABASE_URL", "")
    summary = {}
    if args.reuse:
        workdir = tempfile.mkdtemp(prefix="llmadmin-bench-lists-")
        results = run(
            "reused",
            args.reuse,
            workdir,
            sizes[0],
            args.reps,
            args.only,
            fresh=False,
            no_trigram=args.default_without_trigram,
        )
        print_table("reused", sizes[0], results)
        return
    for rows in sizes:
        for backend in ("sqlite", "postgresql"):
            if backend not in backends or (backend == "postgresql" and not admin_url):
                continue
            workdir = tempfile.mkdtemp(prefix="llmadmin-bench-lists-")
            pg_name = f"llmadmin_bench_lists_{os.getpid()}_{rows}"
            try:
                if backend == "sqlite":
                    title, url = "SQLite", f"sqlite:///{workdir}/bench.db"
                else:
                    title, url = "PostgreSQL", postgres_database(admin_url, pg_name, True)
                summary[(title, rows)] = run(
                    title,
                    url,
                    workdir,
                    rows,
                    args.reps,
                    args.only,
                    no_trigram=args.default_without_trigram,
                )
                print_table(title, rows, summary[(title, rows)])
            finally:
                if backend == "postgresql":
                    postgres_database(admin_url, pg_name, False)
                shutil.rmtree(workdir, ignore_errors=True)
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        for title in ("SQLite", "PostgreSQL"):
            if (title, small) in summary and (title, large) in summary:
                print(f"growth of ours p95, {small:,} -> {large:,} rows, {title}:")
                for (label, a, _), (_, b, _) in zip(
                    summary[(title, small)], summary[(title, large)], strict=True
                ):
                    print(f"  {label:<44} {b['p95'] / a['p95']:.2f}x")


if __name__ == "__main__":
    main()
