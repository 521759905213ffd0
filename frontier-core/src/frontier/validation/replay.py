"""Simulate a real run's workload under its engine settings.

The mapping from ``meta.json``'s ``engine_kwargs`` onto a config:

- ``tensor_parallel_size`` -> ``parallel.tensor_parallel_size``;
  ``data_parallel_size`` -> ``parallel.num_replicas``, routed by vLLM's
  data-parallel load balancer (the ``least_loaded`` router) when above 1; with
  ``enable_expert_parallel`` the experts are split over all ``tp x dp`` GPUs
  (``parallel.expert_parallel_size``), as vLLM does, and the replicas then step
  in lockstep (the default for such a group);
- ``max_num_seqs``, ``max_num_batched_tokens`` -> the ``vllm_v1`` scheduler,
  with asynchronous scheduling where the run's vLLM has it by default (0.12 on)
  or its kwargs ask for it;
  chunked prefill and prefix caching on, block size 16 and GPU memory
  utilisation 0.9 unless the kwargs say otherwise (vLLM's defaults);
- ``num_gpu_blocks_override`` (when the run pinned it) -> ``cache.num_gpu_blocks``;
- ``enforce_eager`` -> ``engine.cuda_graph_max_tokens = 0`` (no step runs as a
  CUDA graph); ``engine.eager_step_overhead_ms`` stays 0 unless ``--set``;
- ``max_model_len`` (the model's own when null), ``dtype``, ``kv_cache_dtype``,
  ``seed`` -> the model section and the run's seed;
- the GPU, model ``config.json``, workload (``vllm_jsonl``, with prompt block
  hashes) and operator profile (``vllm_profile``) found by
  :func:`~frontier.validation.runs.locate_inputs`.

Otherwise the KV block count comes from the memory planner. ``--set`` overrides
apply last.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from frontier.config import Config
from frontier.config_build import apply_overrides, build_config, parse_override
from frontier.errors import ConfigError, InputError
from frontier.hookspecs import hookimpl
from frontier.plugins import load_plugins
from frontier.request import Request
from frontier.simulation import Simulation
from frontier.validation.compare import Comparison, compare
from frontier.validation.runs import (
    RealRun,
    RunInputs,
    check_workload,
    load_run,
    locate_inputs,
)

__all__ = ["ValidationResult", "build_config_data", "validate_run"]

_DTYPES = {"half": "float16", "float": "float32", "bf16": "bfloat16", "fp16": "float16"}


_UNMODELLED = ("quantization", "speculative_config", "kv_transfer_config")
"""Engine kwargs that change the deployment in ways the replay does not model."""

_CUDAGRAPH_MODES = (
    "NONE",
    "PIECEWISE",
    "FULL",
    "FULL_DECODE_ONLY",
    "FULL_AND_PIECEWISE",
)
"""vLLM's ``CUDAGraphMode`` names; all but NONE capture steps up to the limit."""


def _whole(engine: dict[str, Any], key: str, run: RealRun, default: Any = None) -> Any:
    """``engine[key]`` as a positive integer, ``default`` when absent or null."""
    value = engine.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(
            f"{run.folder / 'meta.json'}, engine_kwargs.{key}: {value!r} is not a "
            "positive integer"
        )
    return value


def _flag(
    engine: dict[str, Any], key: str, run: RealRun, default: bool | None
) -> bool | None:
    """``engine[key]`` as a boolean, ``default`` when absent or null."""
    value = engine.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InputError(
            f"{run.folder / 'meta.json'}, engine_kwargs.{key}: {value!r} is not "
            "true or false"
        )
    return value


