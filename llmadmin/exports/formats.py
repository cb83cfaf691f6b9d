"""The export formats the Download Center offers: one entry each.

A new format is a writer module in this package plus one ``ExportFormat`` here; the
admin's export actions, the job that writes the file and the route that serves it all
read this table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmadmin.exports.base import WriteResult
from llmadmin.exports.writers import write_csv, write_text_bundle
from llmadmin.exports.xlsx import write_xlsx


@dataclass(frozen=True)
class WriteJob:
    """Everything a writer may use; each format takes what it needs."""

    path: str
    headers: Sequence[str]
    rows: object  # an iterator of row tuples
    progress: Callable[[int], None] | None
    progress_every: int
    text_columns: Sequence[tuple[str, str]] = ()  # (column header, folder) kept as files


@dataclass(frozen=True)
class ExportFormat:
    key: str
    label: str  # the action's text in the lists
    mimetype: str
    write: Callable[[WriteJob], WriteResult]
    needs_text_columns: bool = False  # offered only for lists with long texts (tasks)


def _csv(job: WriteJob) -> WriteResult:
    return write_csv(
        job.path,
        job.headers,
        job.rows,
        bom=True,
        progress=job.progress,
        progress_every=job.progress_every,
    )


def _xlsx(job: WriteJob) -> WriteResult:
    return write_xlsx(
        job.path,
        job.headers,
        job.rows,
        tmpdir=os.path.dirname(job.path),
        progress=job.progress,
        progress_every=job.progress_every,
    )


def _zip(job: WriteJob) -> WriteResult:
    return write_text_bundle(
        job.path,
        job.headers,
        job.rows,
        text_columns=job.text_columns,
        csv_name="tasks.csv",
        bom=True,
        progress=job.progress,
        progress_every=job.progress_every,
    )


FORMATS: dict[str, ExportFormat] = {
    f.key: f
    for f in (
        ExportFormat("csv", "Export CSV to Download Center", "text/csv", _csv),
        ExportFormat(
            "xlsx",
            "Export XLSX to Download Center",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            _xlsx,
        ),
        ExportFormat(
            "zip",
            "Export ZIP (CSV + prompt and output files) to Download Center",
            "application/zip",
            _zip,
            needs_text_columns=True,
        ),
    )
}
