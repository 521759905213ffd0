"""The numpy backend builds the right operators and computes them correctly."""

from __future__ import annotations

import numpy as np
import pytest
from frontier_profiling.numpy_backend import NumpyBackend, attend, new_token_slots
from frontier_profiling.plan import AttentionShape, rank_shapes
from frontier_profiling.routing import route
from frontier_profiling.schema import LINEAR_OPS, MOE_OPS


def _reference(q, k, v, context):
    """Attention one query at a time: query i of a chunk sees keys 0..context+i."""
    batch, heads, group, queries, d = q.shape
    out = np.zeros_like(q)
    for b in range(batch):
        for h in range(heads):
            for g in range(group):
                for i in range(queries):
                    visible = k.shape[2] if context is None else context + i + 1
                    scores = k[b, h, :visible] @ q[b, h, g, i] / np.sqrt(d)
                    weights = np.exp(scores - scores.max())
                    out[b, h, g, i] = weights / weights.sum() @ v[b, h, :visible]
    return out


@pytest.mark.parametrize("context", [None, 0, 2])
def test_attention_masks_a_chunk_causally_over_its_context(context):
    """Decode (no mask), whole prefill and a chunk over 2 cached tokens agree
    with attention computed query by query."""
    rng = np.random.default_rng(0)
    queries = 1 if context is None else 3
    keys = 5 if context is None else context + queries
    q = rng.standard_normal((2, 2, 2, queries, 4)).astype(np.float32)
    k = rng.standard_normal((2, 2, keys, 4)).astype(np.float32)
    v = rng.standard_normal((2, 2, keys, 4)).astype(np.float32)
    got = attend(q, k, v, context)
    np.testing.assert_allclose(got, _reference(q, k, v, context), rtol=1e-5)


def test_decode_tokens_go_to_each_requests_block_offset():
    """Two decodes at context 20, block 16: slot 20 mod 16 = 4 of each run."""
    shape = AttentionShape(1, "decode", 2, 1, 20, "NUMPY")
    # one block per request (4 + 1 <= 16): starts 0 and 16
    assert new_token_slots(shape, 16).tolist() == [4, 20]


def test_chunk_tokens_fill_consecutive_slots_across_blocks():
    """A 20-token chunk after 10 cached tokens writes slots 10..29."""
    shape = AttentionShape(1, "chunk", 1, 20, 10, "NUMPY")
    assert new_token_slots(shape, 16).tolist() == list(range(10, 30))


def test_linear_operators_are_the_files_operators(dense_model):
    """Every linear_op.csv operator is built, and runs."""
    ops = NumpyBackend(0).linear_ops(rank_shapes(dense_model, 1), 8)
    assert tuple(ops) == LINEAR_OPS
    assert ops["attn_pre_proj"]().shape == (8, 256)  # (4 + 2 * 2) heads x 32
    assert ops["mlp_act"]().shape == (8, 256)  # SiLU(gate) x up of width 256


def test_decode_builds_the_decode_kernel_only(dense_model):
    """A decode row times attn_decode and leaves attn_prefill empty."""
    shape = AttentionShape(1, "decode", 2, 1, 32, "NUMPY")
    ops = NumpyBackend(0).attention_ops(rank_shapes(dense_model, 1), shape, 16)
    assert "attn_decode" in ops and "attn_prefill" not in ops
    assert ops["attn_output_reshape"]().shape == (2, 128)  # 2 tokens x 4 heads x 32


def test_moe_operators_keep_only_the_ranks_experts(moe_model):
    """With EP 2, the experts' GEMMs see the tokens of experts 0..3 only."""
    ids = route(4, 8, 2, "uniform")  # slots 0..7: each expert once
    ops = NumpyBackend(0).moe_ops(rank_shapes(moe_model, 1), ids, 4)
    assert tuple(ops) == MOE_OPS
    assert ops["moe_shuffling"]().shape == (4, 128)  # 4 of 8 choices stay
    assert ops["moe_grouped_gemm"]().shape == (4, 128)
    assert ops["moe_combine"]().shape == (4, 128)  # back to the 4 tokens


def test_backend_reports_fp32_and_the_monotonic_clock():
    """numpy measures float32 whatever the dtype asked, timed by the clock."""
    backend = NumpyBackend(0)
    assert (backend.precision, backend.measurement_type) == ("FP32", "MONOTONIC_CLOCK")
    times = backend.time_ms(lambda: None, warmup=1, repeats=4)
    assert len(times) == 4 and min(times) >= 0.0
