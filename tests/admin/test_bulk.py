"""Bulk actions on "all rows matching the current search and filters"."""

from rq.job import Job

from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import BulkOperation, Task
from llmadmin.models.task import CANCELED, FAILURE, PENDING, SUCCESS
from llmadmin.queues import get_queue, get_redis
from llmadmin.services import tasks as svc
from llmadmin.services.bulk import run_operation
from tests.conftest import post_form


def _make(model, creator_id, status, n, name="t"):
    ids = [
        svc.create_task(
            prompt=f"{name} {i}",
            name=f"{name} {i}",
            model_id=model.id,
            creator_id=creator_id,
            run=False,
        ).id
        for i in range(n)
    ]
    if status != PENDING:
        transition(ids, status, error="boom" if status == FAILURE else None)
    return ids


def _run_queued_bulk_job():
    queue = get_queue("llm")
    jobs = [Job.fetch(j, connection=get_redis()) for j in queue.job_ids]
    bulk = [j for j in jobs if j.func_name == "llmadmin.jobs.bulk.apply_bulk_operation"]
    assert len(bulk) == 1
    (operation_id,) = bulk[0].args
    assert run_operation(operation_id) == "SUCCESS"
    db.session.expire_all()
    return db.session.get(BulkOperation, operation_id).processed


def test_all_matching_cancel_acts_on_exactly_the_filtered_set(
    admin_client, app, sim_model, admin_user
):
    failed = _make(sim_model, admin_user.id, FAILURE, 25, "failed")
    pending = _make(sim_model, admin_user.id, PENDING, 7, "pending")
    list_args = "flt0_status_equals=PENDING"
    page = admin_client.get(f"/admin/task/?{list_args}").get_data(as_text=True)
    assert "Apply actions to all 7 matching rows" in page
    r = post_form(
        admin_client,
        "/admin/task/action/",
        {
            "action": "cancel",
            "all_matching": "1",
            "list_args": list_args,
            "rowid": [str(pending[0])],
        },
        token_from="/admin/task/",
    )
    assert r.status_code == 302
    assert _run_queued_bulk_job() == 7
    db.session.expire_all()
    assert {db.session.get(Task, i).status for i in pending} == {CANCELED}
    assert {db.session.get(Task, i).status for i in failed} == {FAILURE}


def test_all_matching_with_search_and_more_than_a_page(admin_client, app, sim_model, admin_user):
    wanted = _make(sim_model, admin_user.id, FAILURE, 60, "alpha")
    other = _make(sim_model, admin_user.id, FAILURE, 5, "beta")
    post_form(
        admin_client,
        "/admin/task/action/",
        {
            "action": "retry",
            "all_matching": "1",
            "list_args": "search=alpha",
            "rowid": [str(wanted[0])],
        },
        token_from="/admin/task/",
    )
    assert _run_queued_bulk_job() == 60
    db.session.expire_all()
    assert all(db.session.get(Task, i).status != FAILURE for i in wanted)
    assert {db.session.get(Task, i).status for i in other} == {FAILURE}


def test_all_matching_is_scoped_to_the_member(client, app, sim_model, member_user, other_member):
    from tests.conftest import login

    mine = _make(sim_model, member_user.id, SUCCESS, 3, "mine")
    theirs = _make(sim_model, other_member.id, SUCCESS, 4, "theirs")
    login(client, "member@example.com", "member-password")
    post_form(
        client,
        "/admin/task/action/",
        {"action": "delete", "all_matching": "1", "list_args": "", "rowid": [str(mine[0])]},
        token_from="/admin/task/",
    )
    assert _run_queued_bulk_job() == 3
    remaining = set(db.session.execute(db.select(Task.id)).scalars())
    assert remaining == set(theirs)


def test_all_matching_with_nothing_matching_says_so(admin_client, app, sim_model, admin_user):
    _make(sim_model, admin_user.id, SUCCESS, 2)
    r = post_form(
        admin_client,
        "/admin/task/action/",
        {
            "action": "cancel",
            "all_matching": "1",
            "list_args": "flt0_status_equals=RUNNING",
            "rowid": ["1"],
        },
        token_from="/admin/task/",
        follow_redirects=True,
    )
    assert "No rows match" in r.get_data(as_text=True)
    assert get_queue("llm").count == 0


def test_all_matching_on_models_and_people(admin_client, app, admin_user):
    from llmadmin.models import LLMModel, Person
    from llmadmin.services.people import create_user

    for i in range(3):
        db.session.add(
            LLMModel(name=f"qwen-{i}", base_url="http://127.0.0.1:9/v1", model_name="qwen")
        )
    db.session.add(LLMModel(name="deepseek", base_url="http://127.0.0.1:9/v1", model_name="ds"))
    db.session.commit()
    post_form(
        admin_client,
        "/admin/llmmodel/action/",
        {"action": "disable", "all_matching": "1", "list_args": "search=qwen", "rowid": ["1"]},
        token_from="/admin/llmmodel/",
    )
    _run_queued_bulk_job()
    enabled = dict(db.session.execute(db.select(LLMModel.name, LLMModel.enabled)).all())
    assert enabled == {"qwen-0": False, "qwen-1": False, "qwen-2": False, "deepseek": True}

    for i in range(2):
        create_user(f"temp{i}@example.com", "password-123", name=f"Temp {i}")
    get_redis().flushdb()
    post_form(
        admin_client,
        "/admin/person/action/",
        {"action": "delete", "all_matching": "1", "list_args": "", "rowid": ["1"]},
        token_from="/admin/person/",
    )
    _run_queued_bulk_job()
    # Everyone matching is deleted except the admin who asked.
    assert [p.email for p in db.session.execute(db.select(Person)).scalars()] == [
        "admin@example.com"
    ]
