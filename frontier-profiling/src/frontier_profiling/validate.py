"""Checking a profile directory: schema, ranges, and where each problem is.

A profile directory holds ``linear_op.csv``, ``attention.csv`` and/or ``moe.csv``
(or the older ``mlp.csv``) and, when this profiler made it, ``metadata.json``.
Each file must have the shape columns a reader selects rows by and
``time_stats.<op>.<stat>`` columns whose statistic is one of min, max, mean,
median, std, count. Each row must be as wide as the header; every time is a
finite number of milliseconds >= 0 with ``min <= median, mean <= max`` and ``std
<= max - min``; ``count`` is a whole number >= 1; an operator is measured with all
five statistics or none; shape columns hold positive whole numbers (sizes that
may be 0 hold non-negative ones) and ``True``/``False`` flags; a plain decode row
has its decode time, a plain prefill row its prefill time and a chunk size.

Problems are *errors* (a reader would reject or misread the row) or *warnings*
(the profile is usable but incomplete: no ``count``, no ``metadata.json``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import attrs
from frontier.errors import InputError

from frontier_profiling.naming import device_folder, is_catalogue_device

__all__ = ["Problem", "find_profiles", "validate_directory"]

_STATS = ("min", "max", "mean", "median", "std")
_TOLERANCE = 1e-9

_POSITIVE = {
    "linear": (
        "n_head",
        "n_kv_head",
        "n_embd",
        "num_tokens",
        "num_tensor_parallel_workers",
    ),
    "attention": (
        "n_embd",
        "n_q_head",
        "n_kv_head",
        "num_tensor_parallel_workers",
        "batch_size",
    ),
    "moe": (
        "num_tokens",
        "num_experts",
        "router_topk",
        "hidden_dim",
        "expert_hidden_dim",
        "num_tensor_parallel_workers",
    ),
}
"""Required shape columns that must hold whole numbers >= 1."""

_NON_NEGATIVE = {
    "linear": ("n_expanded_embd",),
    "attention": ("prefill_chunk_size", "kv_cache_size"),
    "moe": (),
}
"""Required shape columns that must hold whole numbers >= 0."""

_FLAGS = {"linear": (), "attention": ("is_prefill",), "moe": ()}

_FAMILY_OF = {
    "linear_op.csv": "linear",
    "mlp.csv": "linear",
    "attention.csv": "attention",
    "moe.csv": "moe",
}

_MAX_PER_FILE = 50


@attrs.frozen
class Problem:
    """One thing wrong with a profile.

    Attributes:
        path: The file.
        row: Line number in the file (header = 1); ``None`` for the whole file.
        column: The column, when one is at fault.
        message: What is wrong and what was found.
        severity: ``error`` or ``warning``.
    """

    path: Path
    row: int | None
    column: str | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = str(self.path)
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{self.severity}: {where}: {self.message}"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


class _FileCheck:
    """The checks of one CSV file; collects problems, at most a fixed number."""

    def __init__(self, path: Path, family: str) -> None:
        self.path = path
        self.family = family
        self.problems: list[Problem] = []
        self.hidden = 0
        self.times_seen = 0  # operator statistics read as numbers
        self.times_positive = 0

    def add(
        self, row: int | None, column: str | None, message: str, severity: str = "error"
    ) -> None:
        if len(self.problems) >= _MAX_PER_FILE:
            self.hidden += 1
            return
        self.problems.append(Problem(self.path, row, column, message, severity))

    def run(self) -> int:
        try:
            with self.path.open(newline="", encoding="utf-8") as handle:
                lines = list(csv.reader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            self.add(None, None, f"cannot be read as CSV: {error}")
            return 0
        if not lines:
            self.add(None, None, "the file is empty; it needs a header and rows")
            return 0
        header = [name.strip() for name in lines[0]]
        ops = self._check_header(header)
        if len(lines) == 1:
            self.add(None, None, "the file has a header but no rows")
        for index, line in enumerate(lines[1:]):
            self._check_row(index + 2, header, line, ops)
        if self.times_seen and not self.times_positive:
            self.add(
                None,
                None,
                "every time in the file is 0 ms; a profiled kernel takes time, so "
                "the measurement failed: profile it again",
            )
        return len(lines) - 1

    def _check_header(self, header: list[str]) -> dict[str, dict[str, int]]:
        for column in (
            *_POSITIVE[self.family],
            *_NON_NEGATIVE[self.family],
            *_FLAGS[self.family],
        ):
            if column not in header:
                self.add(None, column, "required shape column is missing")
        ops: dict[str, dict[str, int]] = {}
        for position, column in enumerate(header):
            if not column.startswith("time_stats."):
                continue
            parts = column.split(".")
            if len(parts) != 3 or parts[2] not in (*_STATS, "count"):
                self.add(
                    None,
                    column,
                    "a time column must be named time_stats.<op>.<stat> with <stat> "
                    "one of min, max, mean, median, std, count",
                )
                continue
            ops.setdefault(parts[1], {})[parts[2]] = position
        if not ops:
            self.add(
                None, None, "no time_stats.<op>.<stat> columns: nothing was measured"
            )
        for op, stats in ops.items():
            missing = [s for s in _STATS if s not in stats]
            if missing:
                self.add(
                    None,
                    f"time_stats.{op}.{missing[0]}",
                    f"operator {op!r} lacks its {missing[0]} column",
                )
        uncounted = [op for op, stats in ops.items() if "count" not in stats]
        if uncounted:
            self.add(
                None,
                None,
                f"{len(uncounted)} operators have no count column (older format): "
                + ", ".join(uncounted),
                "warning",
            )
        return {
            op: stats for op, stats in ops.items() if all(s in stats for s in _STATS)
        }

    def _check_row(
        self,
        row: int,
        header: list[str],
        line: list[str],
        ops: dict[str, dict[str, int]],
    ) -> None:
        if len(line) != len(header):
            self.add(
                row, None, f"{len(line)} fields where the header has {len(header)}"
            )
            return
        cells = dict(zip(header, line, strict=True))
        measured = set()
        for op, stats in ops.items():
            if self._check_times(row, op, stats, line):
                measured.add(op)
        if ops and not measured:
            self.add(row, None, "no operator has a time in this row")
        for column in _POSITIVE[self.family]:
            self._whole(row, column, cells.get(column), minimum=1)
        for column in _NON_NEGATIVE[self.family]:
            self._whole(row, column, cells.get(column), minimum=0)
        flags = {}
        for column in _FLAGS[self.family]:
            if column in cells:
                word = cells[column].strip().lower()
                if word not in ("true", "false", "1", "0", "1.0", "0.0"):
                    self.add(row, column, f"{cells[column]!r} is not True or False")
                flags[column] = word in ("true", "1", "1.0")
        if self.family == "attention" and "is_prefill" in flags:
            self._check_attention(row, cells, flags["is_prefill"], measured)

    def _check_times(
        self, row: int, op: str, stats: dict[str, int], line: list[str]
    ) -> bool:
        """Check one operator's times in a row; whether the row has any of them."""
        texts = {s: line[i].strip() for s, i in stats.items()}
        filled = [s for s in _STATS if texts[s]]
        if not filled:
            return False
        if len(filled) < len(_STATS):
            empty = next(s for s in _STATS if not texts[s])
            self.add(
                row,
                f"time_stats.{op}.{empty}",
                f"empty while {filled[0]} of {op!r} is set; give all five or none",
            )
            return True
        values = {}
        for stat in _STATS:
            column = f"time_stats.{op}.{stat}"
            value = _number(texts[stat])
            if value is None or not math.isfinite(value):
                self.add(row, column, f"{texts[stat]!r} is not a finite number of ms")
                return True
            if value < 0:
                self.add(row, column, f"negative time {value!r} ms")
                return True
            values[stat] = value
        self.times_seen += 1
        self.times_positive += values["max"] > 0
        slack = _TOLERANCE * max(1.0, values["max"])
        low, high = values["min"] - slack, values["max"] + slack
        for stat in ("median", "mean"):
            if not low <= values[stat] <= high:
                self.add(
                    row,
                    f"time_stats.{op}.{stat}",
                    f"{values[stat]!r} lies outside [min, max] = "
                    f"[{values['min']!r}, {values['max']!r}]",
                )
        if values["std"] > values["max"] - values["min"] + slack:
            self.add(
                row,
                f"time_stats.{op}.std",
                f"{values['std']!r} exceeds max - min = "
                f"{values['max'] - values['min']!r}",
            )
        if texts.get("count"):
            count = _number(texts["count"])
            if count is None or count < 1 or count != int(count):
                self.add(
                    row,
                    f"time_stats.{op}.count",
                    f"{texts['count']!r} is not a whole number >= 1",
                )
        return True

    def _whole(self, row: int, column: str, text: str | None, minimum: int) -> None:
        if text is None:
            return
        value = _number(text.strip()) if text.strip() else None
        if value is None or value != int(value) or value < minimum:
            self.add(row, column, f"{text!r} is not a whole number >= {minimum}")

    def _check_attention(
        self, row: int, cells: dict[str, str], is_prefill: bool, measured: set[str]
    ) -> None:
        mixed = (
            cells.get("prefill_seq_lens", "").strip()
            or cells.get("is_mixed_batch", "").strip().lower() == "true"
        )
        if mixed:
            return
        if is_prefill:
            chunk = _number(cells.get("prefill_chunk_size", "").strip() or "x")
            if chunk is not None and chunk < 1:
                self.add(
                    row,
                    "prefill_chunk_size",
                    "a prefill row needs the prompt or chunk length (>= 1)",
                )
            if "attn_prefill" not in measured and any(
                o.startswith("attn_") for o in measured
            ):
                self.add(
                    row,
                    "time_stats.attn_prefill.median",
                    "a prefill row has no attn_prefill time",
                )
        elif "attn_decode" not in measured and any(
            o.startswith("attn_") for o in measured
        ):
            self.add(
                row,
                "time_stats.attn_decode.median",
                "a decode row has no attn_decode time",
            )


