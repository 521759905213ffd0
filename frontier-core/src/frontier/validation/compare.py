"""Measured against simulated latencies: summary statistics and distance.

For each metric the table gives both sides' mean, median, p90 and p99 (NumPy's
linear-interpolation percentiles, as ``vllm bench serve`` computes them), the
simulator's difference in percent of the measured value, and the two-sample
Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs,
``sup_x |F_real(x) - F_sim(x)|``, from 0 (same distribution) to 1.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

__all__ = ["STATISTICS", "Comparison", "MetricComparison", "compare", "ks_statistic"]

STATISTICS = ("mean", "median", "p90", "p99")


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of ``a`` and ``b`` (NaNs dropped).

    Both empirical CDFs are evaluated at every sample of either, so the supremum
    is exact.
    """
    a = np.sort(np.asarray(a, dtype=float)[~np.isnan(a)])
    b = np.sort(np.asarray(b, dtype=float)[~np.isnan(b)])
    if not len(a) or not len(b):
        return float("nan")
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / len(a)
    cdf_b = np.searchsorted(b, points, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _statistics(values: np.ndarray) -> dict[str, float]:
    values = values[~np.isnan(values)]
    if not len(values):
        return dict.fromkeys(STATISTICS, float("nan"))
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "mean": float(values.mean()),
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
    }


@attrs.frozen(kw_only=True)
class MetricComparison:
    """One metric on both sides.

    Attributes:
        name: ``ttft``, ``tpot`` or ``latency``.
        real: Measured statistics, milliseconds.
        simulated: Simulated statistics, milliseconds.
        ks: Kolmogorov-Smirnov statistic of the two samples.
        count: Requests that have the metric on both sides.
    """

    name: str
    real: dict[str, float]
    simulated: dict[str, float]
    ks: float
    count: int

    def difference_pct(self, statistic: str) -> float:
        """``100 (simulated - real) / real`` of one statistic."""
        real = self.real[statistic]
        return 100.0 * (self.simulated[statistic] - real) / real if real else np.nan

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: both sides, differences and the KS statistic."""
        return {
            "count": self.count,
            "real_ms": self.real,
            "simulated_ms": self.simulated,
            "difference_pct": {s: self.difference_pct(s) for s in STATISTICS},
            "ks_statistic": self.ks,
        }


@attrs.frozen(kw_only=True)
class Comparison:
    """Every metric of one run."""

    metrics: tuple[MetricComparison, ...]

    def __getitem__(self, name: str) -> MetricComparison:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per metric and statistic (for the CSV table)."""
        rows = []
        for metric in self.metrics:
            for statistic in STATISTICS:
                rows.append(
                    {
                        "metric": metric.name,
                        "statistic": statistic,
                        "real_ms": metric.real[statistic],
                        "simulated_ms": metric.simulated[statistic],
                        "difference_pct": metric.difference_pct(statistic),
                        "ks_statistic": metric.ks,
                    }
                )
        return rows


def compare(
    real: dict[str, np.ndarray], simulated: dict[str, np.ndarray]
) -> Comparison:
    """Compare per-request arrays of equal length and order, metric by metric.

    A request counts for a metric where both sides have a value (a request with
    one output token has no TPOT; one the simulator did not finish has nothing).
    """
    metrics = []
    for name in real:
        both = ~np.isnan(real[name]) & ~np.isnan(simulated[name])
        metrics.append(
            MetricComparison(
                name=name,
                real=_statistics(real[name][both]),
                simulated=_statistics(simulated[name][both]),
                ks=ks_statistic(real[name][both], simulated[name][both]),
                count=int(both.sum()),
            )
        )
    return Comparison(metrics=tuple(metrics))
