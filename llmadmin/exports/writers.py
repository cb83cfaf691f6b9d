"""Streaming CSV and ZIP writers: rows come from an iterator and are never held in a list."""

from __future__ import annotations

import csv
import io
import os
import pickle
import struct
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, TextIO

from llmadmin.exports.base import (
    DEFAULT_PROGRESS_EVERY,
    Progress,
    ProgressFn,
    WriteResult,
    row_width_error,
)
from llmadmin.exports.cells import csv_cell
from llmadmin.exports.files import safe_member_name
from llmadmin.exports.xlsx import write_xlsx

__all__ = ["WriteResult", "write_csv", "write_xlsx", "write_zip_bundle"]

ZIP_COMPRESSLEVEL = 6
TextFilesFn = Callable[[Sequence[object]], Iterable[tuple[str, str | bytes]]]
_RECORD = struct.Struct("<IQ")  # spooled text file: name length, content length


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
        writer.writerow(map(csv_cell, row))
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


class _Unset:
    """Marks a ZipInfo slot that had no value (pickled by reference, so identity holds)."""


class _SpooledInfoList:
    """A ZipFile's central-directory entries kept in a temp file instead of in memory.

    zipfile holds one ZipInfo (~400 bytes) per member until close() writes the central
    directory: 1,000,000 rows with two text files each would pin ~800 MB. In write mode
    zipfile only appends to ``filelist``, takes its ``len()`` and iterates it once in
    close(), so this stand-in stores each entry as the slots that differ from the first.
    """

    _SLOTS = tuple(zipfile.ZipInfo.__slots__)

    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool
        self._count = 0
        self._template: tuple[object, ...] | None = None

    def append(self, zinfo: zipfile.ZipInfo) -> None:
        values = tuple(getattr(zinfo, slot, _Unset) for slot in self._SLOTS)
        if self._template is None:
            self._template = values
        diff = [
            (i, v) for i, (v, t) in enumerate(zip(values, self._template, strict=True)) if v != t
        ]
        pickle.dump(diff, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[zipfile.ZipInfo]:
        self._spool.flush()
        self._spool.seek(0)
        for _ in range(self._count):
            values = list(self._template or ())
            for index, value in pickle.load(self._spool):  # our own temp file, not input
                values[index] = value
            zinfo = zipfile.ZipInfo.__new__(zipfile.ZipInfo)
            for slot, value in zip(self._SLOTS, values, strict=True):
                if value is not _Unset:
                    setattr(zinfo, slot, value)
            yield zinfo


class _UnindexedNames(dict):
    """Stand-in for ``ZipFile.NameToInfo`` that forgets names (only used to warn on dups)."""

    def __setitem__(self, key: str, value: object) -> None:
        pass


def _member_info(name: str, stamp: tuple[int, ...]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16  # rw-r--r-- when extracted on Unix
    # Left unset, the compression level is zlib's default, which is 6 (ZIP_COMPRESSLEVEL).
    return info


def _spool_text_files(
    rows: Iterable[Sequence[object]], text_files: TextFilesFn, spool: IO[bytes]
) -> Iterator[Sequence[object]]:
    """Pass rows through, appending each row's text files to the spool as they go by."""
    for row in rows:
        for name, content in text_files(row):
            data = content if isinstance(content, bytes) else content.encode("utf-8", "replace")
            encoded_name = safe_member_name(name).encode("utf-8")
            spool.write(_RECORD.pack(len(encoded_name), len(data)))
            spool.write(encoded_name)
            spool.write(data)
        yield row


def _copy_spooled_files(spool: IO[bytes], archive: zipfile.ZipFile, stamp: tuple[int, ...]) -> None:
    """Add every spooled text file to the archive, one file in memory at a time."""
    spool.flush()
    spool.seek(0)
    while header := spool.read(_RECORD.size):
        name_length, data_length = _RECORD.unpack(header)
        name = spool.read(name_length).decode("utf-8")
        archive.writestr(
            _member_info(name, stamp), spool.read(data_length), compresslevel=ZIP_COMPRESSLEVEL
        )


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

    ZipFile allows one open member at a time and the CSV is streamed into its member, so
    each row's text files go to an anonymous temp file beside ``path`` meanwhile and are
    copied in after the CSV. Progress therefore reaches the full row count shortly before
    the archive is finished. Member names pass through ``safe_member_name``; duplicates are
    not detected (that would need memory per member).
    """
    ticker = Progress(progress, progress_every)
    stamp = time.localtime()[:6]
    spool_dir = os.path.dirname(os.path.abspath(path))
    with (
        tempfile.TemporaryFile(dir=spool_dir) as text_spool,
        tempfile.TemporaryFile(dir=spool_dir) as directory_spool,
        zipfile.ZipFile(
            path, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=ZIP_COMPRESSLEVEL
        ) as archive,
    ):
        archive.filelist = _SpooledInfoList(directory_spool)  # type: ignore[assignment]
        archive.NameToInfo = _UnindexedNames()
        member = archive.open(
            _member_info(safe_member_name(csv_name), stamp), "w", force_zip64=True
        )
        encoding = "utf-8-sig" if bom else "utf-8"
        with io.TextIOWrapper(member, encoding=encoding, errors="replace", newline="") as handle:
            count = _write_csv_stream(
                handle, headers, _spool_text_files(rows, text_files, text_spool), ticker
            )
        _copy_spooled_files(text_spool, archive, stamp)
    return WriteResult(rows=count)