def _cuda_graph_max_tokens(engine: dict[str, Any], run: RealRun) -> int | None:
    """The most tokens of a step the run's engine captured as a CUDA graph, from
    ``enforce_eager``, ``max_cudagraph_capture_size``, ``cuda_graph_sizes`` or
    ``compilation_config`` (``cudagraph_mode``, ``max_cudagraph_capture_size``,
    ``cudagraph_capture_sizes``); ``None`` for vLLM's default."""
    where = f"{run.folder / 'meta.json'}, engine_kwargs"
    if _flag(engine, "enforce_eager", run, False):
        return 0
    compilation = engine.get("compilation_config") or {}
    if not isinstance(compilation, dict):
        raise InputError(
            f"{where}.compilation_config: {compilation!r} is not a table; the "
            "replay reads its cudagraph_mode and capture sizes"
        )
    mode = compilation.get("cudagraph_mode")
    if mode is not None:
        if not isinstance(mode, str) or mode.upper() not in _CUDAGRAPH_MODES:
            raise InputError(
                f"{where}.compilation_config.cudagraph_mode: {mode!r} is not one "
                f"of {', '.join(_CUDAGRAPH_MODES)}"
            )
        if mode.upper() == "NONE":
            return 0
    largest = None
    for key, value in (
        ("max_cudagraph_capture_size", engine.get("max_cudagraph_capture_size")),
        ("cuda_graph_sizes", engine.get("cuda_graph_sizes")),
        (
            "compilation_config.max_cudagraph_capture_size",
            compilation.get("max_cudagraph_capture_size"),
        ),
        (
            "compilation_config.cudagraph_capture_sizes",
            compilation.get("cudagraph_capture_sizes"),
        ),
    ):
        if value is None:
            continue
        sizes = value if isinstance(value, list) else [value]
        if not sizes or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in sizes
        ):
            raise InputError(
                f"{where}.{key}: {value!r} is not a token count or a list of them"
            )
        largest = max(sizes) if largest is None else min(largest, max(sizes))
    return largest


def _memory_fraction(engine: dict[str, Any], run: RealRun) -> float:
    value = engine.get("gpu_memory_utilization")
    if value is None:
        return 0.9
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(
            f"{run.folder / 'meta.json'}, engine_kwargs.gpu_memory_utilization: "
            f"{value!r} is not a number"
        )
    if not 0 < value <= 1:
        raise InputError(
            f"{run.folder / 'meta.json'}, engine_kwargs.gpu_memory_utilization: "
            f"{value!r} is not in (0, 1]"
        )
    return float(value)


def build_config_data(run: RealRun, inputs: RunInputs) -> dict[str, Any]:
    """The raw config (before ``--set``) that replays ``run`` (module doc).

    Raises:
        InputError: An engine setting has the wrong type, or names a feature the
            replay does not model (quantisation, speculative decoding, KV
            transfer), which would simulate another deployment.
    """
    engine = run.engine
    for key in _UNMODELLED:
        if engine.get(key):
            raise InputError(
                f"{run.folder / 'meta.json'}, engine_kwargs.{key}: "
                f"{engine[key]!r} is not modelled by the replay; the simulation "
                "would be of another deployment"
            )
    tp = _whole(engine, "tensor_parallel_size", run)
    dp = _whole(engine, "data_parallel_size", run)
    pp = _whole(engine, "pipeline_parallel_size", run, 1)
    max_num_seqs = _whole(engine, "max_num_seqs", run)
    max_num_batched_tokens = _whole(engine, "max_num_batched_tokens", run)
    unset = [
        key
        for key, value in (
            ("tensor_parallel_size", tp),
            ("data_parallel_size", dp),
            ("max_num_seqs", max_num_seqs),
            ("max_num_batched_tokens", max_num_batched_tokens),
        )
        if value is None
    ]
    if unset:
        raise InputError(
            f"{run.folder / 'meta.json'}: engine_kwargs.{', '.join(unset)} is null; "
            "vLLM then picks a default that depends on its version, GPU and entry "
            "point, so the replay needs the value the run used"
        )
    cache: dict[str, Any] = {
        "block_size": _whole(engine, "block_size", run, 16),
        "gpu_memory_utilization": _memory_fraction(engine, run),
        "enable_prefix_caching": _flag(engine, "enable_prefix_caching", run, True),
    }
    pinned = _whole(engine, "num_gpu_blocks_override", run)
    if pinned is not None:
        cache["num_gpu_blocks"] = pinned
    parallel: dict[str, Any] = {"tensor_parallel_size": tp, "num_replicas": dp}
    if pp != 1:
        parallel["pipeline_parallel_size"] = pp
    if _flag(engine, "enable_expert_parallel", run, False):
        parallel["expert_parallel_size"] = tp * dp
    router = {"type": "least_loaded" if dp > 1 else "round_robin"}
    engine_section: dict[str, Any] = {}
    graph_tokens = _cuda_graph_max_tokens(engine, run)
    if graph_tokens is not None:
        engine_section["cuda_graph_max_tokens"] = graph_tokens
    replica_scheduler = {
        "type": "vllm_v1",
        "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": max_num_batched_tokens,
        "enable_chunked_prefill": _flag(engine, "enable_chunked_prefill", run, True),
        "async_scheduling": _async_scheduling(engine, run),
    }
    seed = _seed(engine, run)
    # Every engine setting is checked above; the inputs' paths follow.
    dtype = str(engine.get("dtype") or "auto")
    kv_dtype = str(engine.get("kv_cache_dtype") or "auto")
    model: dict[str, Any] = {
        "name": run.model,
        "config_path": str(inputs.model_config),
        "dtype": _DTYPES.get(dtype, dtype),
        "kv_cache_dtype": _DTYPES.get(kv_dtype, kv_dtype),
    }
    max_model_len = _whole(engine, "max_model_len", run)
    if max_model_len is not None:
        model["max_model_len"] = max_model_len
    return {
        "seed": seed,
        "model": model,
        "device": {"name": inputs.device},
        "parallel": parallel,
        "cache": cache,
        "engine": engine_section,
        "cluster_scheduler": router,
        "replica_scheduler": replica_scheduler,
        "predictor": {"type": "vllm_profile", "path": str(inputs.profile)},
        "workload": {
            "type": "vllm_jsonl",
            "path": str(inputs.workload),
            # every line up to the last the run served (a line it lacks is
            # simulated, as its client sent it, but not compared)
            "num_requests": int(run.request_numbers[-1]) + 1,
        },
        "metrics": {"progress": False},
    }


