"""Uploaded batch files: kept under the instance folder until their batch is confirmed.

An upload is a file ``<id>.<format>`` and a small ``<id>.json`` naming its uploader, its
original name and format; only its uploader can read or confirm it, and a confirm claims it
by renaming the JSON (so the same form posted twice makes one batch). Files nobody confirms
are swept after a day.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid

from flask import current_app
from flask_babel import gettext as _

from llmadmin.errors import NotFound, ValidationError
from llmadmin.services import batch_files

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_MAX_AGE_SECONDS = 24 * 3600
FILE_EXTENSIONS = (*batch_files.FORMATS, "json.taken")


def upload_dir() -> str:
    """Return the folder that keeps uploaded batch files until they are confirmed."""
    folder = current_app.config.get("BATCH_UPLOAD_DIR") or os.path.join(
        current_app.instance_path, "batch-uploads"
    )
    os.makedirs(folder, exist_ok=True)
    return folder


def store_upload(stream, filename: str | None, creator_id: int) -> str:
    """Keep an uploaded file (streamed to disk) and return its upload id."""
    fmt = batch_files.format_of(filename)
    _sweep_old_uploads()
    upload_id = uuid.uuid4().hex
    path = os.path.join(upload_dir(), f"{upload_id}.{fmt}")
    with open(path, "wb") as handle:
        while chunk := stream.read(1024 * 1024):
            handle.write(chunk)
    meta = {"creator_id": creator_id, "source_name": (filename or "")[:255], "format": fmt}
    with open(os.path.join(upload_dir(), f"{upload_id}.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    if fmt != "xlsx":
        try:
            batch_files.sniff_text(path)
        except ValidationError:
            discard_upload(upload_id)
            raise
    return upload_id


def upload_info(upload_id: str, creator_id: int) -> tuple[str, dict]:
    """Return (path, meta) of the person's own upload, or raise NotFound."""
    if not isinstance(upload_id, str) or not UPLOAD_ID.match(upload_id):
        raise NotFound(_("This upload does not exist or has expired; upload the file again."))
    try:
        with open(os.path.join(upload_dir(), f"{upload_id}.json"), encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as exc:
        raise NotFound(
            _("This upload does not exist or has expired; upload the file again.")
        ) from exc
    if meta.get("creator_id") != creator_id:
        raise NotFound(_("This upload does not exist or has expired; upload the file again."))
    return os.path.join(upload_dir(), f"{upload_id}.{meta['format']}"), meta


def note_summary(upload_id: str, creator_id: int, lines: int, valid: int, invalid: int) -> None:
    """Keep the preview's counts with the upload (its confirm knows them without a re-read)."""
    path, meta = upload_info(upload_id, creator_id)
    meta["summary"] = {"lines": lines, "valid": valid, "invalid": invalid}
    target = os.path.join(upload_dir(), f"{upload_id}.json")
    with open(f"{target}.tmp", "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    os.replace(f"{target}.tmp", target)


def discard_upload(upload_id: str) -> None:
    """Remove an upload's files (after its batch was made, or when it is refused)."""
    for extension in (*batch_files.FORMATS, "json", "json.taken"):
        try:
            os.remove(os.path.join(upload_dir(), f"{upload_id}.{extension}"))
        except FileNotFoundError:
            pass


def _sweep_old_uploads() -> None:
    """Remove uploads nobody confirmed within a day."""
    cutoff = time.time() - UPLOAD_MAX_AGE_SECONDS
    with os.scandir(upload_dir()) as entries:
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.remove(entry.path)
            except OSError:
                pass


def claim(upload_id: str) -> str:
    """Take the upload for one batch (an atomic rename); NotFound when another request has it."""
    meta = os.path.join(upload_dir(), f"{upload_id}.json")
    try:
        os.rename(meta, f"{meta}.taken")
    except FileNotFoundError as exc:
        raise NotFound(
            _("This upload does not exist or has expired; upload the file again.")
        ) from exc
    for extension in FILE_EXTENSIONS:  # the one-day sweep of uploads counts from the claim
        try:
            os.utime(os.path.join(upload_dir(), f"{upload_id}.{extension}"))
        except FileNotFoundError:
            pass
    return f"{meta}.taken"
