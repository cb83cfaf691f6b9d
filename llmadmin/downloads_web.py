"""Serving Download Center files: scoped per person, ETag from md5, Range for resuming.

Also hosts the "your download is ready" notice shown on the next admin page a person opens.
"""

from __future__ import annotations

import logging
import os

from flask import Blueprint, abort, flash, jsonify, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup

from llmadmin.errorpages import render_error
from llmadmin.exports.formats import FORMATS
from llmadmin.extensions import db
from llmadmin.i18n import markup_text
from llmadmin.labels import inner_quotes
from llmadmin.models import Download
from llmadmin.models.download import SUCCESS
from llmadmin.services import activity
from llmadmin.services.download_cleanup import register_session_events
from llmadmin.services.download_files import resolve_storage_path
from llmadmin.services.downloads import claim_notices, display_name

logger = logging.getLogger(__name__)
bp = Blueprint("downloads", __name__, url_prefix="/downloads")


def visible_download(download_id: int) -> Download:
    """Load a download its owner (or an admin) may see; 404 for anyone else, as if absent."""
    row = db.session.get(Download, download_id)
    if row is None or (not current_user.is_admin and row.creator_id != current_user.id):
        abort(404)
    return row


@bp.route("/<int:download_id>/file")
@login_required
def fetch(download_id: int):
    """Stream a finished file to its owner (or an admin)."""
    return send_download(visible_download(download_id))


def send_download(row: Download):
    """Send a finished download's file (ETag, Range), or say why it cannot be sent."""
    if row.status != SUCCESS:
        return _message(409, _("This file is not ready yet."))
    path = resolve_storage_path(row.storage_path)
    if path is None or not os.path.isfile(path):
        return _message(
            410, _("The file is missing from storage (expired or removed); export it again.")
        )
    if row.size_bytes is not None and os.path.getsize(path) != row.size_bytes:
        logger.error("download %s: stored file size differs from the recorded one", row.id)
        return _message(
            409, _("The stored file does not match its recorded size; export it again.")
        )
    try:
        response = send_file(
            path,
            as_attachment=True,
            download_name=row.file_name,
            conditional=True,
            etag=row.md5 or True,
            max_age=0,
            mimetype=_mimetype(row.file_format),
        )
    except OSError as exc:
        logger.error("download %s unreadable: %s", row.id, exc)
        return _message(410, _("The stored file cannot be read; export it again."))
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _mimetype(file_format: str) -> str:
    found = FORMATS.get(file_format)
    return found.mimetype if found else "application/octet-stream"


def _message(code: int, text: str):

    return render_error(code, text)


def announce_finished_downloads() -> None:
    """Flash, once, that the person's downloads finished (on the next admin page they open)."""
    if request.method != "GET" or not request.endpoint or not request.path.startswith("/admin"):
        return
    if request.endpoint.endswith("static") or request.path.endswith(".json"):
        return
    if request.path.startswith("/admin/rq") or not current_user.is_authenticated:
        return
    # Asked along with the session check (services.sessions.load): skip the query when none waits.
    if not getattr(current_user, "download_notices_waiting", True):
        return

    for message, category in notice_messages(claim_notices(current_user.id)):
        flash(message, category)


def notice_messages(rows) -> list[tuple[Markup, str]]:
    """The "your download is ready / failed" messages for finished downloads, with links."""
    messages = []
    for row in rows:
        if row.status == SUCCESS:
            link = Markup('<a href="{}">{}</a>').format(
                url_for("downloads.fetch", download_id=row.id), row.file_name
            )
            text = markup_text(
                "Your download “%(name)s” is ready: %(link)s",
                name=inner_quotes(display_name(row)),
                link=link,
            )
            messages.append((text, "success"))
        else:
            link = Markup('<a href="{}">{}</a>').format(
                url_for("download.details_view", id=row.id), _("Details")
            )
            text = markup_text(
                "Your download “%(name)s” failed: %(error)s %(link)s",
                name=inner_quotes(display_name(row)),
                error=row.error or "",
                link=link,
            )
            messages.append((text, "error"))
    return messages


def _operation_progress(op) -> str:
    """How far a bulk operation got; before its rows are counted, without a total."""
    action = op.description or op.action
    if op.matched is None:
        return _(
            "%(action)s: %(processed)s rows done so far",
            action=action,
            processed=f"{op.processed:,}",
        )
    return _(
        "%(action)s: %(processed)s of %(matched)s rows done",
        action=action,
        processed=f"{op.processed:,}",
        matched=f"{op.matched:,}",
    )


@bp.route("/notices.json")
@login_required
def notices():
    """Finished downloads to announce now and the person's running bulk operations.

    Every open admin page asks while something of the person's is still running, so an
    export's "ready" notice and a bulk operation's progress show up without a reload.
    """
    announced = [
        {"category": category, "html": str(message)}
        for message, category in notice_messages(claim_notices(current_user.id))
    ]
    operations = [
        {
            "id": op.id,
            "html": str(
                Markup('<a href="{}">{}</a> {}').format(
                    url_for("bulkoperation.details_view", id=op.id),
                    _("Bulk operation #%(id)s", id=op.id),
                    _operation_progress(op),
                )
            ),
        }
        for op in activity.active_operations(current_user.id)
    ]
    waiting = bool(operations) or activity.unfinished_downloads(current_user.id) > 0
    return jsonify({"notices": announced, "operations": operations, "waiting": waiting})


def init_app(app) -> None:
    """Register the download routes, the ready notice and the delete-after-commit hooks."""

    app.register_blueprint(bp)
    app.before_request(announce_finished_downloads)
    register_session_events()
