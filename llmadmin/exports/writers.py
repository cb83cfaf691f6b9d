"""Streaming CSV and ZIP writers: rows come from an iterator and are never held in a list."""

from __future__ import annotations

import csv
import io
import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TextIO

from llmadmin.exports.base import (
    DEFAULT_PROGRESS_EVERY,
    Progress,
    ProgressFn,
    WriteResult,
    row_width_error,
)
from llmadmin.exports.cells import csv_cell, csv_row
from llmadmin.exports.files import safe_member_name
from llmadmin.exports.xlsx import write_xlsx
from llmadmin.exports.zipbuild import DeflatingWriter, ZipBuilder

__all__ = ["WriteResult", "write_csv", "write_text_bundle", "write_xlsx", "write_zip_bundle"]

TextFilesFn = Callable[[Sequence[object]], Iterable[tuple[str, str | bytes]]]


def _write_csv_stream(
    handle: TextIO, headers: Sequence[str], rows: Iterable[Sequence[object]], ticker: Progress
) -> int:
    """Write the header and every row to an open text handle; return the row count."""
    writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    width = len(headers)
    writer.writerow(map(csv_cell, headers))
    count = 0
    for row in rows:
        if len(row) != width:
            raise row_width_error(row, width, count + 1)
        writer.writerow(csv_row(row))
        count += 1
        ticker.tick(count)
    ticker.done(count)
    return count


def write_csv(
    path: str | os.PathLike[str],
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    bom: bool = False,
    progress: ProgressFn | None = None,
    progress_every: int = DEFAULT_PROGRESS_EVERY,
) -> WriteResult:
    """Stream rows to a fully quoted UTF-8 CSV file (CRLF; BOM on request for Excel).

    Characters UTF-8 cannot encode (lone surrogates) become "?" instead of failing the export.
    """
    ticker = Progress(progress, progress_every)
    encoding = "utf-8-sig" if bom else "utf-8"
    with open(path, "w", encoding=encoding, errors="replace", newline="") as handle:
        return WriteResult(rows=_write_csv_stream(handle, headers, rows, ticker))


def write_zip_bundle(
    path: str | os.PathLike[str],
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    text_files: TextFilesFn,
    progress: ProgressFn | None = None,
    progress_every: int = DEFAULT_PROGRESS_EVERY,
    csv_name: str = "tasks.csv",
    bom: bool = False,
) -> WriteResult:
    """Write a ZIP holding the rows as CSV plus the text files ``text_files(row)`` returns.

    Member names pass through ``safe_member_name``; duplicates are not detected (that
    would need memory per member). See ``_write_bundle`` for how it streams.
    """

    def rows_adding_files(archive: ZipBuilder) -> Iterator[Sequence[object]]:
        add_text = archive.add_text
        for row in rows:
            for name, content in text_files(row):
                add_text(safe_member_name(name), _utf8(content))
            yield row

    return _write_bundle(path, headers, rows_adding_files, progress, progress_every, csv_name, bom)


def write_text_bundle(
    path: str | os.PathLike[str],
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    text_columns: Sequence[tuple[str, str]],
    progress: ProgressFn | None = None,
    progress_every: int = DEFAULT_PROGRESS_EVERY,
    csv_name: str = "tasks.csv",
    bom: bool = False,
) -> WriteResult:
    """Write a ZIP whose CSV has the ``text_columns`` (header, folder) moved out into files.

    Each non-empty cell of such a column becomes ``<folder>/<first column>.txt`` and the
    CSV gets a "<header> file" column naming it. The task bundle's hot path: names are
    built from a sanitised folder and the row's id (an int, or sanitised), so no name is
    re-checked per row.
    """
    moved = [(headers.index(header), safe_member_name(folder)) for header, folder in text_columns]
    keep = [i for i in range(len(headers)) if i not in {i for i, _ in moved}]
    kept = operator.itemgetter(*keep) if len(keep) > 1 else (lambda row: (row[keep[0]],))
    out_headers = [headers[i] for i in keep] + [f"{header} file" for header, _ in text_columns]

    def rows_adding_files(archive: ZipBuilder) -> Iterator[Sequence[object]]:
        add_text = archive.add_text
        for row in rows:
            row_id = row[0]
            stem = (
                row_id if type(row_id) is int else safe_member_name(str(row_id)).replace("/", "_")
            )
            refs = []
            for index, folder in moved:
                value = row[index]
                if value is None:
                    refs.append(None)
                else:
                    name = f"{folder}/{stem}.txt"
                    add_text(name, _utf8(value))
                    refs.append(name)
            yield kept(row) + tuple(refs)

    return _write_bundle(
        path, out_headers, rows_adding_files, progress, progress_every, csv_name, bom
    )


def _utf8(content: object) -> bytes:
    if type(content) is str:
        return content.encode("utf-8", "replace")
    return content if isinstance(content, bytes) else str(content).encode("utf-8", "replace")


def _write_bundle(
    path, headers, rows_adding_files, progress, progress_every, csv_name, bom
) -> WriteResult:
    """Stream a bundle: text files go into the archive as the rows go by; the CSV is
    deflated into a temporary file beside ``path`` meanwhile and copied in last, so memory
    stays flat. Progress therefore reaches the full row count shortly before the end.
    """
    ticker = Progress(progress, progress_every)
    spool_dir = os.path.dirname(os.path.abspath(path))
    csv_sink = DeflatingWriter(spool_dir)
    try:
        with open(path, "wb", buffering=1 << 20) as out:
            archive = ZipBuilder(out, spool_dir=spool_dir)
            encoding = "utf-8-sig" if bom else "utf-8"
            handle = io.TextIOWrapper(csv_sink, encoding=encoding, errors="replace", newline="")
            count = _write_csv_stream(handle, headers, rows_adding_files(archive), ticker)
            handle.close()  # finishes the deflate stream
            archive.add_deflated(
                safe_member_name(csv_name),
                csv_sink.file,
                csv_sink.crc,
                csv_sink.size,
                csv_sink.compressed,
            )
            archive.close()
    finally:
        csv_sink.discard()
    return WriteResult(rows=count)
