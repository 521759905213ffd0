"""Readers of operator profiles: measured times, per operator, against their features.

A profile directory holds CSV files in one of two generations of one format (see
the data README of the shared data set):

- older: ``mlp.csv`` (linear and elementwise operators against ``num_tokens``),
  ``attention.csv`` (attention against batch size, prefill chunk size, KV-cache
  size, ``is_prefill``) and, for MoE models, ``moe.csv``;
- newer: ``linear_op.csv`` in place of ``mlp.csv``; attention rows may also be
  mixed batches (``prefill_seq_lens``, ``prefill_kv_cache_sizes``,
  ``decode_kv_cache_sizes`` lists).

Times are milliseconds in columns ``time_stats.<op>.<statistic>``. Rows are kept
where the shape columns match the model and the tensor-parallel size matches the
deployment (operators that TP does not split, such as norms, are taken from TP 1
rows when a profile measured them only there). The final norm, which no profile
times on its own, is learned from the input norm's rows (the same kernel over one
row per sequence). Each operator becomes an
:class:`OperatorSamples`: its features and times, and the CSV rows they came from.

Every problem is an :class:`~frontier.errors.InputError` naming the file, the row
(the line number in the file, header = line 1) and the column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import attrs
import numpy as np
from frontier.errors import InputError
from frontier.models import ModelSpec

from frontier_predictors.csv_table import CsvTable
from frontier_predictors.features import pooled_prefill_arrays
from frontier_predictors.operators import OPERATORS

__all__ = [
    "REQUIRED_OPERATORS",
    "STATISTICS",
    "OperatorSamples",
    "Profile",
    "files_digest",
    "profile_files",
    "read_profile",
]

STATISTICS = ("median", "mean", "min", "max")

_LINEAR_OPS = {
    "emb": "embedding",
    "input_layernorm": "input_norm",
    "attn_pre_proj": "qkv_proj",
    "attn_rope": "rotary",
    "attn_post_proj": "o_proj",
    "post_attention_layernorm": "post_attention_norm",
    "mlp_up_proj": "mlp_up_gate",
    "mlp_act": "mlp_act",
    "mlp_down_proj": "mlp_down",
    "add": "residual_add",
    "lm_head_linear": "lm_head",
}
"""Profile operator name -> taxonomy name, linear-op files."""

_MOE_OPS = {
    "moe_gating": "moe_gate",
    "moe_gating_linear": "moe_gate",
    "moe_gating_routing_topk": "moe_topk",
    "moe_shuffling": "moe_shuffle",
    "moe_grouped_gemm": "moe_experts",
}
"""Profile operator name -> taxonomy name, MoE files."""

_REPLICATED = {"embedding", "input_norm", "post_attention_norm", "residual_add"}
"""Operators TP does not split: TP 1 rows stand in when the TP size lacks them."""

REQUIRED_OPERATORS = ("qkv_proj", "o_proj", "attention_prefill", "attention_decode")
"""Operators every profile must measure; dense models add ``mlp_up_gate`` and
``mlp_down``, MoE models ``moe_experts``. The others fall back to the roofline."""


@attrs.frozen
class OperatorSamples:
    """Measured times of one operator.

    Attributes:
        name: Taxonomy name of the operator.
        x: Features, shape ``(n,)``, or ``(n, 2)`` for the attention kernels
            (equivalent prefill chunk ``(q, c)``; decodes ``(n, mean context)``).
        time_ms: Measured times, milliseconds.
        source: The CSV file.
        rows: Line number in ``source`` of each sample (header = line 1).
    """

    name: str
    x: np.ndarray
    time_ms: np.ndarray
    source: Path
    rows: np.ndarray

    def subset(self, mask: np.ndarray) -> OperatorSamples:
        """The samples where ``mask`` is true."""
        return OperatorSamples(
            self.name, self.x[mask], self.time_ms[mask], self.source, self.rows[mask]
        )

    def __len__(self) -> int:
        return len(self.time_ms)


@attrs.frozen
class Profile:
    """The operators a profile directory measured for one model and TP size.

    Attributes:
        directory: The profile directory.
        generation: ``"older"`` (``mlp.csv``) or ``"newer"`` (``linear_op.csv``).
        files: The CSV files read.
        samples: Taxonomy name -> samples, for operators with at least one row.
    """

    directory: Path
    generation: str
    files: tuple[Path, ...]
    samples: dict[str, OperatorSamples]


# --------------------------------------------------------------------------- reading


def _match_shape(
    table: CsvTable, checks: dict[str, float], what: str, tp_column: str, tp: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose shape columns equal ``checks``: (at this TP, at TP 1)."""
    table.require([*checks, tp_column], f"shape columns of {what}")
    shape_ok = np.ones(table.num_rows, dtype=bool)
    for column, wanted in checks.items():
        shape_ok &= table.numbers(column) == wanted
    tps = table.whole(tp_column, 1)
    if not shape_ok.any():
        found = sorted(
            {
                tuple(int(float(table.columns[c][i])) for c in checks)
                for i in range(min(table.num_rows, 10_000))
            }
        )[:5]
        wanted = ", ".join(f"{c}={int(v)}" for c, v in checks.items())
        shapes = "; ".join(
            ", ".join(f"{c}={v}" for c, v in zip(checks, shape, strict=True))
            for shape in found
        )
        raise InputError(
            f"{table.path}: no row matches the model ({wanted}); the file has "
            f"({shapes}). Profile this model, or point profile_dir at the right "
            "directory."
        )
    at_tp = shape_ok & (tps == tp)
    if not at_tp.any():
        sizes = ", ".join(str(int(s)) for s in sorted(set(tps[shape_ok].tolist())))
        raise InputError(
            f"{table.path}: no row at tensor-parallel size {tp} (the file has sizes "
            f"{sizes}); profile TP {tp} or use the roofline predictor"
        )
    return at_tp, shape_ok & (tps == 1)


