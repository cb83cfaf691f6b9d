"""Streaming file writers for the Download Center: CSV, XLSX and ZIP bundles.

Pure Python (no Flask, no database): a writer takes headers and an iterator of row tuples,
writes a file with flat memory and reports progress. Wrap it in ``atomic_write`` so a
half-written file is never visible under its final name.
"""

from llmadmin.exports.base import WriteResult
from llmadmin.exports.cells import csv_cell, excel_text, neutralize_formula
from llmadmin.exports.files import atomic_write, md5_of_file, safe_member_name, sanitize_filename
from llmadmin.exports.writers import write_csv, write_text_bundle, write_zip_bundle
from llmadmin.exports.xlsx import EXCEL_MAX_ROWS, write_xlsx

__all__ = [
    "EXCEL_MAX_ROWS",
    "WriteResult",
    "atomic_write",
    "csv_cell",
    "excel_text",
    "md5_of_file",
    "neutralize_formula",
    "safe_member_name",
    "sanitize_filename",
    "write_csv",
    "write_text_bundle",
    "write_xlsx",
    "write_zip_bundle",
]