def _check_metadata(directory: Path) -> list[Problem]:
    path = directory / "metadata.json"
    if not path.is_file():
        return [
            Problem(
                path,
                None,
                None,
                "missing: the device, dtype and timing method are unknown",
                "warning",
            )
        ]
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return [Problem(path, None, None, f"not valid JSON: {error}")]
    if not isinstance(data, dict):
        return [Problem(path, None, None, "must hold a JSON object")]
    problems = []
    for field in ("device", "dtype", "measurement_type", "repeats"):
        if field not in data:
            problems.append(Problem(path, None, field, "field is missing"))
    device = data.get("device")
    if (
        data.get("device_kind") == "cpu"
        and isinstance(device, str)
        and is_catalogue_device(device_folder(device))
    ):
        problems.append(
            Problem(
                path,
                None,
                "device_kind",
                f"the rows were measured on the CPU ({data.get('device_name')}) but "
                f"the profile is filed as {device}, a GPU; move it under a CPU "
                "device's folder (e.g. compute/cpu/) and set its device field",
            )
        )
    if data.get("status") not in (None, "complete"):
        problems.append(
            Problem(
                path,
                None,
                "status",
                f"the profile is {data.get('status')!r} ({data.get('stop_reason')}); "
                "rerun the profiling command to finish it",
                "warning",
            )
        )
    return problems