def _samples(
    name: str, x: np.ndarray, times: np.ndarray, table: CsvTable, mask: np.ndarray
) -> OperatorSamples | None:
    keep = mask & np.isfinite(times)
    if not keep.any():
        return None
    return OperatorSamples(name, x[keep], times[keep], table.path, table.rows[keep])


def _measured(
    table: CsvTable, result: dict[str, OperatorSamples]
) -> dict[str, OperatorSamples]:
    """``result``, unless every time it read from ``table`` is 0.

    One operator may time 0 everywhere (a reshape that is only a view), but a file
    whose every operator does was not measured: its predictions would be free
    steps, a silent wrong answer.
    """
    if result and not any(samples.time_ms.any() for samples in result.values()):
        names = ", ".join(sorted(result))
        raise InputError(
            f"{table.path}: every time of every operator read ({names}) is 0 ms; "
            "a profiled kernel takes time, so the measurement failed: profile "
            "it again"
        )
    return result


def _read_linear(
    table: CsvTable, model: ModelSpec, tp: int, statistic: str
) -> dict[str, OperatorSamples]:
    checks = {
        "n_embd": model.hidden_size,
        "n_head": model.num_heads,
        "n_kv_head": model.num_kv_heads,
    }
    if not model.is_moe:
        checks["n_expanded_embd"] = model.intermediate_size
    at_tp, at_tp1 = _match_shape(
        table, checks, "a linear-operator profile", "num_tensor_parallel_workers", tp
    )
    table.require(["num_tokens"], "the feature of every linear operator")
    tokens = table.whole("num_tokens", 1)
    result = {}
    for profile_op, name in _LINEAR_OPS.items():
        times = table.times(profile_op, statistic)
        if times is None:
            continue
        found = _samples(name, tokens, times, table, at_tp)
        if found is None and name in _REPLICATED:
            found = _samples(name, tokens, times, table, at_tp1)
        if found is not None:
            result[name] = found
    # The final norm is the input norm's kernel over one row per sequence.
    if "input_norm" in result:
        norm = result["input_norm"]
        result["final_norm"] = OperatorSamples(
            "final_norm", norm.x, norm.time_ms, norm.source, norm.rows
        )
    return _measured(table, result)


