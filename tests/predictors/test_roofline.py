"""The roofline: default factors, calibration, and calibration files."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
from frontier.config import ParallelConfig
from frontier.devices import load_device
from frontier.errors import ConfigError
from frontier.models import load_model
from frontier.plugins import ExecutionContext
from frontier_predictors.calibration import calibrate, fit_factors, write_calibration
from frontier_predictors.profiles import read_profile
from frontier_predictors.roofline import (
    RooflineConfig,
    RooflinePredictor,
    default_factors,
    roofline_for,
)

from .conftest import make_batch


def test_fit_recovers_known_factors():
    """Times made with e_c = 0.5, e_m = 0.25, 5 us overhead are fitted back."""
    flops = np.array([1e9, 4e9, 1e10, 1e11, 1e12])
    traffic = np.array([1e8, 1e8, 2e8, 2e8, 4e8])
    peak, bandwidth = 1e14, 1e12
    truth = np.maximum(flops / (peak * 0.5), traffic / (bandwidth * 0.25)) + 5e-6
    factors, mape = fit_factors(flops, traffic, truth, peak, bandwidth)
    assert factors.compute_efficiency == pytest.approx(0.5, rel=0.02)
    assert factors.memory_efficiency == pytest.approx(0.25, rel=0.02)
    assert factors.overhead_s == pytest.approx(5e-6, rel=0.05)
    assert mape < 0.01


def test_layout_operators_cost_nothing_uncalibrated(tiny_context):
    """The profilers' reshape operators are zero unless a calibration adds them."""
    roofline = roofline_for(tiny_context, default_factors())
    assert roofline.time("attention_input_reshape", 100.0) == 0.0
    assert roofline.time("qkv_proj", 100.0) > 0.0


def test_an_absent_operator_costs_nothing(tiny_context):
    """No tokens, no time: a step without decodes has no decode KV write."""
    roofline = roofline_for(tiny_context, default_factors())
    assert roofline.time("kv_cache_write_decode", 0) == 0.0


def test_a_calibration_file_changes_the_predictions(
    older_profile, tiny_model, tiny_context, tmp_path
):
    """A roofline loading a calibration fitted to the profile answers its times."""
    samples = read_profile(older_profile, tiny_model).samples
    factors, report = calibrate(samples, roofline_for(tiny_context, default_factors()))
    path = tmp_path / "calibration.json"
    write_calibration(path, factors, report, {"profile": str(older_profile)})
    plain = RooflinePredictor(RooflineConfig(), tiny_context)
    fitted = RooflinePredictor(RooflineConfig(calibration_path=str(path)), tiny_context)
    batch = make_batch(prefills=[(64, 0)])
    # The hand-made profile's per-layer MLP block at 64 tokens (ms): post norm
    # 0.0158, up 0.404, act 0.0242, down 0.207, add 0.0084 -> 0.6594 ms.
    assert fitted.predict(batch).mlp_s * 1e3 == pytest.approx(0.6594, rel=0.15)
    assert plain.predict(batch).mlp_s != fitted.predict(batch).mlp_s
    assert fitted.describe()["calibrated_operators"] == len(factors)


def test_a_file_that_is_not_a_calibration_is_refused(tiny_context, tmp_path):
    """A JSON file without the calibration format names the config field."""
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"operators": {}}))
    with pytest.raises(ConfigError, match=r"calibration_path .* is not a roofline"):
        RooflinePredictor(RooflineConfig(calibration_path=str(path)), tiny_context)


def test_a_missing_calibration_file_is_named(tiny_context, tmp_path):
    """A calibration path that does not exist says how to make one."""
    config = RooflineConfig(calibration_path=str(tmp_path / "none.json"))
    with pytest.raises(ConfigError, match="frontier train"):
        RooflinePredictor(config, tiny_context)


def test_an_out_of_range_factor_is_refused(tiny_context, tmp_path):
    """An efficiency above 1 in a calibration file names the operator."""
    path = tmp_path / "bad.json"
    entry = {"compute_efficiency": 1.5, "memory_efficiency": 0.5, "overhead_us": 1.0}
    data = {"format": "frontier-roofline-calibration/1", "operators": {"o_proj": entry}}
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="'o_proj'"):
        RooflinePredictor(RooflineConfig(calibration_path=str(path)), tiny_context)


