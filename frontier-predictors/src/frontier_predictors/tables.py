"""Precomputed tables that answer a batch in a few list look-ups.

A trained predictor is evaluated once on a grid of each operator's features
(:class:`OperatorTable`); at run time :class:`StepTables` answers a batch from
those grids and never calls a model:

- operators whose feature is a count (tokens, sequences, prefill tokens,
  decodes) are summed per ``OperatorTimes`` field into one list indexed by the
  count, so a block costs one look-up;
- the two attention kernels are bilinear interpolations on their 2-D grids.

Below the smallest profiled size a table holds its first value (kernels are
launch-bound there). Above the largest, the table is continued by the
(calibrated) roofline's growth from the table's edge: a point ``x`` outside the
profiled region is projected onto its edge ``e`` (each feature clamped to its
largest profiled value; for prefill attention the context is then lowered, and
if need be the query too, until ``q + c`` is within the profiled triangle), and
answered as ``table(e) * roofline(x) / roofline(e)``. The prediction is thus
continuous at the edge and grows beyond it as the roofline does; the batch
counts as a fallback prediction. Where the roofline gives no time at the edge
(an operator without factors) the edge value is held.

Under expert parallelism the MoE operators that work on routed tokens (shuffle,
experts, combine) are read at the tokens of the whole expert-parallel group
(``Batch.ep_group_tokens``), the others at the batch's own.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
from frontier.plugins import OperatorTimes

from frontier_predictors.operators import BLOCKS, OPERATORS, Feature

if TYPE_CHECKING:
    from frontier_predictors.roofline import Roofline

__all__ = ["FALLBACK_BITS", "OperatorTable", "StepTables"]

FALLBACK_BITS = {
    Feature.TOKENS: 1,
    Feature.SEQUENCES: 2,
    Feature.PREFILL_TOKENS: 4,
    Feature.DECODES: 8,
    Feature.PREFILL_ATTENTION: 16,
    Feature.DECODE_ATTENTION: 32,
}
"""Bit of the fallback mask set when a batch's feature is beyond the profile."""

_ROUTED_MOE = ("moe_shuffle", "moe_experts", "moe_combine")
"""MoE operators that run on the tokens routed to a rank's experts."""

_COUNT_FEATURES = (
    Feature.TOKENS,
    Feature.SEQUENCES,
    Feature.PREFILL_TOKENS,
    Feature.DECODES,
)


