"""The torch timing backend: profiled operators as torch tensors, on CUDA or CPU.

On a CUDA device each call is bracketed by two CUDA events and the times are read
after one synchronisation, so launch gaps between calls do not count; on the CPU,
torch runs synchronously and the monotonic clock times each call. Attention runs
through ``torch.nn.functional.scaled_dot_product_attention`` (``TORCH_SDPA``) and,
when installed and on CUDA, FlashAttention 2 (``FLASH_ATTN``, ``flash_attn_func``,
whose causal mask is aligned to the last key, as a chunk over a cache needs) and
FlashInfer (``FLASHINFER``, its single-request prefill and decode kernels). MoE
experts run as one ``torch._grouped_mm`` where torch has it and it accepts the
shapes, else as a loop of per-expert GEMMs.

This module is imported only when the torch backend is opened.
"""

from __future__ import annotations

import platform
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from frontier.errors import ConfigError

from frontier_profiling.backend import (
    Backend,
    ShapeTooLarge,
    available_attention_backends,
    cpu_description,
    monotonic_times_ms,
)
from frontier_profiling.numpy_backend import new_token_slots
from frontier_profiling.plan import AttentionShape, RankShapes

__all__ = ["TorchBackend"]

_DTYPES = {
    "bfloat16": (torch.bfloat16, "BF16"),
    "bf16": (torch.bfloat16, "BF16"),
    "float16": (torch.float16, "FP16"),
    "fp16": (torch.float16, "FP16"),
    "half": (torch.float16, "FP16"),
    "float32": (torch.float32, "FP32"),
    "fp32": (torch.float32, "FP32"),
}

_EPS = 1e-6

_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), weight, _EPS)
    scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + _EPS)
    return (x.float() * scale).to(x.dtype) * weight


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, second * cos + first * sin], -1)


def _sdpa_has_gqa() -> bool:
    try:
        q = torch.zeros(1, 2, 1, 4)
        kv = torch.zeros(1, 1, 1, 4)
        F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
    except (TypeError, RuntimeError):
        return False
    return True