def test_best_form_finds_times_that_add_up():
    """Times made by adding compute and memory time are fitted with the sum form."""
    flops = np.array([1e9, 4e9, 1e10, 1e11, 1e12])
    traffic = np.array([4e8, 3e8, 2e8, 2e8, 1e8])
    peak, bandwidth = 1e14, 1e12
    truth = flops / (peak * 0.5) + traffic / (bandwidth * 0.25) + 5e-6
    roofline_form, _ = fit_factors(flops, traffic, truth, peak, bandwidth, "max")
    best_form, mape = fit_factors(flops, traffic, truth, peak, bandwidth, "best")
    assert roofline_form.overlap is True
    assert best_form.overlap is False
    assert mape < 0.01


def test_a_calibration_with_the_sum_form_loads(tiny_context, tmp_path):
    """combine = "sum" in a calibration file makes that operator add its times."""
    path = tmp_path / "sum.json"
    entry = {
        "compute_efficiency": 0.5,
        "memory_efficiency": 0.5,
        "overhead_us": 0.0,
        "combine": "sum",
    }
    data = {"format": "frontier-roofline-calibration/1", "operators": {"o_proj": entry}}
    path.write_text(json.dumps(data))
    predictor = RooflinePredictor(
        RooflineConfig(calibration_path=str(path)), tiny_context
    )
    flops, traffic = predictor.roofline.costs.flops_bytes("o_proj", 10.0)
    device = tiny_context.device
    expected = flops / (device.peak_flops("float16") * 0.5) + traffic / (
        device.memory_bandwidth * 0.5
    )
    assert predictor.roofline.time("o_proj", 10.0) == pytest.approx(expected)


def _moe_context(ep: int) -> ExecutionContext:
    """Qwen3-30B-A3B on H100s, experts split over ``ep`` replicas of TP 1."""
    return ExecutionContext(
        model=load_model("Qwen/Qwen3-30B-A3B"),
        device=load_device("h100-sxm"),
        parallel=ParallelConfig(num_replicas=ep, expert_parallel_size=ep),
        dtype="bfloat16",
        kv_cache_dtype="bfloat16",
    )


def test_expert_parallel_rank_holds_its_share_of_whole_experts():
    """EP 2: 64 of 128 experts per GPU, half of each token's 8 routes."""
    costs = roofline_for(_moe_context(2), default_factors()).costs
    # one expert: 3 x 2048 x 768 = 4,718,592 weights, not split by TP
    assert costs.expert_params == 4_718_592
    flops, traffic = costs.flops_bytes("moe_experts", 100.0)
    # 100 tokens x 8 / 2 routes = 400 routes: 2 x 400 x 4,718,592 FLOPs
    assert flops == pytest.approx(2 * 400 * 4_718_592)
    # experts hit: 64 x (1 - (120/128)^100); weights of those plus 2 x 400 x 2048
    # activations, 2 bytes each
    hit = 64 * (1 - (120 / 128) ** 100)
    assert traffic == pytest.approx((hit * 4_718_592 + 2 * 400 * 2048) * 2)


def test_routed_moe_operators_read_the_group_tokens():
    """The gate reads the batch's 8 tokens; the experts the group's 16."""
    predictor = RooflinePredictor(RooflineConfig(), _moe_context(2))
    roofline = predictor.roofline
    batch = make_batch(decodes=[100] * 8)
    batch.ep_group_tokens = 16
    local = sum(
        roofline.time(name, 8.0)
        for name in ("post_attention_norm", "moe_gate", "moe_topk", "residual_add")
    )
    routed = sum(
        roofline.time(name, 16.0)
        for name in ("moe_shuffle", "moe_experts", "moe_combine")
    )
    assert predictor.predict(batch).moe_s == pytest.approx(local + routed)


def test_an_fp8_checkpoint_reads_its_projections_at_one_byte():
    """A quantised checkpoint's projections and experts are read at their own
    element size; activations, the LM head and the router at the model dtype."""
    from frontier_predictors.costs import OperatorCosts

    model = load_model("llama-2-7b")  # hidden 4096, vocab 32000, TP 1
    bf16 = OperatorCosts(model, 1, 2, 2)
    fp8 = OperatorCosts(model, 1, 2, 2, weight_dtype_bytes=1)
    # o_proj, 8 tokens: weights 4096 x 4096 = 16,777,216 elements;
    # activations 8 x (4096 + 4096) = 65,536 elements
    assert bf16.flops_bytes("o_proj", 8.0)[1] == (16_777_216 + 65_536) * 2
    assert fp8.flops_bytes("o_proj", 8.0)[1] == 16_777_216 * 1 + 65_536 * 2
    # the LM head stays at 2 bytes: 4096 x 32000 + 8 x (4096 + 32000) elements
    head = (131_072_000 + 8 * 36_096) * 2
    assert fp8.flops_bytes("lm_head", 8.0)[1] == bf16.flops_bytes("lm_head", 8.0)[1]
    assert fp8.flops_bytes("lm_head", 8.0)[1] == head
    # FLOPs do not change: 2 x 8 x 4096 x 4096
    assert fp8.flops_bytes("o_proj", 8.0)[0] == 2.0 * 8 * 16_777_216
    # 4-bit AWQ, groups of 128: 4.15625 bits = 0.51953125 bytes a weight;
    # 16,777,216 x 0.51953125 = 8,716,288 bytes of weights
    int4 = OperatorCosts(model, 1, 2, 2, weight_dtype_bytes=4.15625 / 8)
    assert int4.flops_bytes("o_proj", 8.0)[1] == 8_716_288 + 65_536 * 2


