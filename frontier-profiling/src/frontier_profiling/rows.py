"""The shape columns of one profile row, as the newer format spells them.

Model-level columns hold the whole model's figures (``n_head`` is the model's
query heads, not one rank's); ``num_tensor_parallel_workers`` says how the
measured rank's shapes were split. Columns the format has but this profiler does
not vary are written with the values the shared profiles use for the plain case
(``model_arch = generic``, ``quant_signature = none``, mixed-batch columns empty).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from frontier.models import ModelSpec

from frontier_profiling.backend import Backend
from frontier_profiling.plan import (
    AttentionShape,
    Grid,
    LinearShape,
    MoeShape,
    rank_shapes,
)
from frontier_profiling.routing import load_statistics

__all__ = ["attention_row", "cell", "linear_row", "moe_row"]


def cell(value: Any) -> str:
    """A value as the CSV writes it: ``True``/``False``, shortest float repr,
    ``[a, b]`` lists, empty for ``None``."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return str(value)


def _common(backend: Backend) -> dict[str, Any]:
    return {
        "measurement_type": backend.measurement_type,
        "profiling_precision": backend.precision,
        "model_arch": "generic",
        "quant_signature": "none",
        "model_architecture_profile": "generic",
        "profiling_backend": backend.name,
    }


def linear_row(
    model: ModelSpec, shape: LinearShape, backend: Backend
) -> dict[str, Any]:
    """Shape columns of a ``linear_op.csv`` row."""
    width = rank_shapes(model, 1).intermediate
    return {
        "n_head": model.num_heads,
        "n_kv_head": model.num_kv_heads,
        "n_embd": model.hidden_size,
        "n_expanded_embd": width,
        "vocab_size": model.vocab_size,
        "use_gated_mlp": model.gated_mlp,
        "use_qk_norm": False,
        "attn_output_gate": False,
        "num_tokens": shape.num_tokens,
        "num_tensor_parallel_workers": shape.tp,
        "padded_n_embd": model.hidden_size,
        "padded_n_expanded_embd": width,
        "is_step2_mini": False,
        "share_expert_dim": None,
        "share_q_dim": None,
        **_common(backend),
    }


def attention_row(
    model: ModelSpec, shape: AttentionShape, grid: Grid, backend: Backend
) -> dict[str, Any]:
    """Shape columns of an ``attention.csv`` row.

    A decode row has ``prefill_chunk_size = 0`` and ``kv_cache_size`` = the
    context each request attends to; a whole prefill has ``prefill_chunk_size``
    = the prompt and ``kv_cache_size = 0``; a chunk has its query length and the
    cached context it attends to.
    """
    decode = shape.kind == "decode"
    query = shape.query
    chunk = shape.kind == "chunk"
    return {
        "n_embd": model.hidden_size,
        "n_q_head": model.num_heads,
        "n_kv_head": model.num_kv_heads,
        "block_size": grid.block_size,
        "num_tensor_parallel_workers": shape.tp,
        "max_model_len": model.max_position_embeddings,
        "batch_size": shape.batch_size,
        "prefill_chunk_size": 0 if decode else query,
        "kv_cache_size": shape.context,
        "is_prefill": not decode,
        "attention_backend": shape.backend,
        "is_mixed_batch": False,
        "mode": "even",
        "seq_lens": [query] * shape.batch_size,
        "total_tokens": query * shape.batch_size,
        "max_seq_len": query,
        "min_seq_len": query,
        "avg_seq_len": float(query),
        "equal_seq_len": query,
        "seq_len_variance": 0.0,
        "seq_len_std": 0.0,
        "seq_len_cv": 0.0,
        "is_chunked_prefill_sample": chunk,
        "chunk_start_token": shape.context if chunk else 0,
        "chunk_end_token": 0 if decode else shape.context + query,
        "total_prefill_tokens": 0 if decode else query * shape.batch_size,
        **_common(backend),
    }


def moe_row(
    model: ModelSpec,
    shape: MoeShape,
    grid: Grid,
    backend: Backend,
    local_loads: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """Shape columns of a ``moe.csv`` row; load statistics over the rank's experts."""
    experts = model.num_experts
    policy = "round_robin_uniform" if shape.routing == "uniform" else "zipf_gumbel_topk"
    return {
        "num_tokens": shape.num_tokens,
        "num_experts": experts,
        "num_experts_per_device": experts // shape.ep,
        "expert_parallel_size": shape.ep,
        "routing_runtime_path": "softmax_topk",
        "routing_assignment_policy": policy,
        "routing_weight_policy": "softmax_renorm",
        "routing_uses_router_logits": False,
        "gating_runtime_context": "standalone",
        "gating_runtime_context_impl": "none",
        "router_topk": model.num_experts_per_token,
        "hidden_dim": model.hidden_size,
        "expert_hidden_dim": model.expert_intermediate_size,
        "use_gated": model.gated_mlp,
        "num_tensor_parallel_workers": shape.tp,
        "model_expansion_ratio": model.expert_intermediate_size / model.hidden_size,
        **load_statistics(local_loads),
        "load_distribution": shape.routing,
        "seed": seed,
        "moe_grouped_gemm_backend": backend.grouped_gemm,
        **_common(backend),
    }
