"""Reading batch files (CSV, XLSX, JSONL, OpenAI batch JSONL) one line at a time.

Each line becomes a ``Line``: the raw task item (``name``, ``prompt``, ``system_prompt``,
``messages`` (earlier turns), ``model``, ``parameters`` as ``services.tasks`` takes them,
plus ``custom_id``) or the
reason it cannot be read (which field, what is wrong). Problems of the whole file (wrong
encoding, missing or unknown columns, not a spreadsheet) raise ``ValidationError``.
Nothing here touches the database: ``services.batches`` checks models and creates tasks.

Files are streamed: memory stays flat whatever the number of lines.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask_babel import force_locale, get_babel
from flask_babel import lazy_gettext as _l

from llmadmin.errors import ValidationError
from llmadmin.services import conversation
from llmadmin.services.task_params import PARAM_FIELDS
from llmadmin.services.tasks import TASK_PARAMETERS
from llmadmin.texts import say as _  # gettext that keeps msgid and values (texts.Said)

FORMATS = ("csv", "xlsx", "jsonl")
EXTENSIONS = {".csv": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_CUSTOM_ID_CHARS = 200
CHAT_URLS = ("/v1/chat/completions", "/chat/completions")
# Columns of a CSV/XLSX file (header names are matched ignoring case, spaces, - and _), with
# the labels the UI shows for them: a header may be the name or its label in any catalogue.
COLUMNS = ("name", "prompt", "system_prompt", "model", "parameters", "custom_id")
# Keys of a plain JSONL task object: the columns, and the conversation's earlier turns.
PLAIN_KEYS = (*COLUMNS, "messages")
COLUMN_LABELS = {
    "name": _l("Name"),
    "prompt": _l("Prompt"),
    "system_prompt": _l("System prompt"),
    "model": _l("Model"),
    "parameters": _l("Parameters"),
    "custom_id": _l("Custom ID"),
    **PARAM_FIELDS,
}
HEADER_ALIASES = {"system": "system_prompt"}
# Keys of an OpenAI request body a task can carry, and harmless ones that are ignored.
BODY_PARAMETERS = {**{k: k for k in TASK_PARAMETERS}, "max_completion_tokens": "max_tokens"}
BODY_IGNORED = ("user", "metadata", "store", "n", "stream")
OPENAI_KEYS = ("custom_id", "method", "url", "body")


@dataclass
class Line:
    """One input line: its number (as an editor or a spreadsheet counts) and item or error."""

    number: int
    item: dict[str, Any] | None = None
    field: str | None = None
    message: str | None = None
    custom_id: str | None = None
    # Parameters given as text cells (CSV/XLSX columns), checked with the task form's rules.
    param_cells: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.message is None


def format_of(filename: str | None) -> str:
    """Return the format of an uploaded file from its name, or refuse an unknown one."""
    name = (filename or "").lower()
    for extension, fmt in EXTENSIONS.items():
        if name.endswith(extension):
            return fmt
    raise ValidationError(
        _("Upload a .csv, .xlsx or .jsonl file (%(name)s is none of these).", name=filename or "?"),
        field="file",
    )


def read_lines(path: str, fmt: str) -> Iterator[Line]:
    """Yield the file's lines in order; blank lines are skipped."""
    if fmt == "csv":
        return _csv_lines(path)
    if fmt == "xlsx":
        return _xlsx_lines(path)
    if fmt == "jsonl":
        return _jsonl_lines(path)
    raise ValidationError(_("Unknown batch file format %(format)r.", format=fmt), field="file")


# --- JSONL -------------------------------------------------------------------------------


def _jsonl_lines(path: str) -> Iterator[Line]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.startswith(b"\xef\xbb\xbf") and number == 1:
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Line(number, field=None, message=_not_utf8(number))
                continue
            yield jsonl_line(number, text)


