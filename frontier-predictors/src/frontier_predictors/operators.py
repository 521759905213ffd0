"""The operator taxonomy every predictor shares.

One decoder layer is an attention block and an MLP block (or an MoE block); the
first pipeline stage adds the token embedding, the last the final norm and LM head.
Each operator is predicted from one aggregate feature of the batch (its
:class:`Feature`), so a predictor never walks the requests:

- ``TOKENS``: tokens computed in the step (linear layers, norms, elementwise);
- ``SEQUENCES``: requests in the step (the LM head computes one row per request);
- ``PREFILL_TOKENS`` / ``DECODES``: prefill tokens, decode requests (the KV-cache
  write, which profiles measure separately on the two paths);
- ``PREFILL_ATTENTION``: the prefill chunks' (query length, context) pairs, pooled
  into one equivalent chunk (see :mod:`frontier_predictors.features`);
- ``DECODE_ATTENTION``: the number of decodes and their mean context.

Collectives are not operators here: the CC backend prices them.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "ATTENTION_BLOCK",
    "BLOCKS",
    "EMBEDDING_BLOCK",
    "HEAD_BLOCK",
    "MLP_BLOCK",
    "MOE_BLOCK",
    "OPERATORS",
    "Cost",
    "Feature",
    "Operator",
]


class Feature(enum.Enum):
    """The aggregate feature of a batch an operator's time depends on."""

    TOKENS = "tokens"
    SEQUENCES = "sequences"
    PREFILL_TOKENS = "prefill_tokens"
    DECODES = "decodes"
    PREFILL_ATTENTION = "prefill_attention"
    DECODE_ATTENTION = "decode_attention"

    @property
    def is_2d(self) -> bool:
        """Whether the feature is a pair (the attention kernels)."""
        return self in (Feature.PREFILL_ATTENTION, Feature.DECODE_ATTENTION)


class Cost(enum.Enum):
    """Which roofline formula and which default efficiency factors apply."""

    GEMM = "gemm"
    ELEMENTWISE = "elementwise"
    ATTENTION = "attention"


@attrs.frozen
class Operator:
    """One operator of the taxonomy.

    Attributes:
        name: Frontier's name for it.
        feature: The batch feature its time depends on.
        cost: Roofline family (GEMM, elementwise, attention).
        description: What it computes, one line.
        kernels: Kernel launches it costs (for the roofline's fixed overhead).
        profiled_only: An artefact of how profilers time attention (layout
            changes around the kernel); the uncalibrated roofline leaves it out
            (zero), a calibration or a profile that measured it puts it back.
    """

    name: str
    feature: Feature
    cost: Cost
    description: str
    kernels: int = 1
    profiled_only: bool = False


_T, _S = Feature.TOKENS, Feature.SEQUENCES
_G, _E, _A = Cost.GEMM, Cost.ELEMENTWISE, Cost.ATTENTION

OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("embedding", _T, _E, "token embedding gather"),
        Operator("input_norm", _T, _E, "RMSNorm before attention"),
        Operator("qkv_proj", _T, _G, "fused Q, K, V projection"),
        Operator("rotary", _T, _E, "rotary position embedding of Q and K"),
        Operator(
            "attention_input_reshape",
            _T,
            _E,
            "layout change before the kernel",
            profiled_only=True,
        ),
        Operator(
            "kv_cache_write_prefill",
            Feature.PREFILL_TOKENS,
            _E,
            "KV-cache write of the prefill tokens",
        ),
        Operator(
            "kv_cache_write_decode", Feature.DECODES, _E, "KV-cache write of decodes"
        ),
        Operator(
            "attention_prefill",
            Feature.PREFILL_ATTENTION,
            _A,
            "attention kernel of the prefill chunks (causal, over cached context)",
        ),
        Operator(
            "attention_decode",
            Feature.DECODE_ATTENTION,
            _A,
            "attention kernel of the decodes (one query over its context)",
        ),
        Operator(
            "attention_output_reshape",
            _T,
            _E,
            "layout change after the kernel",
            profiled_only=True,
        ),
        Operator("o_proj", _T, _G, "attention output projection"),
        Operator("residual_add", _T, _E, "residual add (once per block)"),
        Operator("post_attention_norm", _T, _E, "RMSNorm before the MLP or MoE"),
        Operator("mlp_up_gate", _T, _G, "MLP up (and gate) projection"),
        Operator("mlp_act", _T, _E, "MLP activation (and gate multiply)"),
        Operator("mlp_down", _T, _G, "MLP down projection"),
        Operator("moe_gate", _T, _G, "MoE router logits"),
        Operator("moe_topk", _T, _E, "MoE top-k routing and weights"),
        Operator("moe_shuffle", _T, _E, "MoE token permutation to experts"),
        Operator("moe_experts", _T, _G, "MoE grouped expert GEMMs", kernels=3),
        Operator("moe_shared_experts", _T, _G, "MoE shared experts", kernels=3),
        Operator("moe_combine", _T, _E, "MoE weighted combine of expert outputs"),
        Operator("final_norm", _S, _E, "final RMSNorm of the sampled rows"),
        Operator("lm_head", _S, _G, "LM head projection of the sampled rows"),
    )
}
"""Every operator, by name."""

ATTENTION_BLOCK = (
    "input_norm",
    "qkv_proj",
    "rotary",
    "attention_input_reshape",
    "kv_cache_write_prefill",
    "kv_cache_write_decode",
    "attention_prefill",
    "attention_decode",
    "attention_output_reshape",
    "o_proj",
    "residual_add",
)
"""Operators of one layer's attention block (``OperatorTimes.attention_s``)."""

MLP_BLOCK = (
    "post_attention_norm",
    "mlp_up_gate",
    "mlp_act",
    "mlp_down",
    "residual_add",
)
"""Operators of one dense layer's MLP block (``OperatorTimes.mlp_s``)."""

MOE_BLOCK = (
    "post_attention_norm",
    "moe_gate",
    "moe_topk",
    "moe_shuffle",
    "moe_experts",
    "moe_shared_experts",
    "moe_combine",
    "residual_add",
)
"""Operators of one MoE layer's expert block (``OperatorTimes.moe_s``)."""

EMBEDDING_BLOCK = ("embedding",)
"""Operators of the first stage's embedding (``OperatorTimes.embedding_s``)."""

HEAD_BLOCK = ("final_norm", "lm_head")
"""Operators of the last stage's head (``OperatorTimes.head_s``)."""

BLOCKS: dict[str, tuple[str, ...]] = {
    "attention": ATTENTION_BLOCK,
    "mlp": MLP_BLOCK,
    "moe": MOE_BLOCK,
    "embedding": EMBEDDING_BLOCK,
    "head": HEAD_BLOCK,
}
"""``OperatorTimes`` field stem -> the operators summed into it."""
