"""Running a profiling plan: measure each planned row, append it, keep metadata.

The profile goes to ``<out>/compute/<device>/<model>/``: ``linear_op.csv``,
``attention.csv``, ``moe.csv`` (MoE models) and ``metadata.json``. Rows are
appended as they are measured; a second run with the same settings skips the rows
the files already hold, so an interrupted run resumes where it stopped. A run
with other settings (dtype, backend, timing method) into the same folder is
refused rather than mixed in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import attrs
import numpy as np
from frontier.errors import ConfigError, InputError
from frontier.models import ModelSpec

from frontier_profiling.backend import Backend, ShapeTooLarge, summarize
from frontier_profiling.plan import (
    AttentionShape,
    Grid,
    LinearShape,
    MoeShape,
    Shape,
    plan,
    rank_shapes,
)
from frontier_profiling.routing import route
from frontier_profiling.rows import attention_row, linear_row, moe_row
from frontier_profiling.schema import FILES
from frontier_profiling.writer import ProfileFile

__all__ = [
    "METADATA_FORMAT",
    "Progress",
    "RunReport",
    "RunSettings",
    "planned_row",
    "profile_directory",
    "run_profile",
]

METADATA_FORMAT = "frontier-profile/1"

_MUST_MATCH = ("model", "dtype", "backend", "measurement_type", "profiling_precision")
"""metadata.json fields a resumed run must share with the run it continues."""


@attrs.frozen(kw_only=True)
class RunSettings:
    """Everything one ``frontier profile`` run is asked to do.

    Attributes:
        model: The profiled model.
        model_dir: Folder name of the model in the profile layout.
        device_dir: Folder name of the device in the profile layout.
        out: Root of the profile layout.
        dtype: dtype to measure.
        grid: The shapes to sweep.
        warmup: Untimed calls before timing each operator.
        repeats: Timed calls of each operator.
        seed: Seed of the tensors and of the skewed routing.
        max_rows: Stop after measuring this many new rows (``None``: no limit).
        time_budget_s: Stop starting new rows after this many seconds.
        command: The command line, for ``metadata.json``.
    """

    model: ModelSpec
    model_dir: str
    device_dir: str
    out: Path
    dtype: str
    grid: Grid
    warmup: int = 3
    repeats: int = 10
    seed: int = 0
    max_rows: int | None = None
    time_budget_s: float | None = None
    command: str = ""


class Progress(Protocol):
    """Where a run reports progress (a rich bar per family in the CLI)."""

    def start(self, family: str, total: int, completed: int) -> None:
        """A family starts: ``total`` planned rows, ``completed`` already measured."""

    def advance(self, family: str) -> None:
        """One more row of ``family`` is measured."""


class _Silent:
    def start(self, family: str, total: int, completed: int) -> None:
        pass

    def advance(self, family: str) -> None:
        pass


@attrs.define
class RunReport:
    """What a run did.

    Attributes:
        directory: The profile directory.
        planned: Rows planned per family.
        present: Rows in the files at the end, per family.
        measured: Rows measured by this run, per family.
        skipped: ``(family, key, reason)`` of shapes that did not fit.
        stopped: Why the run stopped early (``None`` when it finished).
        elapsed_s: Wall-clock seconds of the run.
    """

    directory: Path
    planned: dict[str, int] = attrs.Factory(dict)
    present: dict[str, int] = attrs.Factory(dict)
    measured: dict[str, int] = attrs.Factory(dict)
    skipped: list[tuple[str, str, str]] = attrs.Factory(list)
    stopped: str | None = None
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Whether every planned row is in the files."""
        return all(self.present[f] >= self.planned[f] for f in self.planned)


def profile_directory(out: Path, device_dir: str, model_dir: str) -> Path:
    """``<out>/compute/<device>/<model>``, the canonical profile layout."""
    return Path(out) / "compute" / device_dir / model_dir


def planned_row(
    family: str, settings: Any, shape: Shape, backend: Any
) -> tuple[dict[str, Any], Any]:
    """Shape columns of ``shape`` and what the backend needs to build it (the
    routing of an MoE row); ``settings`` needs ``model``, ``grid`` and ``seed``."""
    model, grid = settings.model, settings.grid
    if isinstance(shape, LinearShape):
        return linear_row(model, shape, backend), None
    if isinstance(shape, AttentionShape):
        return attention_row(model, shape, grid, backend), None
    assert isinstance(shape, MoeShape)
    ids = route(
        shape.num_tokens,
        model.num_experts,
        model.num_experts_per_token,
        shape.routing,
        grid.zipf_exponent,
        settings.seed,
    )
    local = model.num_experts // shape.ep
    loads = np.bincount(ids.reshape(-1), minlength=model.num_experts)[:local]
    return moe_row(model, shape, grid, backend, loads, settings.seed), ids


