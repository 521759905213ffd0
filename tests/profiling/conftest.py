"""Fixtures of the profiler's tests: tiny dense and MoE models, a small grid."""

from __future__ import annotations

import json

import pytest
import typer
from frontier.models import load_model
from frontier_profiling.plan import Grid
from frontier_profiling.plugin import frontier_add_commands

TINY_DENSE = {
    "model_type": "llama",
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 256,
    "vocab_size": 512,
    "max_position_embeddings": 2048,
    "torch_dtype": "bfloat16",
}
"""A Llama-shaped model small enough to profile on a CPU in a second."""

TINY_MOE = {
    **TINY_DENSE,
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 64,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "decoder_sparse_step": 1,
}
"""A Qwen3-MoE-shaped model: 8 experts, top 2, every layer MoE."""

SMALL_GRID = [
    "--num-tokens",
    "1,4,16,64",
    "--batch-sizes",
    "1,4",
    "--context-lengths",
    "32,128",
    "--prefill-lengths",
    "16,64",
    "--chunk-sizes",
    "16",
    "--chunk-contexts",
    "64",
    "--warmup",
    "1",
    "--repeats",
    "3",
    "--quiet",
]
"""Grid options of the CLI tests: 4 linear rows, 7 attention rows, 8 MoE rows."""


def small_grid(**changes) -> Grid:
    """The grid of ``SMALL_GRID`` as a :class:`Grid` (NUMPY attention)."""
    values = {
        "num_tokens": (1, 4, 16, 64),
        "decode_batch_sizes": (1, 4),
        "decode_context_lengths": (32, 128),
        "prefill_lengths": (16, 64),
        "chunk_sizes": (16,),
        "chunk_context_lengths": (64,),
        "attention_backends": ("NUMPY",),
    }
    values.update(changes)
    return Grid(**values)


def write_model(folder, config) -> str:
    """Write ``config`` as ``folder/config.json``; return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.fixture
def dense_path(tmp_path) -> str:
    """Path of the tiny dense model's config.json (folder ``tiny-llama``)."""
    return write_model(tmp_path / "tiny-llama", TINY_DENSE)


@pytest.fixture
def moe_path(tmp_path) -> str:
    """Path of the tiny MoE model's config.json (folder ``tiny-moe``)."""
    return write_model(tmp_path / "tiny-moe", TINY_MOE)


@pytest.fixture
def dense_model(dense_path):
    """The tiny dense model's spec."""
    return load_model("tiny-llama", config_path=dense_path)


@pytest.fixture
def moe_model(moe_path):
    """The tiny MoE model's spec."""
    return load_model("tiny-moe", config_path=moe_path)


def profile_cli() -> typer.Typer:
    """A typer app holding only ``profile`` (what the plugin hook adds)."""
    app = typer.Typer()

    @app.command()
    def noop() -> None:  # a second command keeps the sub-command's name
        """Nothing."""

    frontier_add_commands(app=app)
    return app