def _quantised_context(device: str, **quantisation) -> ExecutionContext:
    """Llama-2-7B, TP 1, with the quantisation fields of a checkpoint."""
    model = attrs.evolve(load_model("llama-2-7b"), **quantisation)
    return ExecutionContext(
        model=model,
        device=load_device(device),
        parallel=ParallelConfig(),
        dtype="bfloat16",
        kv_cache_dtype="bfloat16",
    )


def test_w8a8_projections_run_at_the_8_bit_peak_and_weight_only_at_bf16():
    """A 4,096-token o_proj is compute-bound; its time is FLOPs over the peak
    its GEMM runs at times the GEMM efficiency."""
    factors = default_factors(RooflineConfig())
    gemm = factors["o_proj"]
    flops = 2.0 * 4096 * 4096 * 4096  # 137,438,953,472
    overhead = gemm.overhead_s

    def o_proj(device: str, **quantisation) -> float:
        roofline = roofline_for(_quantised_context(device, **quantisation), factors)
        return roofline.time("o_proj", 4096.0)

    fp8 = {"weight_dtype": "fp8", "weight_bits": 8.0, "gemm_dtype": "fp8"}
    awq = {"weight_dtype": "int4", "weight_bits": 4.15625}
    int8 = {"weight_dtype": "int8", "weight_bits": 8.0, "gemm_dtype": "int8"}
    e = gemm.compute_efficiency
    # H100: FP8 1,979 TFLOP/s for W8A8; BF16 989.5 for weight-only 4-bit
    assert o_proj("h100-sxm", **fp8) == pytest.approx(flops / (1979e12 * e) + overhead)
    assert o_proj("h100-sxm", **awq) == pytest.approx(flops / (989.5e12 * e) + overhead)
    assert o_proj("h100-sxm", **awq) == pytest.approx(o_proj("h100-sxm"))
    # A100: no FP8 tensor cores (the FP8 figure is the BF16 312), INT8 624 TOPS
    assert o_proj("a100-80gb", **fp8) == pytest.approx(flops / (312e12 * e) + overhead)
    assert o_proj("a100-80gb", **int8) == pytest.approx(flops / (624e12 * e) + overhead)
    # NVFP4 W4A4: B200's FP4 9,000 TFLOP/s; weight-only at BF16 on the H100
    fp4 = {"weight_dtype": "fp4", "weight_bits": 4.5, "gemm_dtype": "fp4"}
    assert o_proj("b200", **fp4) == pytest.approx(flops / (9000e12 * e) + overhead)
    assert o_proj("h100-sxm", **fp4) == pytest.approx(o_proj("h100-sxm"))
    # the LM head is not quantised: the BF16 peak on every checkpoint
    fp8_roofline = roofline_for(_quantised_context("h100-sxm", **fp8), factors)
    bf16_roofline = roofline_for(_quantised_context("h100-sxm"), factors)
    assert fp8_roofline.time("lm_head", 4096.0) == bf16_roofline.time("lm_head", 4096.0)


@pytest.mark.parametrize("name", ["attention_decode", "attention_prefill"])
@pytest.mark.parametrize("combine", ["max", "sum"])
def test_the_fast_attention_times_are_the_same_bits(tiny_context, name, combine):
    """``fast_time`` skips the operator dispatch of every step; its answers are
    the generic ``time``'s exactly, in both combine forms, and 0 at 0."""
    import random

    factors = default_factors(RooflineConfig())
    factors[name] = attrs.evolve(factors[name], overlap=combine == "max")
    roofline = roofline_for(tiny_context, factors)
    fast = roofline.fast_time(name)
    rng = random.Random(7)
    for _ in range(2000):
        x = rng.choice([rng.randint(1, 512), rng.uniform(0.5, 3000.0)])
        y = rng.uniform(0.0, 30000.0)
        assert fast(x, y) == roofline.time(name, x, y)
    assert fast(0, 5.0) == roofline.time(name, 0, 5.0) == 0.0
