"""The Tasks list and details show why a model stopped, calls made and an unknown cost honestly."""

from __future__ import annotations

from decimal import Decimal

from llmadmin.extensions import db
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    make_task,
    text,
)


def _task(admin_user, sim_model, **columns):
    task = make_task(admin_user, sim_model)
    for key, value in columns.items():
        setattr(task, key, value)
    db.session.commit()
    return task


def _row(page: str, task_id: int) -> str:
    start = page.index(f'data-id="{task_id}"')
    return page[start : page.index("</tr>", start)]


def test_list_flags_cut_off_and_filtered_answers(admin_client, admin_user, sim_model):
    cut = _task(admin_user, sim_model, finish_reason="length")
    filtered = _task(admin_user, sim_model, finish_reason="content_filter")
    normal = _task(admin_user, sim_model, finish_reason="stop")
    page = text(admin_client.get("/admin/task/"))
    assert 'data-finish="length"' in _row(page, cut.id) and "cut off" in _row(page, cut.id)
    assert 'data-finish="content_filter"' in _row(page, filtered.id)
    assert "data-finish" not in _row(page, normal.id)


def test_list_can_be_filtered_by_finish_reason(admin_client, admin_user, sim_model):
    cut = _task(admin_user, sim_model, finish_reason="length")
    normal = _task(admin_user, sim_model, finish_reason="stop")
    page = text(admin_client.get("/admin/task/?flt0_finish_reason_equals=length"))
    assert f'data-id="{cut.id}"' in page and f'data-id="{normal.id}"' not in page


def test_details_show_finish_reason_runs_and_calls(admin_client, admin_user, sim_model):
    task = _task(admin_user, sim_model, finish_reason="length", attempts=1, calls=3)
    page = text(admin_client.get(f"/admin/task/details/?id={task.id}"))
    assert "Finish reason" in page and 'data-finish="length"' in page
    assert "Runs" in page and "Calls" in page
    assert "Attempts" not in page


def test_unknown_cost_is_blank_not_zero(admin_client, admin_user, sim_model):
    _task(admin_user, sim_model, cost=None, prompt_tokens=None, completion_tokens=None)
    _task(admin_user, sim_model, cost=Decimal("0.000500"), prompt_tokens=5, completion_tokens=5)
    page = text(admin_client.get("/admin/task/"))
    assert "0.000000" not in page and "0.000500" in page


def test_details_show_the_earlier_turns_above_the_prompt_escaped(
    admin_client, admin_user, sim_model
):
    turns = [
        {"role": "user", "content": "<b>first</b>"},
        {"role": "assistant", "content": "<script>alert(1)</script>"},
    ]
    task = _task(admin_user, sim_model, messages=turns, prompt="the prompt", presence_penalty=0.5)
    page = text(admin_client.get(f"/admin/task/details/?id={task.id}"))
    assert "Earlier messages" in page and "Presence penalty" in page
    assert "&lt;b&gt;first&lt;/b&gt;" in page and "<script>alert(1)" not in page
    assert page.index('data-role="user"') < page.index('data-role="assistant"')
    assert page.index('data-field="messages"') < page.index('data-field="prompt"')
    admin_user.locale = "zh_Hans_CN"
    db.session.commit()
    page = text(admin_client.get(f"/admin/task/details/?id={task.id}"))
    assert "之前的消息" in page and "助手" in page and "存在惩罚" in page
