"""The memory planner: vLLM's KV budget arithmetic, per GPU, and its refusal."""

from __future__ import annotations

import pytest
from frontier.config import CacheConfig, ParallelConfig
from frontier.devices import GIB, load_device
from frontier.errors import ConfigError
from frontier.memory import layers_per_stage, plan_memory
from frontier.models import load_model

# Llama-2-7B by hand (hidden 4096, 32 layers, 32 heads of 128, MLP 11008, vocab 32000):
#   one layer: attention 4 x 4096 x 4096 = 67,108,864
#              gated MLP 3 x 4096 x 11008 = 135,266,304
#              two norms 2 x 4096 = 8,192             -> 202,383,360
#   32 layers: 6,476,267,520; embedding + LM head 2 x 32000 x 4096 = 262,144,000;
#   final norm 4,096                                    -> 6,738,415,616 parameters
LLAMA2_7B_PARAMS = 6_738_415_616
LLAMA2_7B_LAYER = 202_383_360
LLAMA2_7B_TABLE = 32_000 * 4_096  # one of embedding / LM head: 131,072,000


def _plan(
    tp=1, pp=1, model="llama-2-7b", device="a100-80gb", cache=None, overrides=None, **kw
):
    limits = dict(
        dtype_bytes=2,
        kv_dtype_bytes=2,
        max_num_batched_tokens=2048,
        max_num_seqs=256,
        max_model_len=4096,
    )
    limits.update(kw)
    return plan_memory(
        load_model(model),
        load_device(device, overrides),
        ParallelConfig(tensor_parallel_size=tp, pipeline_parallel_size=pp),
        cache or CacheConfig(),
        **limits,
    )


def test_an_fp8_checkpoint_keeps_its_embedding_and_head_in_bf16():
    """FP8 (or INT8) checkpoints quantise the linear layers only: norms, the
    embedding and the LM head stay 2 bytes (they used to be counted at 1)."""
    plan = _plan(weight_dtype_bytes=1)
    # linear: 32 x (67,108,864 + 135,266,304) = 6,476,005,376 x 1 byte
    # other:  32 x 8,192 norms + 2 x 131,072,000 tables + 4,096 final norm
    #       = 262,410,240 x 2 bytes = 524,820,480
    assert plan.weight_bytes == 6_476_005_376 + 524_820_480 == 7_000_825_856
    assert plan.weight_bytes == 6_476_005_376 + (LLAMA2_7B_PARAMS - 6_476_005_376) * 2


def test_a_4_bit_checkpoint_is_sized_with_its_group_scales():
    """4-bit AWQ in groups of 128 stores 4 + (16 + 4) / 128 = 4.15625 bits a
    linear weight; the norms, embedding and LM head stay 2 bytes."""
    plan = _plan(weight_dtype_bytes=4.15625 / 8)
    # linear: 6,476,005,376 / 8 = 809,500,672; x 4.15625
    #       = 3,238,002,688 + 126,484,480 = 3,364,487,168 bytes
    # other:  262,410,240 x 2 bytes = 524,820,480
    assert plan.weight_bytes == 3_364_487_168 + 524_820_480 == 3_889_307_648
    assert isinstance(plan.weight_bytes, int)


def test_llama2_7b_on_a100_tp1_by_hand():
    """Every term of the Llama-2-7B / A100-80GB / TP1 plan, computed by hand."""
    plan = _plan()
    # weights: 6,738,415,616 params x 2 bytes
    assert plan.weight_bytes == LLAMA2_7B_PARAMS * 2 == 13_476_831_232
    # KV per block: 16 tokens x 2 (K, V) x 32 heads x 128 x 2 bytes x 32 layers
    assert plan.block_bytes == 16 * 2 * 32 * 128 * 2 * 32 == 8_388_608
    # activations: 2048 tokens x (3 x 11008 + 4 x 4096) x 2 bytes
    #              + 256 seqs x 32000 vocab x 4 bytes (FP32 logits)
    #            = 2048 x 49,408 x 2 + 32,768,000 = 202,375,168 + 32,768,000
    assert plan.activation_bytes == 235_143_168
    assert plan.overhead_bytes == GIB  # the 1 GiB default
    # budget: int(0.9 x 80 x 2**30) = 77,309,411,328
    assert plan.budget_bytes == 77_309_411_328
    # KV: 77,309,411,328 - 13,476,831,232 - 235,143,168 - 1,073,741,824
    assert plan.kv_cache_bytes == 62_523_695_104
    # blocks: floor(62,523,695,104 / 8,388,608) = 7453 (7453 x 8 MiB = 62,520,295,424)
    assert plan.num_blocks == 7453
    assert not plan.pinned


def test_plan_as_dict_reports_gib_and_tokens():
    """The summary section gives GiB and the KV capacity in tokens."""
    plan = _plan().as_dict()
    assert plan["num_gpu_blocks"] == 7453
    assert plan["kv_tokens"] == 7453 * 16  # 119,248 tokens
    assert plan["weights_gib"] == pytest.approx(13_476_831_232 / GIB)  # 12.55 GiB


def test_tp2_halves_weights_and_kv_per_gpu():
    """With TP2 each GPU holds half the weights and half of every KV block."""
    tp1, tp2 = _plan(tp=1), _plan(tp=2)
    assert tp2.weight_bytes == tp1.weight_bytes // 2 == 6_738_415_616
    assert tp2.block_bytes == tp1.block_bytes // 2 == 4_194_304
    # activations: 2048 x (3 x 11008 / 2 + 4 x 4096) x 2 + 32,768,000
    #            = 2048 x 32,896 x 2 + 32,768,000 = 167,510,016
    assert tp2.activation_bytes == 167_510_016