class TorchBackend(Backend):
    """Operators as torch tensors; CUDA events on a GPU, the clock on the CPU."""

    name = "torch"

    def __init__(self, dtype: str, seed: int, device: str = "auto") -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "--torch-device cuda: torch sees no CUDA device "
                f"(torch {torch.__version__}, CUDA {torch.version.cuda}); check the "
                "driver and the torch build, or profile the CPU"
            )
        self.device = torch.device(device)
        self.dtype, self.precision = _DTYPES[dtype]
        self.measurement_type = "CUDA_EVENT" if device == "cuda" else "MONOTONIC_CLOCK"
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._weights: dict[tuple, torch.Tensor] = {}
        self.gqa = _sdpa_has_gqa()
        self.grouped_gemm = (
            "torch_grouped_mm" if self._grouped_mm_works() else ("torch_expert_loop")
        )

    # ----------------------------------------------------------------- tensors

    def _normal(self, *shape: int) -> torch.Tensor:
        return torch.randn(
            *shape, generator=self.generator, device=self.device, dtype=self.dtype
        )

    def _weight(self, name: str, *shape: int) -> torch.Tensor:
        """A weight matrix, made once per name and shape and reused by later rows."""
        key = (name, *shape)
        if key not in self._weights:
            self._weights[key] = self._normal(*shape)
        return self._weights[key]

    def _ints(self, high: int, size: int) -> torch.Tensor:
        return torch.randint(
            0, high, (size,), generator=self.generator, device=self.device
        )

    def _grouped_mm_works(self) -> bool:
        if not hasattr(torch, "_grouped_mm"):
            return False
        try:
            x = torch.zeros(32, 64, device=self.device, dtype=self.dtype)
            w = torch.zeros(2, 64, 64, device=self.device, dtype=self.dtype)
            offsets = torch.tensor([16, 32], device=self.device, dtype=torch.int32)
            torch._grouped_mm(x, w, offs=offsets)
        except (RuntimeError, TypeError, NotImplementedError):
            return False
        return True

    # ----------------------------------------------------------------- operators

    def linear_ops(self, rank: RankShapes, num_tokens: int) -> dict[str, Any]:
        """Embedding, norms, QKV/O projections, rotary, MLP, residual add, LM head."""
        t, h, d = num_tokens, rank.hidden, rank.head_dim
        q_width, kv_width = rank.q_heads * d, rank.kv_heads * d
        width = rank.intermediate
        up_width = width * (2 if rank.gated else 1)
        x = self._normal(t, h)
        residual = self._normal(t, h)
        norm_weight = self._weight("norm_weight", h)
        ids = self._ints(rank.vocab, t)
        table = self._weight("table", rank.vocab, h)
        w_qkv = self._weight("w_qkv", q_width + 2 * kv_width, h)
        w_o = self._weight("w_o", h, q_width)
        w_up = self._weight("w_up", up_width, h)
        w_down = self._weight("w_down", h, width)
        w_head = self._weight("w_head", rank.vocab, h)
        attn_out = self._normal(t, q_width)
        up = self._normal(t, up_width)
        act = self._normal(t, width)
        q = self._normal(t, rank.q_heads, d)
        k = self._normal(t, rank.kv_heads, d)
        angles = self._normal(t, 1, d // 2)
        cos, sin = angles.cos(), angles.sin()

        def mlp_act() -> torch.Tensor:
            if rank.gated:
                return F.silu(up[:, :width]) * up[:, width:]
            return F.gelu(up)

        return {
            "emb": lambda: F.embedding(ids, table),
            "input_layernorm": lambda: _rms_norm(x, norm_weight),
            "attn_pre_proj": lambda: F.linear(x, w_qkv),
            "attn_rope": lambda: (_rotate(q, cos, sin), _rotate(k, cos, sin)),
            "attn_post_proj": lambda: F.linear(attn_out, w_o),
            "post_attention_layernorm": lambda: _rms_norm(x, norm_weight),
            "mlp_up_proj": lambda: F.linear(x, w_up),
            "mlp_act": mlp_act,
            "mlp_down_proj": lambda: F.linear(act, w_down),
            "add": lambda: x + residual,
            "lm_head_linear": lambda: F.linear(x, w_head),
        }

    def attention_backends(self) -> tuple[str, ...]:
        """SDPA everywhere; FlashAttention and FlashInfer on CUDA when installed."""
        if self.device.type != "cuda":
            return ("TORCH_SDPA",)
        return available_attention_backends("torch")

    def _kernel(self, rank: RankShapes, shape: AttentionShape) -> Any:
        """The attention call of ``shape.backend`` over fresh q, k, v."""
        b, d, new, keys = shape.batch_size, rank.head_dim, shape.query, shape.keys
        hq, hkv = rank.q_heads, rank.kv_heads
        causal = shape.kind != "decode"
        if shape.backend == "FLASH_ATTN":
            from flash_attn import flash_attn_func

            q = self._normal(b, new, hq, d)
            k, v = self._normal(b, keys, hkv, d), self._normal(b, keys, hkv, d)
            return lambda: flash_attn_func(q, k, v, causal=causal)
        if shape.backend == "FLASHINFER":
            import flashinfer

            if b != 1:
                raise ConfigError(
                    "FLASHINFER: only single-request shapes are profiled "
                    f"(batch size {b} asked)"
                )
            k, v = self._normal(keys, hkv, d), self._normal(keys, hkv, d)
            if shape.kind == "decode":
                q = self._normal(hq, d)
                return lambda: flashinfer.single_decode_with_kv_cache(q, k, v)
            q = self._normal(new, hq, d)
            return lambda: flashinfer.single_prefill_with_kv_cache(q, k, v, causal=True)
        q = self._normal(b, hq, new, d)
        kv_heads = hkv if self.gqa else hq
        # XXX: torch < 2.5 has no grouped-query SDPA; its K/V are then expanded to
        # every query head, which reads more memory than a GQA kernel does.
        k, v = self._normal(b, kv_heads, keys, d), self._normal(b, kv_heads, keys, d)
        extra = {"enable_gqa": True} if self.gqa else {}
        if shape.kind == "decode":
            return lambda: F.scaled_dot_product_attention(q, k, v, **extra)
        if shape.kind == "prefill":
            return lambda: F.scaled_dot_product_attention(
                q, k, v, is_causal=True, **extra
            )
        return lambda: F.scaled_dot_product_attention(
            q, k, v, attn_mask=self._chunk_mask(new, keys), **extra
        )

    def _chunk_mask(self, queries: int, keys: int) -> Any:
        """Causal mask aligned to the last key: query ``i`` sees ``keys - queries +
        i + 1`` keys. torch >= 2.3 has it as a bias its flash kernel runs; older
        versions get the same mask as a boolean matrix (a slower kernel)."""
        try:
            from torch.nn.attention.bias import causal_lower_right
        except ImportError:
            rows = keys - queries + torch.arange(queries, device=self.device)[:, None]
            return torch.arange(keys, device=self.device)[None, :] <= rows
        return causal_lower_right(queries, keys)

    def attention_ops(
        self, rank: RankShapes, shape: AttentionShape, block_size: int
    ) -> dict[str, Any]:
        """Input reshape, paged KV write, the attention kernel, output reshape."""
        b, d, new = shape.batch_size, rank.head_dim, shape.query
        hq, hkv = rank.q_heads, rank.kv_heads
        try:
            qkv = self._normal(b * new, (hq + 2 * hkv) * d)
            out = self._normal(b, hq, new, d)
            slots_np = new_token_slots(shape, block_size)
            slots = torch.from_numpy(slots_np).to(self.device)
            cache_k = torch.zeros(
                int(slots_np.max()) + 1, hkv, d, device=self.device, dtype=self.dtype
            )
            cache_v = torch.zeros_like(cache_k)
            k_new, v_new = self._normal(b * new, hkv, d), self._normal(b * new, hkv, d)
            kernel = self._kernel(rank, shape)
        except _OUT_OF_MEMORY as error:
            raise ShapeTooLarge(str(error)) from None

        def input_reshape() -> tuple[torch.Tensor, ...]:
            q, k, v = qkv.view(b, new, hq + 2 * hkv, d).split([hq, hkv, hkv], dim=2)
            return q.contiguous(), k.contiguous(), v.contiguous()

        def kv_cache_save() -> None:
            cache_k.index_copy_(0, slots, k_new)
            cache_v.index_copy_(0, slots, v_new)

        def output_reshape() -> torch.Tensor:
            return out.transpose(1, 2).reshape(b * new, hq * d)

        name = "attn_decode" if shape.kind == "decode" else "attn_prefill"
        return {
            "attn_input_reshape": input_reshape,
            "attn_kv_cache_save": kv_cache_save,
            name: kernel,
            "attn_output_reshape": output_reshape,
        }

    def moe_ops(
        self, rank: RankShapes, expert_ids: np.ndarray, local_experts: int
    ) -> dict[str, Any]:
        """Router GEMM, softmax top-k, permutation, grouped expert MLPs, combine."""
        t, top_k = expert_ids.shape
        h, width = rank.hidden, rank.expert_intermediate
        up_width = width * (2 if rank.gated else 1)
        flat_np = expert_ids.reshape(-1)
        kept_np = np.flatnonzero(flat_np < local_experts)
        order_np = kept_np[np.argsort(flat_np[kept_np], kind="stable")]
        counts_np = np.bincount(flat_np[kept_np], minlength=local_experts)
        routed = len(order_np)
        try:
            x = self._normal(t, h)
            w_gate = self._weight("w_gate", rank.experts, h)
            logits = self._normal(t, rank.experts)
            flat = torch.from_numpy(flat_np).to(self.device)
            order = torch.from_numpy(order_np).to(self.device)
            offsets = torch.from_numpy(np.cumsum(counts_np).astype(np.int32))
            offsets = offsets.to(self.device)
            permuted = self._normal(routed, h)
            # Stored (expert, out, in) and used transposed: the layout grouped
            # GEMM kernels want for their second operand.
            w_up = self._weight("moe_w_up", local_experts, up_width, h).mT
            w_down = self._weight("moe_w_down", local_experts, h, width).mT
            expert_out = self._normal(routed, h)
            weights = self._normal(t, top_k)
        except _OUT_OF_MEMORY as error:
            raise ShapeTooLarge(str(error)) from None
        bounds = np.concatenate([[0], np.cumsum(counts_np)]).tolist()
        active = np.flatnonzero(counts_np).tolist()

        def activation(up: torch.Tensor) -> torch.Tensor:
            if rank.gated:
                return F.silu(up[:, :width]) * up[:, width:]
            return F.gelu(up)

        def topk() -> tuple[torch.Tensor, torch.Tensor]:
            probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
            picked, chosen = probs.topk(top_k, dim=-1)
            return chosen, picked / picked.sum(dim=-1, keepdim=True)

        def shuffle() -> torch.Tensor:
            keep = torch.nonzero(flat < local_experts).squeeze(1)
            by_expert = keep[torch.argsort(flat[keep], stable=True)]
            return x.index_select(0, by_expert // top_k)

        def grouped() -> torch.Tensor:
            up = torch._grouped_mm(permuted, w_up, offs=offsets)
            return torch._grouped_mm(activation(up), w_down, offs=offsets)

        def looped() -> torch.Tensor:
            result = torch.empty_like(permuted)
            for e in active:
                rows = slice(bounds[e], bounds[e + 1])
                result[rows] = activation(permuted[rows] @ w_up[e]) @ w_down[e]
            return result

        def combine() -> torch.Tensor:
            slots = torch.zeros(t * top_k, h, device=self.device, dtype=self.dtype)
            slots.index_copy_(0, order, expert_out)
            return (slots.view(t, top_k, h) * weights[:, :, None]).sum(dim=1)

        experts = looped
        if self.grouped_gemm == "torch_grouped_mm" and routed:
            try:
                grouped()
                experts = grouped
            except RuntimeError:
                # Alignment or dtype limits of this torch build: loop from now on.
                self.grouped_gemm = "torch_expert_loop"
        return {
            "moe_gating_linear": lambda: F.linear(x, w_gate),
            "moe_gating_routing_topk": topk,
            "moe_shuffling": shuffle,
            "moe_grouped_gemm": experts,
            "moe_combine": combine,
        }

    # ----------------------------------------------------------------- timing

    def time_ms(self, operator: Any, warmup: int, repeats: int) -> list[float]:
        """CUDA-event milliseconds on a GPU; monotonic-clock ones on the CPU."""
        try:
            if self.device.type != "cuda":
                return monotonic_times_ms(operator, warmup, repeats)
            for _ in range(warmup):
                operator()
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            for start, end in zip(starts, ends, strict=True):
                start.record()
                operator()
                end.record()
            torch.cuda.synchronize()
            return [
                start.elapsed_time(end) for start, end in zip(starts, ends, strict=True)
            ]
        except _OUT_OF_MEMORY as error:
            raise ShapeTooLarge(str(error)) from None

    def describe(self) -> dict[str, Any]:
        """The device (name, memory), torch's and CUDA's versions."""
        facts: dict[str, Any] = {
            "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda,
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "device_kind": self.device.type,
        }
        if self.device.type == "cuda":
            props = torch.cuda.get_device_properties(self.device)
            facts["device_name"] = props.name
            facts["device_memory_gib"] = round(props.total_memory / 2**30, 2)
            facts["compute_capability"] = f"{props.major}.{props.minor}"
            facts["cudnn_version"] = torch.backends.cudnn.version()
        else:
            facts.update(cpu_description())
            facts["torch_threads"] = torch.get_num_threads()
        return facts

    def release(self) -> None:
        """Return cached device memory between shapes."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
