"""Turn Python values into cell text that is safe to open in a spreadsheet.

Formula injection (OWASP "CSV Injection"): a text cell starting with ``=``, ``+``, ``-``,
``@``, tab, carriage return or line feed — also after leading spaces, and also in their
fullwidth forms ``＝ ＋ － ＠`` that some spreadsheets (and IMEs) treat alike — is prefixed with
``'``, so Excel, LibreOffice and Sheets show it as text instead of running it. Numbers are never touched: ``-5`` the integer stays a
number, ``"-5"`` the string becomes ``'-5``. XLSX cells get the same prefix although they are
written as typed strings that Excel never evaluates: both formats then carry identical text,
and a user who re-saves the XLSX as CSV does not re-arm the payload.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

FORMULA_PREFIXES = "=+-@\t\r\n\uff1d\uff0b\uff0d\uff20"
# Spreadsheets skip these before reading "=...", so " =1+1" is a formula too.
LEADING_BLANKS = " \u3000"
# Any first character that may start a formula, directly or after blanks (the hot-loop test).
_SUSPECT_FIRST = FORMULA_PREFIXES + LEADING_BLANKS
EXCEL_MAX_CELL_CHARS = 32_767  # Excel counts UTF-16 code units
TRUNCATION_MARKER = "…[truncated]"

# Not allowed anywhere in an XML 1.0 document: C0 controls except \t \n \r, lone
# surrogates and U+FFFE/U+FFFF. Excel refuses to open ("repair") a sheet that has them.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def neutralize_formula(text: str) -> str:
    """Prefix ``'`` to text that a spreadsheet would otherwise read as a formula."""
    if text and text[0] in _SUSPECT_FIRST:
        rest = text.lstrip(LEADING_BLANKS)
        if rest and rest[0] in FORMULA_PREFIXES:
            return "'" + text
    return text


def strip_xml_illegal(text: str) -> str:
    """Remove the characters XML 1.0 forbids (control chars, lone surrogates, U+FFFE/F)."""
    return _XML_ILLEGAL.sub("", text)


def truncate_for_excel(text: str, limit: int = EXCEL_MAX_CELL_CHARS) -> str:
    """Cut text to Excel's cell limit, ending it with a visible ``…[truncated]`` marker.

    Excel rejects longer cells and XlsxWriter would cut silently; a visible marker tells the
    reader the value is incomplete (the CSV and ZIP exports keep the full text).
    """
    if len(text) <= limit // 2:  # cannot exceed the limit even if every char were astral
        return text
    encoded = text.encode("utf-16-le", "surrogatepass")
    if len(encoded) // 2 <= limit:
        return text
    keep = (limit - len(TRUNCATION_MARKER)) * 2
    # "ignore" drops a high surrogate orphaned by the cut, so no character is split.
    return encoded[:keep].decode("utf-16-le", "ignore") + TRUNCATION_MARKER


def excel_text(text: str) -> str:
    """Make text safe for an XLSX cell: legal XML, neutralised formula, within the limit."""
    # Strip first: "\x01=cmd" must be seen as "=cmd" by the formula check.
    return truncate_for_excel(neutralize_formula(strip_xml_illegal(text)))


def to_naive_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC and drop tzinfo; return naive ones unchanged."""
    if value.tzinfo is None:
        return value
    if value.utcoffset() is None:
        return value.replace(tzinfo=None)
    return value.astimezone(UTC).replace(tzinfo=None)


def _csv_datetime(value: datetime) -> str:
    return to_naive_utc(value).isoformat(sep=" ", timespec="seconds")


def _csv_other(value: object) -> str:
    # Subclasses (IntEnum, pendulum.DateTime, str enums...) land here; order matters
    # because bool is an int and datetime is a date.
    if isinstance(value, str):
        return neutralize_formula(str.__str__(value))  # the text, not an enum's "Cls.NAME"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return _csv_datetime(value)
    if isinstance(value, date):
        return date.isoformat(value)
    return neutralize_formula(str(value))


_CSV_BY_TYPE: dict[type, Callable[[object], str]] = {
    str: neutralize_formula,
    type(None): lambda _value: "",
    int: int.__repr__,
    float: float.__repr__,
    bool: lambda value: "true" if value else "false",
    Decimal: lambda value: format(value, "f"),  # "f": never "1E+2"
    datetime: _csv_datetime,
    date: date.isoformat,
}


def csv_cell(value: object) -> str:
    """Render one value as CSV text: ISO datetimes (UTC), empty None, neutralised strings."""
    render = _CSV_BY_TYPE.get(type(value))
    if render is None:
        return _csv_other(value)
    return render(value)


def csv_row(
    row,
    _get=_CSV_BY_TYPE.get,
    _other=_csv_other,
    _suspect=_SUSPECT_FIRST,
    _neutral=neutralize_formula,
) -> list:
    """``[csv_cell(v) for v in row]``, inlined for the common types (the export's hot loop).

    None, int and float pass through: the csv module writes them exactly as ``csv_cell``
    would ("", ``repr``); ``bool`` is a separate type and still becomes true/false.
    """
    out = []
    append = out.append
    for value in row:
        kind = type(value)
        if kind is str:
            append(_neutral(value) if value and value[0] in _suspect else value)
        elif kind is int or kind is float or value is None:
            append(value)
        elif kind is datetime and value.tzinfo is None:
            append(value.isoformat(" ", "seconds"))
        else:
            append((_get(kind) or _other)(value))
    return out
