"""Task exports: the latest run only (the Tasks export) or every run (the "task_runs" export)."""

from __future__ import annotations

from llmadmin.extensions import db
from llmadmin.models import TaskRun
from llmadmin.models.download import SUCCESS
from tests.downloads.conftest import add_tasks, read_csv
from tests.downloads.test_export_job import queue, run


def test_latest_only_and_all_runs(admin_user, sim_model, storage):
    first, second, never_ran = add_tasks(admin_user, sim_model, n=3)
    for task, results in ((first, ["first v1", "first v2"]), (second, ["second v1"])):
        for result in results:
            db.session.add(
                TaskRun(
                    task_id=task.id,
                    status="SUCCESS",
                    result=result,
                    attempts=1,
                    model_label="Sim",
                    params='{"temperature": 0.5}',
                )
            )
        task.result = results[-1]
    db.session.commit()
    ids = [first.id, second.id, never_ran.id]

    outcome, latest = run(queue("tasks", "csv", admin_user, ids=ids))
    assert outcome == SUCCESS
    table = read_csv(storage / latest.storage_path)
    output = table[0].index("Output")
    assert [row[output] for row in table[1:]] == ["first v2", "second v1", "output 2"]
    assert "Temperature" in table[0] and "Output outdated" in table[0]

    outcome, every = run(queue("task_runs", "csv", admin_user, ids=ids))
    assert outcome == SUCCESS and every.row_count == 4
    table = read_csv(storage / every.storage_path)
    head = table[0]
    rows = [(int(r[head.index("Task ID")]), r[head.index("Output")]) for r in table[1:]]
    assert rows == [
        (first.id, "first v1"),
        (first.id, "first v2"),
        (second.id, "second v1"),
        (never_ran.id, ""),
    ]
    assert table[1][head.index("Parameters")] == '{"temperature": 0.5}'
    assert table[1][head.index("Model")] == "Sim"