def test_pp2_splits_layers_and_counts_the_heavier_stage():
    """PP2: 16 layers per stage; the last stage (LM head + norm) is the heavier."""
    plan = _plan(pp=2)
    # stage 0: 16 layers + embedding; stage 1: 16 layers + final norm + LM head
    stage1 = 16 * LLAMA2_7B_LAYER + 4_096 + LLAMA2_7B_TABLE  # 3,369,209,856
    assert plan.weight_bytes == stage1 * 2 == 6_738_419_712
    # 16 layers on the stage: 16 x 2 x 32 x 128 x 2 x 16
    assert plan.block_bytes == 4_194_304


def test_pp3_puts_the_extra_layers_first():
    """32 layers over 3 stages are 11, 11, 10; stage 0 (11 + embedding) is heaviest."""
    assert layers_per_stage(32, 3) == [11, 11, 10]
    plan = _plan(pp=3)
    stage0 = 11 * LLAMA2_7B_LAYER + LLAMA2_7B_TABLE  # 2,357,288,960
    assert plan.weight_bytes == stage0 * 2
    assert plan.block_bytes == 16 * 2 * 32 * 128 * 2 * 11  # 2,883,584


def test_gqa_kv_heads_are_not_split_below_one_per_gpu():
    """Llama-3-70B has 8 KV heads: TP16 keeps one head per GPU, like TP8."""
    tp8 = _plan(tp=8, model="llama-3-70b", device="h100-sxm")
    tp16 = _plan(tp=16, model="llama-3-70b", device="h100-sxm")
    # 16 tokens x 2 x 1 head x 128 x 2 bytes x 80 layers
    assert tp8.block_bytes == tp16.block_bytes == 655_360


def test_mla_latent_is_kept_whole_on_every_rank():
    """DeepSeek-V3's KV is (512 + 64) x 2 bytes per token per layer on every rank."""
    # FP8 weights (as it ships): 671e9 x 1 byte / 8 GPUs fits in an H200
    plan = _plan(tp=8, model="deepseek-v3", device="h200", dtype_bytes=1)
    # 16 tokens x 1152 bytes x 61 layers
    assert plan.block_bytes == 16 * 1152 * 61 == 1_124_352


def test_measured_activation_memory_replaces_the_estimate():
    """``cache.activation_memory_gib`` is used as given."""
    plan = _plan(cache=CacheConfig(activation_memory_gib=2.5))
    assert plan.activation_bytes == int(2.5 * GIB)


def test_pinned_block_count_wins_over_the_plan():
    """``cache.num_gpu_blocks`` pins the block count and says so."""
    plan = _plan(cache=CacheConfig(num_gpu_blocks=300))
    assert plan.num_blocks == 300
    assert plan.pinned


def test_refusal_when_one_max_length_sequence_does_not_fit():
    """16 GiB leaves 80 blocks where a 4096-token sequence needs 256; the message
    gives every term."""
    with pytest.raises(ConfigError) as error:
        _plan(overrides={"memory_gib": 16})
    message = str(error.value)
    # budget int(0.9 x 16 GiB) = 15,461,882,265 B = 14.40 GiB
    # KV: 15,461,882,265 - 13,476,831,232 - 235,143,168 - 1,073,741,824
    #   = 676,166,041 B = 0.63 GiB -> floor(/ 8,388,608) = 80 blocks
    # needed: ceil(4096 / 16) = 256 blocks = 256 x 8 MiB = 2.00 GiB
    for part in (
        "max_model_len=4096",
        "needs 256 KV blocks",
        "2.00 GiB per GPU",
        "only 80 fit",
        "0.9 x 16 GiB = 14.40 GiB",
        "weights 12.55 GiB",  # 13,476,831,232 / 2**30
        "activations 0.22 GiB",  # 235,143,168 / 2**30
        "overhead 1.00 GiB",
        "leaves 0.63 GiB",
    ):
        assert part in message


def test_refusal_also_applies_to_a_pinned_block_count():
    """A pinned count below one sequence's blocks is refused too."""
    with pytest.raises(ConfigError, match="needs 256 KV blocks"):
        _plan(cache=CacheConfig(num_gpu_blocks=255))


def test_deepseek_v3_fp8_checkpoint_fits_on_eight_h200():
    """DeepSeek-V3 as published (FP8 weights) plans on 8 x H200 with dtype auto."""
    from conftest import test_plugins as plugin_host
    from frontier.config_build import build_config
    from frontier.simulation import Simulation

    host = plugin_host()
    data = {
        "model": {"name": "deepseek-v3", "max_model_len": 8192},
        "device": {"name": "h200"},
        "parallel": {"tensor_parallel_size": 8},
    }
    simulation = Simulation(build_config(data, host.registry.config_classes()), host)
    # 671e9 x 1 byte / 8 = 78 GiB of weights per GPU leaves room for the KV cache
    assert simulation.memory_plan.num_blocks > 8192 // 16


def test_a_token_budget_whose_activations_fill_the_gpu_is_named():
    """A 1e8-token budget took 11,063 GiB of activations; the advice named the
    parallel sizes, never the budget."""
    with pytest.raises(ConfigError, match="activations of a step of 100000000 tokens"):
        _plan(max_num_batched_tokens=100_000_000)
