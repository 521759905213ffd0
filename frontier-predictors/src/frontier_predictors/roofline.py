"""The roofline predictor: each operator is bound by compute or by memory traffic.

For every operator of a layer, on one tensor-parallel rank (Williams, Waterman and
Patterson, "Roofline", CACM 2009)::

    time_s = max(flops / (peak_flops * compute_efficiency),
                 bytes / (memory_bandwidth * memory_efficiency)) + overhead_s

with FLOPs and bytes from :mod:`frontier_predictors.costs`. Uncalibrated, the
efficiencies are the config's per-family factors (GEMM, attention, elementwise;
typical fractions of peak on A100/H100-class GPUs) and the overhead is
``launch_overhead_us`` per kernel. ``frontier train --predictor roofline`` fits a
compute efficiency, a memory efficiency and an overhead per operator to a profile
(and whether the two times overlap, as above, or add up, whichever fits better)
and writes them to a JSON file; ``calibration_path`` loads it. The efficiencies are
fractions of the device's peaks, so a calibration carries to devices and models
that were never profiled.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from frontier.config import FieldValueError, PredictorConfig, path_field
from frontier.errors import ConfigError
from frontier.models import DTYPE_BYTES
from frontier.plugins import ExecutionContext, OperatorTimes, Predictor

from frontier_predictors.costs import QUANTISED_OPERATORS, OperatorCosts
from frontier_predictors.operators import OPERATORS, Cost

__all__ = [
    "CALIBRATION_FORMAT",
    "OperatorFactors",
    "Roofline",
    "RooflineConfig",
    "RooflinePredictor",
    "default_factors",
    "load_calibration",
    "roofline_for",
]

CALIBRATION_FORMAT = "frontier-roofline-calibration/1"


def _fraction(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise FieldValueError(attribute.name, f"must be in (0, 1], got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise FieldValueError(attribute.name, f"must be zero or more, got {value!r}")


@attrs.frozen(kw_only=True)
class RooflineConfig(PredictorConfig):
    """Efficiency factors of the roofline predictor.

    Attributes:
        gemm_compute_efficiency: Fraction of peak FLOP/s a linear layer reaches.
        gemm_memory_efficiency: Fraction of memory bandwidth a linear layer reaches.
        attention_compute_efficiency: Fraction of peak FLOP/s of prefill attention.
        attention_memory_efficiency: Fraction of bandwidth of decode attention.
        elementwise_memory_efficiency: Fraction of bandwidth of elementwise ops.
        launch_overhead_us: Fixed cost per kernel, microseconds.
        calibration_path: JSON file of fitted per-operator factors (written by
            ``frontier train --predictor roofline``); operators it lists use its
            factors instead of the ones above.
    """

    type: str = "roofline"
    gemm_compute_efficiency: float = attrs.field(default=0.7, validator=_fraction)
    gemm_memory_efficiency: float = attrs.field(default=0.8, validator=_fraction)
    attention_compute_efficiency: float = attrs.field(default=0.5, validator=_fraction)
    attention_memory_efficiency: float = attrs.field(default=0.7, validator=_fraction)
    elementwise_memory_efficiency: float = attrs.field(default=0.6, validator=_fraction)
    launch_overhead_us: float = attrs.field(default=4.0, validator=_non_negative)
    calibration_path: str | None = path_field(default=None)


@attrs.frozen
class OperatorFactors:
    """How close one operator gets to the device's peaks.

    Attributes:
        compute_efficiency: Fraction of peak FLOP/s.
        memory_efficiency: Fraction of memory bandwidth.
        overhead_s: Fixed time added (kernel launches, synchronisation), seconds.
        overlap: Whether compute and memory time overlap (``max``, the roofline)
            or add up (``sum``, a kernel that does not hide one behind the other);
            a calibration picks whichever fits the operator better.
    """

    compute_efficiency: float
    memory_efficiency: float
    overhead_s: float
    overlap: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON form (overhead in microseconds)."""
        return {
            "compute_efficiency": self.compute_efficiency,
            "memory_efficiency": self.memory_efficiency,
            "overhead_us": self.overhead_s * 1e6,
            "combine": "max" if self.overlap else "sum",
        }


