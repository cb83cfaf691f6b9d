"""The export job: streamed files, checksums, scoping, safety of cells, failures."""

from __future__ import annotations

import errno
import hashlib
import json
import zipfile

import pytest

from llmadmin.extensions import db
from llmadmin.models import Download, LLMModel
from llmadmin.models.download import FAILURE, PENDING, RUNNING, SUCCESS
from llmadmin.services import download_files
from llmadmin.services import downloads as service
from tests.downloads.conftest import (
    add_tasks,
    admin_view,
    filter_arg,
    read_csv,
    read_xlsx_cells,
    read_zip_csv,
    selection_for,
)


def queue(source, fmt, person, **selection):
    row, _queued = service.create_export(source, fmt, selection_for(source, person, **selection))
    return row.id


def run(download_id):
    from llmadmin.jobs.exports import export_download

    outcome = export_download(download_id)
    db.session.expire_all()
    return outcome, db.session.get(Download, download_id)


def test_csv_of_ticked_rows_records_size_md5_and_rows(admin_user, storage):
    tasks = add_tasks(admin_user, n=5)
    outcome, row = run(queue("tasks", "csv", admin_user, ids=[t.id for t in tasks[:3]]))
    assert outcome == SUCCESS and row.status == SUCCESS
    path = storage / row.storage_path
    assert row.storage_path.startswith(f"{row.created_at:%Y}/{row.created_at:%m}/")
    data = path.read_bytes()
    assert row.size_bytes == len(data) and row.md5 == hashlib.md5(data).hexdigest()
    assert row.row_count == 3 == row.progress_rows
    assert row.duration_ms is not None and row.expires_at > row.finished_at
    table = read_csv(path)
    assert table[0][:3] == ["ID", "Name", "Status"]
    assert [int(r[0]) for r in table[1:]] == [t.id for t in tasks[:3]]
    assert not [p for p in path.parent.iterdir() if ".part-" in p.name]


def test_expiry_uses_retention_setting(app, admin_user):
    app.config["DOWNLOAD_RETENTION_DAYS"] = 2
    add_tasks(admin_user, n=1)
    _, row = run(queue("tasks", "csv", admin_user, list_args=""))
    assert round((row.expires_at - row.finished_at).total_seconds()) == 2 * 86400


def test_duplicate_delivery_is_a_no_op(admin_user, storage):
    add_tasks(admin_user, n=2)
    download_id = queue("tasks", "csv", admin_user, list_args="")
    assert run(download_id)[0] == SUCCESS
    md5 = db.session.get(Download, download_id).md5
    outcome, row = run(download_id)
    assert outcome == "skipped" and row.attempts == 1 and row.md5 == md5


def test_all_matching_exports_exactly_the_filtered_set(admin_client, admin_user, member_user):
    failed = add_tasks(admin_user, n=3, status="FAILURE") + add_tasks(
        member_user, n=2, status="FAILURE"
    )
    add_tasks(admin_user, n=4, status="SUCCESS")
    status_equals = filter_arg("task", "Status", "equals")
    _, row = run(queue("tasks", "csv", admin_user, list_args=f"{status_equals}=FAILURE&page=3"))
    ids = [int(r[0]) for r in read_csv(download_files.storage_root() + "/" + row.storage_path)[1:]]
    assert ids == sorted((t.id for t in failed), reverse=True), (
        "in the list's default order (newest first)"
    )


def test_all_matching_export_follows_the_lists_sort(admin_client, admin_user):
    tasks = add_tasks(admin_user, n=4)
    for task, name in zip(tasks, ["b", "d", "a", "c"], strict=True):
        task.name = name
    db.session.commit()
    columns = [name for name, _label in admin_view("task")._list_columns]
    by_name = columns.index("name")
    for desc, expected in (("", ["a", "b", "c", "d"]), ("&desc=1", ["d", "c", "b", "a"])):
        _, row = run(queue("tasks", "csv", admin_user, list_args=f"sort={by_name}{desc}"))
        rows = read_csv(download_files.storage_root() + "/" + row.storage_path)
        name_at = rows[0].index("Name")
        assert [r[name_at] for r in rows[1:]] == expected


def test_all_matching_search_and_relation_filter(admin_client, admin_user, sim_model):
    other = LLMModel(name="Other", base_url="http://127.0.0.1:9/v1", model_name="x")
    db.session.add(other)
    db.session.commit()
    wanted = add_tasks(admin_user, sim_model, n=2, prompt="needle here")
    add_tasks(admin_user, other, n=2, prompt="needle here")
    add_tasks(admin_user, sim_model, n=2, prompt="hay")
    model_equals = filter_arg("task", "Model name", "equals")
    _, row = run(queue("tasks", "xlsx", admin_user, list_args=f"search=needle&{model_equals}=Sim"))
    assert row.status == SUCCESS and row.row_count == 2
    cells = read_xlsx_cells(download_files.storage_root() + "/" + row.storage_path)
    assert "needle here" in cells and "hay" not in cells
    assert all(t.name in cells for t in wanted)


