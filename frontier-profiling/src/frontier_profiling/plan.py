"""What a profiling run measures: the grid of shapes, per operator family.

A :class:`Grid` lists the values to sweep (tensor-parallel sizes, token counts,
decode batch sizes and contexts, prefill lengths, chunk sizes and their contexts,
expert-parallel sizes, routing distributions). :func:`plan` turns it into the rows
of one family, each a shape (:class:`LinearShape`, :class:`AttentionShape`,
:class:`MoeShape`) that a backend can build and time.

Tensor parallelism is profiled on one device, the way Megatron-style sharding
splits a layer: each rank holds ``1/tp`` of the query heads, of the KV heads (at
least one), of the MLP and expert widths and of the vocabulary, so the operators
of one rank run at their per-rank shapes. Expert parallelism gives each rank
``num_experts / ep`` experts and the tokens routed to them.

Planning needs no device and imports no torch: ``--dry-run`` prints a plan from
here alone.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
from frontier.errors import ConfigError
from frontier.models import ModelSpec

__all__ = [
    "AttentionShape",
    "Grid",
    "LinearShape",
    "MoeShape",
    "RankShapes",
    "default_grid",
    "plan",
    "rank_shapes",
]

FAMILIES = ("linear", "attention", "moe")
"""The operator families, in the order ``frontier profile all`` measures them."""

ROUTINGS = ("uniform", "zipf")
"""Routing distributions: balanced round-robin, or Zipf-skewed expert popularity."""

MAX_DECODE_KV_TOKENS = 2_097_152
"""Decode shapes whose batch x context exceeds this are left out (memory)."""


@attrs.frozen(kw_only=True)
class Grid:
    """The values a profiling run sweeps; every tuple is sorted and positive.

    Attributes:
        tp_sizes: Tensor-parallel sizes; each is profiled on one device at its
            per-rank shapes.
        num_tokens: Tokens per step of the linear and MoE operators.
        decode_batch_sizes: Requests in a decode batch.
        decode_context_lengths: KV-cache tokens each decode attends to.
        prefill_lengths: Prompt lengths of whole prefills (no cached context).
        prefill_batch_sizes: Prompts per whole-prefill batch.
        chunk_sizes: Query tokens of a chunked-prefill chunk.
        chunk_context_lengths: Tokens already in the KV cache that a chunk
            attends to (besides itself).
        ep_sizes: Expert-parallel sizes (MoE only).
        routings: Routing distributions (``uniform``, ``zipf``).
        zipf_exponent: Exponent ``s`` of the skewed routing: expert ``i`` is
            chosen with weight ``1 / (i + 1) ** s``.
        attention_backends: Attention kernels to time, recorded per row.
        block_size: KV-cache block size in tokens (paged KV-cache write).
    """

    tp_sizes: tuple[int, ...] = (1,)
    num_tokens: tuple[int, ...]
    decode_batch_sizes: tuple[int, ...]
    decode_context_lengths: tuple[int, ...]
    prefill_lengths: tuple[int, ...]
    prefill_batch_sizes: tuple[int, ...] = (1,)
    chunk_sizes: tuple[int, ...]
    chunk_context_lengths: tuple[int, ...]
    ep_sizes: tuple[int, ...] = (1,)
    routings: tuple[str, ...] = ROUTINGS
    zipf_exponent: float = 1.2
    attention_backends: tuple[str, ...] = ("TORCH_SDPA",)
    block_size: int = 16


def _capped(values: list[int], limit: int) -> tuple[int, ...]:
    return tuple(v for v in values if v <= limit)


def default_grid(model: ModelSpec, attention_backends: tuple[str, ...]) -> Grid:
    """A grid for one GPU: about 20 token counts up to 8192, decode batches up to
    256 over contexts up to 8192, prefills and chunks up to the model's context.

    Lengths beyond ``model.max_position_embeddings`` are left out.
    """
    limit = model.max_position_embeddings
    tokens = [1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024]
    tokens += [1536, 2048, 3072, 4096, 6144, 8192]
    return Grid(
        num_tokens=tuple(tokens),
        decode_batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        decode_context_lengths=_capped([128, 256, 512, 1024, 2048, 4096, 8192], limit),
        prefill_lengths=_capped(
            [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192], limit
        ),
        chunk_sizes=_capped([128, 256, 512, 1024, 2048], limit),
        chunk_context_lengths=_capped([512, 1024, 2048, 4096], limit),
        attention_backends=attention_backends,
    )


@attrs.frozen
class RankShapes:
    """One tensor-parallel rank's share of a model's widths.

    Attributes:
        tp: Tensor-parallel size.
        hidden: Model width (not split).
        q_heads: Query heads on this rank, ``num_heads / tp``.
        kv_heads: KV heads on this rank, ``num_kv_heads / tp`` and at least one
            (replicated when ``tp`` exceeds the KV heads).
        head_dim: Width of one head.
        intermediate: MLP width on this rank, ``intermediate_size / tp``.
        vocab: Vocabulary rows on this rank, ``ceil(vocab_size / tp)``.
        gated: Whether the MLP has a gate (SwiGLU).
        experts: Routed experts of the model.
        top_k: Experts per token.
        expert_intermediate: One expert's width on this rank.
    """

    tp: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    gated: bool
    experts: int
    top_k: int
    expert_intermediate: int


def rank_shapes(model: ModelSpec, tp: int) -> RankShapes:
    """The per-rank widths of ``model`` at tensor-parallel size ``tp``.

    Raises:
        ConfigError: ``tp`` does not divide the query heads, the KV heads (nor
            they it), the MLP width or an expert's width.
    """
    if tp <= 0:
        raise ConfigError(f"--tp: tensor-parallel sizes must be positive, got {tp}")
    name = model.name

    def split(value: int, what: str) -> int:
        if value % tp:
            raise ConfigError(
                f"--tp {tp}: {name} has {what} = {value}, which {tp} ranks cannot "
                "share evenly; choose a TP size that divides it"
            )
        return value // tp

    q_heads = split(model.num_heads, "num_attention_heads")
    kv = model.num_kv_heads
    if kv % tp and tp % kv:
        raise ConfigError(
            f"--tp {tp}: {name} has num_key_value_heads = {kv}; TP must divide it "
            "or be a multiple of it"
        )
    dense_width = model.intermediate_size
    if model.is_moe and model.num_moe_layers == model.num_layers:
        dense_width = model.expert_intermediate_size
    return RankShapes(
        tp=tp,
        hidden=model.hidden_size,
        q_heads=q_heads,
        kv_heads=max(1, kv // tp),
        head_dim=model.head_dim,
        intermediate=split(dense_width, "intermediate_size"),
        vocab=math.ceil(model.vocab_size / tp),
        gated=model.gated_mlp,
        experts=model.num_experts,
        top_k=model.num_experts_per_token,
        expert_intermediate=(
            split(model.expert_intermediate_size, "moe_intermediate_size")
            if model.is_moe
            else 0
        ),
    )


@attrs.frozen
class LinearShape:
    """One row of ``linear_op.csv``: the per-token operators at ``num_tokens``."""

    tp: int
    num_tokens: int


@attrs.frozen
class AttentionShape:
    """One row of ``attention.csv``.

    Attributes:
        tp: Tensor-parallel size.
        kind: ``decode`` (one query token per request over ``context`` cached
            tokens), ``prefill`` (a whole prompt of ``query`` tokens, causal) or
            ``chunk`` (``query`` new tokens attending to ``context`` cached tokens
            and, causally, to themselves).
        batch_size: Requests in the batch, all of the same shape.
        query: Query tokens per request (1 for a decode).
        context: Cached tokens per request before this step.
        backend: Attention kernel (``TORCH_SDPA``, ``FLASH_ATTN``,
            ``FLASHINFER``, ``NUMPY``).
    """

    tp: int
    kind: Literal["decode", "prefill", "chunk"]
    batch_size: int
    query: int
    context: int
    backend: str

    @property
    def keys(self) -> int:
        """Keys each query row may attend to at most: context plus the new tokens."""
        return self.context + (self.query if self.kind != "decode" else 0)


@attrs.frozen
class MoeShape:
    """One row of ``moe.csv``: an MoE layer's operators at ``num_tokens``.

    Attributes:
        tp: Tensor-parallel size (splits each expert's width).
        ep: Expert-parallel size (this rank holds ``num_experts / ep`` experts).
        num_tokens: Tokens entering the layer.
        routing: ``uniform`` or ``zipf``.
    """

    tp: int
    ep: int
    num_tokens: int
    routing: str


Shape = LinearShape | AttentionShape | MoeShape


def _attention_shapes(model: ModelSpec, grid: Grid, tp: int) -> list[AttentionShape]:
    limit = model.max_position_embeddings
    shapes: list[AttentionShape] = []
    for backend in grid.attention_backends:
        # XXX: FlashInfer's batched kernels need a paged layout and a planning
        # step per batch; only its single-request kernels are profiled.
        single = backend == "FLASHINFER"
        decode_batches = (1,) if single else grid.decode_batch_sizes
        for batch in decode_batches:
            for context in grid.decode_context_lengths:
                if context <= limit and batch * context <= MAX_DECODE_KV_TOKENS:
                    shapes.append(
                        AttentionShape(tp, "decode", batch, 1, context, backend)
                    )
        for batch in (1,) if single else grid.prefill_batch_sizes:
            for length in grid.prefill_lengths:
                if length <= limit:
                    shapes.append(
                        AttentionShape(tp, "prefill", batch, length, 0, backend)
                    )
        for chunk in grid.chunk_sizes:
            for context in grid.chunk_context_lengths:
                if chunk + context <= limit:
                    shapes.append(
                        AttentionShape(tp, "chunk", 1, chunk, context, backend)
                    )
    return shapes


def plan(family: str, model: ModelSpec, grid: Grid) -> list[Shape]:
    """The shapes of ``family`` (``linear``, ``attention`` or ``moe``) to measure.

    Raises:
        ConfigError: The model cannot be split at a TP or EP size of the grid, the
            family does not apply (``moe`` for a dense model), or the model's
            attention is of a kind this profiler does not build (MLA).
    """
    for tp in grid.tp_sizes:
        rank_shapes(model, tp)
    if family in ("linear", "attention") and model.is_mla:
        # XXX: multi-head latent attention (DeepSeek-V2/V3) has other projections
        # and a compressed KV cache; profiling it needs kernels of its own.
        raise ConfigError(
            f"{model.name} uses multi-head latent attention, which `frontier profile "
            f"{family}` does not build yet; profile its `moe` family only"
        )
    if family == "linear":
        return [LinearShape(tp, n) for tp in grid.tp_sizes for n in grid.num_tokens]
    if family == "attention":
        return [s for tp in grid.tp_sizes for s in _attention_shapes(model, grid, tp)]
    if family == "moe":
        if not model.is_moe:
            raise ConfigError(
                f"{model.name} is a dense model (no routed experts): there is no "
                "`moe` family to profile"
            )
        for ep in grid.ep_sizes:
            if ep <= 0 or model.num_experts % ep:
                raise ConfigError(
                    f"--ep {ep}: {model.name} has {model.num_experts} experts, which "
                    f"{ep} ranks cannot share evenly"
                )
        if not grid.routings:
            raise ConfigError("--routing: give uniform, zipf or both")
        unknown = [r for r in grid.routings if r not in ROUTINGS]
        if unknown:
            raise ConfigError(
                f"--routing: unknown distribution {unknown[0]!r}; choose from "
                f"{', '.join(ROUTINGS)}"
            )
        return [
            MoeShape(tp, ep, n, routing)
            for tp in grid.tp_sizes
            for ep in grid.ep_sizes
            for routing in grid.routings
            for n in grid.num_tokens
        ]
    raise ConfigError(f"unknown operator family {family!r}; choose from {FAMILIES}")
