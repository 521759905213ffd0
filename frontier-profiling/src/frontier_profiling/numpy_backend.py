"""The numpy timing backend: every profiled operator as float32 arrays on the CPU.

It builds the operators at the same shapes as the torch backend (a layer's
projections as matrix products, RMSNorm, rotary embedding, SiLU-gated MLP,
attention as ``softmax(q k^T / sqrt(d) + mask) v`` with grouped KV heads, a paged
KV-cache write, MoE gating, top-k, permutation, per-expert GEMMs and the weighted
combine) and times each call with the monotonic clock. numpy has no bfloat16, so
every dtype is measured as float32 and the rows say ``FP32``.
"""

from __future__ import annotations

import platform
from typing import Any

import numpy as np

from frontier_profiling.backend import Backend, cpu_description, monotonic_times_ms
from frontier_profiling.plan import AttentionShape, RankShapes

__all__ = ["NumpyBackend"]

_EPS = 1e-6


def _rms_norm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    scale = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + _EPS)
    return x * scale * weight


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], -1)


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def attend(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, context: int | None
) -> np.ndarray:
    """Grouped-query attention ``softmax(q k^T / sqrt(d) + mask) v``.

    Args:
        q: Queries ``(batch, kv_heads, group, queries, d)``.
        k: Keys ``(batch, kv_heads, keys, d)``.
        v: Values, like ``k``.
        context: ``None`` for a decode (every key visible); else the cached
            tokens before the queries: query ``i`` sees keys ``0 .. context + i``.
    """
    scale = np.float32(1.0 / np.sqrt(q.shape[-1]))
    scores = (q @ k[:, :, None].swapaxes(-1, -2)) * scale
    if context is not None:
        rows = context + np.arange(q.shape[-2])[:, None]
        visible = np.arange(k.shape[-2])[None, :] <= rows
        scores = np.where(visible, scores, np.float32(-np.inf))
    return _softmax(scores) @ v[:, :, None]


