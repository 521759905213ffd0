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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from frontier.config import Config
from frontier.config_build import apply_overrides, build_config, parse_override
from frontier.errors import InputError
from frontier.hookspecs import hookimpl
from frontier.plugins import load_plugins
from frontier.request import Request
from frontier.simulation import Simulation
from frontier.validation.compare import Comparison, compare
from frontier.validation.runs import RealRun, RunInputs, load_run, locate_inputs

__all__ = ["ValidationResult", "build_config_data", "validate_run"]

_DTYPES = {"half": "float16", "float": "float32", "bf16": "bfloat16", "fp16": "float16"}


_UNMODELLED = ("quantization", "speculative_config", "kv_transfer_config")
"""Engine kwargs that change the deployment in ways the replay does not model."""


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
    if tp is None or dp is None:
        raise InputError(
            f"{run.folder / 'meta.json'}: engine_kwargs needs tensor_parallel_size "
            "and data_parallel_size"
        )
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
    cache: dict[str, Any] = {
        "block_size": _whole(engine, "block_size", run, 16),
        "gpu_memory_utilization": float(engine.get("gpu_memory_utilization") or 0.9),
        "enable_prefix_caching": bool(engine.get("enable_prefix_caching", True)),
    }
    pinned = _whole(engine, "num_gpu_blocks_override", run)
    if pinned is not None:
        cache["num_gpu_blocks"] = pinned
    predictor: dict[str, Any] = {"type": "vllm_profile", "path": str(inputs.profile)}
    parallel: dict[str, Any] = {"tensor_parallel_size": tp, "num_replicas": dp}
    if pp != 1:
        parallel["pipeline_parallel_size"] = pp
    if engine.get("enable_expert_parallel"):
        parallel["expert_parallel_size"] = tp * dp
    router = {"type": "least_loaded" if dp > 1 else "round_robin"}
    engine_section: dict[str, Any] = {}
    if engine.get("enforce_eager"):
        engine_section["cuda_graph_max_tokens"] = 0
    return {
        "seed": _seed(engine, run),
        "model": model,
        "device": {"name": inputs.device},
        "parallel": parallel,
        "cache": cache,
        "engine": engine_section,
        "cluster_scheduler": router,
        "replica_scheduler": {
            "type": "vllm_v1",
            "max_num_seqs": max_num_seqs,
            "max_num_batched_tokens": max_num_batched_tokens,
            "enable_chunked_prefill": bool(engine.get("enable_chunked_prefill", True)),
            "async_scheduling": _async_scheduling(engine, run),
        },
        "predictor": predictor,
        "workload": {
            "type": "vllm_jsonl",
            "path": str(inputs.workload),
            "num_requests": run.num_requests,
        },
        "metrics": {"progress": False},
    }


def _async_scheduling(engine: dict[str, Any], run: RealRun) -> bool:
    """The run's ``async_scheduling``: as set, else vLLM's default for its version
    (on from v0.12, the release after the plan of vLLM issue 27679 landed)."""
    value = engine.get("async_scheduling")
    if value is not None:
        return bool(value)
    version = str(run.meta.get("vllm_version", ""))
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= (0, 12)


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
    recorder = _RequestRecorder()
    extra = [("frontier-validation", recorder)]
    extra += [("frontier-validation", observer) for observer in observers]
    plugins = load_plugins(extra=extra)
    data = build_config_data(run, inputs)
    data = apply_overrides(data, [parse_override(text) for text in sets])
    config = build_config(
        data, plugins.registry.config_classes(), f"validation of {run.folder}"
    )
    simulation = Simulation(config, plugins)
    started = time.perf_counter()
    result = simulation.run(simulation_dir)
    wall = time.perf_counter() - started

    real = {"ttft": run.ttft_ms, "tpot": run.tpot_ms, "latency": run.latency_ms}
    simulated = recorder.metrics(run.num_requests)
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
