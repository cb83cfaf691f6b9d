"""Downloads: export tasks from a stored selection, follow the row, fetch the file."""

from __future__ import annotations

from flask_babel import gettext as _

from llmadmin.api import serialize
from llmadmin.api.blueprint import bp, current_person, json_body
from llmadmin.api.schema import parse
from llmadmin.api.shapes import EXPORT_INPUT
from llmadmin.api.tasks import task_selection
from llmadmin.downloads_web import send_download
from llmadmin.errors import NotFound
from llmadmin.extensions import db
from llmadmin.models import Download
from llmadmin.services import downloads as download_service


def visible_download(download_id: int) -> Download:
    """Load a download its owner (or an admin) may see; 404 for anyone else."""
    row = db.session.get(Download, download_id)
    person = current_person()
    if row is None or (not person.is_admin and row.creator_id != person.id):
        raise NotFound(_("Download #%(id)s does not exist.", id=download_id))
    return row


@bp.post("/downloads")
def create_download():
    """Export the tasks matching ``filters`` (or the given ``ids``); 202 with the PENDING row."""
    body = parse(json_body(), EXPORT_INPUT)
    selection = task_selection(body.get("filters") or {}, current_person().id, body.get("ids"))
    row, _queued = download_service.create_export("tasks", body["format"], selection)
    return serialize.download(row), 202


@bp.get("/downloads/<int:download_id>")
def get_download(download_id: int):
    """Return a download row: its status, progress and, when done, the file's URL."""
    return serialize.download(visible_download(download_id))


@bp.get("/downloads/<int:download_id>/file")
def download_file(download_id: int):
    """Send the finished file (409 until it is ready, 410 when it expired)."""
    return send_download(visible_download(download_id))
