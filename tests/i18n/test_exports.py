"""Exports follow their requester: headers in their language, times in their zone (named)."""

from __future__ import annotations

import csv
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


def outcome_tasks(person):
    """A failed task (rate-limited, 1234.56 ms) and a succeeded one whose output is JSON."""
    (failed,) = add_tasks(person, n=1, status="FAILURE")
    (done,) = add_tasks(person, n=1)
    failed.error_kind, failed.latency_ms = "rate_limited", 1234.56
    failed.output_is_json, failed.result_outdated = None, True
    done.latency_ms, done.output_is_json, done.result_outdated = 0.4, True, False
    db.session.commit()
    return failed, done


HUMAN_COLUMNS = {
    "en": ("Status", "Error class", "Latency (ms)", "Output is JSON", "Output outdated"),
    CHINESE: ("状态", "错误类别", "延迟（毫秒）", "输出为 JSON", "输出已过时"),
}
HUMAN_VALUES = {
    "en": (("Failed", "Rate-limited", "1235", "", "Yes"), ("Succeeded", "", "0", "Yes", "No")),
    CHINESE: (("失败", "被限流", "1235", "", "是"), ("成功", "", "0", "是", "否")),
}


@pytest.mark.parametrize("locale", ["en", CHINESE])
def test_a_csv_says_statuses_flags_error_classes_and_latency_as_people_read_them(
    admin_user, storage, locale
):
    set_person(admin_user, locale=locale)
    failed, done = outcome_tasks(admin_user)
    row = export(admin_user, "csv", [failed, done])
    header, *lines = read_csv(storage / row.storage_path)
    by_id = {int(line[0]): dict(zip(header, line, strict=True)) for line in lines}
    names = HUMAN_COLUMNS[locale]
    for task, expected in zip((failed, done), HUMAN_VALUES[locale], strict=True):
        assert tuple(by_id[task.id][name] for name in names) == expected


@pytest.mark.parametrize("fmt", ["xlsx", "zip"])
def test_xlsx_and_the_zips_csv_carry_the_same_words(admin_user, storage, fmt):
    import io
    import zipfile

    from openpyxl import load_workbook

    set_person(admin_user, locale=CHINESE)
    failed, done = outcome_tasks(admin_user)
    row = export(admin_user, fmt, [failed, done])
    if fmt == "xlsx":
        sheet = load_workbook(storage / row.storage_path, read_only=True).worksheets[0]
        header, *lines = [list(r) for r in sheet.iter_rows(values_only=True)]
    else:
        with zipfile.ZipFile(storage / row.storage_path) as archive:
            text = archive.read("tasks.csv").decode("utf-8-sig")
        header, *lines = [list(r) for r in csv.reader(io.StringIO(text))]
    first = dict(zip(header, next(r for r in lines if int(r[0]) == failed.id), strict=True))
    assert first["状态"] == "失败" and first["错误类别"] == "被限流"
    assert str(first["延迟（毫秒）"]) == "1235" and first["输出已过时"] == "是"
