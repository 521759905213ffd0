"""Tables of the per-layer vLLM profile format, read once and looked up per step.

Readers check every file's columns and numbers (an :class:`~frontier.errors.InputError`
names the file, row and column). :class:`Lines` holds operators against one axis
(tokens or sequences), :class:`AttentionTable` the 4-D attention kernel,
:class:`SkewCorrection` the fitted uneven-decode correction and :class:`MoeTable`
one rank's MoE block. The rules (interpolation, filling, continuation past the
grid) are those of :mod:`frontier_predictors.vllm_profile`, whose docstring states
them.
"""

from __future__ import annotations

import bisect
import csv
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from frontier.errors import InputError

__all__ = [
    "US",
    "AttentionTable",
    "Lines",
    "MoeTable",
    "SkewCorrection",
    "read_number",
    "read_rows",
    "read_series",
    "summed_lines",
]

US = 1e-6
"""Seconds per microsecond (the profile's unit)."""


# --------------------------------------------------------------------------- reading


def read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV, checked to hold ``columns``."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise InputError(
                    f"{path}: missing column(s) {', '.join(missing)}; the header is "
                    f"{', '.join(header) or '(empty)'}"
                )
            return list(reader)
    except OSError as error:
        raise InputError(f"{path}: cannot be read: {error}") from None


def read_number(path: Path, row: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"{path}, row {row}, column {column}: {text!r} is not a non-negative number"
        )
    return value


def refuse_all_zero(path: Path, what: str, times) -> None:
    """A table whose every time is 0 was not measured (a kernel takes time);
    predicting free steps from it would be a silent wrong answer."""
    if len(times) and not any(times):
        raise InputError(
            f"{path}: every time_us of {what} is 0; a profiled kernel takes time, "
            "so the measurement failed: profile it again"
        )


