"""Tasks over the API: create one or many, list with filters and a cursor, act on one task."""

from __future__ import annotations

import json
from unittest import mock

from sqlalchemy import func, select

from llmadmin.engine import dispatch
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Task
from llmadmin.models.task import FAILURE, RUNNING, SUCCESS
from tests.api.conftest import assert_error


def count_tasks() -> int:
    return db.session.execute(select(func.count(Task.id))).scalar_one()


def test_create_one_task(member_api, member_user, sim_model):
    response = member_api.post(
        "/api/v1/tasks",
        json={"prompt": "Say hi", "model": "Sim", "name": "greeting", "system_prompt": "Be brief"},
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "greeting" and body["model"] == "Sim"
    assert body["status"] == "QUEUED" and body["creator_id"] == member_user.id
    assert member_api.get(f"/api/v1/tasks/{body['id']}").get_json() == body


def test_create_by_model_id(member_api, sim_model):
    response = member_api.post("/api/v1/tasks", json={"prompt": "x", "model_id": sim_model.id})
    assert response.status_code == 201


def test_ten_thousand_tasks_in_one_request_one_dispatch(app, member_api, sim_model):
    items = [{"prompt": f"prompt {i}", "model": "Sim"} for i in range(10_000)]
    with mock.patch.object(dispatch, "dispatch", wraps=dispatch.dispatch) as spy:
        response = member_api.post("/api/v1/tasks", json={"tasks": items})
    assert response.status_code == 201, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["created"] == 10_000 and len(body["ids"]) == 10_000
    assert body["ids"] == sorted(body["ids"])
    assert spy.call_count == 1 and len(spy.call_args.args[0]) == 10_000
    assert body["queued"] + body["waiting"] == 10_000
    assert count_tasks() == 10_000
    last = db.session.get(Task, body["ids"][-1])
    assert last.prompt == "prompt 9999"


def test_one_bad_item_creates_nothing_and_names_each_error(member_api, sim_model):
    items = [
        {"prompt": "fine", "model": "Sim"},
        {"prompt": "", "model": "Sim"},
        {"prompt": "x", "model": "No such model"},
        {"prompt": "x\x00y", "model": "Sim"},
    ]
    error = assert_error(
        member_api.post("/api/v1/tasks", json={"tasks": items}), 422, "invalid_items"
    )
    assert [(d["index"], d["field"]) for d in error["details"]] == [
        (1, "tasks[1].prompt"),
        (2, "tasks[2].model"),
        (3, "tasks[3].prompt"),
    ]
    assert error["field"] == "tasks[1].prompt"
    assert count_tasks() == 0


def test_dry_run_validates_and_creates_nothing(member_api, sim_model):
    response = member_api.post(
        "/api/v1/tasks", json={"tasks": [{"prompt": "a", "model": "Sim"}], "dry_run": True}
    )
    assert response.status_code == 200 and response.get_json()["valid"] == 1
    assert count_tasks() == 0


def test_malformed_json_says_line_and_column(member_api):
    response = member_api.post(
        "/api/v1/tasks",
        data='{\n  "prompt": "x",\n  "model": "Sim",,\n}',
        content_type="application/json",
    )
    error = assert_error(response, 400, "bad_request", "body")
    assert "line 3, column 18" in error["message"]


def test_wrong_types_and_unknown_fields_are_named(member_api, sim_model):
    cases = [
        ({"prompt": 5, "model": "Sim"}, "prompt"),
        ({"prompt": "x", "model": "Sim", "temperature": 0.2}, "temperature"),
        ({"prompt": "x", "model_id": "1"}, "model_id"),
        ({"model": "Sim"}, "prompt"),
        ({"tasks": [{"prompt": "x", "model": "Sim", "name": 3}]}, "tasks[0].name"),
        ({"tasks": "many"}, "tasks"),
        ({"tasks": [], "extra": 1}, "extra"),
        ([1, 2], None),
    ]
    for body, field in cases:
        error = assert_error(member_api.post("/api/v1/tasks", json=body), 422)
        assert error["field"] == field, (body, error)
    assert count_tasks() == 0


def test_unknown_per_task_parameters_are_refused(member_api, sim_model):
    error = assert_error(
        member_api.post(
            "/api/v1/tasks", json={"prompt": "x", "model": "Sim", "parameters": {"top_k": 3}}
        ),
        422,
    )
    assert error["field"] == "parameters.top_k"


def test_per_task_parameters_follow_the_task_forms_rules(member_api, sim_model):
    parameters = {
        "temperature": 0.3,
        "max_tokens": 50,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "response_format": "json_object",
    }
    response = member_api.post(
        "/api/v1/tasks",
        json={"prompt": "x", "model": "Sim", "parameters": parameters},
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["parameters"] == {**parameters, "response_format": {"type": "json_object"}}
    assert body["finish_reason"] is None and body["result_outdated"] is False
    task = db.session.get(Task, body["id"])
    assert (task.temperature, task.max_tokens, task.top_p, task.seed) == (0.3, 50, 0.9, 7)
    assert json.loads(task.stop) == ["END"]
    assert json.loads(task.response_format) == {"type": "json_object"}
    for bad, field in (
        ({"temperature": 3}, "parameters.temperature"),
        ({"max_tokens": 1.5}, "parameters.max_tokens"),
        ({"seed": True}, "parameters.seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "parameters.stop"),
        ({"response_format": "yaml"}, "parameters.response_format"),
    ):
        error = assert_error(
            member_api.post(
                "/api/v1/tasks", json={"prompt": "x", "model": "Sim", "parameters": bad}
            ),
            422,
        )
        assert error["field"] == field, (bad, error)


def test_not_json_is_a_422(member_api):
    response = member_api.post("/api/v1/tasks", data="prompt=x")
    assert_error(response, 422, field="body")


def test_oversized_body_is_413(app, member_api):
    app.config["API_MAX_BODY_BYTES"] = 1000
    response = member_api.post("/api/v1/tasks", json={"prompt": "x" * 2000, "model": "Sim"})
    assert_error(response, 413, field="body")


def test_too_many_tasks_is_413(app, member_api, sim_model):
    app.config["API_MAX_TASKS_PER_REQUEST"] = 3
    items = [{"prompt": "x", "model": "Sim"}] * 4
    assert_error(member_api.post("/api/v1/tasks", json={"tasks": items}), 413, field="tasks")
    assert count_tasks() == 0


def test_a_disabled_model_is_refused(member_api, sim_model):
    sim_model.enabled = False
    db.session.commit()
    error = assert_error(
        member_api.post("/api/v1/tasks", json={"prompt": "x", "model": "Sim"}), 422
    )
    assert error["field"] == "model" and "disabled" in error["message"]


# --- the list ----------------------------------------------------------------------------------


def make_tasks(member_api, n, **extra):
    items = [{"prompt": f"p{i}", "model": "Sim", **extra} for i in range(n)]
    return member_api.post("/api/v1/tasks", json={"tasks": items}).get_json()["ids"]


def test_list_pages_with_a_cursor_newest_first(member_api, sim_model):
    ids = make_tasks(member_api, 7)
    seen, cursor = [], None
    while True:
        url = "/api/v1/tasks?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = member_api.get(url).get_json()
        seen += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def test_list_filters_match_the_task_lists(member_api, member_user, other_api, sim_model):
    ids = make_tasks(member_api, 3)
    make_tasks(other_api, 2)
    transition([ids[0]], FAILURE, error="boom")
    data = member_api.get("/api/v1/tasks?status=FAILURE").get_json()["data"]
    assert [t["id"] for t in data] == [ids[0]]
    data = member_api.get("/api/v1/tasks?status=failure,queued&model=Sim").get_json()["data"]
    assert len(data) == 3
    assert member_api.get("/api/v1/tasks?model=Other").get_json()["data"] == []
    data = member_api.get("/api/v1/tasks?search=p1").get_json()["data"]
    assert [t["id"] for t in data] == [ids[1]]
    data = member_api.get("/api/v1/tasks?creator=member@example.com").get_json()["data"]
    assert len(data) == 3
    data = member_api.get("/api/v1/tasks?created_after=2000-01-01T00:00:00Z").get_json()["data"]
    assert len(data) == 3
    assert member_api.get("/api/v1/tasks?created_before=2000-01-01").get_json()["data"] == []


def test_list_bad_parameters(member_api):
    assert_error(member_api.get("/api/v1/tasks?status=DONE"), 422, field="status")
    assert_error(member_api.get("/api/v1/tasks?limit=0"), 422, field="limit")
    assert_error(
        member_api.get("/api/v1/tasks?created_after=yesterday"), 422, field="created_after"
    )
    assert_error(member_api.get("/api/v1/tasks?cursor=%%%"), 400, field="cursor")
    assert_error(member_api.get("/api/v1/tasks?batch=x"), 422, field="batch")


# --- actions -------------------------------------------------------------------------------------


def test_cancel_then_cancel_again_is_a_conflict(member_api, sim_model):
    (task_id,) = make_tasks(member_api, 1)
    response = member_api.post(f"/api/v1/tasks/{task_id}/cancel")
    assert response.status_code == 200 and response.get_json()["status"] == "CANCELED"
    assert_error(member_api.post(f"/api/v1/tasks/{task_id}/cancel"), 409, "conflict")


def test_retry_only_failed_rerun_not_while_active(member_api, sim_model):
    a, b = make_tasks(member_api, 2)
    assert_error(member_api.post(f"/api/v1/tasks/{a}/retry"), 409)
    assert_error(member_api.post(f"/api/v1/tasks/{a}/rerun"), 409)  # QUEUED
    transition([a], FAILURE, error="boom")
    transition([b], RUNNING)
    transition([b], SUCCESS, result="ok")
    assert member_api.post(f"/api/v1/tasks/{a}/retry").get_json()["status"] == "QUEUED"
    response = member_api.post(f"/api/v1/tasks/{b}/rerun")
    assert response.get_json()["status"] == "QUEUED" and response.get_json()["result"] is None


def test_runs_of_a_task(member_api, sim_model):
    (task_id,) = make_tasks(member_api, 1)
    assert member_api.get(f"/api/v1/tasks/{task_id}/runs").get_json() == {"data": []}
    transition([task_id], RUNNING)
    transition([task_id], SUCCESS, result="ok", latency_ms=12.5)
    runs = member_api.get(f"/api/v1/tasks/{task_id}/runs").get_json()["data"]
    assert len(runs) == 1 and runs[0]["status"] == "SUCCESS" and runs[0]["latency_ms"] == 12.5


def test_runs_of_a_task_come_from_its_run_history(member_api, sim_model):
    """Stored runs newest first with what each sent and got, then the run under way on top."""
    from llmadmin.models import TaskRun

    (task_id,) = make_tasks(member_api, 1)
    for text, temperature in (("first answer", 0.1), ("second answer", 0.9)):
        db.session.add(
            TaskRun(
                task_id=task_id,
                model_id=sim_model.id,
                model_label="sim",
                params=json.dumps({"temperature": temperature}),
                status="SUCCESS",
                result=text,
                attempts=1,
                calls=2,
            )
        )
    db.session.commit()
    transition([task_id], RUNNING)
    runs = member_api.get(f"/api/v1/tasks/{task_id}/runs").get_json()["data"]
    assert [r["number"] for r in runs] == [3, 2, 1]
    assert runs[0]["status"] == "RUNNING" and runs[0]["id"] is None
    assert [r["result"] for r in runs[1:]] == ["second answer", "first answer"]
    assert runs[1]["params"] == {"temperature": 0.9} and runs[1]["calls"] == 2
    assert runs[2]["model_label"] == "sim" and isinstance(runs[2]["id"], int)


def test_unknown_ids_and_routes_are_404_in_the_error_shape(member_api):
    assert_error(member_api.get("/api/v1/tasks/999"), 404, "not_found")
    assert_error(member_api.get("/api/v1/tasks/99999999999999999999"), 404)
    assert_error(member_api.get("/api/v1/nothing-here"), 404)
    assert_error(member_api.patch("/api/v1/tasks"), 405)


def test_task_json_is_json_serialisable_for_every_status(member_api, sim_model):
    (task_id,) = make_tasks(member_api, 1)
    json.dumps(member_api.get(f"/api/v1/tasks/{task_id}").get_json())


def test_redis_down_keeps_every_task_waiting_for_the_queue(member_api, sim_model, monkeypatch):
    from llmadmin import queues
    from llmadmin.engine.dispatch import WAITING_NOTE
    from llmadmin.errors import QueueUnavailable

    def down(pipe):
        raise QueueUnavailable("The job queue (Redis) is unreachable right now.")

    monkeypatch.setattr(queues, "execute", down)
    items = [{"prompt": f"p{i}", "model": "Sim"} for i in range(100)]  # several chunks
    body = member_api.post("/api/v1/tasks", json={"tasks": items}).get_json()
    assert body["created"] == 100 and body["queued"] == 0 and body["waiting"] == 100
    notes = db.session.execute(select(Task.status, Task.queue_note, Task.job_id)).all()
    assert set(notes) == {("PENDING", WAITING_NOTE, None)}


def test_a_task_without_a_model_names_the_field(member_api, sim_model):
    error = assert_error(member_api.post("/api/v1/tasks", json={"prompt": "x"}), 422)
    assert error["field"] == "model" and "model_id" in error["message"]


def test_ids_past_32_bits_are_refused_not_a_server_error(member_api, admin_api, sim_model):
    huge = 10**30
    body = {"prompt": "x", "model_id": huge}
    assert_error(member_api.post("/api/v1/tasks", json=body), 422, field="model_id")
    assert_error(member_api.post("/api/v1/downloads", json={"format": "csv", "ids": [huge]}), 422)
    assert_error(
        admin_api.patch(f"/api/v1/models/{sim_model.id}", json={"maintainer_id": huge}),
        422,
        field="maintainer_id",
    )


TURNS = [
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
]


def test_a_task_can_carry_earlier_turns_of_a_conversation(member_api, sim_model):
    response = member_api.post(
        "/api/v1/tasks",
        json={
            "prompt": "And times 3?",
            "model": "Sim",
            "messages": TURNS,
            "parameters": {"frequency_penalty": 0.5, "presence_penalty": -2},
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["messages"] == [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},  # text parts are stored joined
    ]
    assert body["parameters"] == {"frequency_penalty": 0.5, "presence_penalty": -2.0}
    assert db.session.get(Task, body["id"]).messages == body["messages"]
    plain = member_api.post("/api/v1/tasks", json={"prompt": "x", "model": "Sim", "messages": []})
    assert plain.get_json()["messages"] is None


def test_bad_earlier_turns_name_the_exact_field(member_api, sim_model):
    def post(messages):
        return member_api.post(
            "/api/v1/tasks", json={"prompt": "p", "model": "Sim", "messages": messages}
        )

    assert_error(post("hello"), 422, field="messages")
    assert_error(post([{"role": "system", "content": "x"}]), 422, field="messages[0].role")
    assert_error(post([{"role": "tool", "content": "x"}]), 422, field="messages[0].role")
    assert_error(post([TURNS[0], {"role": "user", "content": 7}]), 422, field="messages[1].content")
    error = assert_error(
        post([TURNS[0], {"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]}]),
        422,
        field="messages[1].tool_calls",
    )
    assert "tool" in error["message"]
    error = assert_error(
        member_api.post(
            "/api/v1/tasks",
            json={"tasks": [{"prompt": "p", "model": "Sim", "messages": [TURNS[0], "no"]}]},
        ),
        422,
        "invalid_items",
    )
    assert error["details"][0]["field"] == "tasks[0].messages[1]"
    error = assert_error(
        member_api.post(
            "/api/v1/tasks",
            json={"prompt": "p", "model": "Sim", "parameters": {"presence_penalty": 3}},
        ),
        422,
        field="parameters.presence_penalty",
    )
    assert error["message"] == "Presence penalty must be a number from -2 to 2."
    assert count_tasks() == 0
