"""Cells for people: what a spreadsheet export writes instead of a stored code.

CSV, XLSX and the ZIP's CSV are read by people, so a status is written as the lists show it
("失败" / "Failed"), a flag as 是/否 or Yes/No, an error class in a few words and a latency in
whole milliseconds. Each converter is made once per export, in the requester's language
(call it under ``force_locale``), and costs one dict lookup per cell: a code it does not know
is written as stored, and an empty cell stays empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from llmadmin.labels import ERROR_KIND_LABELS, NO, ROLE_LABELS, STATUS_LABELS, YES

Converter = Callable[[object], object]


class _Labels(dict):
    """A lookup table that answers an unknown key (and None) with the key itself."""

    __slots__ = ()

    def __missing__(self, key):
        return key


def labels(table: Mapping) -> Converter:
    """Return a converter from stored codes to ``table``'s texts in the current language."""
    return _Labels({code: str(text) for code, text in table.items()}).__getitem__


def yes_no() -> Converter:
    """Return a converter from a flag to Yes/No in the current language (None stays empty)."""
    return _Labels({True: str(YES), False: str(NO)}).__getitem__


def whole_milliseconds(value):
    """Round a latency in milliseconds to a whole number (None stays empty)."""
    return None if value is None else round(value)


# What a column holds -> the converter factory for it (see export_sources.Column.human).
KINDS: dict[str, Callable[[], Converter]] = {
    "status": lambda: labels(STATUS_LABELS),
    "error_kind": lambda: labels(ERROR_KIND_LABELS),
    "role": lambda: labels(ROLE_LABELS),
    "flag": yes_no,
    "ms": lambda: whole_milliseconds,
}


def converter(kind: str) -> Converter:
    """Return the converter for a column of ``kind``, in the current language."""
    return KINDS[kind]()
