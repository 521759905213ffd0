"""Profile CSV files written one row at a time, so an interrupted run keeps its rows.

Each measured row is appended and flushed at once. When a run starts over, the
file's header must be the one this profiler writes; a last line cut short by an
interruption is dropped, and the keys of the complete rows are skipped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from frontier.errors import InputError

from frontier_profiling.rows import cell

__all__ = ["ProfileFile"]


class ProfileFile:
    """One CSV file of a profile: its rows' keys, and appending new rows.

    Args:
        path: The CSV file (created on the first append).
        columns: Every column, in order.
        key_columns: The columns that identify a row.
        repair: Drop a cut-short last line (a dry run reads without changing).

    Raises:
        InputError: The file exists with other columns, or is not readable CSV.
    """

    def __init__(
        self,
        path: Path,
        columns: tuple[str, ...],
        key_columns: tuple[str, ...],
        repair: bool = True,
    ) -> None:
        self.path = path
        self.columns = columns
        self.key_columns = key_columns
        self.done: set[tuple[str, ...]] = set()
        self._handle: io.TextIOWrapper | None = None
        self._writer: Any = None
        if path.is_file():
            self._read_existing(repair)

    def _read_existing(self, repair: bool) -> None:
        text = self.path.read_text("utf-8")
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
            if repair:
                with self.path.open("r+", encoding="utf-8") as handle:
                    handle.truncate(len(text.encode("utf-8")))
        if not text:
            return
        reader = csv.reader(io.StringIO(text))
        header = next(reader)
        if tuple(header) != self.columns:
            missing = [c for c in self.columns if c not in header]
            extra = [c for c in header if c not in self.columns]
            detail = (
                f"missing {missing[0]!r}"
                if missing
                else f"unexpected {extra[0]!r}"
                if extra
                else "columns in another order"
            )
            raise InputError(
                f"{self.path}: the existing file's columns differ from what this "
                f"profiler writes ({detail}); move it away or choose another --out"
            )
        positions = [header.index(c) for c in self.key_columns]
        for line in reader:
            if len(line) == len(header):
                self.done.add(tuple(line[i] for i in positions))

    def key_of(self, row: dict[str, Any]) -> tuple[str, ...]:
        """The key of ``row`` (values as they are written)."""
        return tuple(cell(row[c]) for c in self.key_columns)

    def has(self, row: dict[str, Any]) -> bool:
        """Whether a row with the key of ``row`` is already in the file."""
        return self.key_of(row) in self.done

    def append(self, row: dict[str, Any]) -> None:
        """Write ``row`` (missing columns empty) and flush it to the file."""
        if self._handle is None:
            new = not self.path.is_file() or self.path.stat().st_size == 0
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle, lineterminator="\n")
            if new:
                self._writer.writerow(self.columns)
        self._writer.writerow([cell(row.get(c)) for c in self.columns])
        self._handle.flush()
        self.done.add(self.key_of(row))

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