def _vllm_version(run: RealRun) -> tuple[int, int] | None:
    """``(major, minor)`` of ``meta["vllm_version"]``; ``None`` when absent.

    Raises:
        InputError: The version is not ``<major>.<minor>...``, or older than 0.8,
            whose default engine (v0) the replay's ``vllm_v1`` does not model.
    """
    version = run.meta.get("vllm_version")
    if version is None:
        return None
    match = re.match(r"v?(\d+)\.(\d+)", str(version))
    where = f"{run.folder / 'meta.json'}, vllm_version"
    if match is None:
        raise InputError(f"{where}: {version!r} is not a version like 0.19.0")
    parts = (int(match.group(1)), int(match.group(2)))
    if parts < (0, 8):
        raise InputError(
            f"{where}: {version!r}; the replay models vLLM's v1 engine, the default "
            "from 0.8 on"
        )
    return parts


def _async_scheduling(engine: dict[str, Any], run: RealRun) -> bool:
    """The run's ``async_scheduling``: as set, else vLLM's default for its version
    (on from v0.12, the release after the plan of vLLM issue 27679 landed).

    Raises:
        InputError: Neither the setting nor the version is recorded, or either
            is malformed.
    """
    value = _flag(engine, "async_scheduling", run, None)
    version = _vllm_version(run)
    if value is not None:
        return value
    if version is None:
        raise InputError(
            f"{run.folder / 'meta.json'}: neither engine_kwargs.async_scheduling "
            "nor vllm_version is recorded; vLLM's default changed in 0.12, so the "
            "replay needs one of them"
        )
    return version >= (0, 12)


def _seed(engine: dict[str, Any], run: RealRun) -> int:
    value = engine.get("seed")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"{run.folder / 'meta.json'}, engine_kwargs.seed: {value!r} is not an "
            "integer of 0 or more"
        )
    return value


