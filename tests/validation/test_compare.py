"""Measured against simulated: statistics, differences and the KS statistic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from frontier.validation.compare import compare, ks_statistic


def test_ks_of_equal_samples_is_zero():
    """Two identical samples have identical CDFs."""
    assert ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == 0


def test_ks_of_disjoint_samples_is_one():
    """Every value of one sample below every value of the other: distance 1."""
    assert ks_statistic(np.array([1.0, 2.0]), np.array([5.0, 6.0])) == 1


def test_ks_is_the_largest_cdf_gap():
    """{1, 2, 3, 4} against {3, 4, 5, 6}: at x = 2 the CDFs are 1/2 and 0."""
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([3.0, 4.0, 5.0, 6.0])
    # F_a(2) = 2/4, F_b(2) = 0; also at x = 4: 1 - 2/4. Largest gap 0.5.
    assert ks_statistic(a, b) == pytest.approx(0.5)


def test_ks_ignores_missing_values():
    """NaNs (requests without the metric) are left out."""
    assert ks_statistic(np.array([1.0, np.nan]), np.array([1.0])) == 0


def test_difference_is_relative_to_the_measured_value():
    """Simulated mean 110 against measured 100 is +10 %."""
    result = compare(
        {"ttft": np.array([90.0, 110.0])}, {"ttft": np.array([100.0, 120.0])}
    )
    metric = result["ttft"]
    # Means 100 and 110: 100 * (110 - 100) / 100 = +10 %.
    assert metric.difference_pct("mean") == pytest.approx(10.0)
    assert metric.count == 2


def test_requests_missing_on_either_side_are_left_out():
    """A request without a simulated value counts on neither side."""
    result = compare(
        {"tpot": np.array([10.0, 20.0, 1000.0])},
        {"tpot": np.array([10.0, 20.0, np.nan])},
    )
    metric = result["tpot"]
    assert metric.count == 2
    assert metric.real["mean"] == pytest.approx(15.0)


def test_percentiles_interpolate_linearly():
    """p90 of 0..10 is 9, as numpy.percentile computes it."""
    values = np.arange(11, dtype=float)
    metric = compare({"latency": values}, {"latency": values})["latency"]
    assert metric.real["p90"] == pytest.approx(9.0)
    assert metric.real["median"] == pytest.approx(5.0)


def test_rows_hold_every_metric_and_statistic():
    """Two metrics make eight rows (mean, median, p90, p99 each)."""
    data = {"ttft": np.array([1.0]), "tpot": np.array([2.0])}
    rows = compare(data, data).rows()
    assert len(rows) == 8
    assert all(not math.isnan(row["difference_pct"]) for row in rows)