def find_profiles(root: Path) -> list[Path]:
    """``root`` when it holds profile files, else every folder below it that does."""
    if any((root / name).is_file() for name in _FAMILY_OF):
        return [root]
    found = {p.parent for name in _FAMILY_OF for p in root.rglob(name)}
    return sorted(found)


def validate_directory(directory: str | Path) -> tuple[list[Problem], dict[Path, int]]:
    """Every problem of the profile(s) at ``directory``, and each file's row count.

    Raises:
        InputError: ``directory`` does not exist or holds no profile file.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"profile directory {root} does not exist")
    profiles = find_profiles(root)
    if not profiles:
        raise InputError(
            f"{root} holds no profile: no linear_op.csv, mlp.csv, attention.csv or "
            "moe.csv in it or below it"
        )
    problems: list[Problem] = []
    rows: dict[Path, int] = {}
    for profile in profiles:
        for name, family in _FAMILY_OF.items():
            path = profile / name
            if not path.is_file():
                continue
            check = _FileCheck(path, family)
            rows[path] = check.run()
            problems += check.problems
            if check.hidden:
                problems.append(
                    Problem(path, None, None, f"... and {check.hidden} more problems")
                )
        if not (
            (profile / "linear_op.csv").is_file() or (profile / "mlp.csv").is_file()
        ):
            problems.append(
                Problem(
                    profile,
                    None,
                    None,
                    "no linear_op.csv: the predictors need the linear operators",
                    "warning",
                )
            )
        if not (profile / "attention.csv").is_file():
            problems.append(
                Problem(
                    profile,
                    None,
                    None,
                    "no attention.csv: the predictors need attention",
                    "warning",
                )
            )
        if (profile / "linear_op.csv").is_file() or (
            profile / "metadata.json"
        ).is_file():
            problems += _check_metadata(profile)
    return problems, rows
