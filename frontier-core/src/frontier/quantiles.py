"""Latency distributions in bounded memory: exact while small, a sketch when large.

A :class:`Distribution` keeps its samples (8 bytes each) until it holds
``exact_limit`` of them, so small runs report exact statistics: percentiles like
``numpy.percentile`` (linear interpolation), mean and standard deviation of the
sorted samples. Past the limit it folds the samples into a logarithmic histogram (the
DDSketch construction of Masson, Rim and Lee, VLDB 2019): bucket ``i`` holds values
in ``(gamma ** (i - 1), gamma ** i]`` with ``gamma = (1 + a) / (1 - a)``, and a
percentile is reported as its bucket's centre ``2 gamma ** i / (gamma + 1)``, within
a relative error ``a`` of the true sample (``a = 0.001``, i.e. 0.1%). In that mode
count, minimum and maximum stay exact, the mean is exact to the nanosecond (an
integer sum of the samples in units of ``2 ** -30``) and the standard deviation
comes from the bucket centres (within 0.1%). Memory is at most ``exact_limit``
samples or the histogram's fixed array, whatever the number of samples.

Nothing depends on the order in which samples arrive: adding ``k`` copies of a
value at once gives, to the last bit, what adding them one by one in any order gives.
Samples are buffered and accounted in vectorised chunks, so adding one costs about
as much as appending it to a list.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

__all__ = ["Distribution"]

_PERCENTILES = (50, 90, 95, 99)
_SCALE = float(1 << 30)
_FLUSH = 4096


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
        self._count = 0
        self._sum_units = 0
        self._min = math.inf
        self._max = -math.inf

    @property
    def is_exact(self) -> bool:
        """Whether statistics are still computed from every sample."""
        return self._samples is not None

    @property
    def count(self) -> int:
        """Samples added."""
        if self._samples is not None:
            return len(self._samples)
        self._flush()
        return self._count

    def add(self, value: float) -> None:
        """Add one sample."""
        self.add_many((value,))

    def add_many(self, values: list[float] | tuple[float, ...]) -> None:
        """Add each of ``values`` once."""
        samples = self._samples
        if samples is not None:
            samples.extend(values)
            if len(samples) > self.exact_limit:
                self._to_sketch()
            return
        self._pending.extend(values)
        self._pending_counts.extend([1] * len(values))
        if len(self._pending) >= _FLUSH:
            self._flush()

    def add_repeated(self, values: list[float], counts: list[int]) -> None:
        """Add ``counts[i]`` copies of ``values[i]`` for every ``i``."""
        samples = self._samples
        if samples is not None:
            for value, count in zip(values, counts, strict=True):
                if count > 0:
                    samples.extend([value] * count)
            if len(samples) > self.exact_limit:
                self._to_sketch()
            return
        self._pending.extend(values)
        self._pending_counts.extend(counts)
        if len(self._pending) >= _FLUSH:
            self._flush()

    def _to_sketch(self) -> None:
        samples = self._samples
        self._samples = None
        self._buckets = np.zeros(self._size, dtype=np.int64)
        data = np.frombuffer(samples, dtype=float)
        self._account(data, np.ones(data.size, dtype=np.int64))

    def _flush(self) -> None:
        if self._pending:
            values = np.array(self._pending, dtype=float)
            counts = np.array(self._pending_counts, dtype=np.int64)
            self._pending.clear()
            self._pending_counts.clear()
            keep = counts > 0
            self._account(values[keep], counts[keep])

    def _account(self, values: np.ndarray, counts: np.ndarray) -> None:
        if values.size == 0:
            return
        self._count += int(counts.sum())
        units = np.rint(values * _SCALE).astype(np.int64)
        # Chunks keep the int64 products far from overflow; Python ints add them.
        for start in range(0, units.size, 1024):
            self._sum_units += int(
                np.dot(units[start : start + 1024], counts[start : start + 1024])
            )
        self._min = min(self._min, float(values.min()))
        self._max = max(self._max, float(values.max()))
        positive = values > 0
        self._zeros += int(counts[~positive].sum())
        index = np.ceil(np.log(values[positive]) / self._log_gamma).astype(np.int64)
        index -= self._offset
        np.clip(index, 0, self._size - 1, out=index)
        np.add.at(self._buckets, index, counts[positive])

    def _centres(self) -> np.ndarray:
        exponents = np.arange(self._size) + self._offset
        return 2 * self._gamma**exponents / (self._gamma + 1)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100), numpy's linear rule when exact."""
        if self._samples is not None:
            if not self._samples:
                return math.nan
            return float(np.percentile(np.frombuffer(self._samples, dtype=float), q))
        self._flush()
        if not self._count:
            return math.nan
        rank = q / 100 * (self._count - 1)
        if rank < self._zeros:
            return 0.0
        cumulative = np.cumsum(self._buckets)
        index = int(np.searchsorted(cumulative, rank - self._zeros, side="right"))
        centre = 2 * self._gamma ** (index + self._offset) / (self._gamma + 1)
        return min(max(centre, self._min), self._max)

    def summary(self, scale: float = 1.0) -> dict[str, float | int | bool]:
        """Count, mean, std, min, max, p50/p90/p95/p99 and median, times ``scale``.

        ``exact`` says whether the statistics are exact or from the sketch.
        """
        if self._samples is not None:
            if not self._samples:
                return {"count": 0}
            data = np.sort(np.frombuffer(self._samples, dtype=float))
            count = int(data.size)
            mean = float(data.mean())
            std = float(data.std())
            low, high = float(data[0]), float(data[-1])
            values = np.percentile(data, _PERCENTILES)
        else:
            self._flush()
            count = self._count
            if not count:
                return {"count": 0}
            mean = self._sum_units / count / _SCALE
            centres = self._centres()
            spread = float(np.dot(self._buckets, (centres - mean) ** 2))
            spread += self._zeros * mean * mean
            std = math.sqrt(spread / count)
            low, high = self._min, self._max
            values = [self.percentile(q) for q in _PERCENTILES]
        result: dict[str, float | int | bool] = {
            "count": count,
            "mean": mean * scale,
            "std": std * scale,
            "min": low * scale,
            "max": high * scale,
        }
        for pct, value in zip(_PERCENTILES, values, strict=True):
            result[f"p{pct}"] = float(value) * scale
        result["median"] = result["p50"]
        result["exact"] = self._samples is not None
        return result
