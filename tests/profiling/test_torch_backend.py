"""The torch backend on the CPU: the same operators as numpy, computed the same."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from frontier_profiling.numpy_backend import attend  # noqa: E402
from frontier_profiling.plan import AttentionShape, rank_shapes  # noqa: E402
from frontier_profiling.routing import route  # noqa: E402
from frontier_profiling.schema import LINEAR_OPS, MOE_OPS  # noqa: E402
from frontier_profiling.torch_backend import TorchBackend  # noqa: E402


def test_chunk_mask_lets_query_i_see_context_plus_i_keys():
    """SDPA under the chunk mask equals attention computed with numpy's mask."""
    backend = TorchBackend("float32", 0, "cpu")
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 2, 3, 8)).astype(np.float32)  # 2 KV heads x 2
    k = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
    v = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
    expected = attend(q, k, v, context=2)  # 3 queries after 2 cached tokens
    got = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q.reshape(1, 4, 3, 8)),
        torch.from_numpy(k),
        torch.from_numpy(v),
        attn_mask=backend._chunk_mask(3, 5),
        enable_gqa=True,
    )
    np.testing.assert_allclose(got.numpy().reshape(q.shape), expected, rtol=1e-5)


def test_grouped_gemm_and_the_expert_loop_agree(moe_model):
    """Both expert paths give the same outputs for skewed routing."""
    rank = rank_shapes(moe_model, 1)
    ids = route(37, 8, 2, "zipf", seed=3)
    grouped = TorchBackend("float32", 0, "cpu")
    looped = TorchBackend("float32", 0, "cpu")
    looped.grouped_gemm = "torch_expert_loop"
    first = grouped.moe_ops(rank, ids, 8)["moe_grouped_gemm"]()
    second = looped.moe_ops(rank, ids, 8)["moe_grouped_gemm"]()
    assert first.shape == (74, 128)  # 37 tokens x top 2
    torch.testing.assert_close(first, second)


def test_every_operator_of_each_family_runs_in_bfloat16(moe_model):
    """Linear, attention (decode and chunk) and MoE operators run on the CPU."""
    backend = TorchBackend("bfloat16", 0, "cpu")
    rank = rank_shapes(moe_model, 2)
    linear = backend.linear_ops(rank, 8)
    assert tuple(linear) == LINEAR_OPS
    assert linear["attn_pre_proj"]().dtype == torch.bfloat16
    for shape in (
        AttentionShape(2, "decode", 2, 1, 40, "TORCH_SDPA"),
        AttentionShape(2, "chunk", 1, 16, 40, "TORCH_SDPA"),
    ):
        for operator in backend.attention_ops(rank, shape, 16).values():
            operator()
    moe = backend.moe_ops(rank, route(8, 8, 2, "uniform"), 8)
    assert tuple(moe) == MOE_OPS
    assert moe["moe_combine"]().shape == (8, 128)