class _RequestRecorder:
    """Observer that keeps each finished request's timestamps (seconds)."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[float, float, float, float, int]] = {}

    @hookimpl
    def frontier_request_finished(self, request: Request) -> None:
        self.rows[request.request_id] = (
            request.queued_at,
            request.first_token_at,
            request.last_token_at,
            request.completed_at,
            request.num_generated,
        )

    def metrics(self, count: int) -> dict[str, np.ndarray]:
        """TTFT, TPOT and latency in ms by request id (NaN where missing).

        As vLLM measures them: TTFT and latency from the moment the engine took
        the request in (``queued_at``, vLLM's ``queued_ts``), not from the
        client's send; a request that arrives during a step waits for the step's
        end before either clock starts.
        """
        table = np.full((count, 5), np.nan)
        for request_id, row in self.rows.items():
            if request_id < count:
                table[request_id] = row
        queued, first, last, completed, generated = table.T
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(generated > 1, (last - first) / (generated - 1), np.nan)
        return {
            "ttft": (first - queued) * 1e3,
            "tpot": tpot * 1e3,
            "latency": (completed - queued) * 1e3,
        }


@attrs.frozen(kw_only=True)
class ValidationResult:
    """A replayed run: its inputs, both sides per request, and the comparison.

    Attributes:
        run: The real run.
        inputs: Where the simulator's inputs came from.
        config: The resolved config that was simulated.
        real: Measured TTFT, TPOT and latency per request, ms.
        simulated: Simulated TTFT, TPOT and latency per request, ms.
        comparison: The table of statistics.
        summary: The simulation's ``system_metrics.json`` content.
        wall_time_s: Seconds the simulation took.
    """

    run: RealRun
    inputs: RunInputs
    config: Config
    real: dict[str, np.ndarray]
    simulated: dict[str, np.ndarray]
    comparison: Comparison
    summary: dict[str, Any]
    wall_time_s: float


def validate_run(
    run_dir: str | Path,
    profiles: str | Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    simulation_dir: Path | None = None,
    observers: Sequence[object] = (),
) -> ValidationResult:
    """Simulate the run in ``run_dir`` and compare it with the measurements.

    Args:
        run_dir: The real run's folder.
        profiles: The operator profiles (see :func:`locate_inputs`).
        sets: ``dotted.path=value`` overrides of the built config.
        simulation_dir: Where the simulation writes its own outputs; nothing
            when ``None``.
        observers: Plugin objects that watch the replay through the hooks
            (``frontier_batch_finished`` and the like).

    Raises:
        FrontierError: An input is missing or malformed, or the config is bad.
    """
    run = load_run(run_dir)
    inputs = locate_inputs(run, profiles)
    check_workload(run, inputs.workload)
    recorder = _RequestRecorder()
    extra = [("frontier-validation", recorder)]
    extra += [("frontier-validation", observer) for observer in observers]
    plugins = load_plugins(extra=extra)
    data = build_config_data(run, inputs)
    overrides = [parse_override(text) for text in sets]
    replayed = data["predictor"]
    data = apply_overrides(data, overrides)
    replaced = any(keys == ["predictor"] for keys, _ in overrides)
    if not replaced and data["predictor"].get("type") != replayed["type"]:
        # Another predictor: the profile path was the replay's, not the user's.
        chosen = {
            keys[1] for keys, _ in overrides if keys[0] == "predictor" and keys[1:]
        }
        data["predictor"] = {
            key: value for key, value in data["predictor"].items() if key in chosen
        }
    config = build_config(
        data, plugins.registry.config_classes(), f"validation of {run.folder}"
    )
    simulation = Simulation(config, plugins)
    started = time.perf_counter()
    result = simulation.run(simulation_dir)
    wall = time.perf_counter() - started

    real = {"ttft": run.ttft_ms, "tpot": run.tpot_ms, "latency": run.latency_ms}
    numbers = run.request_numbers
    simulated = {
        name: values[numbers]
        for name, values in recorder.metrics(int(numbers[-1]) + 1).items()
    }
    missing = int(np.isnan(simulated["latency"]).sum())
    if missing:
        raise ConfigError(
            f"validation of {run.folder}: {missing} of the run's {run.num_requests} "
            "requests did not complete in the simulation (a --set override that "
            "changes the workload, its length limits or the KV cache?); the "
            "comparison needs every one"
        )
    return ValidationResult(
        run=run,
        inputs=inputs,
        config=config,
        real=real,
        simulated=simulated,
        comparison=compare(real, simulated),
        summary=result.summary,
        wall_time_s=wall if math.isfinite(wall) else 0.0,
    )
