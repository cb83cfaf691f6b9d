"""Task exports carry finish reason, runs and calls; an unknown cost is an empty cell."""

from __future__ import annotations

from decimal import Decimal

from llmadmin.extensions import db
from llmadmin.models.download import SUCCESS
from tests.downloads.conftest import add_tasks, read_csv
from tests.downloads.test_export_job import queue, run


def test_task_csv_has_finish_reason_calls_and_blank_unknown_cost(admin_user, storage):
    known, unknown = add_tasks(admin_user, n=2)
    known.finish_reason, known.calls, known.cost = "length", 2, Decimal("0.001000")
    unknown.finish_reason, unknown.calls, unknown.cost = "stop", 1, None
    db.session.commit()
    outcome, row = run(queue("tasks", "csv", admin_user, ids=[known.id, unknown.id]))
    assert outcome == SUCCESS
    header, *rows = read_csv(storage / row.storage_path)
    assert "Attempts" not in header
    by_id = {int(r[0]): dict(zip(header, r, strict=True)) for r in rows}
    assert by_id[known.id]["Finish reason"] == "length" and by_id[known.id]["Calls"] == "2"
    assert by_id[known.id]["Cost"] == "0.001000" and by_id[known.id]["Runs"] == "0"
    assert by_id[unknown.id]["Cost"] == "" and by_id[unknown.id]["Finish reason"] == "stop"