@attrs.frozen
class OperatorTable:
    """One operator's predicted times (seconds) on a grid of its features.

    Attributes:
        name: Operator name.
        axes: The grid: one sorted axis, or two for the attention kernels.
        values: Seconds at the grid points, shape ``(len(axes[0]),)`` or
            ``(len(axes[0]), len(axes[1]))``.
        max_sum: For prefill attention, the largest ``q + c`` profiled (the
            profiled region is a triangle); infinite otherwise.
    """

    name: str
    axes: tuple[np.ndarray, ...]
    values: np.ndarray
    max_sum: float = math.inf

    @property
    def upper(self) -> tuple[float, ...]:
        """Largest profiled value of each feature."""
        return tuple(float(axis[-1]) for axis in self.axes)

    def in_range(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Whether each point is inside the profiled range (vectorised)."""
        inside = np.asarray(x) <= self.axes[0][-1]
        if y is not None:
            inside = inside & (np.asarray(y) <= self.axes[1][-1])
            inside = inside & (np.asarray(x) + np.asarray(y) <= self.max_sum)
        return inside

    def project(
        self, x: np.ndarray, y: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The edge point each point beyond the profiled region continues from
        (the module docstring's rule; points inside are unchanged; vectorised)."""
        x = np.minimum(np.asarray(x, dtype=float), self.axes[0][-1])
        if y is None:
            return x, None
        y = np.minimum(np.asarray(y, dtype=float), self.axes[1][-1])
        if math.isfinite(self.max_sum):
            x = np.minimum(x, self.max_sum)
            y = np.minimum(y, np.maximum(self.max_sum - x, 0.0))
        return x, y

    def lookup(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Interpolated seconds at each point, clamped to the grid (vectorised)."""
        x = np.asarray(x, dtype=float)
        if y is None:
            return np.interp(x, self.axes[0], self.values)
        i, wx = _cell(self.axes[0], x)
        j, wy = _cell(self.axes[1], np.asarray(y, dtype=float))
        v = self.values
        i1 = np.minimum(i + 1, len(self.axes[0]) - 1)
        j1 = np.minimum(j + 1, len(self.axes[1]) - 1)
        low = v[i, j] * (1 - wy) + v[i, j1] * wy
        high = v[i1, j] * (1 - wy) + v[i1, j1] * wy
        return low * (1 - wx) + high * wx


def _cell(axis: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the grid cell holding each ``x`` and the weight of its upper edge."""
    if len(axis) == 1:
        return np.zeros(x.shape, dtype=int), np.zeros(x.shape)
    i = np.clip(np.searchsorted(axis, x, side="right") - 1, 0, len(axis) - 2)
    width = axis[i + 1] - axis[i]
    return i, np.clip((x - axis[i]) / width, 0.0, 1.0)


class _Grid:
    """Scalar bilinear look-up on a 2-D table (Python lists: fast per call)."""

    def __init__(self, table: OperatorTable) -> None:
        self.a0 = table.axes[0].tolist()
        self.a1 = table.axes[1].tolist()
        self.rows = table.values.tolist()
        self.max0, self.max1 = self.a0[-1], self.a1[-1]
        self.max_sum = table.max_sum

    def inside(self, x: float, y: float) -> bool:
        return x <= self.max0 and y <= self.max1 and x + y <= self.max_sum

    def project(self, x: float, y: float) -> tuple[float, float]:
        """The edge point ``(x, y)`` continues from (the rule of
        :meth:`OperatorTable.project`)."""
        x, y = min(x, self.max0), min(y, self.max1)
        if math.isfinite(self.max_sum):
            x = min(x, self.max_sum)
            y = min(y, max(self.max_sum - x, 0.0))
        return x, y

    def __call__(self, x: float, y: float) -> float:
        i, wx = _scalar_cell(self.a0, x)
        j, wy = _scalar_cell(self.a1, y)
        rows = self.rows
        low = rows[i]
        high = rows[i + 1] if wx else low
        if wy:
            a = low[j] + (low[j + 1] - low[j]) * wy
            b = high[j] + (high[j + 1] - high[j]) * wy
        else:
            a, b = low[j], high[j]
        return a + (b - a) * wx


def _scalar_cell(axis: list[float], x: float) -> tuple[int, float]:
    last = len(axis) - 1
    if x <= axis[0] or last == 0:
        return 0, 0.0
    if x >= axis[last]:
        return last, 0.0
    i = bisect_right(axis, x) - 1
    return i, (x - axis[i]) / (axis[i + 1] - axis[i])


class StepTables:
    """Answers batches from learned operator tables, the roofline filling the rest.

    Args:
        roofline: Times of operators the tables lack or of features beyond them.
        learned: Operator name -> its table; may be empty (a pure roofline).
        initial_size: First length of the count-indexed lists (they grow on
            demand).
    """

    def __init__(
        self,
        roofline: Roofline,
        learned: dict[str, OperatorTable],
        initial_size: int = 4096,
    ) -> None:
        self.roofline = roofline
        costs = roofline.costs
        expert_parallel = getattr(costs, "ep", 1) > 1
        self.learned = {
            n: t
            for n, t in learned.items()
            if costs.applies(n) and not (expert_parallel and n in _ROUTED_MOE)
        }
        # XXX: profiled MoE operators are measured without expert parallelism
        # (all experts on a GPU), so under it the routed ones come from the
        # roofline; an EP profile axis would let the tables answer them.
        blocks = dict(BLOCKS)
        blocks["moe_routed"] = ()
        if expert_parallel:
            blocks["moe"] = tuple(n for n in BLOCKS["moe"] if n not in _ROUTED_MOE)
            blocks["moe_routed"] = _ROUTED_MOE
        self._ops = {
            (block, feature): [
                n for n in names if costs.applies(n) and OPERATORS[n].feature is feature
            ]
            for block, names in blocks.items()
            for feature in _COUNT_FEATURES
        }
        self.limits = {}
        for feature in _COUNT_FEATURES:
            uppers = [
                t.upper[0]
                for n, t in self.learned.items()
                if OPERATORS[n].feature is feature
            ]
            self.limits[feature] = min(uppers) if uppers else math.inf
        self._lists: dict[tuple[str, Feature], list[float]] = {}
        size = max(
            [initial_size]
            + [int(v) + 1 for v in self.limits.values() if math.isfinite(v)]
        )
        self._grow(size)
        self._prefill = (
            _Grid(self.learned["attention_prefill"])
            if "attention_prefill" in self.learned
            else None
        )
        self._decode = (
            _Grid(self.learned["attention_decode"])
            if "attention_decode" in self.learned
            else None
        )
        fast = getattr(roofline, "fast_time", None)
        self._prefill_time = (
            fast("attention_prefill")
            if fast
            else functools.partial(roofline.time, "attention_prefill")
        )
        self._decode_time = (
            fast("attention_decode")
            if fast
            else functools.partial(roofline.time, "attention_decode")
        )
        self._tokens_limit = self.limits[Feature.TOKENS]
        self._sequences_limit = self.limits[Feature.SEQUENCES]
        self._prefill_tokens_limit = self.limits[Feature.PREFILL_TOKENS]
        self._decodes_limit = self.limits[Feature.DECODES]

    def ranges(self) -> dict[str, list[float] | float]:
        """Largest profiled value of each feature the tables cover."""
        result: dict[str, list[float] | float] = {
            f.value: v for f, v in self.limits.items() if math.isfinite(v)
        }
        for name in ("attention_prefill", "attention_decode"):
            if name in self.learned:
                result[OPERATORS[name].feature.value] = list(self.learned[name].upper)
        return result

    # ------------------------------------------------------------------ building

    def operator_times(
        self, name: str, x: np.ndarray, y: np.ndarray | None = None
    ) -> np.ndarray:
        """Seconds of operator ``name`` at each point: the learned table inside its
        range, continued beyond it by the roofline's growth from the table's edge
        (see the module docstring; vectorised; zero where the feature is zero)."""
        x = np.asarray(x, dtype=float)
        y = None if y is None else np.asarray(y, dtype=float)
        roofline = self.roofline.time(name, x, y)
        table = self.learned.get(name)
        if table is None:
            return roofline
        inside = table.in_range(x, y)
        learned = np.where(x > 0, table.lookup(x, y), 0.0)
        if inside.all():
            return learned
        edge_x, edge_y = table.project(x, y)
        edge_table = table.lookup(edge_x, edge_y)
        edge_roofline = np.broadcast_to(
            self.roofline.time(name, edge_x, edge_y), x.shape
        )
        scale = np.divide(
            roofline,
            edge_roofline,
            out=np.ones(x.shape),
            where=edge_roofline > 0,
        )
        continued = np.where(x > 0, edge_table * scale, 0.0)
        return np.where(inside, learned, continued)

    def _continued(self, name: str, grid: _Grid, x: float, y: float) -> float:
        """Seconds of attention kernel ``name`` at ``(x, y)`` beyond its grid: the
        grid's edge value scaled by the roofline's growth from the edge."""
        edge_x, edge_y = grid.project(x, y)
        edge = self.roofline.time(name, edge_x, edge_y)
        if edge <= 0:
            return grid(edge_x, edge_y)
        return grid(edge_x, edge_y) * self.roofline.time(name, x, y) / edge

    def _grow(self, size: int) -> None:
        counts = np.arange(size, dtype=float)
        for key, names in self._ops.items():
            total = np.zeros(size)
            for name in names:
                total += self.operator_times(name, counts)
            self._lists[key] = total.tolist()
        self._size = size
        lists = self._lists
        self._attention_tokens = lists["attention", Feature.TOKENS]
        self._attention_prefill = lists["attention", Feature.PREFILL_TOKENS]
        self._attention_decodes = lists["attention", Feature.DECODES]
        self._mlp = lists["mlp", Feature.TOKENS]
        self._moe = lists["moe", Feature.TOKENS]
        self._moe_routed = lists["moe_routed", Feature.TOKENS]
        self._embedding = lists["embedding", Feature.TOKENS]
        self._head = lists["head", Feature.SEQUENCES]

    # ------------------------------------------------------------------ answering

    def predict(self, batch: Any) -> tuple[OperatorTimes, int]:
        """Operator times of ``batch`` and its fallback mask (:data:`FALLBACK_BITS`;
        0 when every operator was inside the profile)."""
        tokens = batch.num_tokens
        sequences = len(batch.requests)
        decodes = batch.num_decodes
        prefill_tokens = tokens - decodes
        routed = getattr(batch, "ep_group_tokens", 0) or tokens
        if tokens >= self._size or sequences >= self._size or routed >= self._size:
            self._grow(2 * max(tokens, sequences, routed))
        missed = 0
        if tokens > self._tokens_limit:
            missed = 1
        if sequences > self._sequences_limit:
            missed |= 2
        if prefill_tokens > self._prefill_tokens_limit:
            missed |= 4
        if decodes > self._decodes_limit:
            missed |= 8

        attention = (
            self._attention_tokens[tokens]
            + self._attention_prefill[prefill_tokens]
            + self._attention_decodes[decodes]
        )
        if prefill_tokens:
            sq = cross = 0
            for q, c in zip(batch.prefill_lengths, batch.prefill_contexts, strict=True):
                sq += q * q
                cross += q * c
            q_eq = math.sqrt(sq)
            c_eq = cross / q_eq
            grid = self._prefill
            if grid is None:
                attention += self._prefill_time(q_eq, c_eq)
            elif grid.inside(q_eq, c_eq):
                attention += grid(q_eq, c_eq)
            else:
                attention += self._continued("attention_prefill", grid, q_eq, c_eq)
                missed |= 16
        if decodes:
            mean_cached = batch.decode_context_sum / decodes - 1
            grid = self._decode
            if grid is None:
                attention += self._decode_time(decodes, mean_cached)
            elif grid.inside(decodes, mean_cached):
                attention += grid(decodes, mean_cached)
            else:
                attention += self._continued(
                    "attention_decode", grid, decodes, mean_cached
                )
                missed |= 32
        times = OperatorTimes(
            attention,
            self._mlp[tokens],
            self._moe[tokens] + self._moe_routed[routed],
            self._embedding[tokens],
            self._head[sequences],
        )
        return times, missed
