"""How long a profiling plan will take, from its shapes alone (no device touched).

Each operator call is costed as a roofline, ``max(FLOPs / (peak x 0.6), bytes /
(bandwidth x 0.7))``, plus a fixed cost per kernel launch and per timed call (the
Python call, the two CUDA events); a row costs ``warmup + repeats`` calls of each
of its operators plus the allocation of its tensors. The figures are for
planning, not prediction: they say whether a grid takes minutes or hours.
"""

from __future__ import annotations

import attrs
from frontier.devices import DeviceSpec, load_device
from frontier.errors import ConfigError
from frontier.models import DTYPE_BYTES, ModelSpec

from frontier_profiling.naming import device_folder
from frontier_profiling.plan import (
    AttentionShape,
    LinearShape,
    MoeShape,
    Shape,
    rank_shapes,
)

__all__ = ["Throughput", "estimate_row_s", "throughput_for"]

_COMPUTE_EFFICIENCY = 0.6
_MEMORY_EFFICIENCY = 0.7


@attrs.frozen
class Throughput:
    """What the estimate assumes of the device.

    Attributes:
        label: Where the figures come from (a catalogue device or a nominal CPU).
        flops: Peak FLOP/s at the profiled dtype.
        bandwidth: Memory bandwidth, B/s.
        launch_s: Fixed cost of one kernel launch.
        call_s: Fixed cost of one timed call (Python, timer).
        setup_s: Cost of building one row's tensors.
        startup_s: Once per run: importing the library, creating the device
            context.
    """

    label: str
    flops: float
    bandwidth: float
    launch_s: float
    call_s: float
    setup_s: float
    startup_s: float


NOMINAL_CPU = Throughput(
    "nominal CPU (100 GFLOP/s, 10 GB/s)", 1e11, 1e10, 2e-6, 5e-6, 1e-2, 2.0
)
"""A modest server CPU core group, for a profile of the CPU itself."""


def throughput_for(device: str | None, dtype: str) -> Throughput:
    """The catalogue device ``device`` at ``dtype``, or the nominal CPU.

    ``device`` may be a catalogue name or a driver's name (``NVIDIA H100 80GB
    HBM3``); devices not in the catalogue (and ``cpu``) get :data:`NOMINAL_CPU`.
    """
    if device is None or device.lower() == "cpu":
        return NOMINAL_CPU
    try:
        spec: DeviceSpec = load_device(device_folder(device))
    except ConfigError:
        return NOMINAL_CPU
    return Throughput(
        f"{spec.name} (catalogue peaks)",
        spec.peak_flops(dtype),
        spec.memory_bandwidth,
        launch_s=5e-6,
        call_s=1.5e-5,
        setup_s=5e-3,
        startup_s=20.0,
    )


def _linear_ops(
    model: ModelSpec, shape: LinearShape, b: int
) -> list[tuple[float, float, int]]:
    r = rank_shapes(model, shape.tp)
    t, h, d = shape.num_tokens, r.hidden, r.head_dim
    qkv = (r.q_heads + 2 * r.kv_heads) * d
    up = r.intermediate * (2 if r.gated else 1)

    def gemm(m: int, k: int, n: int) -> tuple[float, float, int]:
        return 2.0 * m * k * n, float(b * (m * k + k * n + m * n)), 1

    norm = (4.0 * t * h, float(b * (2 * t * h + h)), 1)
    return [
        (0.0, float(2 * b * t * h), 1),  # embedding gather
        norm,
        gemm(t, h, qkv),
        (6.0 * t * qkv, float(4 * b * t * (r.q_heads + r.kv_heads) * d), 8),  # rotary
        gemm(t, r.q_heads * d, h),
        norm,
        gemm(t, h, up),
        (5.0 * t * r.intermediate, float(b * t * (up + r.intermediate)), 2),
        gemm(t, r.intermediate, h),
        (float(t * h), float(3 * b * t * h), 1),  # residual add
        gemm(t, h, r.vocab),
    ]


def _attention_ops(
    model: ModelSpec, shape: AttentionShape, b: int
) -> list[tuple[float, float, int]]:
    r = rank_shapes(model, shape.tp)
    n, q, d = shape.batch_size, shape.query, r.head_dim
    tokens = n * q
    kv_width = r.kv_heads * d
    if shape.kind == "decode":
        pairs = float(shape.context)
    else:  # causal: query i sees context + i + 1 keys
        pairs = q * shape.context + q * (q + 1) / 2
    flops = 4.0 * n * r.q_heads * d * pairs
    traffic = float(b * n * (2 * q * r.q_heads * d + 2 * shape.keys * kv_width))
    return [
        (0.0, float(2 * b * tokens * (r.q_heads * d + 2 * kv_width)), 3),
        (0.0, float(4 * b * tokens * kv_width), 2),
        (flops, traffic, 1),
        (0.0, float(2 * b * tokens * r.q_heads * d), 1),
    ]


def _moe_ops(
    model: ModelSpec, shape: MoeShape, b: int
) -> list[tuple[float, float, int]]:
    r = rank_shapes(model, shape.tp)
    t, h, k = shape.num_tokens, r.hidden, r.top_k
    local = r.experts // shape.ep
    routed = t * k / shape.ep
    up = r.expert_intermediate * (2 if r.gated else 1)
    weights = local * h * (up + r.expert_intermediate)
    return [
        (2.0 * t * h * r.experts, float(b * (t * h + h * r.experts)), 1),
        (5.0 * t * r.experts, float(8 * t * r.experts), 4),
        (0.0, float(2 * b * routed * h), 5),
        (2.0 * routed * weights / local, float(b * (weights + 4 * routed * h)), 3),
        (2.0 * routed * h, float(3 * b * routed * h), 4),
    ]


def estimate_row_s(
    model: ModelSpec, shape: Shape, dtype: str, device: Throughput, calls: int
) -> float:
    """Seconds to measure one row: ``calls`` timed and warm-up calls per operator.

    Args:
        model: The profiled model.
        shape: The row's shape.
        dtype: Profiled dtype (its width sets the bytes moved).
        device: What the device is assumed to sustain.
        calls: Warm-up plus timed calls of each operator.
    """
    b = DTYPE_BYTES.get(dtype.lower(), 2)
    if isinstance(shape, LinearShape):
        ops = _linear_ops(model, shape, b)
    elif isinstance(shape, AttentionShape):
        ops = _attention_ops(model, shape, b)
    else:
        ops = _moe_ops(model, shape, b)
    total = device.setup_s
    for flops, traffic, kernels in ops:
        roofline = max(
            flops / (device.flops * _COMPUTE_EFFICIENCY),
            traffic / (device.bandwidth * _MEMORY_EFFICIENCY),
        )
        per_call = max(roofline, kernels * device.launch_s) + device.call_s
        total += calls * per_call
    return total
