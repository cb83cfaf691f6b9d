"""Checking a batch file line by line against the database (models) and the task rules.

``check_lines`` streams a file (``services.batch_files``) and yields each line's task row or
its error; ``validate_file`` sums them up for a preview without creating anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select

from llmadmin.errors import ItemsInvalid, ValidationError
from llmadmin.extensions import db
from llmadmin.models import LLMModel
from llmadmin.services import batch_files
from llmadmin.services import tasks as task_service
from llmadmin.services.batch_uploads import note_summary, upload_info
from llmadmin.services.task_params import clean_param
from llmadmin.texts import said_frame
from llmadmin.texts import say as _  # gettext that keeps msgid and values (texts.Said)

MAX_STORED_ERRORS = 1000  # line errors kept (on the Batch row, for its results file)
PREVIEW_ROWS = 20


@dataclass
class Checked:
    """One line checked against the database: the task row it makes, or its error."""

    number: int
    row: dict | None
    model: str | None
    custom_id: str | None
    field: str | None = None
    message: str | None = None


@dataclass
class Summary:
    """What a file would make: counts, per-model lines, first rows, the errors (capped)."""

    lines: int = 0
    valid: int = 0
    invalid: int = 0
    per_model: Counter = field(default_factory=Counter)
    preview: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def add_error(self, checked: Checked) -> None:
        """Count an invalid line and keep its error while under the cap."""
        self.invalid += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append(
                {
                    "line": checked.number,
                    "custom_id": checked.custom_id,
                    "field": checked.field,
                    "message": checked.message,
                    "text": said_frame(checked.message),
                }
            )


class _Models:
    """Models by name, each looked up once per file (a file names a handful)."""

    def __init__(self) -> None:
        self.found: dict = {}
        self.looked: set[str] = set()

    def lookup(self, name) -> dict:
        if isinstance(name, str) and name not in self.looked:
            self.looked.add(name)
            model = db.session.execute(
                select(LLMModel).where(LLMModel.name == name)
            ).scalar_one_or_none()
            if model is not None:
                self.found[("name", name)] = model
        return self.found


def check_lines(path: str, fmt: str, creator_id: int | None) -> Iterator[Checked]:
    """Yield every line of the file checked as a task (the API's and the form's rules)."""
    models = _Models()
    seen_ids: set[str] = set()
    for line in batch_files.read_lines(path, fmt):
        model_name = (line.item or {}).get("model")
        if not line.ok:
            yield Checked(line.number, None, model_name, line.custom_id, line.field, line.message)
            continue
        try:
            if line.custom_id is not None:
                if line.custom_id in seen_ids:
                    raise ValidationError(
                        _("custom_id %(id)r appears on an earlier line.", id=line.custom_id),
                        field="custom_id",
                    )
                seen_ids.add(line.custom_id)
            row = task_service.task_row(line.item, models.lookup(model_name), creator_id, True)
            for name, value in line.param_cells.items():
                try:
                    row[name] = clean_param(name, value)
                except ValidationError as exc:
                    raise ValidationError(exc.message, field=name) from exc
        except ValidationError as exc:
            yield Checked(line.number, None, model_name, line.custom_id, exc.field, exc.message)
            continue
        yield Checked(line.number, row, model_name, line.custom_id)


def validate_file(path: str, fmt: str, creator_id: int | None) -> Summary:
    """Check every line of a file; create nothing."""
    summary = Summary()
    for checked in check_lines(path, fmt, creator_id):
        summary.lines += 1
        if checked.row is None:
            summary.add_error(checked)
            continue
        summary.valid += 1
        summary.per_model[checked.model] += 1
        if len(summary.preview) < PREVIEW_ROWS:
            summary.preview.append(_preview(checked))
    return summary


def refuse_invalid_lines(path: str, fmt: str, creator_id: int | None, progress) -> int:
    """Check every line; return how many, or refuse the file (``ItemsInvalid``) if any is bad.

    ``progress(lines_read)`` is called after each line (the job stamps its progress).
    """
    summary = Summary()
    for checked in check_lines(path, fmt, creator_id):
        summary.lines += 1
        if checked.row is None:
            summary.add_error(checked)
        progress(summary.lines)
    if summary.lines == 0:
        raise ValidationError(_("The file has no lines to run."), field="file")
    if summary.invalid:
        raise ItemsInvalid(
            _(
                "%(invalid)s of %(lines)s line(s) are invalid; nothing was created.",
                invalid=f"{summary.invalid:,}",
                lines=f"{summary.lines:,}",
            ),
            [
                {"index": e["line"], "field": e["field"], "message": e["message"]}
                for e in summary.errors
            ],
        )
    return summary.lines


def validate_upload(upload_id: str, creator_id: int) -> tuple[dict, Summary]:
    """Check the person's upload; return its meta and summary."""
    path, meta = upload_info(upload_id, creator_id)
    summary = validate_file(path, meta["format"], creator_id)
    note_summary(upload_id, creator_id, summary.lines, summary.valid, summary.invalid)
    return meta, summary


def _preview(checked: Checked) -> dict:
    row = checked.row or {}
    return {
        "line": checked.number,
        "custom_id": checked.custom_id,
        "name": row.get("name"),
        "model": checked.model,
        "system_prompt": (row.get("system_prompt") or "")[:200],
        "prompt": (row.get("prompt") or "")[:300],
        "turns": len(row.get("messages") or ()),  # earlier messages of a conversation
        "parameters": {k: row.get(k) for k in task_service.TASK_PARAMETERS if row.get(k)},
    }
