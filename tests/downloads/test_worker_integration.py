"""End to end: the request enqueues, a real worker process writes the file, delete cleans up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llmadmin.extensions import db
from llmadmin.models import Download
from llmadmin.models.download import SUCCESS
from tests.downloads.conftest import add_tasks, filter_arg, queued_jobs, read_csv
from tests.downloads.test_export_actions import post_action

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_worker_burst(app, storage) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "DOWNLOAD_DIR": str(storage),
        "SECRET_KEY": "test-secret",
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "worker.py", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_export_and_delete_through_a_real_worker(app, admin_client, admin_user, storage):
    failed = add_tasks(admin_user, n=4, status="FAILURE")
    add_tasks(admin_user, n=3, status="SUCCESS")
    post_action(
        admin_client,
        "task",
        "export_csv",
        [],
        all_matching="1",
        list_args=filter_arg("task", "Status", "equals") + "=FAILURE",
    )
    run_worker_burst(app, storage)
    db.session.expire_all()
    row = db.session.execute(db.select(Download)).scalar_one()
    assert row.status == SUCCESS, row.error
    path = storage / row.storage_path
    assert [int(r[0]) for r in read_csv(path)[1:]] == [
        t.id for t in reversed(failed)
    ]  # newest first
    page = admin_client.get("/admin/download/").get_data(as_text=True)
    assert "is ready" in page
    r = admin_client.get(f"/downloads/{row.id}/file")
    assert r.status_code == 200 and r.data == path.read_bytes()
    db.session.delete(row)
    db.session.commit()
    assert len(queued_jobs()) == 1 and path.exists()
    run_worker_burst(app, storage)
    assert not path.exists()
