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


def test_oldest_pending_age_counts_from_queueing_not_creation(client, app, sim_model):
    """A re-run of an old task is not old work (it was 493 s right after a re-run)."""
    from datetime import timedelta

    from llmadmin.extensions import db
    from llmadmin.models import Task
    from llmadmin.models.base import utcnow

    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None, run=False)
    db.session.execute(
        db.update(Task).where(Task.id == task.id).values(created_at=utcnow() - timedelta(hours=2))
    )
    db.session.commit()
    svc.run_tasks([task.id])  # queued now
    age = client.get("/healthz").get_json()["database"]["oldest_pending_age_seconds"]
    assert 0 <= age < 60, age


def test_oldest_pending_age_of_a_task_waiting_for_redis_counts_from_the_run_request(
    client, app, sim_model
):
    from datetime import timedelta

    from llmadmin.extensions import db
    from llmadmin.models import Task
    from llmadmin.models.base import utcnow

    task = svc.create_task(prompt="p", model_id=sim_model.id, creator_id=None, run=False)
    now = utcnow()
    db.session.execute(
        db.update(Task)
        .where(Task.id == task.id)
        .values(
            created_at=now - timedelta(hours=2),
            run_requested_at=now - timedelta(seconds=90),
        )
    )
    db.session.commit()
    age = client.get("/healthz").get_json()["database"]["oldest_pending_age_seconds"]
    assert 85 <= age < 150, age
