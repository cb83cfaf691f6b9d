"""Benchmark task creation through the JSON API: one request of N tasks vs N one-task requests.

    .venv/bin/python bench/bench_api.py [--tasks 10000] [--single 10000]

A fresh SQLite file and a private embedded Redis in a temporary folder; the app is called
through its WSGI test client (no network), with a real token (rate limit off) and the real
dispatch into RQ (the jobs are queued, no worker runs them). Both runs create the same tasks
on the same model; the figures and their ratio come from the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def build_app(folder: str):
    """A migrated app on a fresh SQLite file and a private embedded Redis."""
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
            "API_RATE_PER_MINUTE": 0,
        }
    )
    with app.app_context():
        upgrade()
    return app


def seed(app) -> str:
    """An admin, a model (default cap 8) and a token; return the token."""
    from llmadmin.extensions import db
    from llmadmin.models import LLMModel
    from llmadmin.services.api_tokens import create_token
    from llmadmin.services.people import create_user

    with app.app_context():
        person = create_user("bench@example.com", "bench-password", admin=True)
        db.session.add(LLMModel(name="Bench", base_url="http://127.0.0.1:9/v1", model_name="b"))
        db.session.commit()
        return create_token(person.id, "bench")[1]


def one_request(client, headers, n: int) -> float:
    items = [{"prompt": f"bulk prompt {i}", "model": "Bench"} for i in range(n)]
    started = time.perf_counter()
    response = client.post("/api/v1/tasks", json={"tasks": items}, headers=headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert response.get_json()["created"] == n
    return elapsed


def many_requests(client, headers, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        response = client.post(
            "/api/v1/tasks",
            json={"prompt": f"single prompt {i}", "model": "Bench"},
            headers=headers,
        )
        assert response.status_code == 201, response.get_data(as_text=True)[:300]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the one request")
    parser.add_argument("--single", type=int, default=10_000, help="one-task requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as folder:
        from llmadmin.queues import stop_embedded_redis

        app = build_app(folder)
        try:
            token = seed(app)
            headers = {"Authorization": f"Bearer {token}"}
            client = app.test_client()
            one_request(client, headers, 100)  # warm-up: imports, first connections
            bulk = one_request(client, headers, args.tasks)
            singles = many_requests(client, headers, args.single)
        finally:
            stop_embedded_redis(os.path.join(folder, "redis"))
    bulk_rate, single_rate = args.tasks / bulk, args.single / singles
    print(f"{'case':<40} {'seconds':>9} {'tasks/s':>9}")
    print(f"{f'1 request x {args.tasks:,} tasks':<40} {bulk:>9.2f} {bulk_rate:>9,.0f}")
    print(f"{f'{args.single:,} requests x 1 task':<40} {singles:>9.2f} {single_rate:>9,.0f}")
    print(f"ratio (tasks/s, one request / one-task requests): {bulk_rate / single_rate:.1f}x")
    print(f"target: one request of {args.tasks:,} tasks <= 2 s: {'met' if bulk <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
