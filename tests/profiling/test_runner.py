"""Running a plan: rows appended as measured, resumption, metadata, refusals."""

from __future__ import annotations

import csv
import json

import pytest
from frontier.errors import ConfigError
from frontier_profiling.backend import ShapeTooLarge
from frontier_profiling.numpy_backend import NumpyBackend
from frontier_profiling.runner import RunSettings, run_profile

from .conftest import small_grid


def _settings(model, tmp_path, **changes) -> RunSettings:
    values = dict(
        model=model,
        model_dir="tiny",
        device_dir="cpu",
        out=tmp_path,
        dtype="bfloat16",
        grid=small_grid(),
        warmup=0,
        repeats=2,
    )
    values.update(changes)
    return RunSettings(**values)


def _rows(path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _metadata(tmp_path) -> dict:
    return json.loads((tmp_path / "compute/cpu/tiny/metadata.json").read_text())


def test_a_run_writes_every_planned_row(dense_model, tmp_path):
    """4 linear rows and 7 attention rows, in the canonical layout."""
    report = run_profile(
        _settings(dense_model, tmp_path), ("linear", "attention"), NumpyBackend(0)
    )
    folder = tmp_path / "compute" / "cpu" / "tiny"
    assert len(_rows(folder / "linear_op.csv")) == 4
    assert len(_rows(folder / "attention.csv")) == 7
    assert report.complete and report.stopped is None


def test_each_row_records_its_statistics_and_backend(dense_model, tmp_path):
    """count = repeats; min <= median <= max; profiling_backend = numpy."""
    run_profile(
        _settings(dense_model, tmp_path, repeats=3), ("linear",), NumpyBackend(0)
    )
    row = _rows(tmp_path / "compute/cpu/tiny/linear_op.csv")[0]
    assert row["time_stats.attn_pre_proj.count"] == "3"
    low, mid, high = (
        float(row[f"time_stats.attn_pre_proj.{s}"]) for s in ("min", "median", "max")
    )
    assert low <= mid <= high
    assert row["profiling_backend"] == "numpy"
    assert row["measurement_type"] == "MONOTONIC_CLOCK"


def test_metadata_names_device_dtype_timing_and_command(dense_model, tmp_path):
    """metadata.json says what was measured, how, when, and by which command."""
    settings = _settings(dense_model, tmp_path, command="frontier profile linear")
    run_profile(settings, ("linear",), NumpyBackend(0))
    meta = _metadata(tmp_path)
    assert meta["device"] == "cpu" and meta["device_name"]
    assert meta["device_memory_gib"] > 0
    assert (meta["dtype"], meta["profiling_precision"]) == ("bfloat16", "FP32")
    assert meta["measurement_type"] == "MONOTONIC_CLOCK"
    assert (meta["warmup"], meta["repeats"]) == (0, 2)
    assert meta["torch_version"] is None and meta["cuda_version"] is None
    assert meta["command"] == "frontier profile linear"
    assert meta["started_at"] and meta["finished_at"]
    assert meta["status"] == "complete"
    assert meta["rows"] == {"linear_op.csv": 4}


def test_a_row_limit_stops_and_a_rerun_finishes(dense_model, tmp_path):
    """max_rows=3 keeps 3 rows; the same run again measures the other 8."""
    families = ("linear", "attention")
    first = run_profile(
        _settings(dense_model, tmp_path, max_rows=3), families, NumpyBackend(0)
    )
    assert first.stopped == "max_rows (3) reached"
    assert _metadata(tmp_path)["status"] == "partial"
    second = run_profile(_settings(dense_model, tmp_path), families, NumpyBackend(0))
    assert second.measured == {"linear": 1, "attention": 7}  # 4 - 3, then all 7
    linear = _rows(tmp_path / "compute/cpu/tiny/linear_op.csv")
    assert sorted(int(r["num_tokens"]) for r in linear) == [1, 4, 16, 64]
    assert _metadata(tmp_path)["status"] == "complete"


class _InterruptAfter(NumpyBackend):
    """A numpy backend that is interrupted (Ctrl-C) at its ``calls``-th timing."""

    def __init__(self, calls: int) -> None:
        super().__init__(0)
        self.calls = calls

    def time_ms(self, operator, warmup, repeats):
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt
        return super().time_ms(operator, warmup, repeats)


def test_an_interrupted_run_keeps_its_rows_and_resumes(dense_model, tmp_path):
    """Ctrl-C during row 3 keeps rows 1-2; the rerun adds rows 3-4 only."""
    settings = _settings(dense_model, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        # 11 operators per linear row: the 25th timing is in the third row
        run_profile(settings, ("linear",), _InterruptAfter(24))
    path = tmp_path / "compute/cpu/tiny/linear_op.csv"
    assert [r["num_tokens"] for r in _rows(path)] == ["1", "4"]
    assert _metadata(tmp_path)["status"] == "interrupted"
    report = run_profile(settings, ("linear",), NumpyBackend(0))
    assert report.measured == {"linear": 2}
    assert [r["num_tokens"] for r in _rows(path)] == ["1", "4", "16", "64"]


def test_resuming_with_another_dtype_is_refused(dense_model, tmp_path):
    """A profile is not mixed: another dtype into the same folder is an error."""
    run_profile(_settings(dense_model, tmp_path), ("linear",), NumpyBackend(0))
    with pytest.raises(ConfigError, match=r"dtype = 'bfloat16'.*'float16'"):
        run_profile(
            _settings(dense_model, tmp_path, dtype="float16"),
            ("linear",),
            NumpyBackend(0),
        )


class _NoRoomForLongPrefills(NumpyBackend):
    """A backend out of memory for prefills of 64 tokens."""

    def attention_ops(self, rank, shape, block_size):
        if shape.kind == "prefill" and shape.query == 64:
            raise ShapeTooLarge("CUDA out of memory")
        return super().attention_ops(rank, shape, block_size)


def test_a_shape_that_does_not_fit_is_skipped_and_reported(dense_model, tmp_path):
    """The other 6 rows are measured; the skip is in the report and metadata."""
    report = run_profile(
        _settings(dense_model, tmp_path), ("attention",), _NoRoomForLongPrefills(0)
    )
    assert report.measured == {"attention": 6}
    assert len(report.skipped) == 1 and "out of memory" in report.skipped[0][2]
    meta = _metadata(tmp_path)
    assert meta["status"] == "partial" and len(meta["skipped"]) == 1


def test_moe_rows_carry_routing_and_load_columns(moe_model, tmp_path):
    """Uniform and zipf rows for each token count, with their load statistics."""
    run_profile(_settings(moe_model, tmp_path), ("moe",), NumpyBackend(0))
    rows = _rows(tmp_path / "compute/cpu/tiny/moe.csv")
    assert len(rows) == 8  # 2 routings x 4 token counts
    uniform = next(
        r
        for r in rows
        if r["load_distribution"] == "uniform" and r["num_tokens"] == "64"
    )
    # 64 tokens x top 2 = 128 choices over 8 experts: 16 each
    assert uniform["total_routed_tokens"] == "128"
    assert uniform["tokens_per_expert_avg"] == "16.0"
    assert uniform["load_imbalance_cv"] == "0.0"
    zipf = next(
        r for r in rows if r["load_distribution"] == "zipf" and r["num_tokens"] == "64"
    )
    assert float(zipf["load_imbalance_cv"]) > 0.0
