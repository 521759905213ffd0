"""Arrival processes and length distributions, drawn in seeded chunks.

Every generator draws from its own ``numpy.random.Generator`` (PCG64) seeded from
the run's seed, in chunks of :data:`CHUNK` values, so a workload of a million
requests costs a few hundred vectorised draws and the same seed always gives the
same requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import attrs
import numpy as np

from frontier.config import FieldValueError, positive

__all__ = ["CHUNK", "LengthDistribution", "arrival_times", "lengths"]

CHUNK = 4096

ArrivalProcess = Literal["poisson", "gamma", "fixed", "offline"]


@attrs.frozen(kw_only=True)
class LengthDistribution:
    """A distribution of token counts.

    Attributes:
        distribution: ``fixed`` (always ``value``), ``uniform`` (integers in
            ``[min, max]``), ``zipf`` (``P(min + k - 1) ~ k ** -theta`` for ``k`` in
            ``1 .. max - min + 1``), or ``lognormal`` (median ``value``, log-space
            standard deviation ``sigma``, clipped to ``[min, max]``).
        value: The fixed length, or the lognormal median.
        min: Smallest length (uniform, zipf, lognormal).
        max: Largest length (uniform, zipf, lognormal).
        theta: Zipf exponent.
        sigma: Lognormal standard deviation of ``ln(length)``.
    """

    distribution: Literal["fixed", "uniform", "zipf", "lognormal"] = "fixed"
    value: int = attrs.field(default=512, validator=positive)
    min: int = attrs.field(default=1, validator=positive)
    max: int = attrs.field(default=4096, validator=positive)
    theta: float = 1.1
    sigma: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.min > self.max:
            raise FieldValueError("min", f"{self.min} is larger than max ({self.max})")
        if self.theta <= 0:
            raise FieldValueError("theta", f"must be positive, got {self.theta}")
        if self.sigma < 0:
            raise FieldValueError("sigma", f"must be zero or more, got {self.sigma}")

    @property
    def mean(self) -> float:
        """The distribution's mean length in tokens."""
        if self.distribution == "fixed":
            return float(self.value)
        if self.distribution == "uniform":
            return (self.min + self.max) / 2
        if self.distribution == "zipf":
            ranks = np.arange(1, self.max - self.min + 2, dtype=float)
            weights = ranks**-self.theta
            return float(self.min - 1 + (ranks * weights).sum() / weights.sum())
        draws = lengths(self, np.random.default_rng(0))
        return float(np.mean([next(draws) for _ in range(CHUNK)]))


def lengths(spec: LengthDistribution, rng: np.random.Generator) -> Iterator[int]:
    """Endless token counts from ``spec``, drawn ``CHUNK`` at a time."""
    if spec.distribution == "fixed":
        while True:
            yield spec.value
    cdf = None
    if spec.distribution == "zipf":
        ranks = np.arange(1, spec.max - spec.min + 2, dtype=float)
        cdf = np.cumsum(ranks**-spec.theta)
        cdf /= cdf[-1]
    while True:
        if spec.distribution == "uniform":
            chunk = rng.integers(spec.min, spec.max, size=CHUNK, endpoint=True)
        elif cdf is not None:
            chunk = spec.min + np.searchsorted(cdf, rng.random(CHUNK), side="right")
            chunk = np.minimum(chunk, spec.max)
        else:
            chunk = np.rint(
                spec.value * np.exp(spec.sigma * rng.standard_normal(CHUNK))
            )
            chunk = np.clip(chunk, spec.min, spec.max)
        yield from chunk.astype(np.int64).tolist()


def arrival_times(
    process: ArrivalProcess, qps: float, cv: float, rng: np.random.Generator
) -> Iterator[float]:
    """Endless arrival times in seconds, from 0, with mean rate ``qps`` per second.

    Poisson: exponential gaps of mean ``1 / qps``. Gamma: gaps with shape
    ``1 / cv**2`` and scale ``cv**2 / qps`` (mean ``1 / qps``, coefficient of variation
    ``cv``). Fixed: gaps of exactly ``1 / qps``. Offline: every request at 0.
    The first request arrives at 0 in every process.
    """
    if process == "offline":
        while True:
            yield 0.0
    now = 0.0
    if process == "fixed":
        gap = 1.0 / qps
        index = 0
        while True:
            yield index * gap
            index += 1
    yield now
    while True:
        if process == "poisson":
            gaps = rng.exponential(1.0 / qps, size=CHUNK)
        else:
            shape = 1.0 / (cv * cv)
            gaps = rng.gamma(shape, 1.0 / (qps * shape), size=CHUNK)
        for time in (now + np.cumsum(gaps)).tolist():
            yield time
        now = time
