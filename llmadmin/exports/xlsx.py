"""Streaming XLSX writer on XlsxWriter's constant_memory mode, with sheet rollover."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

import xlsxwriter
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from llmadmin.exports.base import (
    DEFAULT_PROGRESS_EVERY,
    Progress,
    ProgressFn,
    WriteResult,
    row_width_error,
)
from llmadmin.exports.cells import excel_text, strip_xml_illegal, to_naive_utc

EXCEL_MAX_ROWS = 1_048_576  # per sheet, header row included
WIDTH_SAMPLE_ROWS = 200
MIN_COLUMN_WIDTH = 8
MAX_COLUMN_WIDTH = 60
# Excel keeps 15 significant digits: larger integers (snowflake ids...) would come back
# rounded, so they are written as text.
EXACT_INT_LIMIT = 10**15
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
_SHEET_NAME_MAX = 31
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_WORKBOOK_OPTIONS = {
    "constant_memory": True,  # rows go to a temp file as written: memory stays flat
    "nan_inf_to_errors": True,  # NaN/inf become #NUM!/#DIV/0! instead of raising
    "strings_to_formulas": False,  # we call write_string anyway; belt and braces
    "strings_to_urls": False,
    "strings_to_numbers": False,
}


def _sheet_title(base: str, number: int) -> str:
    """Return "Export", then "Export (2)", "Export (3)"... within Excel's 31 characters."""
    if number == 1:
        return base
    suffix = f" ({number})"
    return base[: _SHEET_NAME_MAX - len(suffix)] + suffix


def _clean_sheet_name(name: str) -> str:
    cleaned = _SHEET_NAME_FORBIDDEN.sub("_", strip_xml_illegal(name)).strip("'")
    return cleaned[:_SHEET_NAME_MAX].strip() or "Export"


def _text_width(text: str) -> int:
    """Width of the longest line in Excel character units; CJK characters count double."""
    widest = 0
    for line in text.split("\n"):
        if len(line) >= MAX_COLUMN_WIDTH:
            return MAX_COLUMN_WIDTH
        width = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)
        widest = max(widest, width)
    return widest


