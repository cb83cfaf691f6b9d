"""File names and file-system helpers for exports: safe names, checksums, atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import unicodedata
from collections.abc import Callable
from typing import BinaryIO

MAX_FILENAME_CHARS = 150
# ext4 and most file systems allow 255 *bytes* per name; 150 Chinese characters are 450.
# 200 bytes also leaves room for atomic_write's ".part-<16 hex>" suffix.
MAX_FILENAME_BYTES = 200
MAX_MEMBER_SEGMENT_CHARS = 100
MAX_MEMBER_NAME_CHARS = 255
_MAX_EXTENSION_CHARS = 10
_KEPT_PUNCTUATION = "-_.()"
# A path of ASCII words joined by single "-", "_" or "." is already in the form the slow path
# produces ("task-42/prompt.txt"); the bundle writer names millions of members like that.
_PLAIN_MEMBER = re.compile(
    r"[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*)*"
)
_MAYBE_RESERVED = re.compile(r"(?:^|/)(?:con|prn|aux|nul|com|lpt)", re.IGNORECASE)
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def _clean_chars(text: str) -> str:
    """Keep letters, marks, digits and ``-_.()``; drop control/format chars; rest -> ``_``."""
    out = []
    for char in unicodedata.normalize("NFC", text):
        kind = unicodedata.category(char)[0]
        if kind in "LMN" or char in _KEPT_PUNCTUATION:
            out.append(char)
        elif kind != "C":  # C*: NUL, controls, bidi overrides, lone surrogates, unassigned
            out.append("_")  # spaces, path separators, other punctuation and symbols
    cleaned = re.sub(r"\.{2,}", ".", "".join(out))  # no ".." survives
    return re.sub(r"_{2,}", "_", cleaned)


def _split_stem(cleaned: str) -> tuple[str, str]:
    """Split off a short alphanumeric extension; trim dots, dashes, underscores."""
    stem, dot, ext = cleaned.rpartition(".")
    if not dot or not ext.isalnum() or len(ext) > _MAX_EXTENSION_CHARS:
        stem, ext = cleaned, ""
    return stem.strip("._-"), ext


def _fit(stem: str, ext: str, max_chars: int, max_bytes: int) -> str:
    """Shorten the stem until stem + extension fits both limits; the extension is kept."""
    suffix = f".{ext}" if ext else ""
    stem = stem[: max(1, max_chars - len(suffix))]
    while len(stem) > 1 and len((stem + suffix).encode("utf-8")) > max_bytes:
        stem = stem[:-1]
    stem = stem.rstrip("._-") or stem
    if stem.upper() in _WINDOWS_RESERVED:  # "CON.txt" cannot be saved on Windows
        stem += "_"
    return stem + suffix


def sanitize_filename(name: str, default: str = "export") -> str:
    """Return a safe, non-empty download file name that keeps Unicode letters and digits."""
    stem, ext = _split_stem(_clean_chars(name or ""))
    if not stem:
        stem = _split_stem(_clean_chars(default))[0] or "export"
    return _fit(stem, ext, MAX_FILENAME_CHARS, MAX_FILENAME_BYTES)


def safe_member_name(name: str) -> str:
    """Return a relative ZIP member path with no absolute part, ``..``, backslash or NUL."""
    name = name or ""
    if (
        len(name) <= MAX_MEMBER_SEGMENT_CHARS
        and _PLAIN_MEMBER.fullmatch(name)
        and not _MAYBE_RESERVED.search(name)
    ):
        return name
    segments = []
    for raw in re.split(r"[/\\]+", name):
        cleaned = _clean_chars(raw).strip("._-")
        if not cleaned:  # "", "." and ".." vanish, so no segment can climb out
            continue
        stem, ext = _split_stem(cleaned)
        segments.append(_fit(stem or "file", ext, MAX_MEMBER_SEGMENT_CHARS, MAX_FILENAME_BYTES))
    # Over the total limit, drop leading folders: the file's own name matters most.
    while len(segments) > 1 and len("/".join(segments)) > MAX_MEMBER_NAME_CHARS:
        segments.pop(0)
    return "/".join(segments) or "file"


def _md5_of_handle(handle: BinaryIO, chunk: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # a checksum for downloads, not security
    for block in iter(lambda: handle.read(chunk), b""):
        digest.update(block)
    return digest.hexdigest()


def md5_of_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Return the hex MD5 of a file, read in chunks."""
    with open(path, "rb") as handle:
        return _md5_of_handle(handle, chunk)


def _fsync_directory(directory: str) -> None:
    """Persist a rename; some file systems cannot fsync a directory, which is harmless."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    final_path: str | os.PathLike[str], write_fn: Callable[[str], object]
) -> tuple[int, str]:
    """Let write_fn fill a temp file beside final_path, then move it into place.

    Returns ``(size_bytes, md5_hex)``. On any exception, including KeyboardInterrupt and a
    job timeout, the temporary file is removed and the exception re-raised, so a file under
    ``final_path`` is always complete. The temp file lives in the same directory because
    ``os.replace`` is only atomic within one file system.
    """
    final = os.fspath(final_path)
    temp = f"{final}.part-{secrets.token_hex(8)}"
    try:
        write_fn(temp)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
            size = os.fstat(handle.fileno()).st_size
            digest = _md5_of_handle(handle, 1 << 20)
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(final)))
    return size, digest
