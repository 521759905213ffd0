"""The columns of the newer profile format, as this profiler writes them.

A profile is three CSV files per device and model (``linear_op.csv``,
``attention.csv``, ``moe.csv``). Each row is one measured shape: for every
operator six columns ``time_stats.<op>.{min,max,mean,median,std,count}`` (times in
milliseconds, ``count`` the number of timed repeats), then the shape columns. The
column names and their order follow the profiles measured on H800 GPUs in the
shared data set (``h800/llama2_7b_dense_example``, ``h800/Phi-tiny-MoE-instruct``);
this profiler adds the operators it measures beyond those (``add``,
``lm_head_linear``, ``moe_combine``) and one column, ``profiling_backend``, that
names the library that ran the operators (``torch`` or ``numpy``).

Each file also has *key* columns: the shape parameters that identify a row. A
resumed run skips the keys a file already holds.
"""

from __future__ import annotations

__all__ = [
    "ATTENTION_COLUMNS",
    "ATTENTION_KEY",
    "ATTENTION_OPS",
    "FILES",
    "LINEAR_COLUMNS",
    "LINEAR_KEY",
    "LINEAR_OPS",
    "MOE_COLUMNS",
    "MOE_KEY",
    "MOE_OPS",
    "STATISTICS",
    "time_columns",
]

STATISTICS = ("min", "max", "mean", "median", "std", "count")
"""The statistics of one operator's repeated timings, in column order."""

LINEAR_OPS = (
    "emb",
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
    "lm_head_linear",
)
"""Operators of ``linear_op.csv``: per token, outside the attention kernel."""

ATTENTION_OPS = (
    "attn_input_reshape",
    "attn_kv_cache_save",
    "attn_prefill",
    "attn_decode",
    "attn_output_reshape",
)
"""Operators of ``attention.csv``; a row fills ``attn_prefill`` or
``attn_decode``, the other is left empty."""

MOE_OPS = (
    "moe_gating_linear",
    "moe_gating_routing_topk",
    "moe_shuffling",
    "moe_grouped_gemm",
    "moe_combine",
)
"""Operators of ``moe.csv``: router, top-k, permutation, experts, combine."""


def time_columns(ops: tuple[str, ...]) -> list[str]:
    """The ``time_stats.<op>.<stat>`` columns of ``ops``, in file order."""
    return [f"time_stats.{op}.{stat}" for op in ops for stat in STATISTICS]


LINEAR_SHAPE = (
    "n_head",
    "n_kv_head",
    "n_embd",
    "n_expanded_embd",
    "vocab_size",
    "use_gated_mlp",
    "use_qk_norm",
    "attn_output_gate",
    "num_tokens",
    "num_tensor_parallel_workers",
    "padded_n_embd",
    "padded_n_expanded_embd",
    "model_arch",
    "is_step2_mini",
    "share_expert_dim",
    "share_q_dim",
    "measurement_type",
    "profiling_precision",
    "quant_signature",
    "model_architecture_profile",
    "profiling_backend",
)

ATTENTION_SHAPE = (
    "n_embd",
    "n_q_head",
    "n_kv_head",
    "block_size",
    "num_tensor_parallel_workers",
    "max_model_len",
    "batch_size",
    "prefill_chunk_size",
    "kv_cache_size",
    "is_prefill",
    "attention_backend",
    "is_mixed_batch",
    "mode",
    "seq_lens",
    "total_tokens",
    "max_seq_len",
    "min_seq_len",
    "avg_seq_len",
    "equal_seq_len",
    "seq_len_variance",
    "seq_len_std",
    "seq_len_cv",
    "is_chunked_prefill_sample",
    "chunk_start_token",
    "chunk_end_token",
    "total_prefill_tokens",
    "profiling_precision",
    "model_arch",
    "quant_signature",
    "measurement_type",
    "model_architecture_profile",
    "prefill_seq_lens",
    "prefill_kv_cache_sizes",
    "decode_kv_cache_sizes",
    "num_prefill_seqs",
    "num_decode_seqs",
    "decode_batch_size",
    "total_batch_size",
    "total_decode_tokens",
    "decode_avg_kv_cache_size",
    "batch_composition_ratio",
    "is_true_mixed_batch",
    "profiling_backend",
)

MOE_SHAPE = (
    "num_tokens",
    "num_experts",
    "num_experts_per_device",
    "expert_parallel_size",
    "routing_runtime_path",
    "routing_assignment_policy",
    "routing_weight_policy",
    "routing_uses_router_logits",
    "gating_runtime_context",
    "gating_runtime_context_impl",
    "router_topk",
    "hidden_dim",
    "expert_hidden_dim",
    "use_gated",
    "num_tensor_parallel_workers",
    "total_routed_tokens",
    "model_expansion_ratio",
    "tokens_per_expert_avg",
    "tokens_to_experts_ratio",
    "expert_utilization",
    "min_load_ratio",
    "load_imbalance_cv",
    "max_load_ratio",
    "load_entropy",
    "load_gini_coefficient",
    "load_distribution",
    "seed",
    "moe_grouped_gemm_backend",
    "measurement_type",
    "profiling_precision",
    "model_arch",
    "quant_signature",
    "model_architecture_profile",
    "profiling_backend",
)

LINEAR_COLUMNS = (*time_columns(LINEAR_OPS), *LINEAR_SHAPE)
"""Every column of ``linear_op.csv``, in order."""

ATTENTION_COLUMNS = (*time_columns(ATTENTION_OPS), *ATTENTION_SHAPE)
"""Every column of ``attention.csv``, in order."""

MOE_COLUMNS = (*time_columns(MOE_OPS), *MOE_SHAPE)
"""Every column of ``moe.csv``, in order."""

LINEAR_KEY = ("num_tensor_parallel_workers", "num_tokens")
"""Columns that identify a row of ``linear_op.csv`` within one profile."""

ATTENTION_KEY = (
    "num_tensor_parallel_workers",
    "is_prefill",
    "batch_size",
    "prefill_chunk_size",
    "kv_cache_size",
    "attention_backend",
)
"""Columns that identify a row of ``attention.csv`` within one profile."""

MOE_KEY = (
    "num_tensor_parallel_workers",
    "expert_parallel_size",
    "num_tokens",
    "load_distribution",
)
"""Columns that identify a row of ``moe.csv`` within one profile."""

FILES = {
    "linear": ("linear_op.csv", LINEAR_COLUMNS, LINEAR_KEY, LINEAR_OPS),
    "attention": ("attention.csv", ATTENTION_COLUMNS, ATTENTION_KEY, ATTENTION_OPS),
    "moe": ("moe.csv", MOE_COLUMNS, MOE_KEY, MOE_OPS),
}
"""Operator family -> (file name, columns, key columns, operators)."""
