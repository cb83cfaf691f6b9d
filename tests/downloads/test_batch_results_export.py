"""A batch's results file: one row per input line, rejected lines included, in line order."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Batch, Task
from llmadmin.models.download import SUCCESS
from llmadmin.models.task import FAILURE, QUEUED, RUNNING
from llmadmin.services import batches
from tests.conftest import run_batch_jobs
from tests.downloads.conftest import read_csv
from tests.downloads.test_export_job import run

CSV = b"prompt,model,custom_id\nBad one,Nope,x0\nHello,Sim,a\nBye,Sim,b\nSkip,Sim,\nWorse,Sim,a\n"


def _batch(person):
    upload_id = batches.store_upload(io.BytesIO(CSV), "prompts.csv", person.id)
    batch_id = batches.create_batch(upload_id, person.id).id
    run_batch_jobs()
    return db.session.get(Batch, batch_id)


def test_every_input_line_in_order(member_user, sim_model, storage):
    batch = _batch(member_user)
    ids = [t.id for t in Task.query.order_by(Task.id)]
    transition(ids[:1], RUNNING, from_statuses=(QUEUED,))
    transition(ids[:1], "SUCCESS", result="hi there")
    transition(ids[1:2], FAILURE, error="boom")
    download, _queued = batches.export_results(batch.id, member_user, "csv")
    outcome, row = run(download.id)
    assert outcome == SUCCESS
    table = read_csv(storage / row.storage_path)
    head = table[0]
    assert head[:5] == ["Line", "Custom ID", "Status", "Name", "Model"]
    lines = [(r[0], r[1], r[2]) for r in table[1:]]
    assert lines == [
        ("2", "x0", "Invalid line"),
        ("3", "a", "Succeeded"),
        ("4", "b", "Failed"),
        ("5", "", "Queued"),
        ("6", "a", "Invalid line"),
    ]
    error = head.index("Error")
    assert table[1][error].startswith("model: There is no model")
    assert "earlier line" in table[5][error]
    assert table[2][head.index("Output")] == "hi there" and table[3][error] == "boom"


def test_xlsx_results_and_scope(member_user, other_member, sim_model, storage):
    batch = _batch(member_user)
    download, _queued = batches.export_results(batch.id, member_user, "xlsx")
    outcome, row = run(download.id)
    assert outcome == SUCCESS and row.row_count == 5
    sheet = load_workbook(storage / row.storage_path, read_only=True).worksheets[0]
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [2, 3, 4, 5, 6]
    import pytest

    from llmadmin.errors import NotFound

    with pytest.raises(NotFound):
        batches.export_results(batch.id, other_member, "csv")
