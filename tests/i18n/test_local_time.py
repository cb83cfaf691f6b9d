"""Times as people read them: their zone, no microseconds, relative in lists with the exact time on hover."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from llmadmin import localtime
from llmadmin.extensions import db
from llmadmin.models.base import utcnow
from tests.admin.helpers import make_task, text
from tests.i18n.conftest import CHINESE, set_person

# 04:05:06.789123 UTC is 12:05:06 in Beijing and 05:05:06 in Berlin (winter).
STORED = datetime(2026, 1, 15, 4, 5, 6, 789123)


def task_at(admin_user, sim_model, when: datetime, status: str = "SUCCESS"):
    task = make_task(admin_user, sim_model, name="timed", status=status)
    task.created_at = task.finished_at = when
    db.session.commit()
    return task


def test_details_show_beijing_time_by_default_without_microseconds(
    admin_client, admin_user, sim_model
):
    task = task_at(admin_user, sim_model, STORED)
    page = text(admin_client.get(f"/admin/task/details/?id={task.id}"))
    assert ">2026-01-15 12:05:06</time>" in page
    assert "04:05:06" not in page and "789123" not in page
    assert 'title="Asia/Shanghai · ' in page  # the zone (and how long ago) on hover


def test_each_person_sees_their_own_zone(admin_client, admin_user, sim_model):
    set_person(admin_user, timezone="Europe/Berlin")
    task = task_at(admin_user, sim_model, STORED)
    page = text(admin_client.get(f"/admin/task/details/?id={task.id}"))
    assert ">2026-01-15 05:05:06</time>" in page and "12:05:06" not in page


def test_the_site_default_zone_is_a_setting(app, admin_client, admin_user, sim_model):
    app.config["DEFAULT_TIMEZONE"] = "UTC"
    task = task_at(admin_user, sim_model, STORED)
    assert ">2026-01-15 04:05:06</time>" in text(
        admin_client.get(f"/admin/task/details/?id={task.id}")
    )


def test_lists_say_how_long_ago_with_the_exact_local_time_on_hover(
    admin_client, admin_user, sim_model
):
    when = utcnow() - timedelta(minutes=3, seconds=10)
    task_at(admin_user, sim_model, when)
    page = text(admin_client.get("/admin/task/"))
    exact = (when + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    cell = re.search(r'<time datetime="[^"]+" title="([^"]+)">([^<]+)</time>', page)
    assert cell, "no time cell in the list"
    assert cell.group(1) == f"{exact} Asia/Shanghai"
    assert cell.group(2) == "3 minutes ago"


def test_relative_times_in_chinese(admin_client, admin_user, sim_model):
    set_person(admin_user, locale=CHINESE)
    task_at(admin_user, sim_model, utcnow() - timedelta(minutes=3, seconds=10))
    assert ">3分钟前</time>" in text(admin_client.get("/admin/task/"))


def test_the_home_page_failures_show_relative_time(admin_client, admin_user, sim_model):
    task_at(admin_user, sim_model, STORED, status="FAILURE")
    page = text(admin_client.get("/admin/"))
    assert 'title="2026-01-15 12:05:06 Asia/Shanghai"' in page
    assert "789123" not in page


def test_datetime_filters_read_the_typed_time_in_the_viewers_zone(
    admin_client, admin_user, sim_model
):
    from tests.downloads.conftest import filter_arg

    task = task_at(admin_user, sim_model, STORED)  # 12:05:06 in Beijing
    after = filter_arg("task", "Created at", "greater than")
    before_it = text(admin_client.get(f"/admin/task/?{after}=2026-01-15+12:00:00"))
    after_it = text(admin_client.get(f"/admin/task/?{after}=2026-01-15+12:10:00"))
    assert f'data-id="{task.id}"' in before_it and f'data-id="{task.id}"' not in after_it


def test_a_stored_selection_keeps_the_filter_time_as_utc(app, admin_user):
    from tests.downloads.conftest import filter_arg, selection_for

    after = filter_arg("task", "Created at", "greater than")
    selection = selection_for("tasks", admin_user, list_args=f"{after}=2026-01-15+12:00:00")
    assert selection.filters == (("created_at", "greater", "2026-01-15 04:00:00"),)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"])
def test_the_export_converter_agrees_with_zoneinfo_across_daylight_saving(zone):
    tz = localtime.zone(zone)
    convert = localtime.naive_local_converter(tz)
    start = datetime(2026, 3, 7, 0, 0, 0, 500000)
    values = [start + timedelta(minutes=7 * i) for i in range(3000)]  # spans the March switches
    values += [
        datetime(2026, 10, 25, 0, 59, 59),
        datetime(2026, 10, 25, 1, 0),
        datetime(1980, 5, 1),
    ]
    for value in values:
        assert convert(value).replace(microsecond=0) == localtime.naive_local(value, tz), value
    assert convert(None) is None