def new_token_slots(shape: AttentionShape, block_size: int) -> np.ndarray:
    """Flat KV-cache slots of the tokens a step writes, request after request.

    Request ``r`` owns a run of blocks; its new tokens go to positions
    ``context .. context + query - 1``, offset within the first block as in a
    real block table (``context mod block_size``).
    """
    new = 1 if shape.kind == "decode" else shape.query
    first = shape.context % block_size
    blocks = -(-(first + new) // block_size)
    offsets = first + np.arange(new)
    starts = np.arange(shape.batch_size) * blocks * block_size
    return (starts[:, None] + offsets[None, :]).reshape(-1)


class NumpyBackend(Backend):
    """Operators as float32 numpy arrays, timed with the monotonic clock."""

    name = "numpy"
    measurement_type = "MONOTONIC_CLOCK"
    precision = "FP32"
    grouped_gemm = "numpy_expert_loop"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._weights: dict[tuple, np.ndarray] = {}

    def _normal(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape, dtype=np.float32)

    def _weight(self, name: str, *shape: int) -> np.ndarray:
        """A weight matrix, made once per name and shape and reused by later rows."""
        key = (name, *shape)
        if key not in self._weights:
            self._weights[key] = self._normal(*shape)
        return self._weights[key]

    def linear_ops(self, rank: RankShapes, num_tokens: int) -> dict[str, Any]:
        """Embedding, norms, QKV/O projections, rotary, MLP, residual add, LM head."""
        t, h, d = num_tokens, rank.hidden, rank.head_dim
        q_width, kv_width = rank.q_heads * d, rank.kv_heads * d
        up_width = rank.intermediate * (2 if rank.gated else 1)
        x = self._normal(t, h)
        residual = self._normal(t, h)
        norm_weight = self._weight("norm_weight", h)
        ids = self.rng.integers(0, rank.vocab, t)
        table = self._weight("table", rank.vocab, h)
        w_qkv = self._weight("w_qkv", h, q_width + 2 * kv_width)
        w_o = self._weight("w_o", q_width, h)
        w_up = self._weight("w_up", h, up_width)
        w_down = self._weight("w_down", rank.intermediate, h)
        w_head = self._weight("w_head", h, rank.vocab)
        attn_out = self._normal(t, q_width)
        up = self._normal(t, up_width)
        act = self._normal(t, rank.intermediate)
        q = self._normal(t, rank.q_heads, d)
        k = self._normal(t, rank.kv_heads, d)
        angles = self._normal(t, 1, d // 2)
        cos, sin = np.cos(angles), np.sin(angles)
        width = rank.intermediate

        def mlp_act() -> np.ndarray:
            if rank.gated:
                return _silu(up[:, :width]) * up[:, width:]
            return _silu(up)

        return {
            "emb": lambda: table[ids],
            "input_layernorm": lambda: _rms_norm(x, norm_weight),
            "attn_pre_proj": lambda: x @ w_qkv,
            "attn_rope": lambda: (_rotate(q, cos, sin), _rotate(k, cos, sin)),
            "attn_post_proj": lambda: attn_out @ w_o,
            "post_attention_layernorm": lambda: _rms_norm(x, norm_weight),
            "mlp_up_proj": lambda: x @ w_up,
            "mlp_act": mlp_act,
            "mlp_down_proj": lambda: act @ w_down,
            "add": lambda: x + residual,
            "lm_head_linear": lambda: x @ w_head,
        }

    def attention_ops(
        self, rank: RankShapes, shape: AttentionShape, block_size: int
    ) -> dict[str, Any]:
        """Input reshape, paged KV write, the attention kernel, output reshape."""
        b, d = shape.batch_size, rank.head_dim
        kv, group = rank.kv_heads, rank.q_heads // rank.kv_heads
        new = shape.query
        keys = shape.keys
        qkv = self._normal(b * new, (rank.q_heads + 2 * kv) * d)
        q = self._normal(b, kv, group, new, d)
        k = self._normal(b, kv, keys, d)
        v = self._normal(b, kv, keys, d)
        out = self._normal(b, kv, group, new, d)
        slots = new_token_slots(shape, block_size)
        cache_rows = int(slots.max()) + 1
        cache_k = np.zeros((cache_rows, kv, d), np.float32)
        cache_v = np.zeros((cache_rows, kv, d), np.float32)
        k_new = self._normal(b * new, kv, d)
        v_new = self._normal(b * new, kv, d)
        context = None if shape.kind == "decode" else shape.context
        q_width = rank.q_heads * d

        def input_reshape() -> tuple[np.ndarray, ...]:
            split = qkv.reshape(b, new, rank.q_heads + 2 * kv, d)
            queries = split[:, :, : rank.q_heads].reshape(b, new, kv, group, d)
            return (
                np.ascontiguousarray(queries.transpose(0, 2, 3, 1, 4)),
                np.ascontiguousarray(split[:, :, rank.q_heads : rank.q_heads + kv]),
                np.ascontiguousarray(split[:, :, rank.q_heads + kv :]),
            )

        def kv_cache_save() -> None:
            cache_k[slots] = k_new
            cache_v[slots] = v_new

        def attention() -> np.ndarray:
            return attend(q, k, v, context)

        def output_reshape() -> np.ndarray:
            return np.ascontiguousarray(out.transpose(0, 3, 1, 2, 4)).reshape(
                b * new, q_width
            )

        kernel = "attn_decode" if shape.kind == "decode" else "attn_prefill"
        return {
            "attn_input_reshape": input_reshape,
            "attn_kv_cache_save": kv_cache_save,
            kernel: attention,
            "attn_output_reshape": output_reshape,
        }

    def moe_ops(
        self, rank: RankShapes, expert_ids: np.ndarray, local_experts: int
    ) -> dict[str, Any]:
        """Router GEMM, softmax top-k, permutation, per-expert MLPs, combine."""
        t, top_k = expert_ids.shape
        h, width = rank.hidden, rank.expert_intermediate
        up_width = width * (2 if rank.gated else 1)
        x = self._normal(t, h)
        w_gate = self._weight("w_gate", h, rank.experts)
        logits = self._normal(t, rank.experts)
        flat = expert_ids.reshape(-1)
        kept = np.flatnonzero(flat < local_experts)
        order = kept[np.argsort(flat[kept], kind="stable")]
        counts = np.bincount(flat[kept], minlength=local_experts)
        permuted = self._normal(len(order), h)
        w_up = self._weight("moe_w_up", local_experts, h, up_width)
        w_down = self._weight("moe_w_down", local_experts, width, h)
        expert_out = self._normal(len(order), h)
        weights = self._normal(t, top_k)
        bounds = np.concatenate([[0], np.cumsum(counts)])

        def topk() -> tuple[np.ndarray, np.ndarray]:
            probs = _softmax(logits)
            chosen = np.argpartition(-probs, top_k - 1, axis=1)[:, :top_k]
            picked = np.take_along_axis(probs, chosen, axis=1)
            return chosen, picked / picked.sum(axis=1, keepdims=True)

        def shuffle() -> np.ndarray:
            keep = np.flatnonzero(flat < local_experts)
            by_expert = keep[np.argsort(flat[keep], kind="stable")]
            return x[by_expert // top_k]

        def activation(up: np.ndarray) -> np.ndarray:
            if rank.gated:
                return _silu(up[:, :width]) * up[:, width:]
            return _silu(up)

        def experts() -> np.ndarray:
            result = np.empty_like(permuted)
            for e in np.flatnonzero(counts):
                rows = slice(bounds[e], bounds[e + 1])
                result[rows] = activation(permuted[rows] @ w_up[e]) @ w_down[e]
            return result

        def combine() -> np.ndarray:
            slots = np.zeros((t * top_k, h), np.float32)
            slots[order] = expert_out
            return (slots.reshape(t, top_k, h) * weights[:, :, None]).sum(axis=1)

        return {
            "moe_gating_linear": lambda: x @ w_gate,
            "moe_gating_routing_topk": topk,
            "moe_shuffling": shuffle,
            "moe_grouped_gemm": experts,
            "moe_combine": combine,
        }

    def time_ms(self, operator: Any, warmup: int, repeats: int) -> list[float]:
        """Monotonic-clock milliseconds of each timed call."""
        return monotonic_times_ms(operator, warmup, repeats)

    def describe(self) -> dict[str, Any]:
        """The CPU and numpy's version."""
        return {
            **cpu_description(),
            "device_kind": "cpu",
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "torch_version": None,
            "cuda_version": None,
        }