def _cell_width(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return _text_width(value)
    if isinstance(value, datetime):
        return len("2000-01-01 00:00:00")
    if isinstance(value, date):
        return len("2000-01-01")
    return min(len(str(value)), 16)


class _SheetStream:
    """Writes rows one at a time, opening a new sheet whenever the current one is full."""

    def __init__(
        self, workbook: Workbook, headers: list[str], base_name: str, max_rows: int
    ) -> None:
        self.workbook = workbook
        self.headers = headers
        self.base_name = base_name
        self.max_rows = max_rows
        self.sheets: list[Worksheet] = []
        self.bold = workbook.add_format({"bold": True})
        self.datetime_format = workbook.add_format({"num_format": DATETIME_FORMAT})
        self.date_format = workbook.add_format({"num_format": DATE_FORMAT})
        self.widths = [_text_width(header) + 2 for header in headers]  # + 2: bold
        self.sampling = True
        self.by_type: dict[type, Callable[[Worksheet, int, int, object], object]] = {
            str: self._write_str,
            int: self._write_int,
            float: self._write_float,
            bool: self._write_bool,
            Decimal: self._write_decimal,
            datetime: self._write_datetime,
            date: self._write_date,
        }

    def add_sheet(self) -> Worksheet:
        """Start the next sheet: bold header row, frozen under it, known column widths."""
        sheet = self.workbook.add_worksheet(_sheet_title(self.base_name, len(self.sheets) + 1))
        sheet.freeze_panes(1, 0)
        for column, header in enumerate(self.headers):
            sheet.write_string(0, column, header, self.bold)
        if not self.sampling:
            self._apply_widths(sheet)
        self.sheets.append(sheet)
        return sheet

    def run(self, rows: Iterable[Sequence[object]], ticker: Progress) -> WriteResult:
        """Write every row; return the row and sheet counts."""
        sheet, row_number, count, width = self.add_sheet(), 1, 0, len(self.headers)
        by_type, write_other = self.by_type, self._write_other
        for row in rows:
            if len(row) != width:
                raise row_width_error(row, width, count + 1)
            if row_number >= self.max_rows:
                sheet, row_number = self.add_sheet(), 1
            for column, value in enumerate(row):
                if value is not None:
                    by_type.get(type(value), write_other)(sheet, row_number, column, value)
            row_number += 1
            count += 1
            if self.sampling:
                self._measure(row, done=count >= WIDTH_SAMPLE_ROWS)
            ticker.tick(count)
        if self.sampling:
            self._measure((), done=True)
        ticker.done(count)
        return WriteResult(rows=count, sheets=len(self.sheets))

    def _measure(self, row: Sequence[object], done: bool) -> None:
        # constant_memory streams cells out as soon as a row is complete, so widths come
        # from a sample; XlsxWriter writes <cols> when the sheet is assembled at close(),
        # which is why set_column() may still be called after rows were written.
        for column, value in enumerate(row):
            self.widths[column] = max(self.widths[column], _cell_width(value))
        if done:
            self.sampling = False
            for sheet in self.sheets:
                self._apply_widths(sheet)

    def _apply_widths(self, sheet: Worksheet) -> None:
        for column, width in enumerate(self.widths):
            sheet.set_column(
                column, column, max(MIN_COLUMN_WIDTH, min(MAX_COLUMN_WIDTH, width + 2))
            )

    def _write_str(self, sheet: Worksheet, row: int, column: int, value: str) -> None:
        sheet.write_string(row, column, excel_text(value))

    def _write_int(self, sheet: Worksheet, row: int, column: int, value: int) -> None:
        if -EXACT_INT_LIMIT < value < EXACT_INT_LIMIT:
            sheet.write_number(row, column, value)
        else:
            sheet.write_string(row, column, str(value))

    def _write_float(self, sheet: Worksheet, row: int, column: int, value: float) -> None:
        sheet.write_number(row, column, value)

    def _write_bool(self, sheet: Worksheet, row: int, column: int, value: bool) -> None:
        sheet.write_boolean(row, column, value)

    def _write_decimal(self, sheet: Worksheet, row: int, column: int, value: Decimal) -> None:
        sheet.write_number(row, column, float(value))  # Excel numbers are doubles anyway

    def _write_datetime(self, sheet: Worksheet, row: int, column: int, value: datetime) -> None:
        value = to_naive_utc(value)
        if value.year < 1900:  # before Excel's epoch: it would show ####
            sheet.write_string(row, column, value.isoformat(sep=" ", timespec="seconds"))
        else:
            sheet.write_datetime(row, column, value, self.datetime_format)

    def _write_date(self, sheet: Worksheet, row: int, column: int, value: date) -> None:
        if value.year < 1900:
            sheet.write_string(row, column, value.isoformat())
        else:
            sheet.write_datetime(row, column, value, self.date_format)

    def _write_other(self, sheet: Worksheet, row: int, column: int, value: object) -> None:
        # Subclasses (IntEnum, str enums, pendulum.DateTime...); bool before int and
        # datetime before date because of the class hierarchy.
        if isinstance(value, bool):
            sheet.write_boolean(row, column, bool(value))
        elif isinstance(value, int):
            self._write_int(sheet, row, column, int(value))
        elif isinstance(value, float | Decimal):
            sheet.write_number(row, column, float(value))
        elif isinstance(value, datetime):
            self._write_datetime(sheet, row, column, value)
        elif isinstance(value, date):
            self._write_date(sheet, row, column, value)
        else:
            text = str.__str__(value) if isinstance(value, str) else str(value)
            sheet.write_string(row, column, excel_text(text))


def _close_row_files(workbook: Workbook) -> None:
    """Close the per-sheet row temp files of a workbook whose close() never completed."""
    for sheet in workbook.worksheets():
        handle = getattr(sheet, "row_data_fh", None)
        if handle is not None and not handle.closed:
            handle.close()


def write_xlsx(
    path: str | os.PathLike[str],
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    progress: ProgressFn | None = None,
    progress_every: int = DEFAULT_PROGRESS_EVERY,
    sheet_name: str = "Export",
    max_rows_per_sheet: int = EXCEL_MAX_ROWS,
    tmpdir: str | None = None,
) -> WriteResult:
    """Stream rows into an XLSX workbook, continuing on "Export (2)"... past the row limit.

    ``max_rows_per_sheet`` counts the header row. Each sheet is buffered uncompressed in a
    temp file until close(): point ``tmpdir`` at a disk with room if /tmp is small or tmpfs.
    """
    if not 2 <= max_rows_per_sheet <= EXCEL_MAX_ROWS:
        raise ValueError(f"max_rows_per_sheet must be between 2 and {EXCEL_MAX_ROWS}")
    ticker = Progress(progress, progress_every)
    header_cells = [excel_text(str(header)) for header in headers]
    # XlsxWriter deletes its temp files only when close() succeeds; a failed export (rows
    # raising, a cancelled job, a full disk) would leave them behind for good. A private
    # directory, removed whatever happens, cleans up after both.
    scratch = tempfile.mkdtemp(prefix="xlsx-", dir=tmpdir)
    try:
        options = {**_WORKBOOK_OPTIONS, "tmpdir": scratch}
        workbook = xlsxwriter.Workbook(os.fspath(path), options)
        try:
            stream = _SheetStream(
                workbook, header_cells, _clean_sheet_name(sheet_name), max_rows_per_sheet
            )
            result = stream.run(rows, ticker)
            workbook.close()
        except BaseException:
            _close_row_files(workbook)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result
