"""Latency distributions in bounded memory: exact while small, a sketch when large.

A :class:`Distribution` keeps its samples (8 bytes each) until it holds
``exact_limit`` of them, so small runs report exact percentiles, computed like
``numpy.percentile`` (linear interpolation). Past the limit it folds the samples into
a logarithmic histogram (the DDSketch construction of Masson, Rim and Lee, VLDB 2019):
bucket ``i`` holds values in ``(gamma ** (i - 1), gamma ** i]`` with
``gamma = (1 + a) / (1 - a)``, and a percentile is reported as its bucket's centre
``2 gamma ** i / (gamma + 1)``, within a relative error ``a`` of the true sample
(``a = 0.001``, i.e. 0.1%). Count, mean, standard deviation, minimum and maximum stay
exact in both modes. Memory is at most ``exact_limit`` samples or the histogram's
fixed array, whichever is in use, whatever the number of samples.

Sums are kept as integers of ``2 ** -40`` units (about a picosecond when the values
are seconds), so the mean and standard deviation do not depend on the order in which
samples arrive: adding ``k`` copies of a value at once gives, to the last bit, what
adding them one by one gives.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

__all__ = ["Distribution"]

_PERCENTILES = (50, 90, 95, 99)
_SCALE = float(1 << 40)


class Distribution:
    """Streaming statistics of non-negative values (seconds, tokens, ...).

    Args:
        exact_limit: Samples kept exactly before switching to the sketch.
        relative_accuracy: The sketch's relative error bound ``a``.
        lowest: Smallest positive value the sketch resolves; smaller ones are
            counted in its first bucket.
        highest: Largest value the sketch resolves; larger ones go to its last.
    """

    def __init__(
        self,
        exact_limit: int = 1 << 18,
        relative_accuracy: float = 1e-3,
        lowest: float = 1e-9,
        highest: float = 1e9,
    ) -> None:
        self.exact_limit = exact_limit
        self._samples: array | None = array("d")
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._offset = math.floor(math.log(lowest) / self._log_gamma)
        self._size = math.ceil(math.log(highest) / self._log_gamma) - self._offset + 1
        self._buckets: np.ndarray | None = None
        self._pending: list[float] = []
        self._pending_counts: list[int] = []
        self._zeros = 0
        self.count = 0
        self._sum = 0
        self._sum_squares = 0
        self.min = math.inf
        self.max = -math.inf

    @property
    def is_exact(self) -> bool:
        """Whether percentiles are still computed from every sample."""
        return self._samples is not None

    def add(self, value: float) -> None:
        """Add one sample."""
        self.add_many((value,))

    def add_many(self, values: list[float] | tuple[float, ...]) -> None:
        """Add each of ``values`` once."""
        if not values:
            return
        total = 0
        squares = 0
        for value in values:
            units = round(value * _SCALE)
            total += units
            squares += units * units
        self.count += len(values)
        self._sum += total
        self._sum_squares += squares
        low = min(values)
        high = max(values)
        if low < self.min:
            self.min = low
        if high > self.max:
            self.max = high
        samples = self._samples
        if samples is not None:
            samples.extend(values)
            if len(samples) > self.exact_limit:
                self._to_sketch()
        else:
            self._pending.extend(values)
            self._pending_counts.extend([1] * len(values))
            if len(self._pending) >= 4096:
                self._flush()

    def add_repeated(self, values: list[float], counts: list[int]) -> None:
        """Add ``counts[i]`` copies of ``values[i]`` for every ``i``."""
        added = 0
        total = 0
        squares = 0
        low = self.min
        high = self.max
        for value, count in zip(values, counts, strict=True):
            if count <= 0:
                continue
            units = round(value * _SCALE)
            added += count
            total += units * count
            squares += units * units * count
            if value < low:
                low = value
            if value > high:
                high = value
        if not added:
            return
        self.count += added
        self._sum += total
        self._sum_squares += squares
        self.min = low
        self.max = high
        samples = self._samples
        if samples is not None and len(samples) + added <= self.exact_limit:
            for value, count in zip(values, counts, strict=True):
                if count > 0:
                    samples.extend([value] * count)
            return
        if samples is not None:
            self._to_sketch()
        self._pending.extend(values)
        self._pending_counts.extend(counts)
        if len(self._pending) >= 4096:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            values = np.array(self._pending, dtype=float)
            counts = np.array(self._pending_counts, dtype=np.int64)
            self._pending.clear()
            self._pending_counts.clear()
            keep = counts > 0
            self._bucket_many(values[keep], counts[keep])

    def _to_sketch(self) -> None:
        self._buckets = np.zeros(self._size, dtype=np.int64)
        samples = np.frombuffer(self._samples, dtype=float)
        self._samples = None
        self._bucket_many(samples, np.ones(samples.size, dtype=np.int64))

    def _bucket_many(self, values: np.ndarray, counts: np.ndarray) -> None:
        positive = values > 0
        self._zeros += int(counts[~positive].sum())
        values = values[positive]
        counts = counts[positive]
        index = (
            np.ceil(np.log(values) / self._log_gamma).astype(np.int64) - self._offset
        )
        np.clip(index, 0, self._size - 1, out=index)
        np.add.at(self._buckets, index, counts)

    @property
    def mean(self) -> float:
        """Arithmetic mean (of the samples rounded to 2**-40)."""
        return self._sum / self.count / _SCALE if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation, from exact integer sums."""
        if not self.count:
            return math.nan
        numerator = self.count * self._sum_squares - self._sum * self._sum
        return math.sqrt(max(0, numerator)) / self.count / _SCALE

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100), numpy's linear rule when exact."""
        if not self.count:
            return math.nan
        if self._samples is not None:
            return float(np.percentile(np.frombuffer(self._samples, dtype=float), q))
        self._flush()
        rank = q / 100 * (self.count - 1)
        if rank < self._zeros:
            return 0.0
        cumulative = np.cumsum(self._buckets)
        index = int(np.searchsorted(cumulative, rank - self._zeros, side="right"))
        centre = 2 * self._gamma ** (index + self._offset) / (self._gamma + 1)
        return min(max(centre, self.min), self.max)

    def summary(self, scale: float = 1.0) -> dict[str, float | int | bool]:
        """Count, mean, std, min, max, p50/p90/p95/p99 and median, times ``scale``.

        ``exact`` says whether the percentiles are exact or from the sketch.
        """
        if not self.count:
            return {"count": 0}
        result: dict[str, float | int | bool] = {
            "count": self.count,
            "mean": self.mean * scale,
            "std": self.std * scale,
            "min": self.min * scale,
            "max": self.max * scale,
        }
        if self._samples is not None:
            data = np.frombuffer(self._samples, dtype=float)
            values = np.percentile(data, _PERCENTILES)
        else:
            values = [self.percentile(q) for q in _PERCENTILES]
        for pct, value in zip(_PERCENTILES, values, strict=True):
            result[f"p{pct}"] = float(value) * scale
        result["median"] = result["p50"]
        result["exact"] = self._samples is not None
        return result
