"""From a real run's ``meta.json`` to the config that replays it.

The mapping from ``engine_kwargs`` onto a config:

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
- ``enforce_eager``, ``max_cudagraph_capture_size``, ``cuda_graph_sizes`` and
  ``compilation_config`` -> ``engine.cuda_graph_max_tokens``;
  ``engine.eager_step_overhead_ms`` stays 0 unless ``--set``;
- ``max_model_len`` (the model's own when null), ``dtype``, ``kv_cache_dtype``,
  ``seed`` -> the model section and the run's seed;
- the GPU, model ``config.json``, workload (``vllm_jsonl``, with prompt block
  hashes) and operator profile (``vllm_profile``) found by
  :func:`~frontier.validation.inputs.locate_inputs`.

Otherwise the KV block count comes from the memory planner. Every setting is
type-checked: a mistyped one is an :class:`~frontier.errors.InputError` naming
``meta.json`` and the key.
"""

from __future__ import annotations

import re
from typing import Any

from frontier.errors import InputError
from frontier.validation.inputs import RunInputs
from frontier.validation.runs import RealRun

__all__ = ["build_config_data"]

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
        "async_scheduling": _async_scheduling(engine, run, pp),
        "reserve_full_isl": _reserve_full_isl(engine, run),
    }
    if not replica_scheduler["enable_chunked_prefill"]:
        replica_scheduler["stop_at_unfit_prompt"] = _stops_at_unfit_prompt(run)
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
            # every line the run's client sent; without meta.json num_requests,
            # a line the run lacks is simulated but not compared
            "num_requests": run.workload_requests,
        },
        "metrics": {"progress": False},
    }


def _vllm_version(run: RealRun) -> tuple[int, int] | None:
    """``(major, minor)`` of ``meta["vllm_version"]``; ``None`` when absent.

    Raises:
        InputError: The version is not a string ``<major>.<minor>...`` (a JSON
            number would read 0.20 as 0.2), or older than 0.8,
            whose default engine (v0) the replay's ``vllm_v1`` does not model.
    """
    version = run.meta.get("vllm_version")
    if version is None:
        return None
    where = f"{run.folder / 'meta.json'}, vllm_version"
    if not isinstance(version, str):
        raise InputError(
            f"{where}: {version!r} is not a string; write the version in quotes, "
            'such as "0.19.0" (as a JSON number 0.20 would read as 0.2)'
        )
    match = re.match(r"v?(\d+)\.(\d+)", version)
    if match is None:
        raise InputError(f"{where}: {version!r} is not a version like 0.19.0")
    parts = (int(match.group(1)), int(match.group(2)))
    if parts < (0, 8):
        raise InputError(
            f"{where}: {version!r}; the replay models vLLM's v1 engine, the default "
            "from 0.8 on"
        )
    return parts


def _async_scheduling(engine: dict[str, Any], run: RealRun, pp: int = 1) -> bool:
    """The run's ``async_scheduling``: as set, else vLLM's default for its version
    (on from v0.12, the release after the plan of vLLM issue 27679 landed).
    Unset with pipeline stages it is off: the simulator models asynchronous
    scheduling for single-stage replicas only (a run that set it is refused
    when the config is built).

    Raises:
        InputError: Neither the setting nor the version is recorded, or either
            is malformed.
    """
    value = _flag(engine, "async_scheduling", run, None)
    version = _vllm_version(run)
    if value is not None:
        return value
    if pp > 1:
        return False
    if version is None:
        raise InputError(
            f"{run.folder / 'meta.json'}: neither engine_kwargs.async_scheduling "
            "nor vllm_version is recorded; vLLM's default changed in 0.12, so the "
            "replay needs one of them"
        )
    return version >= (0, 12)


def _reserve_full_isl(engine: dict[str, Any], run: RealRun) -> bool:
    """The run's ``scheduler_reserve_full_isl``: as set, else vLLM's default for
    its version (on from v0.19.0, the first release with vLLM PR #37307; 0.18.0's
    scheduler has no such gate).

    Raises:
        InputError: Neither the setting nor the version is recorded.
    """
    value = _flag(engine, "scheduler_reserve_full_isl", run, None)
    if value is not None:
        return value
    version = _vllm_version(run)
    if version is None:
        raise InputError(
            f"{run.folder / 'meta.json'}: neither "
            "engine_kwargs.scheduler_reserve_full_isl nor vllm_version is recorded; "
            "vLLM turned this admission gate on in 0.19, so the replay needs one "
            "of them"
        )
    return version >= (0, 19)


def _stops_at_unfit_prompt(run: RealRun) -> bool:
    """Without chunked prefill, whether the run's vLLM stops admitting at a prompt
    longer than the budget left (v0.12 on, PR #28911) or skips it (0.8 to 0.11).

    Raises:
        InputError: The version is not recorded.
    """
    version = _vllm_version(run)
    if version is None:
        raise InputError(
            f"{run.folder / 'meta.json'}: vllm_version is not recorded; without "
            "chunked prefill vLLM's admission rule changed in 0.12, so the replay "
            "needs it"
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
