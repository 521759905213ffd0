"""A hand-made per-layer profile of a tiny model, with times easy to check by hand.

Dense operators take ``a + b * tokens`` microseconds (:data:`DENSE`), lm_head and
sampler ``a + b * sequences``; the attention kernel is the multilinear function
:func:`attention_us`, which multilinear interpolation reproduces exactly; the MoE
block is :func:`moe_us`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from frontier.config import ParallelConfig
from frontier.devices import load_device
from frontier.models import ModelSpec
from frontier.plugins import ExecutionContext

DENSE = {
    "embedding": (1.0, 0.0),
    "layernorm": (2.0, 0.5),
    "qkv_proj": (10.0, 1.0),
    "rotary_emb": (1.0, 0.25),
    "o_proj": (5.0, 0.5),
    "gate_up_proj": (20.0, 2.0),
    "act_fn": (1.0, 0.25),
    "down_proj": (10.0, 1.0),
    "final_layernorm": (2.0, 0.25),
}
"""Operator -> (intercept us, us per token)."""

PER_SEQUENCE = {"lm_head": (100.0, 1.0), "sampler": (10.0, 2.0)}
"""Operator -> (intercept us, us per sequence)."""

TOKENS = (1, 2, 4, 8, 16, 32, 64)
SEQUENCES = (1, 2, 4, 8)
CHUNKS = (0, 16, 32, 64)
KVS = (0, 16, 32, 64)
DECODES = (0, 1, 2, 4)


def attention_us(chunk: float, kv_prefill: float, decodes: float, kv: float) -> float:
    """The kernel: ``4 + 0.5 q + 0.01 q k + n + 0.1 n m`` microseconds."""
    return 4 + 0.5 * chunk + 0.01 * chunk * kv_prefill + decodes + 0.1 * decodes * kv


def moe_us(tokens: float, experts: float) -> float:
    """The MoE block: ``20 + 0.5 tokens + 3 experts`` microseconds."""
    return 20 + 0.5 * tokens + 3 * experts


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_profile(folder: Path, moe: bool = False) -> Path:
    """Write the tiny profile into ``folder/tp1`` and return ``folder``."""
    tp = folder / "tp1"
    tp.mkdir(parents=True)
    rows = [[op, t, a + b * t] for op, (a, b) in DENSE.items() for t in TOKENS]
    _write(tp / "dense.csv", ["layer", "tokens", "time_us"], rows)
    rows = [
        [op, s, a + b * s] for op, (a, b) in PER_SEQUENCE.items() for s in SEQUENCES
    ]
    _write(tp / "per_sequence.csv", ["layer", "sequences", "time_us"], rows)
    rows = []
    for chunk in CHUNKS:
        for kv_prefill in KVS:
            if chunk == 0 and kv_prefill:
                continue
            for decodes in DECODES:
                for kv in KVS:
                    if (decodes == 0) != (kv == 0) or (chunk == 0 and decodes == 0):
                        continue
                    time = attention_us(chunk, kv_prefill, decodes, kv)
                    rows.append([chunk, kv_prefill, decodes, kv, time])
    _write(
        tp / "attention.csv",
        ["prefill_chunk", "kv_prefill", "n_decode", "kv_decode", "time_us"],
        rows,
    )
    if moe:
        rows = [
            [t, e, moe_us(t, e)]
            for t in (1, 2, 4, 8, 16)
            for e in (2, 4, 8)
            if e <= 2 * t
        ]
        _write(tp / "moe.csv", ["tokens", "activated_experts", "time_us"], rows)
    return folder


def tiny_model(moe: bool = False) -> ModelSpec:
    """Two layers; with ``moe`` eight experts, top 2, every layer MoE."""
    extra = (
        {"num_experts": 8, "num_experts_per_token": 2, "expert_intermediate_size": 32}
        if moe
        else {}
    )
    return ModelSpec(
        name="tiny-moe" if moe else "tiny",
        num_layers=2,
        hidden_size=64,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=128,
        vocab_size=1000,
        max_position_embeddings=4096,
        **extra,
    )


def context(
    model: ModelSpec, tp: int = 1, replicas: int = 1, ep: int = 1
) -> ExecutionContext:
    """The execution context of ``model`` on one RTX PRO 6000 per rank."""
    return ExecutionContext(
        model=model,
        device=load_device("rtx-pro-6000"),
        parallel=ParallelConfig(
            tensor_parallel_size=tp, num_replicas=replicas, expert_parallel_size=ep
        ),
        dtype="bfloat16",
        kv_cache_dtype="bfloat16",
    )


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    """The tiny dense profile's folder (holding ``tp1/``)."""
    return write_profile(tmp_path / "tiny" / "bf16")


@pytest.fixture
def moe_profile(tmp_path: Path) -> Path:
    """The tiny profile with an MoE table."""
    return write_profile(tmp_path / "tiny-moe" / "bf16", moe=True)