def _read_attention(
    table: CsvTable, model: ModelSpec, tp: int, statistic: str
) -> dict[str, OperatorSamples]:
    checks = {
        "n_embd": model.hidden_size,
        "n_q_head": model.num_heads,
        "n_kv_head": model.num_kv_heads,
    }
    at_tp, _ = _match_shape(
        table, checks, "an attention profile", "num_tensor_parallel_workers", tp
    )
    table.require(
        ["batch_size", "prefill_chunk_size", "kv_cache_size", "is_prefill"],
        "the features of attention",
    )
    batch = table.whole("batch_size", 1)
    chunk = table.whole("prefill_chunk_size", 0)
    cached = table.whole("kv_cache_size", 0)
    is_prefill = table.flags("is_prefill")
    n = table.num_rows
    mixed = np.zeros(n, dtype=bool)
    prefill_q: list[list[int]] = []
    prefill_c: list[list[int]] = []
    decode_n = np.where(is_prefill, 0.0, batch)
    decode_m = np.where(is_prefill, 0.0, cached)
    lists = ("prefill_seq_lens", "prefill_kv_cache_sizes", "decode_kv_cache_sizes")
    has_lists = all(table.has(c) for c in lists)
    if has_lists:
        seq_lens, kv_sizes, decode_sizes = (table.int_lists(c) for c in lists)
    for i in range(n):
        if has_lists and seq_lens[i] is not None:
            mixed[i] = True
            qs = seq_lens[i]
            cs = kv_sizes[i] or [0] * len(qs)
            if len(cs) != len(qs):
                raise InputError(
                    f"{table.path}, row {i + 2}, column 'prefill_kv_cache_sizes': "
                    f"{len(cs)} sizes for {len(qs)} prefill sequences"
                )
            prefill_q.append(qs)
            prefill_c.append(cs)
            decodes = decode_sizes[i] or []
            decode_n[i] = len(decodes)
            decode_m[i] = sum(decodes) / len(decodes) if decodes else 0.0
        elif is_prefill[i]:
            count = max(1, int(batch[i]))
            prefill_q.append([int(chunk[i])] * count)
            prefill_c.append([int(cached[i])] * count)
        else:
            prefill_q.append([])
            prefill_c.append([])
    q_eq, c_eq = pooled_prefill_arrays(prefill_q, prefill_c)
    prefill_tokens = np.array([sum(qs) for qs in prefill_q], dtype=float)
    plain_prefill = at_tp & is_prefill & ~mixed & (prefill_tokens > 0)
    plain_decode = at_tp & ~is_prefill & ~mixed & (decode_n > 0)
    result = {}

    def add(name: str, x: np.ndarray, profile_op: str, mask: np.ndarray) -> None:
        times = table.times(profile_op, statistic)
        if times is None:
            return
        found = _samples(name, x, times, table, mask)
        if found is not None:
            result[name] = found

    add(
        "attention_prefill",
        np.column_stack([q_eq, c_eq]),
        "attn_prefill",
        at_tp & (prefill_tokens > 0) & (is_prefill | mixed),
    )
    add(
        "attention_decode",
        np.column_stack([decode_n, decode_m]),
        "attn_decode",
        at_tp & (decode_n > 0) & (~is_prefill | mixed),
    )
    # XXX: mixed rows time the KV write and reshapes of both phases together;
    # only single-phase rows train those operators.
    add("kv_cache_write_prefill", prefill_tokens, "attn_kv_cache_save", plain_prefill)
    add("kv_cache_write_decode", decode_n, "attn_kv_cache_save", plain_decode)
    step_tokens = np.where(is_prefill, prefill_tokens, decode_n)
    single = plain_prefill | plain_decode
    add("attention_input_reshape", step_tokens, "attn_input_reshape", single)
    add("attention_output_reshape", step_tokens, "attn_output_reshape", single)
    return _measured(table, result)


