"""/api/v1/batches: list, get with counts, cancel, retry; the task list's batch filter."""

from __future__ import annotations

import io

from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Task
from llmadmin.models.task import FAILURE, QUEUED, RUNNING
from llmadmin.services import batches
from tests.api.conftest import Api
from tests.conftest import run_batch_jobs

CSV = b"prompt,model,custom_id\nHello,Sim,a\nBye,Sim,b\nOops,Nope,c\n"


def make_batch(person_id):
    upload_id = batches.store_upload(io.BytesIO(CSV), "prompts.csv", person_id)
    batch_id = batches.create_batch(upload_id, person_id, "Nightly").id
    run_batch_jobs()
    return batch_id


def test_list_and_get_with_counts(client, member_token, member_user, sim_model):
    batch_id = make_batch(member_user.id)
    api = Api(client, member_token)
    listed = api.get("/api/v1/batches").get_json()
    assert [b["id"] for b in listed["data"]] == [batch_id] and listed["next_cursor"] is None
    got = api.get(f"/api/v1/batches/{batch_id}").get_json()
    assert got["status"] == "IN_PROGRESS" and got["openai_status"] == "in_progress"
    assert got["counts"] == {
        "total": 2,
        "queued": 2,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "canceled": 0,
    }
    assert got["request_counts"] == {"total": 2, "completed": 0, "failed": 0}
    assert got["invalid_lines"] == 1 and got["line_errors"][0]["line"] == 4
    assert got["line_errors"][0]["field"] == "model"
    tasks = api.get(f"/api/v1/tasks?batch={batch_id}").get_json()["data"]
    assert sorted(t["custom_id"] for t in tasks) == ["a", "b"]
    assert {t["batch_id"] for t in tasks} == {batch_id}
    assert api.get(f"/api/v1/tasks?batch={batch_id + 1}").get_json()["data"] == []
    bad = api.get("/api/v1/tasks?batch=x")
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "batch"
    assert api.get("/api/v1/batches?status=NOPE").status_code == 422
    assert api.get("/api/v1/batches?status=COMPLETED").get_json()["data"] == []


def test_someone_elses_batch_is_404(client, member_user, other_member, sim_model):
    from llmadmin.services.api_tokens import create_token

    batch_id = make_batch(member_user.id)
    other = Api(client, create_token(other_member.id, "x")[1])
    assert other.get(f"/api/v1/batches/{batch_id}").status_code == 404
    assert other.post(f"/api/v1/batches/{batch_id}/cancel").status_code == 404
    assert other.get("/api/v1/batches").get_json()["data"] == []
    assert other.get(f"/api/v1/tasks?batch={batch_id}").get_json()["data"] == []


def test_admin_sees_every_batch(client, admin_token, member_user, sim_model):
    batch_id = make_batch(member_user.id)
    assert Api(client, admin_token).get(f"/api/v1/batches/{batch_id}").status_code == 200


def test_retry_and_cancel(client, member_token, member_user, sim_model):
    batch_id = make_batch(member_user.id)
    api = Api(client, member_token)
    first = db.session.query(Task).order_by(Task.id).first().id
    transition([first], RUNNING, from_statuses=(QUEUED,))
    transition([first], FAILURE, error="boom")
    assert api.get(f"/api/v1/batches/{batch_id}").get_json()["counts"]["failed"] == 1
    retried = api.post(f"/api/v1/batches/{batch_id}/retry").get_json()
    assert retried["counts"]["failed"] == 0 and retried["counts"]["queued"] == 2
    canceled = api.post(f"/api/v1/batches/{batch_id}/cancel").get_json()
    assert canceled["status"] == "CANCELLED" and canceled["counts"]["canceled"] == 2
    again = api.post(f"/api/v1/batches/{batch_id}/cancel")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
