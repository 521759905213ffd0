"""FLOPs and bytes of each operator on one tensor-parallel rank.

The roofline (Williams, Waterman and Patterson, CACM 2009) bounds an operator's
time by its arithmetic and its memory traffic::

    time_s = max(flops / (peak_flops * compute_efficiency),
                 bytes / (memory_bandwidth * memory_efficiency)) + overhead_s

The formulas below (``T`` tokens, ``H`` hidden size, ``b`` bytes per element,
widths divided by the TP size) take numpy arrays or floats alike:

- linear ``in -> out``: ``2 T in out`` FLOPs; ``(in out + T in + T out) b`` bytes
  (weights read once, activations in and out);
- attention of an (equivalent) prefill chunk of ``q`` tokens over ``c`` cached ones,
  causal: ``4 d h (q c + q (q + 1) / 2)`` FLOPs for ``h`` heads of width ``d``;
  bytes: the KV of ``c + q`` tokens plus Q and O;
- attention of ``n`` decodes with ``m`` cached tokens each: ``4 d h n (m + 1)``
  FLOPs; bytes: the KV read ``n (m + 1) kv_bytes`` plus Q and O;
- MoE experts, top-``k`` of ``E``: ``2 T k P_e`` FLOPs for ``P_e`` weights per
  expert; bytes: the experts hit, ``E (1 - (1 - k / E) ** T)`` in expectation under
  uniform routing, plus the routed activations. With expert parallelism over
  ``ep`` GPUs a rank holds ``E / ep`` whole experts (not split by TP) and computes
  the ``k / ep`` routes per token that reach them, ``T`` then counting the tokens
  of the whole expert-parallel group (the routed operators: shuffle, experts,
  combine);
- elementwise operators (norms, rotary, activation, residual add, KV write,
  embedding gather): memory-bound, their reads and writes.
"""

from __future__ import annotations

from typing import Any

from frontier.models import ModelSpec

__all__ = ["QUANTISED_OPERATORS", "OperatorCosts"]

QUANTISED_OPERATORS = frozenset(
    (
        "qkv_proj",
        "o_proj",
        "mlp_up_gate",
        "mlp_down",
        "moe_experts",
        "moe_shared_experts",
    )
)
"""Operators whose weights a quantised checkpoint stores narrow (the LM head and
the MoE router stay in the model dtype)."""


