"""What people read for stored codes (statuses, error classes, roles, yes and no), and quotes.

One table each, shared by the admin's cells (``admin.formatters``) and the spreadsheet
exports (``exports.human``), so a CSV says "失败" where the list's badge says "失败".
Machine-readable answers (the JSON API, ``/v1/batches`` output lines) keep the codes.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l

# Tasks, task runs, downloads and bulk operations share these names; the badge keeps the
# stored value in data-status for the pages' live refresh.
STATUS_LABELS = {
    "PENDING": _l("Pending"),
    "QUEUED": _l("Queued"),
    "RUNNING": _l("Running"),
    "SUCCESS": _l("Succeeded"),
    "FAILURE": _l("Failed"),
    "CANCELED": _l("Canceled"),
    # A batch file's line that made no task (a batch's results export lists it).
    "INVALID": _l("Invalid line"),
}

# A failed call's class (``Task.error_kind``, ``LLMError.kind``) in a few words.
ERROR_KIND_LABELS = {
    "auth": _l("API key rejected"),
    "quota_exceeded": _l("Quota used up"),
    "context_too_long": _l("Prompt too long"),
    "model_not_found": _l("Model not found"),
    "rate_limited": _l("Rate-limited"),
    "server_error": _l("Server error"),
    "bad_request": _l("Request rejected"),
    "bad_response": _l("Unusable answer"),
    "timeout": _l("Timed out"),
    "connect_timeout": _l("Connection timed out"),
    "connection_error": _l("Endpoint unreachable"),
    "stream_cut": _l("Answer cut off"),
    "stream_error": _l("Error while streaming"),
    "blocked_url": _l("Address not allowed"),
    "circuit_open": _l("Model paused after failures"),
    "canceled": _l("Canceled"),
    "worker_lost": _l("Worker stopped"),
    "model_deleted": _l("Model deleted"),
    "model_disabled": _l("Model disabled"),
    "batch_expired": _l("Batch expired"),
    "batch_failed": _l("Batch failed"),
    "unexpected": _l("Unexpected error"),
}

ROLE_LABELS = {"admin": _l("Administrator"), "member": _l("Member")}

YES, NO = _l("Yes"), _l("No")


def status_label(status: str | None) -> str:
    """Return a stored status as people read it in their language."""
    label = STATUS_LABELS.get(status or "")
    return str(label) if label is not None else (status or "")


def error_kind_label(kind: str | None) -> str:
    """Return an error class as people read it (an unknown one as stored)."""
    label = ERROR_KIND_LABELS.get(kind or "")
    return str(label) if label is not None else (kind or "")


_STRAIGHT_PAIR = re.compile(r'"([^"]*)"')


def inner_quotes(text: str | None) -> str:
    """Return ``text`` ready to stand inside “…”: its own double quotes become ‘…’.

    A download named ``Tasks export — search “refund”`` is then announced as
    “Tasks export — search ‘refund’”, not with two pairs of the same marks inside each other.
    """
    text = _STRAIGHT_PAIR.sub(r"‘\1’", text or "")
    return text.replace("“", "‘").replace("”", "’")
