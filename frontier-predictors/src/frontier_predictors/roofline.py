"""The roofline predictor: each operator is bound by compute or by memory traffic.

For every operator of a layer, on one tensor-parallel rank (Williams, Waterman and
Patterson, "Roofline", CACM 2009)::

    time_s = max(flops / (peak_flops * compute_efficiency),
                 bytes / (memory_bandwidth * memory_efficiency)) + launch_overhead

FLOPs and bytes per operator (``T`` tokens in the step, ``H`` hidden size, ``b``
bytes per element, widths divided by the TP size):

- a linear layer ``in -> out``: ``2 T in out`` FLOPs; ``(in out + T in + T out) b``
  bytes (weights read once, activations in and out);
- attention of a prefill chunk of ``q`` tokens over ``c`` cached tokens (causal):
  ``4 d h (q c + q (q + 1) / 2)`` FLOPs for ``h`` heads of width ``d`` (QK^T and PV);
  bytes: the KV of ``c + q`` tokens plus Q and O;
- attention of decodes: ``4 d h`` FLOPs per context token; bytes: the KV read,
  ``sum(context) * kv_bytes_per_token``;
- MoE: ``2 T k 3 H I_e`` FLOPs for top-``k`` routing; weights of the experts hit,
  ``E (1 - (1 - k / E) ** T)`` in expectation under uniform routing;
- elementwise operators (norms, rotary, activation, residual add): memory-bound,
  a read and a write of their tensors.

The efficiency factors default to typical measured fractions of peak on A100/H100
class GPUs; ``frontier train --predictor roofline`` fits them to a profile.
"""

from __future__ import annotations

import attrs
from frontier.batch import Batch
from frontier.config import PredictorConfig
from frontier.models import DTYPE_BYTES
from frontier.plugins import ExecutionContext, OperatorTimes, Predictor

__all__ = ["RooflineConfig", "RooflinePredictor"]