class _Keys:
    """The rows seen of a table, by key: a key given twice is refused, naming
    both rows (which time would count is anybody's guess)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[Any, int] = {}

    def add(self, key: Any, row_number: int, described: str) -> None:
        first = self.rows.setdefault(key, row_number)
        if first != row_number:
            raise InputError(
                f"{self.path}, row {row_number}: {described} again (first at row "
                f"{first}); keep one measurement per point of the table"
            )


def read_series(path: Path, key: str) -> dict[str, dict[int, float]]:
    """``layer -> {key value -> time_us}`` of a dense or per-sequence CSV."""
    series: dict[str, dict[int, float]] = {}
    seen = _Keys(path)
    for row_number, row in enumerate(read_rows(path, ("layer", key, "time_us")), 2):
        x = int(read_number(path, row_number, key, row[key]))
        t = read_number(path, row_number, "time_us", row["time_us"])
        layer = row["layer"].strip()
        seen.add((layer, x), row_number, f"layer {layer!r} at {key} = {x}")
        series.setdefault(layer, {})[x] = t
    for layer, times in series.items():
        refuse_all_zero(path, f"layer {layer!r}", list(times.values()))
    return series


class Lines:
    """Piecewise-linear tables ``y_k(x)`` on one axis, continued linearly past
    its last point (and held at the first value below the first)."""

    __slots__ = ("columns", "x", "x_max")

    def __init__(self, x: list[float], columns: list[list[float]]) -> None:
        self.x = x
        self.columns = columns
        self.x_max = x[-1]

    def __call__(self, x: float) -> list[float]:
        xs = self.x
        i = bisect.bisect_right(xs, x) - 1
        if i < 0:
            return [column[0] for column in self.columns]
        if i >= len(xs) - 1:
            i = len(xs) - 2
        w = (x - xs[i]) / (xs[i + 1] - xs[i])
        return [c[i] + (c[i + 1] - c[i]) * w for c in self.columns]


def summed_lines(
    series: dict[str, dict[int, float]], groups: list[tuple[str, ...]], path: Path
) -> Lines:
    """One column per group of operators: the sum of those present, in seconds.

    Operators measured on different grids are first interpolated onto the union
    of their grids. An empty group gives a column of zeros.
    """
    grid = sorted(
        {x for group in groups for op in group if op in series for x in series[op]}
    )
    if not grid:
        raise InputError(f"{path}: no rows")
    columns = []
    for group in groups:
        total = np.zeros(len(grid))
        for op in group:
            if op in series:
                xs = sorted(series[op])
                total += np.interp(grid, xs, [series[op][x] for x in xs])
        columns.append((total * US).tolist())
    return Lines([float(x) for x in grid], columns)


# --------------------------------------------------------------------------- attention


def _fill_axis(table: np.ndarray, axis: int, coords: np.ndarray) -> None:
    """Interpolate every line of ``table`` along ``axis`` at ``coords``."""
    moved = np.moveaxis(table, axis, -1)
    lines = moved.reshape(-1, moved.shape[-1])  # a copy when not contiguous
    for line in lines:
        known = ~np.isnan(line)
        if known.sum() < 2 or known.all():
            continue
        first, last = coords[known][0], coords[known][-1]
        inside = ~known & (coords > first) & (coords < last)
        line[inside] = np.interp(coords[inside], coords[known], line[known])
    moved[...] = lines.reshape(moved.shape)


def _fill_attention(
    table: np.ndarray, chunks: np.ndarray, kvs: np.ndarray, decodes: np.ndarray
) -> None:
    """Complete the attention table (axes: chunk, kv_prefill, n_decode, kv_decode).

    1. Interior gaps: linear along kv_decode, then kv_prefill, then chunk, then
       n_decode, between measured (or already filled) cells.
    2. No prefill chunk: the prefill context does not matter (copy kv_prefill 0);
       no decodes: the decode context does not matter (copy kv_decode 0); the
       empty step takes the smallest chunk's time, so that a chunk shorter than
       any profiled costs what the shortest one does.
    3. Decodes over fewer cached tokens than the smallest profiled (a decode
       always has some): take the smallest profiled context.
    4. A chunk with more decodes than the profiler could fire with one (its
       ``max_num_seqs`` bound): the chunk's cost with the largest measured
       decode count plus what the extra decodes cost without a chunk.
    """
    for axis, coords in ((3, kvs), (1, kvs), (0, chunks), (2, decodes)):
        _fill_axis(table, axis, coords.astype(float))
    # A chunk shorter than the smallest profiled one still launches the kernel.
    table[0, 0, 0, 0] = table[1, 0, 0, 0]
    table[0, :, :, :] = table[0, 0:1, :, :]
    table[:, :, 0, :] = table[:, :, 0, 0:1]
    table[:, :, 1:, 0] = np.where(
        np.isnan(table[:, :, 1:, 0]), table[:, :, 1:, 1], table[:, :, 1:, 0]
    )
    for d in range(1, len(decodes)):
        gap = np.isnan(table[1:, :, d, :])
        if gap.any():
            extra = table[0, 0, d, :] - table[0, 0, d - 1, :]
            table[1:, :, d, :] = np.where(
                gap, table[1:, :, d - 1, :] + extra, table[1:, :, d, :]
            )
    if np.isnan(table).any():
        raise InputError(
            "attention.csv: the profile leaves cells of the attention grid that "
            "cannot be filled; it needs every (prefill_chunk, n_decode) pair on "
            "its doubling grid"
        )


class AttentionTable:
    """The 4-D attention table, multilinear and continued linearly past its edges."""

    def __init__(self, path: Path) -> None:
        names = ("prefill_chunk", "kv_prefill", "n_decode", "kv_decode")
        rows = read_rows(path, (*names, "time_us"))
        points = np.empty((len(rows), 5))
        seen = _Keys(path)
        for row_number, row in enumerate(rows, 2):
            for j, name in enumerate((*names, "time_us")):
                points[row_number - 2, j] = read_number(
                    path, row_number, name, row[name]
                )
            key = tuple(points[row_number - 2, :4].tolist())
            where = ", ".join(f"{n} = {v:g}" for n, v in zip(names, key, strict=True))
            seen.add(key, row_number, where)
        refuse_all_zero(path, "the attention table", points[:, 4].tolist())
        self.chunks = np.unique(points[:, 0])
        self.kvs = np.unique(np.concatenate([points[:, 1], points[:, 3]]))
        self.decodes = np.unique(points[:, 2])
        if self.chunks[0] != 0 or self.decodes[0] != 0 or self.kvs[0] != 0:
            raise InputError(
                f"{path}: each axis must include 0 (no prefill chunk, no decodes)"
            )
        axes = (self.chunks, self.kvs, self.decodes, self.kvs)
        table = np.full(tuple(len(a) for a in axes), np.nan)
        index = tuple(np.searchsorted(a, points[:, j]) for j, a in enumerate(axes))
        table[index] = points[:, 4] * US
        _fill_attention(table, self.chunks, self.kvs, self.decodes)
        self.table = table
        self._flat = table.ravel().tolist()
        self._strides = [s // table.itemsize for s in table.strides]
        self._axes = [a.tolist() for a in axes]
        self.max_chunk = self._axes[0][-1]
        self.max_kv = self._axes[1][-1]
        self.max_decodes = self._axes[2][-1]
        self.min_decode_kv = self._axes[3][1]

    def __call__(
        self, chunk: float, kv_prefill: float, decodes: float, kv_decode: float
    ) -> float:
        """Seconds of the attention kernel; 0 when the step has no tokens."""
        cells = []
        for axis, x, stride in zip(
            self._axes,
            (chunk, kv_prefill, decodes, kv_decode),
            self._strides,
            strict=True,
        ):
            i = bisect.bisect_right(axis, x) - 1
            if i >= len(axis) - 1:
                i = len(axis) - 2
            weight = (x - axis[i]) / (axis[i + 1] - axis[i])
            cells.append((i * stride, stride, weight))
        flat = self._flat
        total = 0.0
        (o0, s0, w0), (o1, s1, w1), (o2, s2, w2), (o3, s3, w3) = cells
        for a, wa in ((o0, 1 - w0), (o0 + s0, w0)):
            if wa == 0:
                continue
            for b, wb in ((a + o1, 1 - w1), (a + o1 + s1, w1)):
                if wb == 0:
                    continue
                for c, wc in ((b + o2, 1 - w2), (b + o2 + s2, w2)):
                    if wc == 0:
                        continue
                    w = wa * wb * wc
                    total += w * ((1 - w3) * flat[c + o3] + w3 * flat[c + o3 + s3])
        return total

    def inside(
        self, chunk: float, kv_prefill: float, decodes: float, kv_decode: float
    ) -> bool:
        """Whether the point lies within the profiled ranges."""
        return (
            chunk <= self.max_chunk
            and kv_prefill <= self.max_kv
            and decodes <= self.max_decodes
            and kv_decode <= self.max_kv
        )


# --------------------------------------------------------------------------- skew


_LIST_LINE = re.compile(r"^\s*(\w+_(?:bins|labels)):\s*\[(.*)\]\s*$")


def _bucket_axes(meta_path: Path) -> dict[str, list[Any]]:
    """The ``skew_fit.bucket_axes`` bins and labels of ``meta.yaml``.

    Only the flow-style lists (``n_bins: [0, 2, ...]``) are read, so no YAML
    library is needed.
    """
    axes: dict[str, list[Any]] = {}
    try:
        lines = meta_path.read_text("utf-8").splitlines()
    except OSError:
        return axes
    for line in lines:
        match = _LIST_LINE.match(line)
        if match and match.group(1) not in axes:
            items = [item.strip().strip("'\"") for item in match.group(2).split(",")]
            if match.group(1).endswith("_bins"):
                axes[match.group(1)] = [float(item) for item in items]
            else:
                axes[match.group(1)] = items
    return axes


def _labeller(bins: list[float], labels: list[str]) -> Any:
    """A function giving the label of the bin ``(bins[i], bins[i + 1]]`` of a value.

    Values past the last edge take the last label.
    """
    edges = bins[1 : len(labels) + 1]
    last = len(labels) - 1

    def label(value: float) -> str:
        return labels[min(bisect.bisect_left(edges, value), last)]

    return label


class SkewCorrection:
    """The uneven-decode correction: ``t = t_mean + alpha (t_max - t_mean)``.

    ``alpha`` comes from ``skew_fit.csv`` by the bucket of (prefill chunk, decode
    count, skew rate, largest decode context, prefill context), where the skew
    rate is ``(mean - min) / (max - min)`` of the decode contexts; the chunk is
    the nearest profiled one (log scale). A bucket the fit lacks takes the pooled
    weighted least-squares ``alpha`` of ``skew.csv``,
    ``sum(dtm dts) / sum(dtm^2)`` with ``dtm = t_max - t_mean`` and
    ``dts = t_skew - t_mean``.
    """

    _AXES = ("n", "skew_rate", "kv_big", "kp")

    def __init__(self, folder: Path, meta_path: Path) -> None:
        axes = _bucket_axes(meta_path)
        missing = [
            f"{name}_{part}"
            for name in self._AXES
            for part in ("bins", "labels")
            if f"{name}_{part}" not in axes
        ]
        if missing:
            raise InputError(
                f"{meta_path}: skew_fit.bucket_axes lacks {', '.join(missing)}; "
                "set predictor.skew_correction = false to go without the correction"
            )
        fit_path = folder / "skew_fit.csv"
        columns = ("pc", "n_label", "skew_rate_label", "kv_big_label", "kp_label")
        self.alphas: dict[tuple[Any, ...], float] = {}
        seen = _Keys(fit_path)
        for row_number, row in enumerate(read_rows(fit_path, (*columns, "alpha")), 2):
            chunk = int(read_number(fit_path, row_number, "pc", row["pc"]))
            try:
                alpha = float(row["alpha"])
            except ValueError:
                raise InputError(
                    f"{fit_path}, row {row_number}, column alpha: {row['alpha']!r} "
                    "is not a number"
                ) from None
            key = (chunk, *(row[c].strip() for c in columns[1:]))
            seen.add(key, row_number, "bucket " + ", ".join(map(str, key)))
            self.alphas[key] = alpha
        self.chunks = sorted({key[0] for key in self.alphas})
        self._positive_chunks = [c for c in self.chunks if c > 0]
        self._n_label = _labeller(axes["n_bins"], axes["n_labels"])
        self._rate_label = _labeller(axes["skew_rate_bins"], axes["skew_rate_labels"])
        self._big_label = _labeller(axes["kv_big_bins"], axes["kv_big_labels"])
        self._kp_label = _labeller(axes["kp_bins"], axes["kp_labels"])
        self.alpha_default = self._pooled_alpha(folder / "skew.csv")

    @staticmethod
    def _pooled_alpha(path: Path) -> float:
        if not path.is_file():
            return 0.0
        names = ("t_mean_us", "t_max_us", "t_skew_us")
        numerator = denominator = 0.0
        for row in read_rows(path, names):
            try:
                mean, top, skew = (float(row[n]) for n in names)
            except ValueError:
                continue
            if not (math.isfinite(mean) and math.isfinite(top) and math.isfinite(skew)):
                continue
            numerator += (top - mean) * (skew - mean)
            denominator += (top - mean) ** 2
        return numerator / denominator if denominator > 0 else 0.0

    def _chunk_key(self, chunk: float) -> int:
        positive = self._positive_chunks
        if chunk <= 0 or not positive:
            return self.chunks[0]
        i = bisect.bisect_left(positive, chunk)
        if i == 0:
            return positive[0]
        if i == len(positive):
            return positive[-1]
        low, high = positive[i - 1], positive[i]
        return low if chunk * chunk <= low * high else high

    def alpha(
        self,
        chunk: float,
        decodes: int,
        skew_rate: float,
        kv_big: float,
        kv_prefill: float,
    ) -> float:
        """The fitted ``alpha`` of the batch's bucket (the pooled one when absent)."""
        key = (
            self._chunk_key(chunk),
            self._n_label(decodes),
            self._rate_label(skew_rate),
            self._big_label(kv_big),
            self._kp_label(kv_prefill),
        )
        return self.alphas.get(key, self.alpha_default)


