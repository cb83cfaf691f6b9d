"""What every writer shares: the result type, progress reporting and row checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

ProgressFn = Callable[[int], object]
DEFAULT_PROGRESS_EVERY = 5_000


@dataclass(frozen=True)
class WriteResult:
    """How many data rows were written (headers excluded) and on how many sheets."""

    rows: int
    sheets: int = 1


class Progress:
    """Call ``callback(rows_written)`` every ``every`` rows and once more at the end.

    The callback may raise to abort an export (e.g. the user cancelled it); the writers let
    the exception through, so wrap them in ``atomic_write`` to never expose a partial file.
    """

    __slots__ = ("_callback", "_every", "_last")

    def __init__(self, callback: ProgressFn | None, every: int) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"progress_every must be a positive integer, got {every!r}")
        self._callback = callback
        self._every = every
        self._last = 0

    def tick(self, count: int) -> None:
        """Report ``count`` if it is a multiple of the reporting interval."""
        if self._callback is not None and count % self._every == 0:
            self._callback(count)
            self._last = count

    def done(self, count: int) -> None:
        """Report the final count unless it was just reported."""
        if self._callback is not None and count != self._last:
            self._callback(count)
            self._last = count


def row_width_error(row: Sequence[object], width: int, index: int) -> ValueError:
    """Build the error for a row whose length differs from the header's (1-based ``index``)."""
    return ValueError(f"row {index} has {len(row)} values but there are {width} headers")