def _fraction(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in (0, 1], got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise ValueError(f"must be zero or more, got {value!r}")


@attrs.frozen(kw_only=True)
class RooflineConfig(PredictorConfig):
    """Efficiency factors of the roofline predictor.

    Attributes:
        gemm_compute_efficiency: Fraction of peak FLOP/s a linear layer reaches.
        gemm_memory_efficiency: Fraction of memory bandwidth a linear layer reaches.
        attention_compute_efficiency: Fraction of peak FLOP/s of prefill attention.
        attention_memory_efficiency: Fraction of bandwidth of decode attention.
        elementwise_memory_efficiency: Fraction of bandwidth of elementwise ops.
        launch_overhead_us: Fixed cost per kernel, microseconds.
        calibration_path: JSON file of fitted factors (from ``frontier train``);
            its values replace the ones above.
    """

    type: str = "roofline"
    gemm_compute_efficiency: float = attrs.field(default=0.7, validator=_fraction)
    gemm_memory_efficiency: float = attrs.field(default=0.8, validator=_fraction)
    attention_compute_efficiency: float = attrs.field(default=0.5, validator=_fraction)
    attention_memory_efficiency: float = attrs.field(default=0.7, validator=_fraction)
    elementwise_memory_efficiency: float = attrs.field(default=0.6, validator=_fraction)
    launch_overhead_us: float = attrs.field(default=4.0, validator=_non_negative)
    calibration_path: str | None = None


class RooflinePredictor(Predictor):
    """Operator times from FLOPs and bytes against the device's peaks."""

    def __init__(self, config: RooflineConfig, context: ExecutionContext) -> None:
        super().__init__(config, context)
        model = context.model
        device = context.device
        tp = context.parallel.tensor_parallel_size
        self.b = DTYPE_BYTES[context.dtype]
        kv_b = DTYPE_BYTES[context.kv_cache_dtype]
        peak = device.peak_flops(context.dtype)
        bandwidth = device.memory_bandwidth
        self._gemm_flops = peak * config.gemm_compute_efficiency
        self._gemm_bw = bandwidth * config.gemm_memory_efficiency
        self._attn_flops = peak * config.attention_compute_efficiency
        self._attn_bw = bandwidth * config.attention_memory_efficiency
        self._elem_bw = bandwidth * config.elementwise_memory_efficiency
        self._launch = config.launch_overhead_us * 1e-6

        h = model.hidden_size
        self.h = h
        heads = model.num_heads // tp
        if model.is_mla:
            head_dim = model.qk_nope_head_dim + model.qk_rope_head_dim
            self._kv_bytes_per_token = model.kv_bytes_per_token_per_layer(kv_b)
            qkv_out = model.attention_params() // h - model.num_heads * model.v_head_dim
            self._qkv = (h, max(1, qkv_out // tp))
            self._o = (heads * model.v_head_dim, h)
        else:
            head_dim = model.head_dim
            kv_split = min(tp, model.num_kv_heads)
            self._kv_bytes_per_token = model.kv_bytes_per_token_per_layer(kv_b) // kv_split
            kv_heads = max(1, model.num_kv_heads // tp)
            self._qkv = (h, (heads + 2 * kv_heads) * head_dim)
            self._o = (heads * head_dim, h)
        self._attn_flops_per_pair = 4 * head_dim * heads
        self._q_bytes_per_token = heads * head_dim * self.b

        width = model.intermediate_size // tp
        self._up = (h, (2 if model.gated_mlp else 1) * width)
        self._down = (width, h)
        self._mlp_width = width
        self._moe = model.is_moe
        if model.is_moe:
            self._experts = model.num_experts
            self._top_k = model.num_experts_per_token
            expert_width = model.expert_intermediate_size
            matrices = 3 if model.gated_mlp else 2
            self._expert_params = matrices * h * expert_width // tp
            self._shared_params = (
                model.num_shared_experts
                * matrices
                * h
                * model.shared_expert_intermediate_size
                // tp
            )
        self._vocab_per_rank = model.vocab_size // tp

    # ------------------------------------------------------------------ operators

    def _linear(self, tokens: int, shape: tuple[int, int]) -> float:
        fan_in, fan_out = shape
        flops = 2.0 * tokens * fan_in * fan_out
        traffic = (fan_in * fan_out + tokens * (fan_in + fan_out)) * self.b
        return max(flops / self._gemm_flops, traffic / self._gemm_bw) + self._launch

    def _elementwise(self, elements: float, passes: float = 2.0) -> float:
        return elements * passes * self.b / self._elem_bw + self._launch

    def _attention(self, batch: Batch) -> float:
        seconds = 0.0
        pair = self._attn_flops_per_pair
        kv_bytes = self._kv_bytes_per_token
        for q, cached in zip(batch.prefill_lengths, batch.prefill_contexts, strict=True):
            flops = pair * (q * cached + q * (q + 1) / 2)
            traffic = (cached + q) * kv_bytes + 2 * q * self._q_bytes_per_token
            seconds += max(flops / self._attn_flops, traffic / self._attn_bw) + self._launch
        if batch.num_decodes:
            context = batch.decode_context_sum
            flops = pair * context
            traffic = context * kv_bytes + 2 * batch.num_decodes * self._q_bytes_per_token
            seconds += max(flops / self._attn_flops, traffic / self._attn_bw) + self._launch
        return seconds

    def _moe_time(self, tokens: int) -> float:
        experts, top_k = self._experts, self._top_k
        hit = experts * (1.0 - (1.0 - top_k / experts) ** tokens)
        flops = 2.0 * tokens * top_k * self._expert_params
        traffic = (hit * self._expert_params + 2 * tokens * top_k * self.h) * self.b
        seconds = max(flops / self._gemm_flops, traffic / self._gemm_bw) + 3 * self._launch
        gate = self._linear(tokens, (self.h, experts))
        shuffle = self._elementwise(tokens * top_k * self.h, passes=4.0)
        if self._shared_params:
            flops = 2.0 * tokens * self._shared_params
            traffic = (self._shared_params + 2 * tokens * self.h) * self.b
            seconds += max(flops / self._gemm_flops, traffic / self._gemm_bw) + self._launch
        return seconds + gate + shuffle + self._elementwise(tokens * self.h)

    # ------------------------------------------------------------------ contract

    def predict(self, batch: Batch) -> OperatorTimes:
        """Operator times of ``batch`` per TP rank (see the module docstring)."""
        tokens = batch.num_tokens
        hidden = tokens * self.h
        attention = (
            self._elementwise(hidden)  # input norm
            + self._linear(tokens, self._qkv)
            + self._elementwise(tokens * self._qkv[1], passes=2.0)  # rotary
            + self._elementwise(tokens * self._kv_bytes_per_token / self.b, passes=1.0)
            + self._attention(batch)
            + self._linear(tokens, self._o)
            + self._elementwise(hidden, passes=3.0)  # residual add
        )
        mlp = (
            self._elementwise(hidden)  # post-attention norm
            + self._linear(tokens, self._up)
            + self._elementwise(tokens * self._mlp_width, passes=3.0)  # act and mul
            + self._linear(tokens, self._down)
            + self._elementwise(hidden, passes=3.0)  # residual add
        )
        moe = self._moe_time(tokens) if self._moe else 0.0
        embedding = self._elementwise(hidden)
        sequences = len(batch.requests)
        head = self._elementwise(sequences * self.h) + self._linear(
            sequences, (self.h, self._vocab_per_rank)
        )
        return OperatorTimes(attention, mlp, moe, embedding, head)
