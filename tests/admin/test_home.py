"""The admin home page: counts by status that link to the filtered task list."""

from __future__ import annotations

import html
import re

from llmadmin.models.task import FAILURE, SUCCESS
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    make_task,
    text,
)


def status_cards(page: str) -> dict[str, tuple[str, int]]:
    """Return status -> (link, count) from the home page's cards."""
    cards = {}
    for href, count, status in re.findall(
        r'<a class="card[^"]*" href="([^"]+)">.*?<div class="h3 mb-0">([\d,]+)</div>.*?data-status="(\w+)"',
        page,
        re.S,
    ):
        cards[status] = (html.unescape(href), int(count.replace(",", "")))
    return cards


def test_counts_by_status(admin_client, admin_user, sim_model):
    for _ in range(2):
        make_task(admin_user, sim_model, status=FAILURE, name="broken")
    make_task(admin_user, sim_model, status=SUCCESS, name="fine")
    cards = status_cards(text(admin_client.get("/admin/")))
    assert cards[FAILURE][1] == 2 and cards[SUCCESS][1] == 1 and cards["PENDING"][1] == 0


def test_card_links_to_the_filtered_list(admin_client, admin_user, sim_model):
    make_task(admin_user, sim_model, status=FAILURE, name="broken-task")
    make_task(admin_user, sim_model, status=SUCCESS, name="fine-task")
    link = status_cards(text(admin_client.get("/admin/")))[FAILURE][0]
    page = text(admin_client.get(link))
    assert "broken-task" in page
    assert "fine-task" not in page


def test_latest_failures_are_listed(admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, status=FAILURE, name="it-broke")
    task.error = "HTTP 500 from provider"
    from llmadmin.extensions import db

    db.session.commit()
    page = text(admin_client.get("/admin/"))
    assert "it-broke" in page and "HTTP 500 from provider" in page
    assert f"/admin/task/details/?id={task.id}" in page


def first_steps_done(page: str) -> list[bool]:
    """Whether each first step is ticked, in order."""
    box = page.split('id="first-steps"', 1)[1].split("</ol>", 1)[0]
    return ["badge-success" in item for item in box.split("<li")[1:]]


def test_the_create_a_task_step_is_ticked_per_person(
    member_client, member_user, admin_user, sim_model
):
    """QA: a new member saw "Create a task" ticked because somebody else had made one."""
    make_task(admin_user, sim_model, name="the admin's")
    assert first_steps_done(text(member_client.get("/admin/")))[2] is False
    make_task(member_user, sim_model, name="mine")
    assert first_steps_done(text(member_client.get("/admin/")))[2] is True
