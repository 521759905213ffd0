"""Planning: per-rank shapes under tensor parallelism and the rows of each family."""

from __future__ import annotations

import pytest
from frontier.errors import ConfigError
from frontier.models import load_model
from frontier_profiling.plan import (
    AttentionShape,
    default_grid,
    plan,
    rank_shapes,
)

from .conftest import small_grid


def test_tp_splits_heads_mlp_and_vocabulary():
    """Llama-3-8B at TP 2: half the query and KV heads, MLP width, vocabulary."""
    rank = rank_shapes(load_model("llama-3-8b"), 2)
    # 32 / 2 = 16 query heads, 8 / 2 = 4 KV heads, 14336 / 2 = 7168, 128256 / 2
    assert (rank.q_heads, rank.kv_heads) == (16, 4)
    assert (rank.intermediate, rank.vocab) == (7168, 64128)
    assert rank.hidden == 4096


def test_tp_beyond_the_kv_heads_replicates_one_kv_head():
    """At TP 16 Llama-3-8B's 8 KV heads cannot split: each rank keeps one."""
    rank = rank_shapes(load_model("llama-3-8b"), 16)
    assert (rank.q_heads, rank.kv_heads) == (2, 1)  # 32 / 16; max(1, 8 // 16)


def test_tp_that_does_not_divide_the_heads_is_refused():
    """TP 3 cannot share 32 query heads; the error names the option and field."""
    with pytest.raises(ConfigError, match=r"--tp 3: .*num_attention_heads = 32"):
        rank_shapes(load_model("llama-3-8b"), 3)


def test_attention_rows_cover_decode_prefill_and_chunks(dense_model):
    """2 x 2 decodes + 2 prefills + 1 chunk = 7 rows per TP size."""
    shapes = plan("attention", dense_model, small_grid(tp_sizes=(1, 2)))
    assert len(shapes) == 14  # 7 rows at TP 1 and 7 at TP 2
    kinds = [s.kind for s in shapes if s.tp == 1]
    assert kinds.count("decode") == 4
    assert kinds.count("prefill") == 2
    assert kinds.count("chunk") == 1


def test_lengths_beyond_the_model_context_are_left_out(dense_model):
    """With a 2048-token context, a 4096 prefill and a 1024 chunk over 2048 go."""
    grid = small_grid(
        prefill_lengths=(1024, 2048, 4096),
        chunk_sizes=(1024,),
        chunk_context_lengths=(1024, 2048),
    )
    shapes = plan("attention", dense_model, grid)
    prefills = sorted(s.query for s in shapes if s.kind == "prefill")
    chunks = [(s.query, s.context) for s in shapes if s.kind == "chunk"]
    assert prefills == [1024, 2048]
    assert chunks == [(1024, 1024)]  # 1024 + 2048 = 3072 > 2048


def test_decode_shapes_beyond_the_kv_cap_are_left_out():
    """Batch x context above 2,097,152 KV tokens is not planned."""
    model = load_model("meta-llama/Llama-3.1-8B")  # 131072-token context
    grid = small_grid(
        decode_batch_sizes=(128, 256), decode_context_lengths=(8192, 16384)
    )
    decodes = [
        (s.batch_size, s.context)
        for s in plan("attention", model, grid)
        if s.kind == "decode"
    ]
    # 128 x 8192 = 1,048,576; 128 x 16384 = 256 x 8192 = 2,097,152 (kept, equal);
    # 256 x 16384 = 4,194,304 (left out)
    assert decodes == [(128, 8192), (128, 16384), (256, 8192)]


def test_flashinfer_rows_are_single_request(dense_model):
    """FLASHINFER gets batch-1 decodes and prefills only; SDPA gets every batch."""
    grid = small_grid(
        attention_backends=("TORCH_SDPA", "FLASHINFER"), prefill_batch_sizes=(1, 2)
    )
    shapes = plan("attention", dense_model, grid)
    sdpa = [s for s in shapes if s.backend == "TORCH_SDPA"]
    flashinfer = [s for s in shapes if s.backend == "FLASHINFER"]
    assert len(sdpa) == 9  # 2 x 2 decodes + 2 x 2 prefills + 1 chunk
    assert len(flashinfer) == 5  # 1 x 2 decodes + 1 x 2 prefills + 1 chunk
    assert {s.batch_size for s in flashinfer} == {1}


def test_attention_keys_count_context_and_new_tokens():
    """A decode sees its context; a chunk its context plus itself."""
    decode = AttentionShape(1, "decode", 4, 1, 128, "NUMPY")
    chunk = AttentionShape(1, "chunk", 1, 16, 64, "NUMPY")
    prefill = AttentionShape(1, "prefill", 1, 64, 0, "NUMPY")
    assert (decode.keys, chunk.keys, prefill.keys) == (128, 80, 64)


def test_moe_rows_cross_tp_ep_routing_and_tokens(moe_model):
    """2 EP sizes x 2 routings x 4 token counts = 16 rows."""
    shapes = plan("moe", moe_model, small_grid(ep_sizes=(1, 2)))
    assert len(shapes) == 16
    assert {(s.ep, s.routing) for s in shapes} == {
        (1, "uniform"),
        (1, "zipf"),
        (2, "uniform"),
        (2, "zipf"),
    }


def test_moe_family_of_a_dense_model_is_refused(dense_model):
    """A dense model has no experts to profile."""
    with pytest.raises(ConfigError, match="dense model"):
        plan("moe", dense_model, small_grid())


def test_ep_that_does_not_divide_the_experts_is_refused(moe_model):
    """3 ranks cannot share 8 experts."""
    with pytest.raises(ConfigError, match=r"--ep 3: .* 8 experts"):
        plan("moe", moe_model, small_grid(ep_sizes=(3,)))


def test_unknown_routing_is_refused(moe_model):
    """Routing distributions are uniform and zipf."""
    with pytest.raises(ConfigError, match="unknown distribution 'skewed'"):
        plan("moe", moe_model, small_grid(routings=("skewed",)))


def test_mla_attention_is_refused_with_the_family_that_works():
    """DeepSeek-V3's latent attention is not built; its MoE family is."""
    model = load_model("deepseek-ai/DeepSeek-V3")
    with pytest.raises(ConfigError, match="multi-head latent attention"):
        plan("attention", model, small_grid())
    assert plan("moe", model, small_grid(num_tokens=(8,), routings=("uniform",)))


def test_default_grid_stops_at_the_model_context():
    """Llama-2-7B (4096 tokens) gets no 8192-token prefill or decode context."""
    grid = default_grid(load_model("llama-2-7b"), ("TORCH_SDPA",))
    assert max(grid.prefill_lengths) == 4096
    assert max(grid.decode_context_lengths) == 4096
    assert max(grid.num_tokens) == 8192  # token counts are not contexts
