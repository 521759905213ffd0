"""Training per-operator models and turning them into tables.

Each profiled operator gets its own regression model, trained on its samples with
fixed hyper-parameters (no search: the profiles are small and dense, and a search
would cost minutes for no measured gain). The model is then evaluated once on a
grid of the operator's features and kept only as that table
(:class:`~frontier_predictors.tables.OperatorTable`):

- count features (tokens, sequences, prefill tokens, decodes): every integer from
  the smallest to the largest profiled value;
- prefill attention: the profiled equivalent query lengths x profiled contexts;
- decode attention: every batch size up to the largest profiled x the profiled
  mean contexts.

Model inputs add the products the kernels scale with (``q c`` and ``q^2`` for
prefill, ``n m`` for decode). Trees learn the logarithm of the measured time over
the roofline's (calibrated to the same profile): that ratio changes slowly with
the features, so a piecewise-constant model of it is accurate between profiled
points, and its leaves average relative, not absolute, errors. Linear regression
fits the time itself on the physically motivated terms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from frontier_predictors.operators import OPERATORS, Feature
from frontier_predictors.profiles import OperatorSamples
from frontier_predictors.tables import OperatorTable

__all__ = ["LEARNERS", "make_model", "mape_percent", "train_tables"]

LEARNERS = ("random_forest", "linear", "lightgbm")

_MAX_AXIS = 256
"""Most grid points along an axis built from profiled values (quantiles beyond)."""


def make_model(learner: str, params: dict[str, Any], seed: int) -> Any:
    """A fresh regression model (scikit-learn interface) for ``learner``."""
    if learner == "random_forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=int(params.get("n_estimators", 64)),
            min_samples_leaf=int(params.get("min_samples_leaf", 1)),
            max_features=1.0,
            bootstrap=bool(params.get("bootstrap", True)),
            random_state=seed,
            n_jobs=int(params.get("n_jobs", -1)),
        )
    if learner == "linear":
        from sklearn.linear_model import LinearRegression

        return LinearRegression()
    if learner == "lightgbm":
        import lightgbm

        return lightgbm.LGBMRegressor(
            n_estimators=int(params.get("n_estimators", 300)),
            learning_rate=float(params.get("learning_rate", 0.05)),
            num_leaves=int(params.get("num_leaves", 15)),
            min_child_samples=int(params.get("min_child_samples", 2)),
            min_child_weight=0.0,
            subsample=1.0,
            colsample_bytree=1.0,
            random_state=seed,
            n_jobs=int(params.get("n_jobs", 1)),
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
    raise ValueError(f"unknown learner {learner!r}; known: {', '.join(LEARNERS)}")


def _design(learner: str, feature: Feature, x: np.ndarray) -> np.ndarray:
    """Model inputs for features ``x`` (``(n,)`` or ``(n, 2)``)."""
    if feature is Feature.PREFILL_ATTENTION:
        q, c = x[:, 0], x[:, 1]
        if learner == "linear":
            return np.column_stack([q, q * c, q * q])
        return np.column_stack([q, c, q * c, q * q])
    if feature is Feature.DECODE_ATTENTION:
        n, m = x[:, 0], x[:, 1]
        if learner == "linear":
            return np.column_stack([n, n * m])
        return np.column_stack([n, m, n * m])
    return np.asarray(x, float).reshape(-1, 1)


def _axis(values: np.ndarray, integers: bool) -> np.ndarray:
    """A sorted grid axis covering ``values``."""
    low, high = float(values.min()), float(values.max())
    if integers and high - low <= 65_536:
        return np.arange(math.floor(low), math.ceil(high) + 1, dtype=float)
    unique = np.unique(np.round(values, 6))
    if len(unique) > _MAX_AXIS:
        unique = np.unique(np.quantile(unique, np.linspace(0, 1, _MAX_AXIS)))
    return unique


def _grid(feature: Feature, x: np.ndarray) -> tuple[np.ndarray, ...]:
    if feature is Feature.PREFILL_ATTENTION:
        return _axis(x[:, 0], False), _axis(x[:, 1], False)
    if feature is Feature.DECODE_ATTENTION:
        n_axis = _axis(x[:, 0], integers=bool(np.all(x[:, 0] == np.round(x[:, 0]))))
        return n_axis, _axis(x[:, 1], False)
    return (_axis(x, integers=bool(np.all(x == np.round(x)))),)


def mape_percent(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    """Mean absolute percentage error over samples measured above zero."""
    keep = measured > 0
    if not keep.any():
        return None
    return float(
        100 * np.mean(np.abs(predicted[keep] - measured[keep]) / measured[keep])
    )


def bias_percent(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    """Mean signed percentage error (positive: predictions too long)."""
    keep = measured > 0
    if not keep.any():
        return None
    return float(100 * np.mean((predicted[keep] - measured[keep]) / measured[keep]))


def p90_percent(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    """90th percentile of the absolute percentage error (samples above zero)."""
    keep = measured > 0
    if not keep.any():
        return None
    errors = np.abs(predicted[keep] - measured[keep]) / measured[keep]
    return float(100 * np.quantile(errors, 0.9))


Baseline = Callable[[str, np.ndarray, "np.ndarray | None"], np.ndarray]
"""Roofline seconds of an operator at features ``(x, y)``: trees learn the ratio."""


def _baseline_at(baseline: Baseline | None, name: str, x: np.ndarray) -> np.ndarray:
    if baseline is None:
        return np.ones(len(x))
    if x.ndim == 2:
        values = baseline(name, x[:, 0], x[:, 1])
    else:
        values = baseline(name, x, None)
    values = np.asarray(values, float) * 1e3
    return np.where(values > 0, values, 1.0)


def train_operator(
    samples: OperatorSamples,
    learner: str,
    params: dict[str, Any],
    seed: int,
    baseline: Baseline | None = None,
) -> OperatorTable:
    """Fit one operator's model and tabulate it on its grid (seconds).

    With a ``baseline`` (the calibrated roofline), trees learn the logarithm of
    the measured time over the baseline's, a quantity that changes slowly with
    the features, and the table is that ratio times the baseline.
    """
    feature = OPERATORS[samples.name].feature
    x = np.asarray(samples.x, float)
    y = np.asarray(samples.time_ms, float)
    axes = _grid(feature, x)
    if feature.is_2d:
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    else:
        mesh = axes[0]
    trees = learner != "linear"
    if np.all(y == y[0]):
        values = np.full(len(mesh), y[0])
    else:
        model = make_model(learner, params, seed)
        positive = y > 0
        if trees and positive.all():
            base = _baseline_at(baseline, samples.name, x)
            model.fit(_design(learner, feature, x), np.log(y / base))
            ratio = np.exp(model.predict(_design(learner, feature, mesh)))
            values = ratio * _baseline_at(baseline, samples.name, mesh)
        else:
            model.fit(_design(learner, feature, x), y)
            values = np.clip(model.predict(_design(learner, feature, mesh)), 0.0, None)
    shape = tuple(len(a) for a in axes)
    max_sum = (
        float(np.max(x[:, 0] + x[:, 1]))
        if feature is Feature.PREFILL_ATTENTION
        else math.inf
    )
    return OperatorTable(samples.name, axes, values.reshape(shape) / 1e3, max_sum)


def train_tables(
    samples: dict[str, OperatorSamples],
    learner: str,
    params: dict[str, Any],
    seed: int,
    progress: Callable[[str], None] | None = None,
    baseline: Baseline | None = None,
) -> tuple[dict[str, OperatorTable], dict[str, dict[str, Any]]]:
    """Train every operator's model and tabulate it.

    Returns:
        ``(tables, report)``: tables by operator; per operator the number of
        samples and the training MAPE and p90 error (percent) of the table itself
        at the training samples.
    """
    tables: dict[str, OperatorTable] = {}
    report: dict[str, dict[str, Any]] = {}
    for name in sorted(samples):
        data = samples[name]
        if progress is not None:
            progress(name)
        table = train_operator(data, learner, params, seed, baseline)
        tables[name] = table
        if data.x.ndim == 2:
            predicted = table.lookup(data.x[:, 0], data.x[:, 1])
        else:
            predicted = table.lookup(data.x)
        measured = data.time_ms / 1e3
        report[name] = {
            "samples": len(data),
            "mape_percent": mape_percent(predicted, measured),
            "p90_percent": p90_percent(predicted, measured),
        }
    return tables, report