def test_member_export_contains_only_their_rows(member_user, other_member, admin_user):
    mine = add_tasks(member_user, n=2)
    add_tasks(other_member, n=3)
    add_tasks(admin_user, n=1)
    _, row = run(queue("tasks", "csv", member_user, list_args=""))
    ids = [int(r[0]) for r in read_csv(download_files.storage_root() + "/" + row.storage_path)[1:]]
    assert sorted(ids) == [t.id for t in mine]


def test_member_ticking_others_ids_in_a_forged_selection_gets_none(member_user, other_member):
    theirs = add_tasks(other_member, n=2)
    _, row = run(queue("tasks", "csv", member_user, ids=[t.id for t in theirs]))
    assert row.status == SUCCESS and row.row_count == 0


def test_member_cannot_export_people_even_if_a_row_says_so(member_user):
    _, row = run(queue("people", "csv", member_user, list_args=""))
    assert row.status == FAILURE and "no longer have access" in row.error
    assert row.storage_path is None


def test_people_export_never_has_password_hashes(admin_user, member_user):
    _, row = run(queue("people", "xlsx", admin_user, list_args=""))
    cells = read_xlsx_cells(download_files.storage_root() + "/" + row.storage_path)
    assert "member@example.com" in cells
    assert not any("scrypt" in c or "pbkdf2" in c for c in cells)
    assert not any("password" in c.lower() for c in cells)


def test_model_export_masks_the_api_key(admin_user):
    from llmadmin.services.llm_models import set_api_key

    model = LLMModel(name="Real", base_url="https://api.example.com/v1", model_name="m")
    set_api_key(model, "sk-secret-value-1234")
    db.session.add(model)
    db.session.commit()
    for fmt in ("csv", "xlsx"):
        _, row = run(queue("llm_models", fmt, admin_user, ids=[model.id]))
        raw = open(download_files.storage_root() + "/" + row.storage_path, "rb").read()
        if fmt == "xlsx":
            raw = "".join(
                read_xlsx_cells(download_files.storage_root() + "/" + row.storage_path)
            ).encode()
        assert b"sk-secret-value-1234" not in raw and model.api_key_encrypted.encode() not in raw
        assert "sk-…1234".encode() in raw


def test_formula_injection_and_xml_illegal_characters(admin_user):
    evil = add_tasks(
        admin_user,
        n=1,
        name='=HYPERLINK("http://x")',
        prompt="+cmd|' /C calc'!A0",
        result="ok\x01\x0b\x1f\x08 done\ufffe",
    )
    paths = {}
    for fmt in ("csv", "xlsx", "zip"):
        _, row = run(queue("tasks", fmt, admin_user, ids=[evil[0].id]))
        assert row.status == SUCCESS, row.error
        paths[fmt] = download_files.storage_root() + "/" + row.storage_path
    table = read_csv(paths["csv"])
    header = table[0]
    assert table[1][header.index("Name")] == '\'=HYPERLINK("http://x")'
    assert table[1][header.index("Prompt")] == "'+cmd|' /C calc'!A0"
    cells = read_xlsx_cells(paths["xlsx"])
    assert '\'=HYPERLINK("http://x")' in cells or "'=HYPERLINK(&quot;http://x&quot;)" in cells
    assert "ok done" in cells  # control characters and U+FFFE are gone (PostgreSQL refuses NUL)
    with zipfile.ZipFile(paths["xlsx"]) as archive:
        assert archive.testzip() is None
        sheet = archive.read("xl/worksheets/sheet1.xml")
    assert b"\x00" not in sheet and b"\x01" not in sheet and b"<f>" not in sheet


def test_zip_bundle_has_csv_and_one_text_file_per_prompt_and_output(admin_user):
    tasks = add_tasks(admin_user, n=3, prompt="写一首诗", result="床前明月光")
    tasks[2].result = None
    db.session.commit()
    _, row = run(queue("tasks", "zip", admin_user, list_args=""))
    path = download_files.storage_root() + "/" + row.storage_path
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert archive.read(f"prompts/{tasks[0].id}.txt").decode() == "写一首诗"
        assert archive.read(f"outputs/{tasks[1].id}.txt").decode() == "床前明月光"
    assert f"outputs/{tasks[2].id}.txt" not in names
    table = read_zip_csv(path)
    assert "Prompt" not in table[0] and table[0][-2:] == ["Prompt file", "Output file"]
    # Newest first, as the list shows them: the task without an output comes first.
    assert table[3][-2:] == [f"prompts/{tasks[0].id}.txt", f"outputs/{tasks[0].id}.txt"]
    assert table[1][-1] == ""


def test_progress_is_reported_in_separate_transactions(admin_user, monkeypatch):
    monkeypatch.setattr(service, "PROGRESS_EVERY", 2)
    seen = []
    real = service.report_progress

    def spy(download_id, rows):
        real(download_id, rows)
        with db.engine.connect() as conn:  # visible to others at once: already committed
            seen.append(
                conn.execute(
                    db.select(Download.progress_rows).where(Download.id == download_id)
                ).scalar()
            )

    monkeypatch.setattr(service, "report_progress", spy)
    add_tasks(admin_user, n=5)
    _, row = run(queue("tasks", "csv", admin_user, list_args=""))
    assert seen[:2] == [2, 4] and row.row_count == 5