def _read_moe(
    table: CsvTable, model: ModelSpec, tp: int, statistic: str
) -> dict[str, OperatorSamples]:
    checks = {
        "num_experts": model.num_experts,
        "router_topk": model.num_experts_per_token,
        "hidden_dim": model.hidden_size,
        "expert_hidden_dim": model.expert_intermediate_size,
    }
    at_tp, _ = _match_shape(
        table, checks, "an MoE profile", "num_tensor_parallel_workers", tp
    )
    table.require(["num_tokens"], "the feature of MoE operators")
    mask = at_tp
    if table.has("expert_parallel_size"):
        mask = mask & (table.numbers("expert_parallel_size") == 1)
    if table.has("load_distribution"):
        uniform = np.array(
            [v.strip() in ("", "uniform") for v in table.columns["load_distribution"]]
        )
        mask = mask & uniform
    tokens = table.whole("num_tokens", 1)
    result = {}
    for profile_op, name in _MOE_OPS.items():
        times = table.times(profile_op, statistic)
        if times is None or name in result:
            continue
        found = _samples(name, tokens, times, table, mask)
        if found is not None:
            result[name] = found
    return _measured(table, result)


def profile_files(
    directory: str | Path, model: ModelSpec
) -> tuple[str, tuple[Path, ...]]:
    """The profile's generation and its CSV files for ``model``, checked to exist.

    Raises:
        InputError: The directory or a file the model needs is missing.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"profile directory {root} does not exist")
    linear_path = root / "linear_op.csv"
    generation = "newer"
    if not linear_path.is_file():
        linear_path = root / "mlp.csv"
        generation = "older"
    if not linear_path.is_file():
        raise InputError(
            f"profile directory {root} has neither linear_op.csv nor mlp.csv "
            "(the linear-operator profile)"
        )
    attention_path = root / "attention.csv"
    if not attention_path.is_file():
        raise InputError(f"profile directory {root} has no attention.csv")
    files = [linear_path, attention_path]
    if model.is_moe:
        moe_path = root / "moe.csv"
        if not moe_path.is_file():
            raise InputError(
                f"profile directory {root} has no moe.csv, which the MoE model "
                f"{model.name} needs"
            )
        files.append(moe_path)
    return generation, tuple(files)


def read_profile(
    directory: str | Path, model: ModelSpec, tp: int = 1, statistic: str = "median"
) -> Profile:
    """Read the operator profile in ``directory`` for ``model`` at TP size ``tp``.

    Args:
        directory: Folder with ``mlp.csv`` or ``linear_op.csv``, ``attention.csv``
            and, for MoE models, ``moe.csv``.
        model: The model whose shapes select rows.
        tp: Tensor-parallel size of the deployment.
        statistic: Which ``time_stats`` column to read (``median`` by default).

    Raises:
        InputError: Missing directory or file, malformed CSV, no matching rows, or
            an operator the model needs that the profile lacks.
    """
    if statistic not in STATISTICS:
        raise InputError(
            f"statistic {statistic!r} is not one of {', '.join(STATISTICS)}"
        )
    root = Path(directory)
    generation, files = profile_files(root, model)
    linear_path, attention_path = files[0], files[1]
    samples = _read_linear(CsvTable(linear_path), model, tp, statistic)
    samples.update(_read_attention(CsvTable(attention_path), model, tp, statistic))
    if model.is_moe:
        samples.update(_read_moe(CsvTable(files[2]), model, tp, statistic))

    required = list(REQUIRED_OPERATORS)
    if model.num_moe_layers < model.num_layers:
        required += ["mlp_up_gate", "mlp_down"]
    if model.is_moe:
        required.append("moe_experts")
    for name in required:
        if name not in samples:
            where = {
                "attention_prefill": attention_path,
                "attention_decode": attention_path,
                "moe_experts": root / "moe.csv",
            }.get(name, linear_path)
            raise InputError(
                f"{where}: the profile lacks operator {name!r} "
                f"({OPERATORS[name].description}) for {model.name} at TP {tp}; "
                "no row has a time for it (its time_stats column is missing or "
                "empty)"
            )
    return Profile(root, generation, files, samples)


def files_digest(files: Iterable[Path]) -> str:
    """SHA-256 of the profile files' names and contents (the cache key's data part)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