def default_factors(config: RooflineConfig | None = None) -> dict[str, OperatorFactors]:
    """Per-operator factors from the config's per-family efficiencies.

    Operators marked ``profiled_only`` get none: the roofline answers zero for
    them unless a calibration provides factors.
    """
    config = config or RooflineConfig()
    launch = config.launch_overhead_us * 1e-6
    result = {}
    for name, op in OPERATORS.items():
        if op.profiled_only:
            continue
        if op.cost is Cost.GEMM:
            compute, memory = (
                config.gemm_compute_efficiency,
                config.gemm_memory_efficiency,
            )
        elif op.cost is Cost.ATTENTION:
            compute = config.attention_compute_efficiency
            memory = config.attention_memory_efficiency
        else:
            compute, memory = 1.0, config.elementwise_memory_efficiency
        result[name] = OperatorFactors(compute, memory, launch * op.kernels)
    return result


def load_calibration(path: str | Path) -> dict[str, OperatorFactors]:
    """Per-operator factors from a calibration JSON file.

    Raises:
        ConfigError: The file is missing, is not a calibration, or holds a factor
            out of range; the message names the file and the operator.
    """
    path = Path(path)
    where = f"predictor.calibration_path {path}"
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{where} does not exist; write it with `frontier train`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise ConfigError(
            f"{where} is not a roofline calibration (its 'format' must be "
            f"{CALIBRATION_FORMAT!r}); write one with "
            "`frontier train --predictor roofline`"
        )
    operators = data.get("operators")
    if not isinstance(operators, dict):
        raise ConfigError(f"{where}: 'operators' must be an object")
    result = {}
    for name, entry in operators.items():
        if name not in OPERATORS:
            raise ConfigError(f"{where}: unknown operator {name!r}")
        try:
            compute = float(entry["compute_efficiency"])
            memory = float(entry["memory_efficiency"])
            overhead = float(entry["overhead_us"]) * 1e-6
            combine = entry.get("combine", "max")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(
                f"{where}: operator {name!r} needs numbers compute_efficiency, "
                "memory_efficiency and overhead_us"
            ) from None
        if combine not in ("max", "sum"):
            raise ConfigError(
                f"{where}: operator {name!r} has combine {combine!r}; use max or sum"
            )
        if not (0 < compute <= 1 and 0 < memory <= 1 and overhead >= 0):
            raise ConfigError(
                f"{where}: operator {name!r} has factors out of range (efficiencies "
                "in (0, 1], overhead zero or more)"
            )
        result[name] = OperatorFactors(compute, memory, overhead, combine == "max")
    return result


