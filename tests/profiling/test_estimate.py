"""The dry run's duration estimate, from shapes and catalogue peaks."""

from __future__ import annotations

import pytest
from frontier.models import load_model
from frontier_profiling.estimate import (
    NOMINAL_CPU,
    Throughput,
    estimate_row_s,
    throughput_for,
)
from frontier_profiling.plan import AttentionShape, LinearShape


def test_catalogue_devices_give_their_peaks():
    """H100's dense BF16 peak (989.5 TFLOP/s) and 3350 GB/s are the figures used."""
    device = throughput_for("h100", "bfloat16")
    assert device.flops == pytest.approx(989.5e12)
    assert device.bandwidth == pytest.approx(3350e9)


def test_unknown_devices_and_the_cpu_get_the_nominal_cpu():
    """Without catalogue peaks the estimate says it is nominal."""
    assert throughput_for("cpu", "bfloat16") is NOMINAL_CPU
    assert throughput_for("tpu-v9", "bfloat16") is NOMINAL_CPU


def test_one_gemm_bound_row_costs_its_flops_at_sixty_percent_of_peak():
    """The 8192-token LM head of Llama-3-8B sets its row's time on an ideal device."""
    model = load_model("llama-3-8b")
    ideal = Throughput("ideal", 1e15, 1e18, 0.0, 0.0, 0.0, 0.0)
    seconds = estimate_row_s(model, LinearShape(1, 8192), "bfloat16", ideal, calls=1)
    # LM head: 2 x 8192 x 4096 x 128256 = 8.607e12 FLOP / (1e15 x 0.6) = 14.35 ms;
    # QKV, O, up+gate and down add widths 6144 + 4096 + 28672 + 14336 = 53248
    # against the head's 128256 (elementwise FLOPs are ~1e-5 of that)
    head_s = 2 * 8192 * 4096 * 128256 / 0.6e15
    assert seconds == pytest.approx(head_s * (1 + 53248 / 128256), rel=1e-3)


def test_calls_multiply_the_per_call_time():
    """Twice the calls, twice the time (less the fixed setup)."""
    model = load_model("llama-3-8b")
    device = throughput_for("h100", "bfloat16")
    shape = AttentionShape(1, "decode", 64, 1, 2048, "TORCH_SDPA")
    one = estimate_row_s(model, shape, "bfloat16", device, 1) - device.setup_s
    two = estimate_row_s(model, shape, "bfloat16", device, 2) - device.setup_s
    assert two == pytest.approx(2 * one)


def test_a_drivers_device_name_finds_its_catalogue_peaks():
    """``NVIDIA H100 80GB HBM3`` (what CUDA reports) is the catalogue's H100."""
    device = throughput_for("NVIDIA H100 80GB HBM3", "bfloat16")
    assert device.flops == pytest.approx(989.5e12)