def jsonl_line(number: int, text: str) -> Line:
    """Read one JSONL line: an OpenAI batch request or a plain task object."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return Line(number, message=_("This line is not JSON: %(error)s.", error=str(exc)))
    if not isinstance(data, dict):
        return Line(number, message=_("Each line must be a JSON object."))
    try:
        if any(key in data for key in ("body", "method", "url")):
            return _openai_line(number, data)
        return _plain_line(number, data)
    except ValidationError as exc:
        custom_id = data.get("custom_id") if isinstance(data.get("custom_id"), str) else None
        return Line(number, field=exc.field, message=exc.message, custom_id=custom_id)


def _plain_line(number: int, data: dict) -> Line:
    unknown = [key for key in data if key not in PLAIN_KEYS]
    if unknown:
        raise ValidationError(
            _(
                "Unknown field %(name)r; accepted: %(names)s.",
                name=unknown[0],
                names=", ".join(PLAIN_KEYS),
            ),
            field=unknown[0],
        )
    for key in ("name", "prompt", "system_prompt", "model"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ValidationError(_("%(name)s must be a string.", name=key), field=key)
    custom_id = _custom_id(data.get("custom_id"), required=False)
    item = {k: data.get(k) for k in ("name", "prompt", "system_prompt", "model", "parameters")}
    item["messages"] = data.get("messages")  # checked with the task (services.conversation)
    return Line(number, item=item, custom_id=custom_id)


def _openai_line(number: int, data: dict) -> Line:
    unknown = [key for key in data if key not in OPENAI_KEYS]
    if unknown:
        raise ValidationError(
            _("Unknown field %(name)r in a batch request line.", name=unknown[0]), field=unknown[0]
        )
    custom_id = _custom_id(data.get("custom_id"), required=True)
    if data.get("method") != "POST":
        raise ValidationError(_("method must be POST."), field="method")
    if data.get("url") not in CHAT_URLS:
        raise ValidationError(
            _("url must be /v1/chat/completions (the only endpoint batches call)."), field="url"
        )
    body = data.get("body")
    if not isinstance(body, dict):
        raise ValidationError(_("body must be a JSON object."), field="body")
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise ValidationError(_("body.model must name a model."), field="body.model")
    system_prompt, turns, prompt = conversation.split_chat(body.get("messages"), "body.messages")
    parameters = {}
    for key, value in body.items():
        if key in ("model", "messages") or key in BODY_IGNORED:
            continue
        target = BODY_PARAMETERS.get(key)
        if target is None:
            raise ValidationError(
                _("body.%(name)s is not supported in a batch.", name=key), field=f"body.{key}"
            )
        parameters[target] = value
    if body.get("stream"):
        raise ValidationError(_("body.stream must be false in a batch."), field="body.stream")
    if body.get("n", 1) != 1:
        raise ValidationError(_("body.n must be 1: a task has one answer."), field="body.n")
    item = {
        "name": custom_id[:200],
        "prompt": prompt,
        "system_prompt": system_prompt,
        "messages": turns,
        "model": body["model"],
        "parameters": parameters or None,
    }
    return Line(number, item=item, custom_id=custom_id)


def _custom_id(value, *, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(_("custom_id is required."), field="custom_id")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value).removesuffix(".0")
    if not isinstance(value, str):
        raise ValidationError(_("custom_id must be a string."), field="custom_id")
    if len(value) > MAX_CUSTOM_ID_CHARS or "\x00" in value:
        raise ValidationError(
            _("custom_id may have at most %(limit)s characters.", limit=MAX_CUSTOM_ID_CHARS),
            field="custom_id",
        )
    return value


def _not_utf8(number: int) -> str:
    return _(
        "The file is not UTF-8 text (first seen at line %(line)s). Save it as UTF-8 "
        "(in Excel: “CSV UTF-8”) and upload it again.",
        line=number,
    )


# --- CSV and XLSX ------------------------------------------------------------------------


def _header_key(text: str) -> str:
    return text.lower().replace(" ", "").replace("-", "").replace("_", "")


def header_aliases() -> dict[str, str]:
    """Every accepted header (name, or its label in each catalogue), normalised, to its column."""
    aliases = {_header_key(k): k for k in (*COLUMNS, *TASK_PARAMETERS)}
    aliases.update(HEADER_ALIASES)
    for locale in get_babel().instance.list_translations():
        with force_locale(locale):
            aliases.update({_header_key(str(label)): k for k, label in COLUMN_LABELS.items()})
    return aliases


def accepted_columns() -> str:
    """The accepted columns as this person reads them: the label, and the name if it differs."""
    return ", ".join(
        str(label) if _header_key(str(label)) == _header_key(k) else f"{label} ({k})"
        for k, label in COLUMN_LABELS.items()
    )


def _header_map(header: list) -> list[str | None]:
    """Map each header cell to its column (or a parameter name); refuse unknown or missing ones."""
    aliases = header_aliases()
    columns: list[str | None] = []
    for cell in header:
        text = "" if cell is None else str(cell).strip()
        key = aliases.get(_header_key(text))
        if not text:
            columns.append(None)
            continue
        if _header_key(text) == "id":
            raise ValidationError(
                _(
                    "The column %(name)r cannot be uploaded: a batch makes new tasks, so the file "
                    "names no task ID. Remove that column (and any other column not accepted: "
                    "%(names)s).",
                    name=text,
                    names=accepted_columns(),
                ),
                field=text,
            )
        if key is None:
            raise ValidationError(
                _(
                    "Unknown column %(name)r in the first row; accepted: %(names)s.",
                    name=text,
                    names=accepted_columns(),
                ),
                field=text,
            )
        if key in columns:
            raise ValidationError(_("The column %(name)r appears twice.", name=text), field=text)
        columns.append(key)
    missing = [name for name in ("prompt", "model") if name not in columns]
    if missing:
        raise ValidationError(
            _(
                "The first row must name the columns; missing: %(names)s.",
                names=", ".join(str(COLUMN_LABELS[name]) for name in missing),
            ),
            field=missing[0],
        )
    return columns


def _row_line(number: int, columns: list[str | None], cells) -> Line | None:
    values: dict[str, Any] = {}
    for key, cell in zip(columns, cells, strict=False):
        if key is None or cell is None or (isinstance(cell, str) and not cell.strip()):
            continue
        values[key] = cell
    if not values and not any(c not in (None, "") for c in cells):
        return None  # a blank row
    try:
        custom_id = _custom_id(values.pop("custom_id", None), required=False)
    except ValidationError as exc:
        return Line(number, field=exc.field, message=exc.message)
    params = values.pop("parameters", None)
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError as exc:
            return Line(
                number,
                field="parameters",
                message=_("parameters must be a JSON object: %(error)s.", error=str(exc)),
                custom_id=custom_id,
            )
    cells_params = {k: values.pop(k) for k in list(values) if k in TASK_PARAMETERS}
    item = {k: _text(values.get(k)) for k in ("name", "prompt", "system_prompt", "model")}
    item["parameters"] = params
    return Line(number, item=item, custom_id=custom_id, param_cells=cells_params)


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


CSV_FIELD_LIMIT = 16 * 1024 * 1024  # csv's default (128 KiB) is below a long prompt


def _csv_lines(path: str) -> Iterator[Line]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise ValidationError(_("The file is empty."), field="file")
            columns = _header_map(header)
            for cells in reader:
                line = _row_line(reader.line_num, columns, cells)
                if line is not None:
                    yield line
        except UnicodeDecodeError as exc:
            raise ValidationError(_not_utf8(reader.line_num + 1), field="file") from exc
        except csv.Error as exc:
            raise ValidationError(
                _(
                    "The CSV file cannot be read at line %(line)s: %(error)s.",
                    line=reader.line_num,
                    error=str(exc),
                ),
                field="file",
            ) from exc


def _xlsx_lines(path: str) -> Iterator[Line]:
    from openpyxl import load_workbook  # noqa: PLC0415  (imported only when a spreadsheet comes)

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise ValidationError(
            _("The file is not a readable .xlsx workbook (%(error)s).", error=str(exc) or "?"),
            field="file",
        ) from exc
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise ValidationError(_("The file is empty."), field="file")
        columns = _header_map(list(header))
        for number, cells in enumerate(rows, start=2):
            line = _row_line(number, columns, list(cells))
            if line is not None:
                yield line
    finally:
        workbook.close()


def sniff_text(path: str) -> None:
    """Refuse a CSV/JSONL upload that is plainly binary (a spreadsheet renamed, say)."""
    with open(path, "rb") as handle:
        start = handle.read(4096)
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" is UTF-16
        raise ValidationError(_not_utf8(1), field="file")
    if start.startswith(b"PK\x03\x04") or b"\x00" in start:
        raise ValidationError(
            _("The file is binary, not text; upload CSV or JSONL text, or a .xlsx workbook."),
            field="file",
        )