def test_writer_failure_midway_leaves_no_file_and_records_failure(admin_user, storage, monkeypatch):
    from llmadmin.exports import writers

    real = writers._write_csv_stream

    def boom_after_two(handle, headers, rows, ticker):
        def rows_then_fail():
            for i, r in enumerate(rows):
                if i == 2:
                    raise RuntimeError("writer exploded")
                yield r

        return real(handle, headers, rows_then_fail(), ticker)

    monkeypatch.setattr(writers, "_write_csv_stream", boom_after_two)
    add_tasks(admin_user, n=5)
    outcome, row = run(queue("tasks", "csv", admin_user, list_args=""))
    assert outcome == FAILURE and row.status == FAILURE
    assert "writer exploded" in row.error and "nothing was kept" in row.error
    assert row.storage_path is None and row.finished_at is not None
    assert [p for p in storage.rglob("*") if p.is_file()] == []


def test_disk_full_is_reported_clearly(admin_user, storage, monkeypatch):
    from dataclasses import replace

    from llmadmin.exports.formats import FORMATS

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(FORMATS, "xlsx", replace(FORMATS["xlsx"], write=full))
    add_tasks(admin_user, n=2)
    _, row = run(queue("tasks", "xlsx", admin_user, list_args=""))
    assert row.status == FAILURE and "ran out of disk space" in row.error
    assert [p for p in storage.rglob("*") if p.is_file()] == []


def test_row_deleted_while_running_discards_the_file(admin_user, storage, monkeypatch):
    monkeypatch.setattr(service, "PROGRESS_EVERY", 1)
    add_tasks(admin_user, n=3)
    download_id = queue("tasks", "csv", admin_user, list_args="")
    real = service.report_progress

    def delete_then_report(i, rows):
        with db.engine.begin() as conn:
            conn.execute(Download.__table__.delete().where(Download.id == i))
        real(i, rows)

    monkeypatch.setattr(service, "report_progress", delete_then_report)
    assert run(download_id)[0] == "canceled"
    assert [p for p in storage.rglob("*") if p.is_file()] == []


def test_person_deactivated_before_the_job_runs(admin_user, member_user):
    add_tasks(member_user, n=1)
    download_id = queue("tasks", "csv", member_user, list_args="")
    member_user.active = False
    db.session.commit()
    _, row = run(download_id)
    assert row.status == FAILURE and "deactivated" in row.error


def test_create_export_validates_and_stores_the_selection(admin_user):
    from llmadmin.errors import ValidationError

    with pytest.raises(ValidationError):
        service.create_export("people", "zip", selection_for("people", admin_user, list_args=""))
    with pytest.raises(ValidationError):
        service.create_export("tasks", "csv", selection_for("tasks", admin_user, ids=[]))
    with pytest.raises(ValidationError):  # a selection of another list
        service.create_export("tasks", "csv", selection_for("people", admin_user, list_args=""))
    list_args = filter_arg("task", "Status", "equals") + "=FAILURE"
    row, queued = service.create_export(
        "tasks", "csv", selection_for("tasks", admin_user, list_args=list_args)
    )
    assert queued and row.status == PENDING and row.creator_id == admin_user.id
    assert row.name == "Tasks export — status=FAILURE"
    assert row.file_name.startswith("Tasks-export-") and row.file_name.endswith(".csv")
    stored = json.loads(row.selection)
    assert stored["list"] == "task" and stored["person_id"] == admin_user.id
    assert stored["filters"] == [["status", "equals", "FAILURE"]] and stored["ids"] is None


def test_running_rows_are_not_claimed_twice(admin_user):
    download_id = queue("tasks", "csv", admin_user, list_args="")
    assert service.transition(download_id, RUNNING)
    assert not service.transition(download_id, RUNNING)
    assert service.run_export(download_id) == "skipped"


def test_rows_stored_before_selections_are_still_read(admin_user):
    """Downloads queued before the upgrade held the endpoint plus ids or the list's URL."""
    tasks = add_tasks(admin_user, n=3)

    def legacy(selection: dict) -> int:
        row, _queued = service.create_export(
            "tasks", "csv", selection_for("tasks", admin_user, list_args="")
        )
        row.selection = json.dumps(selection)
        db.session.commit()
        return row.id

    _, row = run(legacy({"endpoint": "task", "ids": [tasks[0].id, tasks[2].id]}))
    assert row.status == SUCCESS and row.row_count == 2
    _, row = run(legacy({"endpoint": "task", "list_args": "page=2"}))
    assert row.status == SUCCESS and row.row_count == 3
    _, row = run(legacy({"endpoint": "task", "list_args": "flt0_status_equals=FAILURE"}))
    assert row.status == FAILURE and "Export again" in row.error
