"""Exports follow their requester: headers in their language, times in their zone (named)."""

from __future__ import annotations

from datetime import datetime

import pytest

from llmadmin.extensions import db
from llmadmin.models import Download
from llmadmin.models.download import SUCCESS
from llmadmin.services import downloads as service
from tests.downloads.conftest import add_tasks, read_csv, read_xlsx_cells, selection_for
from tests.i18n.conftest import CHINESE, set_person

STORED = datetime(2026, 1, 15, 4, 5, 6, 789123)  # 12:05:06 in Beijing, 05:05:06 in Berlin


@pytest.fixture(autouse=True)
def storage(app, tmp_path):
    folder = tmp_path / "downloads"
    app.config["DOWNLOAD_DIR"] = str(folder)
    return folder


def export(person, fmt: str, tasks) -> Download:
    from llmadmin.jobs.exports import export_download

    row, _queued = service.create_export(
        "tasks", fmt, selection_for("tasks", person, ids=[t.id for t in tasks])
    )
    assert export_download(row.id) == SUCCESS
    db.session.expire_all()
    return db.session.get(Download, row.id)


def timed_tasks(person):
    tasks = add_tasks(person, n=1)
    tasks[0].created_at = tasks[0].finished_at = STORED
    db.session.commit()
    return tasks


def test_a_chinese_speakers_csv_has_chinese_headers_and_beijing_times(admin_user, storage):
    set_person(admin_user, locale=CHINESE)  # no zone of their own: DEFAULT_TIMEZONE
    row = export(admin_user, "csv", timed_tasks(admin_user))
    header, first = read_csv(storage / row.storage_path)[:2]
    assert header[:3] == ["ID", "名称", "状态"]
    created = header.index("创建时间 (Asia/Shanghai)")
    assert "完成时间 (Asia/Shanghai)" in header
    assert first[created] == "2026-01-15 12:05:06"
    assert row.file_name.startswith("Tasks-export-")  # file names stay ASCII


def test_the_requesters_own_zone_is_used_and_named(admin_user, storage):
    set_person(admin_user, timezone="Europe/Berlin")
    row = export(admin_user, "csv", timed_tasks(admin_user))
    header, first = read_csv(storage / row.storage_path)[:2]
    created = header.index("Created at (Europe/Berlin)")
    assert first[created] == "2026-01-15 05:05:06"


def test_xlsx_headers_follow_the_requester(admin_user, storage):
    set_person(admin_user, locale=CHINESE)
    row = export(admin_user, "xlsx", timed_tasks(admin_user))
    cells = read_xlsx_cells(storage / row.storage_path)
    assert "创建时间 (Asia/Shanghai)" in cells and "提示词" in cells


def test_a_zip_bundle_still_finds_its_text_columns_in_chinese(admin_user, storage):
    import zipfile

    set_person(admin_user, locale=CHINESE)
    row = export(admin_user, "zip", timed_tasks(admin_user))
    with zipfile.ZipFile(storage / row.storage_path) as archive:
        names = archive.namelist()
    assert any(n.startswith("prompts/") for n in names)
    assert any(n.startswith("outputs/") for n in names)


def test_a_failed_export_says_why_in_the_requesters_language(admin_user, monkeypatch):
    from llmadmin.jobs.exports import export_download

    set_person(admin_user, locale=CHINESE)
    tasks = add_tasks(admin_user, n=1)
    row, _ = service.create_export(
        "tasks", "csv", selection_for("tasks", admin_user, ids=[tasks[0].id])
    )

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(service, "write_file", full)
    export_download(row.id)
    db.session.expire_all()
    assert "磁盘空间不足" in db.session.get(Download, row.id).error


def test_the_download_center_row_is_named_in_the_requesters_language(zh_admin_client, admin_user):
    from tests.conftest import post_form

    tasks = add_tasks(admin_user, n=2)
    page = post_form(
        zh_admin_client,
        "/admin/task/action/",
        {"action": "export_csv", "rowid": [str(t.id) for t in tasks]},
        token_from="/admin/task/",
        follow_redirects=True,
    ).get_data(as_text=True)
    (row,) = db.session.execute(db.select(Download)).scalars().all()
    assert row.name == "任务导出 — 勾选的 2 行"
    assert "下载中心" in page and row.file_name.startswith("Tasks-export-")
