"""A CSV file read as columns of text, with errors that name file, row and column.

Profile readers (:mod:`frontier_predictors.profiles`) turn the columns they need
into numbers, flags or lists through it; every malformed cell becomes an
:class:`~frontier.errors.InputError` giving the file, the row (its line number,
the header being line 1) and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from frontier.errors import InputError

_LONGEST_MS = 60_000.0
"""One operator running a minute is a unit or measurement error, not a time."""
_STATISTICS = ("min", "max", "mean", "median", "std")
"""The per-operator statistics columns a profile row may carry (``count`` aside)."""

__all__ = ["CsvTable"]


class CsvTable:
    """A CSV file's columns as strings, with errors that name file, row and column.

    Args:
        path: The CSV file; it must have a header row and at least one data row,
            each row as many fields as the header.

    Raises:
        InputError: The file is unreadable, empty, or has a ragged row.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # utf-8-sig: a byte-order mark is not part of the first column's name
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                lines = list(reader)
        except OSError as error:
            raise InputError(f"profile file {path} cannot be read: {error}") from None
        except (csv.Error, UnicodeDecodeError) as error:
            raise InputError(
                f"profile file {path} is not a valid CSV: {error}"
            ) from None
        if not header:
            raise InputError(f"profile file {path} is empty: it needs a header row")
        if not lines:
            raise InputError(f"profile file {path} has a header but no data rows")
        self.header = [name.strip() for name in header]
        width = len(self.header)
        for index, line in enumerate(lines):
            if len(line) != width:
                raise InputError(
                    f"{path}, row {index + 2}: {len(line)} fields where the header has "
                    f"{width}; fix or delete that row"
                )
        self.columns = {
            name: [line[i] for line in lines] for i, name in enumerate(self.header)
        }
        self.num_rows = len(lines)
        self.rows = np.arange(2, self.num_rows + 2)

    def has(self, column: str) -> bool:
        """Whether the file has ``column``."""
        return column in self.columns

    def require(self, columns: Iterable[str], purpose: str) -> None:
        """Raise an InputError naming the first of ``columns`` the file lacks."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise InputError(
                f"{self.path}: column {missing[0]!r} is missing ({purpose}); the file "
                f"has columns {', '.join(self.header[:12])}"
                + (", ..." if len(self.header) > 12 else "")
            )

    def numbers(self, column: str, allow_empty: bool = False) -> np.ndarray:
        """Column ``column`` as floats; empty cells are NaN when ``allow_empty``."""
        values = np.empty(self.num_rows)
        for index, text in enumerate(self.columns[column]):
            text = text.strip()
            if not text:
                if allow_empty:
                    values[index] = math.nan
                    continue
                raise InputError(
                    f"{self.path}, row {index + 2}, column {column!r}: the cell is "
                    "empty but must hold a number"
                )
            try:
                value = float(text)
            except ValueError:
                raise InputError(
                    f"{self.path}, row {index + 2}, column {column!r}: {text!r} is "
                    "not a number"
                ) from None
            if not math.isfinite(value) and not (allow_empty and math.isnan(value)):
                raise InputError(
                    f"{self.path}, row {index + 2}, column {column!r}: {text!r} is not "
                    "a finite number"
                )
            values[index] = value
        return values

    def whole(self, column: str, minimum: int) -> np.ndarray:
        """Column ``column`` as floats that must be whole numbers of at least
        ``minimum`` (token counts, batch sizes, context lengths)."""
        values = self.numbers(column)
        bad = np.flatnonzero((values < minimum) | (values != np.floor(values)))
        if bad.size:
            index = int(bad[0])
            raise InputError(
                f"{self.path}, row {index + 2}, column {column!r}: "
                f"{self.columns[column][index].strip()!r} is not a whole number "
                f">= {minimum}"
            )
        return values

    def flags(self, column: str) -> np.ndarray:
        """Column ``column`` as booleans (True/False, 1/0)."""
        values = np.empty(self.num_rows, dtype=bool)
        for index, text in enumerate(self.columns[column]):
            word = text.strip().lower()
            if word in ("true", "1", "1.0"):
                values[index] = True
            elif word in ("false", "0", "0.0"):
                values[index] = False
            else:
                raise InputError(
                    f"{self.path}, row {index + 2}, column {column!r}: {text!r} is not "
                    "True or False"
                )
        return values

    def int_lists(self, column: str) -> list[list[int] | None]:
        """Column ``column`` of ``[a, b, ...]`` lists; ``None`` for empty cells."""
        result: list[list[int] | None] = []
        for index, text in enumerate(self.columns[column]):
            text = text.strip()
            if not text:
                result.append(None)
                continue
            body = text.strip("[]() ")
            try:
                result.append([int(float(p)) for p in body.split(",") if p.strip()])
            except ValueError:
                raise InputError(
                    f"{self.path}, row {index + 2}, column {column!r}: {text!r} is "
                    "not a list of integers like [128, 64]"
                ) from None
        return result

    def times(self, op: str, statistic: str) -> np.ndarray | None:
        """Times of profile operator ``op`` (ms), or ``None`` when not measured."""
        column = f"time_stats.{op}.{statistic}"
        if column not in self.columns:
            return None
        values = self.numbers(column, allow_empty=True)
        texts = self.columns[column]
        for index in np.flatnonzero(~np.isfinite(values)).tolist():
            if texts[index].strip():  # an empty cell means "not measured"
                raise InputError(
                    f"{self.path}, row {index + 2}, column {column!r}: "
                    f"{texts[index].strip()!r} is not a time; leave the cell empty "
                    "if the operator was not measured"
                )
        bad = np.flatnonzero((values < 0) | (values > _LONGEST_MS))
        if bad.size:
            row = int(bad[0]) + 2
            raise InputError(
                f"{self.path}, row {row}, column {column!r}: {float(values[bad[0]]):g} "
                f"ms is not a plausible operator time (0 to {_LONGEST_MS:g} ms); "
                "check the unit (milliseconds) and the measurement"
            )
        self._check_statistics(op, statistic, values)
        return values

    def _check_statistics(self, op: str, statistic: str, values: np.ndarray) -> None:
        """The rules ``frontier profile validate`` applies to an operator's
        statistics, for the rows a predictor reads: all of them or none in a row,
        and the statistic read within that row's ``[min, max]``."""
        present = [s for s in _STATISTICS if f"time_stats.{op}.{s}" in self.columns]
        texts = {s: self.columns[f"time_stats.{op}.{s}"] for s in present}
        bounds = {}
        for name in ("min", "max"):
            if name in texts and name != statistic:
                bounds[name] = self.numbers(f"time_stats.{op}.{name}", allow_empty=True)
        for index in range(self.num_rows):
            filled = [s for s in present if texts[s][index].strip()]
            if filled and len(filled) < len(present):
                empty = next(s for s in present if not texts[s][index].strip())
                raise InputError(
                    f"{self.path}, row {index + 2}, column "
                    f"'time_stats.{op}.{empty}': empty while {filled[0]} of {op!r} "
                    "is set; give all of the operator's statistics or none"
                )
        if len(bounds) < 2:
            return
        low, high = bounds["min"], bounds["max"]
        slack = 1e-9 * np.maximum(1.0, high)
        with np.errstate(invalid="ignore"):
            wrong = (values < low - slack) | (values > high + slack) | (low > high)
        bad = np.flatnonzero(wrong & np.isfinite(values))
        if bad.size:
            index = int(bad[0])
            raise InputError(
                f"{self.path}, row {index + 2}, column "
                f"'time_stats.{op}.{statistic}': {values[index]:g} ms lies outside the "
                f"row's [min, max] = [{low[index]:g}, {high[index]:g}] ms; fix the row "
                "or measure it again"
            )
