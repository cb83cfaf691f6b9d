"""Fixtures for the Download Center: a fresh storage folder, rows to export, helpers."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest

from llmadmin.extensions import db
from llmadmin.models import Download, Task
from llmadmin.models.base import utcnow
from llmadmin.queues import get_queue


@pytest.fixture(autouse=True)
def fresh_login_per_request(app):
    """Load the user from each request's own cookie.

    The ``app`` fixture keeps one app context open for the whole test and Flask reuses it
    for test-client requests, so Flask-Login's ``g._login_user`` would otherwise survive from
    one request (and one client) to the next: a second client would act as the first person
    (and get the first client's CSRF token, which Flask-WTF also caches in ``g``).
    """
    from flask import g

    def forget():
        g.pop("_login_user", None)
        g.pop("csrf_token", None)

    app.before_request_funcs.setdefault(None, []).insert(0, forget)


@pytest.fixture(autouse=True)
def storage(app, tmp_path):
    """Give every test its own DOWNLOAD_DIR."""
    folder = tmp_path / "downloads"
    app.config["DOWNLOAD_DIR"] = str(folder)
    return folder


def add_tasks(creator, model=None, n: int = 3, status: str = "SUCCESS", **fields) -> list[Task]:
    """Insert ``n`` tasks owned by ``creator``; return them."""
    tasks = [
        Task(
            name=fields.get("name", f"task {i}"),
            prompt=fields.get("prompt", f"prompt {i}"),
            result=fields.get("result", f"output {i}"),
            status=status,
            creator_id=creator.id,
            model_id=model.id if model else None,
        )
        for i in range(n)
    ]
    db.session.add_all(tasks)
    db.session.commit()
    return tasks


def make_download(
    creator,
    *,
    storage=None,
    content: bytes | None = b"id,name\r\n1,a\r\n",
    file_name: str = "tasks-export.csv",
    status: str = "SUCCESS",
    **fields,
) -> Download:
    """Insert a finished download (and its file when ``storage`` is given)."""
    import hashlib

    row = Download(
        name=fields.pop("name", "Tasks export — all rows"),
        file_name=file_name,
        file_format=file_name.rsplit(".", 1)[-1],
        source="tasks",
        status=status,
        creator_id=creator.id if creator else None,
        created_at=utcnow(),
        **fields,
    )
    db.session.add(row)
    db.session.flush()
    if storage is not None and content is not None:
        relative = f"2025/01/{row.id}-{file_name}"
        path = storage / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        row.storage_path = relative
        row.size_bytes = len(content)
        row.md5 = hashlib.md5(content).hexdigest()
    db.session.commit()
    return row


def stored_file(storage, row: Download):
    """Return the path of a download's stored file."""
    return storage / row.storage_path


def read_csv(path) -> list[list[str]]:
    """Parse a CSV export (UTF-8 with BOM)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def read_xlsx_cells(path) -> list[str]:
    """Return every text cell of every sheet of an XLSX file, in order."""
    texts = []
    with zipfile.ZipFile(path) as archive:
        for name in sorted(n for n in archive.namelist() if n.startswith("xl/worksheets/sheet")):
            xml = archive.read(name).decode("utf-8")
            texts += [re.sub(r"&amp;", "&", t) for t in re.findall(r"<t[^>]*>(.*?)</t>", xml, re.S)]
    return texts


def read_zip_csv(path, member: str = "tasks.csv") -> list[list[str]]:
    """Parse the CSV inside a ZIP bundle."""
    with zipfile.ZipFile(path) as archive:
        text = archive.read(member).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def queued_jobs(kind: str = "reports") -> list:
    """Return the jobs waiting on a queue."""
    return get_queue(kind).get_jobs()


def admin_view(endpoint: str):
    """Return the app's admin view registered under ``endpoint`` (tests only)."""
    from flask import current_app

    admin = current_app.extensions["llmadmin.admin"]
    return next(v for v in admin._views if getattr(v, "endpoint", None) == endpoint)


def selection_for(source_key: str, person, *, ids=None, list_args=None):
    """Return the Selection the admin stores for ticked ``ids`` or a list URL's ``list_args``."""
    from llmadmin.admin.selection_args import selection_from_query_string
    from llmadmin.services.export_sources import SOURCES
    from llmadmin.services.selections import Selection

    endpoint = SOURCES[source_key].endpoint
    if ids is not None:
        return Selection(endpoint, person.id, ids=tuple(sorted(set(ids))))
    return selection_from_query_string(admin_view(endpoint), list_args or "", person.id)


def filter_arg(endpoint: str, name: str, operation: str) -> str:
    """Return the list URL argument of a filter, e.g. ``flt0_status_equals`` (or ``flt0_3``)."""
    view = admin_view(endpoint)
    key = next(
        k
        for k, (_i, f) in view._filter_args.items()
        if str(f.name) == name and str(f.operation()) == operation
    )
    return f"flt0_{key}"


def export_ids(client_html: str) -> list[int]:
    """Extract download ids from a Download Center list page."""
    return [int(i) for i in re.findall(r'data-id="(\d+)"', client_html)]
