"""Fitting the roofline's per-operator factors to a profile.

For each operator the fit chooses a compute efficiency ``e_c``, a memory
efficiency ``e_m`` (both in (0, 1]) and an overhead ``o >= 0`` that minimise the
squared relative error of::

    max(flops / (peak * e_c), bytes / (bandwidth * e_m)) + o

Asked to (``combine="best"``), it also fits the two times added instead of
overlapped and keeps the form with the smaller error per operator. GEMMs between
the memory- and the compute-bound regime fit the sum better on the profile they
were measured on, but the sum's smaller overheads carry worse to other devices
(see docs/predictors.md), so the roofline's ``max`` is the default.
over the operator's samples. The efficiencies are searched on a logarithmic grid
(then on three finer grids around the best point); for each pair the best overhead has a
closed form (weighted least squares, clipped at zero). Samples measured as zero
are left out; an operator measured as zero everywhere keeps the defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from frontier_predictors.operators import OPERATORS
from frontier_predictors.profiles import OperatorSamples
from frontier_predictors.roofline import CALIBRATION_FORMAT, OperatorFactors, Roofline

__all__ = ["COMBINE", "calibrate", "fit_factors", "write_calibration"]

COMBINE = ("max", "best")
"""How calibration combines compute and memory time: the roofline's ``max``, or
the better fit of ``max`` and ``sum`` per operator."""

_LOW = 1e-6


def _best_overhead(base: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``base`` (candidate times without overhead), the overhead
    minimising the squared relative error against ``y``, and that error."""
    weight = 1.0 / (y * y)
    overhead = ((y - base) * weight).sum(axis=-1) / weight.sum()
    overhead = np.clip(overhead, 0.0, None)
    error = (((base + overhead[..., None]) - y) / y) ** 2
    return overhead, error.mean(axis=-1)


def _search(
    compute_s: np.ndarray, memory_s: np.ndarray, y: np.ndarray, overlap: bool
) -> tuple[float, float, float, float]:
    """Best ``(error, e_c, e_m, overhead)`` of one way of combining the times."""
    uses_compute = bool(np.any(compute_s > 0))
    best = (np.inf, 1.0, 1.0, 0.0)

    def search(computes: np.ndarray, memories: np.ndarray) -> None:
        nonlocal best
        for e_c in computes:
            compute = compute_s / e_c
            memory = memory_s[None, :] / memories[:, None]
            base = np.maximum(compute, memory) if overlap else compute + memory
            overhead, error = _best_overhead(base, y)
            k = int(np.argmin(error))
            if error[k] < best[0]:
                best = (
                    float(error[k]),
                    float(e_c),
                    float(memories[k]),
                    float(overhead[k]),
                )

    coarse = np.geomspace(_LOW, 1.0, 73)
    search(coarse if uses_compute else np.array([1.0]), coarse)
    for spread in (1.3, 1.05, 1.01):
        _, e_c, e_m, _ = best
        memories = np.unique(
            np.clip(np.geomspace(e_m / spread, e_m * spread, 21), _LOW, 1)
        )
        computes = np.unique(
            np.clip(np.geomspace(e_c / spread, e_c * spread, 21), _LOW, 1)
        )
        search(computes if uses_compute else np.array([1.0]), memories)
    return best


def fit_factors(
    flops: np.ndarray,
    traffic: np.ndarray,
    time_s: np.ndarray,
    peak: float,
    bandwidth: float,
    combine: str = "max",
) -> tuple[OperatorFactors, float]:
    """The factors that fit ``time_s`` best, and their mean absolute relative error.

    With ``combine="max"`` (the roofline) compute and memory time overlap; with
    ``"best"`` the fit also tries adding them up and keeps the form with the
    smaller error.

    Args:
        flops: FLOPs of each sample.
        traffic: Bytes of each sample.
        time_s: Measured seconds of each sample (all positive).
        peak: Device peak FLOP/s.
        bandwidth: Device memory bandwidth, B/s.
    """
    compute_s = np.asarray(flops, float) / peak
    memory_s = np.asarray(traffic, float) / bandwidth
    y = np.asarray(time_s, float)
    if combine not in COMBINE:
        raise ValueError(
            f"combine must be one of {', '.join(COMBINE)}, got {combine!r}"
        )
    forms = (True, False) if combine == "best" else (True,)
    fits = {overlap: _search(compute_s, memory_s, y, overlap) for overlap in forms}
    # Ties (memory-bound operators, where both forms agree) keep the roofline's max.
    overlap = combine == "max" or fits[True][0] <= fits[False][0] * (1 + 1e-9)
    _, e_c, e_m, overhead = fits[overlap]
    if overlap:
        predicted = np.maximum(compute_s / e_c, memory_s / e_m) + overhead
    else:
        predicted = compute_s / e_c + memory_s / e_m + overhead
    mape = float(np.mean(np.abs(predicted - y) / y))
    return OperatorFactors(e_c, e_m, overhead, overlap), mape


def calibrate(
    samples: dict[str, OperatorSamples], roofline: Roofline, combine: str = "max"
) -> tuple[dict[str, OperatorFactors], dict[str, dict[str, Any]]]:
    """Fit every profiled operator's factors for ``roofline``'s model and device
    (``combine`` as in :func:`fit_factors`).

    Returns:
        ``(factors, report)``: fitted factors by operator, and per operator the
        number of samples and the fit's MAPE (percent).
    """
    costs = roofline.costs
    bandwidth = roofline.bandwidth
    factors: dict[str, OperatorFactors] = {}
    report: dict[str, dict[str, Any]] = {}
    for name, data in sorted(samples.items()):
        if not costs.applies(name):
            continue
        positive = data.time_ms > 0
        if positive.sum() == 0:
            report[name] = {
                "samples": len(data),
                "mape_percent": None,
                "note": "all zero",
            }
            continue
        x = data.x[positive]
        y = data.time_ms[positive] / 1e3
        if x.ndim == 2:
            flops, traffic = costs.flops_bytes(name, x[:, 0], x[:, 1])
        else:
            flops, traffic = costs.flops_bytes(name, x)
        peak = roofline.peak_for(name)
        fitted, mape = fit_factors(flops, traffic, y, peak, bandwidth, combine)
        factors[name] = fitted
        report[name] = {"samples": int(positive.sum()), "mape_percent": 100 * mape}
    return factors, report


def write_calibration(
    path: str | Path,
    factors: dict[str, OperatorFactors],
    report: dict[str, dict[str, Any]],
    source: dict[str, Any],
) -> None:
    """Write a calibration JSON that ``RooflineConfig.calibration_path`` loads.

    Args:
        path: Where to write.
        factors: Fitted factors by operator.
        report: Per-operator fit statistics (kept for the reader).
        source: What was fitted: profile directory, model, device, TP size.
    """
    data = {
        "format": CALIBRATION_FORMAT,
        "source": source,
        "operators": {
            name: {**factors[name].as_dict(), **report.get(name, {})}
            for name in sorted(factors)
            if name in OPERATORS
        },
    }
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")