# --------------------------------------------------------------------------- MoE


class MoeTable:
    """One rank's MoE block against tokens and distinct activated experts.

    Bilinear in (tokens, activated experts); a cell the profiler could not fire
    (more experts than ``tokens x top_k`` routes reach) holds the value of the
    most experts measured at those tokens, since no step can activate more.
    """

    def __init__(self, path: Path) -> None:
        names = ("tokens", "activated_experts", "time_us")
        rows = read_rows(path, names)
        values = {}
        seen = _Keys(path)
        for row_number, row in enumerate(rows, 2):
            tokens, experts, time_us = (
                read_number(path, row_number, n, row[n]) for n in names
            )
            seen.add(
                (tokens, experts),
                row_number,
                f"tokens = {tokens:g}, activated_experts = {experts:g}",
            )
            values[(tokens, experts)] = time_us * US
        if not values:
            raise InputError(f"{path}: no rows")
        refuse_all_zero(path, "the MoE block", list(values.values()))
        self.tokens = sorted({t for t, _ in values})
        self.experts = sorted({e for _, e in values})
        table = np.full((len(self.tokens), len(self.experts)), np.nan)
        for (t, e), seconds in values.items():
            table[self.tokens.index(t), self.experts.index(e)] = seconds
        for i in range(len(self.tokens)):
            row = table[i]
            known = np.flatnonzero(~np.isnan(row))
            if not len(known):
                raise InputError(f"{path}: tokens={self.tokens[i]:g} has no value")
            row[: known[0]] = row[known[0]]
            row[known[-1] + 1 :] = row[known[-1]]
            _fill_axis(row[None, :], 1, np.asarray(self.experts))
        self.table = table
        self.max_tokens = self.tokens[-1]

    def __call__(self, tokens: float, experts: float) -> float:
        i = min(
            max(bisect.bisect_right(self.tokens, tokens) - 1, 0), len(self.tokens) - 2
        )
        j = min(
            max(bisect.bisect_right(self.experts, experts) - 1, 0),
            len(self.experts) - 2,
        )
        x0, x1 = self.tokens[i], self.tokens[i + 1]
        y0, y1 = self.experts[j], self.experts[j + 1]
        u = (tokens - x0) / (x1 - x0)
        v = min(max((experts - y0) / (y1 - y0), 0.0), 1.0)
        t = self.table
        low = t[i, j] + (t[i, j + 1] - t[i, j]) * v
        high = t[i + 1, j] + (t[i + 1, j + 1] - t[i + 1, j]) * v
        return float(low + (high - low) * u)
