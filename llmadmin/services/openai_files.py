"""Files of the gateway (``/v1/files``): a person's uploaded JSONL kept until deleted.

A file is ``<dir>/<person id>/<file id>.jsonl`` with a small ``<file id>.json`` beside it
(name, size, time, purpose): one folder per person makes isolation and listing simple and
needs no table. ``GATEWAY_FILES_DIR`` (default: the instance folder's ``gateway-files``)
must be shared by the web processes and the workers, like the batch upload folder.

A batch's output and error files are not stored: ``file-batch-<id>-output`` and
``file-batch-<id>-error`` are streamed from its tasks (``batch_results.result_lines``).
Their size is measured by streaming them once and kept on the Batch row with the state of
the tasks it was measured at (``batch_results.file_state``): measured again only when a
task of the file changed (a retry, a late cancel), so a look costs one GROUP BY.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import update

from llmadmin.errors import NotFound, TooLarge, ValidationError
from llmadmin.extensions import db
from llmadmin.models import Batch, Person
from llmadmin.services import batch_files, batch_results
from llmadmin.services.batch_uploads import upload_dir

FILE_ID = re.compile(r"^file-[0-9a-f]{32}$")
BATCH_FILE_ID = re.compile(r"^file-batch-(\d{1,18})-(output|error)$")
PURPOSES = ("batch",)


def files_dir(person_id: int) -> str:
    """Return (and make) the person's folder of gateway files."""
    root = current_app.config.get("GATEWAY_FILES_DIR") or os.path.join(
        current_app.instance_path, "gateway-files"
    )
    folder = os.path.join(root, str(int(person_id)))
    os.makedirs(folder, exist_ok=True)
    return folder


def not_found(file_id) -> NotFound:
    """OpenAI's 404 for an unknown (or someone else's) file."""
    exc = NotFound(_("No such File object: %(id)s", id=str(file_id)[:100]))
    exc.param, exc.code = "id", None
    return exc


def store_file(stream, filename: str | None, purpose: str | None, person_id: int) -> dict:
    """Keep an uploaded JSONL file for batches; return its OpenAI file object."""
    if purpose not in PURPOSES:
        raise ValidationError(
            _("The purpose must be 'batch' (the only purpose this gateway accepts)."),
            field="purpose",
        )
    if not filename or batch_files.EXTENSIONS.get(os.path.splitext(filename)[1].lower()) != (
        "jsonl"
    ):
        raise ValidationError(_("Upload a .jsonl file for a batch."), field="file")
    limit = current_app.config["BATCH_MAX_UPLOAD_BYTES"]
    file_id = f"file-{uuid.uuid4().hex}"
    folder = files_dir(person_id)
    path = os.path.join(folder, f"{file_id}.jsonl")
    size = 0
    try:
        with open(path, "wb") as handle:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(
                        _("The file is larger than %(limit)s bytes.", limit=f"{limit:,}"),
                        field="file",
                    )
                handle.write(chunk)
        batch_files.sniff_text(path)
    except BaseException:
        _remove(path)
        raise
    meta = {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": os.path.basename(filename)[:255],
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }
    with open(os.path.join(folder, f"{file_id}.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    return meta


def list_files(person: Person, after: str | None = None, limit: int = 10000) -> list[dict]:
    """The person's files, newest first; ``after`` a file id: those listed after it."""
    folder = files_dir(person.id)
    found = []
    for name in os.listdir(folder):
        if name.endswith(".json") and FILE_ID.match(name[:-5]):
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    found.append(json.load(handle))
            except (OSError, ValueError):
                continue
    found.sort(key=lambda f: (f["created_at"], f["id"]), reverse=True)
    if after:
        ids = [f["id"] for f in found]
        found = found[ids.index(after) + 1 :] if after in ids else []
    return found[:limit]


def file_path(file_id: str, person: Person) -> tuple[str, dict]:
    """Return (path, file object) of the person's uploaded file, or raise NotFound."""
    if not isinstance(file_id, str) or not FILE_ID.match(file_id):
        raise not_found(file_id)
    folder = files_dir(person.id)
    try:
        with open(os.path.join(folder, f"{file_id}.json"), encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as exc:
        raise not_found(file_id) from exc
    return os.path.join(folder, f"{file_id}.jsonl"), meta


def _batch_file(file_id: str, person: Person) -> tuple[Batch, str] | None:
    found = BATCH_FILE_ID.match(file_id or "")
    if not found:
        return None
    batch = db.session.get(Batch, int(found.group(1)))
    if batch is None or batch.creator_id != person.id or batch.input_file_id is None:
        raise not_found(file_id)
    return batch, found.group(2)


def get_file(file_id: str, person: Person) -> dict:
    """Return the file object of an uploaded file or of a batch's output/error file."""
    batch_file = _batch_file(file_id, person)
    if batch_file:
        batch, kind = batch_file
        return {
            "id": file_id,
            "object": "file",
            "bytes": result_file_size(batch, kind),
            "created_at": batch_results.unix(batch.created_at),
            "filename": f"batch_{batch.id}_{kind}.jsonl",
            "purpose": "batch_output",
            "status": "processed",
            "status_details": None,
        }
    return file_path(file_id, person)[1]


def _result_chunks(batch_id: int, kind: str) -> Iterator[bytes]:
    lines = batch_results.result_lines(batch_id, kind)
    return ((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8") for line in lines)


def result_file_size(batch: Batch, kind: str) -> int:
    """The size in bytes of a batch's output or error file, measured once per state of its tasks."""
    state = batch_results.file_state(batch.id, kind)
    try:
        sizes = json.loads(batch.result_file_bytes or "{}")
    except ValueError:
        sizes = {}
    known = sizes.get(kind) if isinstance(sizes, dict) else None
    if isinstance(known, dict) and known.get("state") == state:
        return int(known["bytes"])
    size = sum(len(chunk) for chunk in _result_chunks(batch.id, kind))
    sizes = sizes if isinstance(sizes, dict) else {}
    sizes[kind] = {"state": state, "bytes": size}
    db.session.execute(  # two looks at once write the same size: either write is right
        update(Batch)
        .where(Batch.id == batch.id)
        .values(result_file_bytes=json.dumps(sizes))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return size


def file_content(file_id: str, person: Person) -> Iterator[bytes]:
    """Stream a file's bytes (a batch's output/error file: one JSON line per task)."""
    batch_file = _batch_file(file_id, person)
    if batch_file:
        batch, kind = batch_file
        return _result_chunks(batch.id, kind)
    path = file_path(file_id, person)[0]

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(256 * 1024):
                yield chunk

    return chunks()


def delete_file(file_id: str, person: Person) -> dict:
    """Delete an uploaded file (batches already made from it keep their own copy)."""
    if _batch_file(file_id, person):
        raise ValidationError(
            _("A batch's output and error files cannot be deleted."), field="file_id"
        )
    path, _meta = file_path(file_id, person)
    _remove(path.removesuffix(".jsonl") + ".json")
    _remove(path)
    return {"id": file_id, "object": "file", "deleted": True}


def copy_for_batch(file_id: str, person: Person) -> tuple[str, str, dict]:
    """Copy the person's file into the batch upload folder; return (upload id, path, meta).

    The batch reads its own copy (discarded once its tasks are made), so deleting the file
    afterwards does not disturb a batch being created.
    """
    source, meta = file_path(file_id, person)
    upload_id = uuid.uuid4().hex
    target = os.path.join(upload_dir(), f"{upload_id}.jsonl")
    shutil.copyfile(source, target)
    return upload_id, target, meta


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