def _measure(
    family: str, settings: RunSettings, shape: Shape, backend: Backend, extra: Any
) -> dict[str, Any]:
    """The ``time_stats`` columns of one row."""
    rank = rank_shapes(settings.model, shape.tp)
    if family == "linear":
        ops = backend.linear_ops(rank, shape.num_tokens)
    elif family == "attention":
        ops = backend.attention_ops(rank, shape, settings.grid.block_size)
    else:
        ops = backend.moe_ops(rank, extra, settings.model.num_experts // shape.ep)
    columns: dict[str, Any] = {}
    for op, operator in ops.items():
        stats = summarize(backend.time_ms(operator, settings.warmup, settings.repeats))
        for name, value in stats.items():
            columns[f"time_stats.{op}.{name}"] = value
    return columns


def _metadata_path(directory: Path) -> Path:
    return directory / "metadata.json"


def read_metadata(directory: Path) -> dict[str, Any] | None:
    """The profile's ``metadata.json``, or ``None`` when there is none.

    Raises:
        InputError: The file exists but is not a JSON object.
    """
    path = _metadata_path(directory)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object")
    return data


def _write_metadata(directory: Path, data: dict[str, Any]) -> None:
    path = _metadata_path(directory)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")
    temporary.replace(path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _base_metadata(
    settings: RunSettings, backend: Backend, families: Iterable[str]
) -> dict[str, Any]:
    return {
        "format": METADATA_FORMAT,
        "model": settings.model.name,
        "model_spec": attrs.asdict(settings.model),
        "device": settings.device_dir,
        **backend.describe(),
        "dtype": settings.dtype,
        "profiling_precision": backend.precision,
        "backend": backend.name,
        "measurement_type": backend.measurement_type,
        "timing": (
            "CUDA events around each call, read after one synchronisation"
            if backend.measurement_type == "CUDA_EVENT"
            else "monotonic clock (time.perf_counter_ns) around each call"
        ),
        "moe_grouped_gemm_backend": backend.grouped_gemm,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "seed": settings.seed,
        "grid": attrs.asdict(settings.grid),
        "families": list(families),
        "command": settings.command,
    }


def _check_resumable(
    previous: dict[str, Any], current: dict[str, Any], path: Path
) -> None:
    for field in _MUST_MATCH:
        if field in previous and previous[field] != current[field]:
            raise ConfigError(
                f"{path}: this profile was measured with {field} = "
                f"{previous[field]!r}, this run would use {current[field]!r}; resume "
                "with the same settings, or write to another --out or --device"
            )


def run_profile(
    settings: RunSettings,
    families: tuple[str, ...],
    backend: Backend,
    progress: Progress | None = None,
) -> RunReport:
    """Measure the planned rows of ``families`` that the profile does not hold.

    Rows are appended as they are measured. ``KeyboardInterrupt`` propagates
    after ``metadata.json`` records the interruption; the rows measured so far
    stay in the files.

    Raises:
        ConfigError: A family does not apply to the model, or the folder holds a
            profile measured with other settings.
        InputError: A file of the folder has columns this profiler does not write.
    """
    progress = progress or _Silent()
    started = time.monotonic()
    plans = {family: plan(family, settings.model, settings.grid) for family in families}
    directory = profile_directory(settings.out, settings.device_dir, settings.model_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--out {settings.out}: cannot create the profile folder {directory}: "
            f"{error.strerror or error}; choose a folder you can write"
        ) from None
    metadata = _base_metadata(settings, backend, families)
    previous = read_metadata(directory)
    if previous is not None:
        _check_resumable(previous, metadata, _metadata_path(directory))
    metadata["started_at"] = _now()
    metadata["status"] = "running"
    if previous is not None:
        metadata["first_started_at"] = previous.get(
            "first_started_at", previous.get("started_at")
        )
        metadata["families"] = sorted(set(previous.get("families", [])) | set(families))
    _write_metadata(directory, metadata)

    report = RunReport(directory)
    files: dict[str, ProfileFile] = {}
    try:
        for family, shapes in plans.items():
            name, columns, key, _ = FILES[family]
            files[family] = target = ProfileFile(directory / name, columns, key)
            rows = [
                (shape, *planned_row(family, settings, shape, backend))
                for shape in shapes
            ]
            todo = [
                (shape, row, extra) for shape, row, extra in rows if not target.has(row)
            ]
            report.planned[family] = len(rows)
            report.measured[family] = 0
            progress.start(family, len(rows), len(rows) - len(todo))
            for shape, row, extra in todo:
                if report.stopped is None:
                    report.stopped = _stop_reason(settings, report, started)
                if report.stopped is not None:
                    break
                try:
                    row.update(_measure(family, settings, shape, backend, extra))
                except ShapeTooLarge as error:
                    report.skipped.append(
                        (family, repr(target.key_of(row)), str(error))
                    )
                    continue
                finally:
                    backend.release()
                if family == "moe":  # the GEMM path may have changed while building
                    row["moe_grouped_gemm_backend"] = backend.grouped_gemm
                target.append(row)
                report.measured[family] += 1
                progress.advance(family)
            report.present[family] = len(target.done)
    except KeyboardInterrupt:
        report.stopped = "interrupted"
        raise
    finally:
        for target in files.values():
            target.close()
        report.elapsed_s = time.monotonic() - started
        for family in plans:
            report.present.setdefault(
                family, len(files[family].done) if family in files else 0
            )
            report.planned.setdefault(family, len(plans[family]))
        metadata["finished_at"] = _now()
        metadata["elapsed_s"] = round(report.elapsed_s, 3)
        metadata["rows"] = _row_counts(directory)
        metadata["skipped"] = [list(s) for s in report.skipped]
        if report.stopped == "interrupted":
            metadata["status"] = "interrupted"
        elif report.complete and not report.skipped:
            metadata["status"] = "complete"
        else:
            metadata["status"] = "partial"
        metadata["stop_reason"] = report.stopped
        _write_metadata(directory, metadata)
    return report


def _stop_reason(
    settings: RunSettings, report: RunReport, started: float
) -> str | None:
    if (
        settings.max_rows is not None
        and sum(report.measured.values()) >= settings.max_rows
    ):
        return f"max_rows ({settings.max_rows}) reached"
    budget = settings.time_budget_s
    if budget is not None and time.monotonic() - started >= budget:
        return f"time budget ({budget:g} s) spent"
    return None


def _row_counts(directory: Path) -> dict[str, int]:
    counts = {}
    for name, *_ in FILES.values():
        path = directory / name
        if path.is_file():
            with path.open(encoding="utf-8") as handle:
                counts[name] = max(0, sum(1 for _ in handle) - 1)
    return counts
