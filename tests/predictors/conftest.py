"""Hand-made operator profiles of a tiny model, with times that are easy to check.

Every linear-file operator takes ``intercept + slope * tokens`` milliseconds
(:data:`TOKEN_OPS`); prefill attention ``0.005 + 1e-4 q + 1e-6 q c + 2e-6 q^2``;
decode attention ``0.006 + 2e-4 n + 2e-6 n m``; the KV-cache write
``0.004 + 5e-5 q`` (prefill) and ``0.003 + 1e-4 n`` (decode). These are exactly
linear in the ``linear`` model's inputs, so that model reproduces every row.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from frontier.config import ParallelConfig
from frontier.devices import load_device
from frontier.models import ModelSpec
from frontier.plugins import ExecutionContext

TOKEN_OPS = {
    "emb": (0.002, 0.0001),
    "input_layernorm": (0.003, 0.0002),
    "attn_pre_proj": (0.010, 0.003),
    "attn_rope": (0.004, 0.0001),
    "attn_post_proj": (0.008, 0.001),
    "post_attention_layernorm": (0.003, 0.0002),
    "mlp_up_proj": (0.020, 0.006),
    "mlp_act": (0.005, 0.0003),
    "mlp_down_proj": (0.015, 0.003),
    "add": (0.002, 0.0001),
}
"""Profile operator -> (intercept ms, ms per token)."""

LM_HEAD = (0.030, 0.002)
"""``lm_head_linear`` of the newer format: (intercept ms, ms per token)."""

TOKENS = (1, 16, 32, 64, 128)
PREFILL = [(q, c) for q in (16, 32, 64, 128) for c in (0, 64, 128)]
DECODE = [(n, m) for n in (1, 2, 4, 8) for m in (16, 64, 128)]

TINY_MODEL_CONFIG = {
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "intermediate_size": 128,
    "vocab_size": 256,
    "num_hidden_layers": 2,
    "max_position_embeddings": 512,
    "torch_dtype": "float16",
}


def prefill_ms(q: float, c: float) -> float:
    """Prefill attention time of the hand-made profile."""
    return 0.005 + 1e-4 * q + 1e-6 * q * c + 2e-6 * q * q


def decode_ms(n: float, m: float) -> float:
    """Decode attention time of the hand-made profile."""
    return 0.006 + 2e-4 * n + 2e-6 * n * m


def token_ms(op: str, tokens: float) -> float:
    """Time of linear-file operator ``op`` at ``tokens``."""
    intercept, slope = LM_HEAD if op == "lm_head_linear" else TOKEN_OPS[op]
    return intercept + slope * tokens


def _stats(op: str, value: float) -> dict[str, float]:
    return {f"time_stats.{op}.{s}": value for s in ("min", "max", "mean", "median")}


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` (dicts with equal keys) as a CSV file."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def linear_rows(newer: bool, tp: int = 1) -> list[dict]:
    """Rows of ``mlp.csv`` (older) or ``linear_op.csv`` (newer)."""
    rows = []
    for tokens in TOKENS:
        row: dict = {}
        for op in TOKEN_OPS:
            row.update(_stats(op, token_ms(op, tokens)))
        if newer:
            row.update(_stats("lm_head_linear", token_ms("lm_head_linear", tokens)))
        row.update(
            n_head=4,
            n_kv_head=4,
            n_embd=64,
            n_expanded_embd=128,
            vocab_size=256,
            use_gated_mlp=True,
            num_tokens=tokens,
            num_tensor_parallel_workers=tp,
        )
        rows.append(row)
    return rows


def attention_rows(tp: int = 1) -> list[dict]:
    """Rows of ``attention.csv``: single prefills, then decode batches."""
    rows = []
    shape = dict(n_embd=64, n_q_head=4, n_kv_head=4, block_size=16)
    for q, c in PREFILL:
        row = {
            **_stats("attn_kv_cache_save", 0.004 + 5e-5 * q),
            **_stats("attn_prefill", prefill_ms(q, c)),
            **_stats("attn_decode", 0.0),
        }
        row.update(shape, num_tensor_parallel_workers=tp, max_model_len=512)
        row.update(batch_size=1, prefill_chunk_size=q, kv_cache_size=c, is_prefill=True)
        rows.append(row)
    for n, m in DECODE:
        row = {
            **_stats("attn_kv_cache_save", 0.003 + 1e-4 * n),
            **_stats("attn_prefill", 0.0),
            **_stats("attn_decode", decode_ms(n, m)),
        }
        row.update(shape, num_tensor_parallel_workers=tp, max_model_len=512)
        row.update(
            batch_size=n, prefill_chunk_size=0, kv_cache_size=m, is_prefill=False
        )
        rows.append(row)
    return rows


def write_profile(directory: Path, newer: bool = False, tp: int = 1) -> Path:
    """Write a hand-made profile of the tiny model into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_csv(
        directory / ("linear_op.csv" if newer else "mlp.csv"), linear_rows(newer, tp)
    )
    write_csv(directory / "attention.csv", attention_rows(tp))
    return directory


@pytest.fixture
def tiny_model() -> ModelSpec:
    """The tiny model the hand-made profiles measure (2 layers, hidden 64)."""
    from frontier.hf_config import spec_from_hf_config

    return spec_from_hf_config(TINY_MODEL_CONFIG, "tiny", "test")


@pytest.fixture
def tiny_model_file(tmp_path) -> Path:
    """The tiny model as a Hugging Face ``config.json``."""
    path = tmp_path / "tiny-config.json"
    path.write_text(json.dumps(TINY_MODEL_CONFIG))
    return path


@pytest.fixture
def tiny_context(tiny_model) -> ExecutionContext:
    """The tiny model on an A800 at TP 1 in FP16."""
    return ExecutionContext(
        model=tiny_model,
        device=load_device("a800"),
        parallel=ParallelConfig(),
        dtype="float16",
        kv_cache_dtype="float16",
    )


@pytest.fixture
def older_profile(tmp_path) -> Path:
    """A hand-made older-format profile (``mlp.csv``, ``attention.csv``)."""
    return write_profile(tmp_path / "older")


@pytest.fixture
def newer_profile(tmp_path) -> Path:
    """A hand-made newer-format profile (``linear_op.csv`` with an LM head)."""
    return write_profile(tmp_path / "newer", newer=True)


def make_batch(prefills=(), decodes=()):
    """A batch of prefill chunks ``(q, cached)`` and decodes with ``cached`` tokens."""
    from frontier.batch import Batch
    from frontier.request import Request

    batch = Batch()
    request_id = 0
    for q, cached in prefills:
        request = Request(request_id, 0.0, cached + q, 8)
        request.num_computed_tokens = cached
        batch.add(request, q)
        request_id += 1
    for cached in decodes:
        request = Request(request_id, 0.0, cached, 8)
        request.num_computed_tokens = cached
        request.num_generated = 1
        batch.add(request, 1)
        request_id += 1
    return batch