class OperatorCosts:
    """FLOPs and bytes of every operator of ``model`` on one of ``tp`` ranks.

    Args:
        model: The model's shapes.
        tp: Tensor-parallel size (divides heads, KV heads, MLP and vocab widths).
        dtype_bytes: Bytes per weight and activation element.
        kv_dtype_bytes: Bytes per KV-cache element.
        ep: Expert-parallel size (GPUs the routed experts are split over).
        weight_dtype_bytes: Bytes per weight of the quantised projections and
            experts, group scales included (``ModelSpec.linear_weight_bytes``:
            1 for FP8 or INT8, about 0.52 for 4-bit GPTQ or AWQ);
            ``dtype_bytes`` when unset. The LM head and the MoE router stay at
            ``dtype_bytes``, as such checkpoints keep them. Which peak the
            FLOPs run at is the roofline's choice (``QUANTISED_OPERATORS``).
    """

    def __init__(
        self,
        model: ModelSpec,
        tp: int,
        dtype_bytes: int,
        kv_dtype_bytes: int,
        ep: int = 1,
        weight_dtype_bytes: float | None = None,
    ) -> None:
        self.model = model
        self.tp = tp
        self.ep = ep
        self.b = dtype_bytes
        self.wb = weight_dtype_bytes or dtype_bytes
        h = self.h = model.hidden_size
        heads = model.num_heads // tp
        if model.is_mla:
            head_dim = model.qk_nope_head_dim + model.qk_rope_head_dim
            self.kv_bytes_per_token = model.kv_bytes_per_token_per_layer(kv_dtype_bytes)
            qkv_out = model.attention_params() // h - model.num_heads * model.v_head_dim
            self.qkv = (h, max(1, qkv_out // tp))
            self.o = (heads * model.v_head_dim, h)
            rotary_width = (heads + 1) * model.qk_rope_head_dim
        else:
            head_dim = model.head_dim
            kv_split = min(tp, model.num_kv_heads)
            kv_total = model.kv_bytes_per_token_per_layer(kv_dtype_bytes)
            self.kv_bytes_per_token = kv_total // kv_split
            kv_heads = max(1, model.num_kv_heads // tp)
            self.qkv = (h, (heads + 2 * kv_heads) * head_dim)
            self.o = (heads * head_dim, h)
            rotary_width = (heads + kv_heads) * head_dim
        self.rotary_width = rotary_width
        self.q_width = heads * head_dim
        self.pair_flops = 4 * head_dim * heads
        width = model.intermediate_size // tp
        self.mlp_width = width
        self.up = (h, (2 if model.gated_mlp else 1) * width)
        self.down = (width, h)
        self.act_passes = 3 if model.gated_mlp else 2
        self.vocab = model.vocab_size // tp
        matrices = 3 if model.gated_mlp else 2
        self.experts = model.num_experts
        self.top_k = model.num_experts_per_token
        # Under expert parallelism whole experts sit on each GPU, E / ep of them.
        expert_split = 1 if ep > 1 else tp
        self.expert_params = (
            matrices * h * model.expert_intermediate_size // expert_split
        )
        self.local_routes = self.top_k / ep
        self.shared_params = (
            model.num_shared_experts
            * matrices
            * h
            * model.shared_expert_intermediate_size
            // tp
        )

    # ------------------------------------------------------------------ families

    def _linear(
        self, tokens: Any, shape: tuple[int, int], quantised: bool = True
    ) -> tuple[Any, Any]:
        fan_in, fan_out = shape
        flops = 2.0 * tokens * fan_in * fan_out
        if not quantised or self.wb == self.b:
            traffic = (fan_in * fan_out + tokens * (fan_in + fan_out)) * self.b
        else:
            traffic = fan_in * fan_out * self.wb + tokens * (fan_in + fan_out) * self.b
        return flops, traffic

    def _elementwise(self, elements: Any, passes: float) -> tuple[Any, Any]:
        return 0.0 * elements, elements * passes * self.b

    def applies(self, name: str) -> bool:
        """Whether operator ``name`` exists in this model (MoE ops only in MoE
        models, shared experts only where the model has them)."""
        if name.startswith("moe_"):
            if not self.model.is_moe:
                return False
            if name == "moe_shared_experts":
                return self.shared_params > 0
        if name in ("mlp_up_gate", "mlp_act", "mlp_down"):
            return self.model.num_moe_layers < self.model.num_layers
        return True

    def flops_bytes(self, name: str, x: Any, y: Any = None) -> tuple[Any, Any]:
        """FLOPs and bytes of operator ``name`` at feature ``x`` (and ``y``).

        ``x`` is the operator's feature (tokens, sequences, prefill tokens or
        decodes); for ``attention_prefill`` ``(x, y)`` is the equivalent chunk
        ``(q, c)``; for ``attention_decode`` it is ``(n, m)``.
        """
        h = self.h
        if name == "attention_prefill":
            flops = self.pair_flops * (x * y + x * (x + 1) / 2)
            traffic = (y + x) * self.kv_bytes_per_token + 2 * x * self.q_width * self.b
            return flops, traffic
        if name == "attention_decode":
            context = x * (y + 1)
            flops = self.pair_flops * context
            traffic = context * self.kv_bytes_per_token + 2 * x * self.q_width * self.b
            return flops, traffic
        if name in ("qkv_proj", "o_proj", "mlp_up_gate", "mlp_down", "lm_head"):
            shape = {
                "qkv_proj": self.qkv,
                "o_proj": self.o,
                "mlp_up_gate": self.up,
                "mlp_down": self.down,
                "lm_head": (h, self.vocab),
            }[name]
            return self._linear(x, shape, quantised=name != "lm_head")
        if name == "moe_gate":
            return self._linear(x, (h, max(1, self.experts)), quantised=False)
        if name == "moe_experts":
            experts, k = max(1, self.experts), self.top_k
            hit = experts / self.ep * (1.0 - (1.0 - k / experts) ** x)
            routes = x * self.local_routes
            flops = 2.0 * routes * self.expert_params
            if self.wb == self.b:
                traffic = (hit * self.expert_params + 2 * routes * h) * self.b
            else:
                traffic = hit * self.expert_params * self.wb + 2 * routes * h * self.b
            return flops, traffic
        if name == "moe_shared_experts":
            flops = 2.0 * x * self.shared_params
            if self.wb == self.b:
                return flops, (self.shared_params + 2 * x * h) * self.b
            return flops, self.shared_params * self.wb + 2 * x * h * self.b
        if name in ("kv_cache_write_prefill", "kv_cache_write_decode"):
            return 0.0 * x, 2.0 * x * self.kv_bytes_per_token
        passes = {
            "embedding": (h, 2.0),
            "input_norm": (h, 2.0),
            "post_attention_norm": (h, 2.0),
            "final_norm": (h, 2.0),
            "rotary": (self.rotary_width, 2.0),
            "attention_input_reshape": (self.rotary_width + self.q_width, 2.0),
            "attention_output_reshape": (self.q_width, 2.0),
            "residual_add": (h, 3.0),
            "mlp_act": (self.mlp_width, float(self.act_passes)),
            "moe_topk": (max(1, self.experts), 2.0),
            "moe_shuffle": (self.local_routes * h, 2.0),
            "moe_combine": ((self.local_routes + 1) * h, 2.0),
        }
        if name not in passes:
            raise KeyError(f"no cost formula for operator {name!r}")
        width, count = passes[name]
        return self._elementwise(x * width, count)