class Roofline:
    """Operator times from FLOPs and bytes against a device's peaks.

    Args:
        costs: FLOPs and bytes per operator.
        peak_flops: Device peak for the dtype, FLOP/s.
        bandwidth: Memory bandwidth, B/s.
        factors: Per-operator efficiencies and overheads.
        gemm_peak_flops: Device peak of the quantised projections and experts
            (``QUANTISED_OPERATORS``) when a W8A8 checkpoint multiplies them in
            FP8 or INT8; ``peak_flops`` when unset.
    """

    def __init__(
        self,
        costs: OperatorCosts,
        peak_flops: float,
        bandwidth: float,
        factors: dict[str, OperatorFactors],
        gemm_peak_flops: float | None = None,
    ) -> None:
        self.costs = costs
        self.peak_flops = peak_flops
        self.gemm_peak_flops = gemm_peak_flops or peak_flops
        self.bandwidth = bandwidth
        self.factors = factors
        self._rates = {
            name: (
                1.0 / (self.peak_for(name) * f.compute_efficiency),
                1.0 / (bandwidth * f.memory_efficiency),
                f.overhead_s,
                f.overlap,
            )
            for name, f in factors.items()
        }

    def peak_for(self, name: str) -> float:
        """The peak FLOP/s operator ``name`` runs at."""
        if name in QUANTISED_OPERATORS:
            return self.gemm_peak_flops
        return self.peak_flops

    def fast_time(self, name: str) -> Callable[[float, float], float]:
        """``lambda x, y: self.time(name, x, y)`` for floats, with the name's
        dispatch done once: the same operations in the same order (so the same
        bits), for the attention operators every step asks for."""
        rates = self._rates.get(name)
        if rates is None or name not in ("attention_prefill", "attention_decode"):
            return functools.partial(self.time, name)
        per_flop, per_byte, overhead, overlap = rates
        costs = self.costs
        pair, kv, width, b = (
            costs.pair_flops,
            costs.kv_bytes_per_token,
            costs.q_width,
            costs.b,
        )
        if name == "attention_decode":

            def decode(x: float, y: float) -> float:
                if x <= 0:
                    return 0.0
                context = x * (y + 1)
                flops = pair * context
                traffic = context * kv + 2 * x * width * b
                if overlap:
                    return max(flops * per_flop, traffic * per_byte) + overhead
                return flops * per_flop + traffic * per_byte + overhead

            return decode

        def prefill(x: float, y: float) -> float:
            if x <= 0:
                return 0.0
            flops = pair * (x * y + x * (x + 1) / 2)
            traffic = (y + x) * kv + 2 * x * width * b
            if overlap:
                return max(flops * per_flop, traffic * per_byte) + overhead
            return flops * per_flop + traffic * per_byte + overhead

        return prefill

    def time(self, name: str, x: Any, y: Any = None) -> Any:
        """Seconds of operator ``name`` at feature ``x`` (and ``y``); arrays or
        floats. Zero where the feature is zero (the operator does not run) and
        for operators without factors."""
        rates = self._rates.get(name)
        if rates is None:
            return 0.0 * x
        flops, traffic = self.costs.flops_bytes(name, x, y)
        per_flop, per_byte, overhead, overlap = rates
        if isinstance(x, np.ndarray):
            if overlap:
                seconds = np.maximum(flops * per_flop, traffic * per_byte) + overhead
            else:
                seconds = flops * per_flop + traffic * per_byte + overhead
            return np.where(x > 0, seconds, 0.0)
        if x <= 0:
            return 0.0
        if overlap:
            return max(flops * per_flop, traffic * per_byte) + overhead
        return flops * per_flop + traffic * per_byte + overhead


def roofline_for(
    context: ExecutionContext, factors: dict[str, OperatorFactors]
) -> Roofline:
    """The roofline of ``context``'s model, device, TP and EP sizes and dtypes.

    A quantised checkpoint's projections and experts read their stored weights
    (``ModelSpec.linear_weight_bytes``); a W8A8 checkpoint's run at the device's
    FP8 or INT8 peak (``ModelSpec.gemm_dtype``), which the catalogue sets equal
    to the BF16 peak on GPUs without FP8 tensor cores, where vLLM falls back to
    weight-only kernels.
    """
    model = context.model
    dtype_bytes = DTYPE_BYTES[context.dtype]
    costs = OperatorCosts(
        model,
        context.parallel.tensor_parallel_size,
        dtype_bytes,
        DTYPE_BYTES[context.kv_cache_dtype],
        ep=context.parallel.expert_parallel_size,
        weight_dtype_bytes=model.linear_weight_bytes(dtype_bytes),
    )
    device = context.device
    gemm_peak = device.peak_flops(model.gemm_dtype) if model.gemm_dtype else None
    return Roofline(
        costs,
        device.peak_flops(context.dtype),
        device.memory_bandwidth,
        factors,
        gemm_peak_flops=gemm_peak,
    )


class RooflinePredictor(Predictor):
    """Operator times from FLOPs and bytes against the device's peaks."""

    def __init__(self, config: RooflineConfig, context: ExecutionContext) -> None:
        super().__init__(config, context)
        from frontier_predictors.tables import StepTables

        factors = default_factors(config)
        self.calibrated = 0
        if config.calibration_path:
            calibrated = load_calibration(config.calibration_path)
            factors.update(calibrated)
            self.calibrated = len(calibrated)
        self.roofline = roofline_for(context, factors)
        self.tables = StepTables(self.roofline, {})

    def predict(self, batch: Any) -> OperatorTimes:
        """Operator times of ``batch`` per TP rank (see the module docstring)."""
        return self.tables.predict(batch)[0]

    def describe(self) -> dict[str, Any]:
        """Type, fallback count (always 0) and the calibration used, if any."""
        facts = super().describe()
        path = self.config.calibration_path
        facts["calibration_path"] = os.path.abspath(path) if path else path
        facts["calibrated_operators"] = self.calibrated
        return facts
