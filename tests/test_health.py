"""/healthz and the queue-unreachable banner."""

from llmadmin.services import tasks as svc


def test_healthz_reports_degraded_without_workers(client, app):
    r = client.get("/healthz")
    body = r.get_json()
    assert r.status_code == 503
    assert body["status"] == "degraded"
    assert body["database"]["ok"] and body["redis"]["ok"]
    assert body["redis"]["live_workers"] == 0
    assert set(body["redis"]["queue_depths"]) == {"llm", "reports"}


def test_healthz_counts_queue_depth_and_oldest_pending(client, app, sim_model):
    svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None)
    body = client.get("/healthz").get_json()
    assert body["redis"]["queue_depths"]["llm"] == 1
    assert body["database"]["oldest_pending_age_seconds"] >= 0


def test_healthz_ok_with_a_live_worker(client, app):
    from rq import Worker

    from llmadmin.queues import get_redis

    worker = Worker(["llm"], connection=get_redis(), name="health-test-worker")
    worker.register_birth()
    try:
        r = client.get("/healthz")
        assert r.status_code == 200 and r.get_json()["status"] == "ok"
    finally:
        worker.register_death()


def test_redis_down_shows_banner_and_browsing_still_works(app, admin_client, monkeypatch):
    monkeypatch.setattr("llmadmin.queues.redis_available", lambda: False)
    app.extensions.pop("llmadmin.queue_ok", None)
    r = admin_client.get("/admin/task/")
    assert r.status_code == 200
    assert "The job queue (Redis) is unreachable" in r.get_data(as_text=True)
