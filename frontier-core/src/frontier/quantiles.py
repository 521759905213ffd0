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
        self.count += 1
        units = round(value * _SCALE)
        self._sum += units
        self._sum_squares += units * units
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        samples = self._samples
        if samples is not None:
            samples.append(value)
            if len(samples) > self.exact_limit:
                self._to_sketch()
        else:
            pending = self._pending
            pending.append(value)
            if len(pending) >= 4096:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            values = np.array(self._pending)
            self._pending.clear()
            self._bucket_many(values, np.ones(values.size, dtype=np.int64))

    def add_repeated(self, values: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts[i]`` copies of ``values[i]`` for every ``i``."""
        values = np.asarray(values, dtype=float)
        counts = np.asarray(counts, dtype=np.int64)
        total = int(counts.sum())
        if total == 0:
            return
        self.count += total
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            units = round(value * _SCALE)
            self._sum += units * count
            self._sum_squares += units * units * count
        present = values[counts > 0]
        self.min = min(self.min, float(present.min()))
        self.max = max(self.max, float(present.max()))
        samples = self._samples
        if samples is not None and len(samples) + total <= self.exact_limit:
            samples.extend(np.repeat(values, counts).tolist())
            return
        if samples is not None:
            self._to_sketch()
        self._bucket_many(values, counts)

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
