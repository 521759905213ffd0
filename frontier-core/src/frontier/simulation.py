"""A whole run: build the deployment from a config, replay the workload, report.

The event loop handles three kinds of event (see :class:`frontier.engine.Priority`
for their order at equal times): a batch leaving a replica's last stage, a request
arriving, and a replica asking its scheduler for the next batch. Replicas that step
in lockstep (:mod:`frontier.lockstep`) have the last two per group instead: the
group's step ending on every member, and the group starting its next step. Arrivals
are pulled from the generator one at a time, so memory does not grow with the
workload.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from frontier import __version__
from frontier.config import Config
from frontier.config_build import config_to_toml
from frontier.devices import load_device
from frontier.engine import EventQueue, Priority
from frontier.errors import ConfigError, FrontierError, InputError, SimulationError
from frontier.execution import ExecutionModel
from frontier.kv_cache import (
    KVBlockManager,
    PreemptionCachingBlockManager,
    PrefixCachingBlockManager,
)
from frontier.lockstep import LockstepGroup
from frontier.memory import MemoryPlan, plan_memory
from frontier.metrics import MetricsCollector
from frontier.models import DTYPE_BYTES, ModelSpec, load_model
from frontier.plugins import (
    ExecutionContext,
    PluginHost,
    ReplicaContext,
    WorkloadContext,
    default_plugins,
)
from frontier.replica import Replica
from frontier.request import Outcome, Request

__all__ = ["RunResult", "Simulation", "resolve_dtypes", "run_directory", "slug"]

_ASYNC_WITH_STAGES = (
    "replica_scheduler.async_scheduling = true is modelled for replicas of one "
    "pipeline stage only; with parallel.pipeline_parallel_size = {stages} set it to "
    "false (batches then form when the first stage frees)"
)

_ARRIVAL, _BATCH_END, _SCHEDULE, _GROUP_END, _GROUP_SCHEDULE = 0, 1, 2, 3, 4
_LATEST_ARRIVAL_S = 1e9
"""Latest arrival accepted: a double keeps 0.1 microsecond steps up to here."""


@attrs.frozen(kw_only=True)
class RunResult:
    """What a finished run produced.

    Attributes:
        summary: The content of ``system_metrics.json``.
        output_dir: Folder of the outputs, or ``None`` when nothing was written.
        wall_time_s: Wall-clock seconds the event loop took.
    """

    summary: dict[str, Any]
    output_dir: Path | None
    wall_time_s: float


def resolve_dtypes(config: Config, model: ModelSpec) -> tuple[str, str]:
    """The compute and KV-cache dtype names after ``auto`` is resolved."""
    dtype = model.dtype if config.model.dtype == "auto" else config.model.dtype
    if dtype in ("float32", "fp32"):
        dtype = "float32"
    kv = dtype if config.model.kv_cache_dtype == "auto" else config.model.kv_cache_dtype
    return dtype, kv


def slug(text: str) -> str:
    """``text`` as one folder name: characters other than letters, digits and
    ``-._`` become ``_``."""
    keep = [c if c.isalnum() or c in "-._" else "_" for c in text]
    # No leading dots: "." and ".." would leave the output folder.
    return "".join(keep).strip("_").lstrip(".") or "run"


def run_directory(config: Config, model_name: str, workload_label: str) -> Path:
    """``<output_dir>/<model>/<workload>/<run_id>``; a fresh timestamped id when
    ``metrics.run_id`` is unset (``-2``, ``-3``... when that folder exists)."""
    base = Path(config.metrics.output_dir) / slug(model_name.split("/")[-1])
    base = base / slug(workload_label)
    if config.metrics.run_id:
        return base / slug(config.metrics.run_id)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate = base / stamp
    suffix = 2
    while candidate.exists():
        candidate = base / f"{stamp}-{suffix}"
        suffix += 1
    return candidate


class Simulation:
    """One simulated deployment, built from a :class:`Config`.

    Args:
        config: The resolved config.
        plugins: Loaded plugins; the installed ones when omitted.
    """

    def __init__(self, config: Config, plugins: PluginHost | None = None) -> None:
        if config.architecture != "co-location":
            raise ConfigError(
                f"architecture {config.architecture!r} is not available yet: only "
                "'co-location' is built. Prefill/decode disaggregation and "
                "attention-FFN disaggregation are planned; see docs/architecture.md."
            )
        self.config = config
        self.plugins = plugins or default_plugins()
        registry = self.plugins.registry

        self.model = load_model(config.model.name, config.model.config_path)
        self.device = load_device(
            config.device.name, config.device.overrides(), config.device.catalogue_path
        )
        self.dtype, self.kv_cache_dtype = resolve_dtypes(config, self.model)
        self._check_quantisation_kernels()
        self.max_model_len = (
            config.model.max_model_len or self.model.max_position_embeddings
        )
        self.reject_over_length = config.engine.client_max_tokens == "output"
        if self.max_model_len > self.model.max_position_embeddings:
            # vLLM refuses this too (unless VLLM_ALLOW_LONG_MAX_MODEL_LEN is set).
            raise ConfigError(
                f"model.max_model_len={self.max_model_len} is longer than the "
                f"{self.model.max_position_embeddings} tokens {self.model.name} was "
                "trained for (max_position_embeddings); lower it"
            )
        self.execution_context = ExecutionContext(
            model=self.model,
            device=self.device,
            parallel=config.parallel,
            dtype=self.dtype,
            kv_cache_dtype=self.kv_cache_dtype,
            seed=config.seed,
        )
        self._check_parallelism()

        scheduler_entry = registry.get(
            "replica_scheduler", config.replica_scheduler.type
        )
        max_tokens, max_seqs = scheduler_entry.factory.planning_limits(
            config.replica_scheduler, self.execution_context, self.max_model_len
        )
        graph_tokens = config.engine.cuda_graph_max_tokens
        if graph_tokens is None:
            # vLLM's default max_cudagraph_capture_size (VllmConfig).
            graph_tokens = min(2 * max_seqs, 512, max_tokens)
        self.cuda_graph_max_tokens = graph_tokens
        dummy = config.parallel.lockstep_dummy_tokens
        if dummy > max_tokens:
            raise ConfigError(
                f"parallel.lockstep_dummy_tokens={dummy} is more than a step holds "
                f"(max_num_batched_tokens={max_tokens}); vLLM's dummy batch is 1 token"
            )
        padding = config.parallel.lockstep_padding_max_tokens
        # vLLM pads only steps that run as CUDA graphs.
        self.lockstep_padding_max_tokens = (
            graph_tokens if padding is None else min(padding, graph_tokens)
        )
        self.memory_plan: MemoryPlan = plan_memory(
            self.model,
            self.device,
            config.parallel,
            config.cache,
            dtype_bytes=DTYPE_BYTES[self.dtype],
            weight_dtype_bytes=self.model.linear_weight_bytes(DTYPE_BYTES[self.dtype]),
            kv_dtype_bytes=DTYPE_BYTES[self.kv_cache_dtype],
            max_num_batched_tokens=max_tokens,
            max_num_seqs=max_seqs,
            max_model_len=self.max_model_len,
        )

        self.generator = registry.get(
            "request_generator", config.workload.type
        ).factory(
            config.workload,
            WorkloadContext(
                seed=config.seed,
                block_size=config.cache.block_size,
                max_model_len=self.max_model_len,
            ),
        )
        self.predictor = registry.get("predictor", config.predictor.type).factory(
            config.predictor, self.execution_context
        )
        self.cc_backend = registry.get("cc_backend", config.cc_backend.type).factory(
            config.cc_backend, self.execution_context
        )
        self.execution = ExecutionModel(
            self.execution_context,
            self.predictor,
            self.cc_backend,
            DTYPE_BYTES[self.dtype],
            cuda_graph_max_tokens=graph_tokens,
            eager_step_overhead_s=config.engine.eager_step_overhead_ms * 1e-3,
        )
        num_replicas = config.parallel.num_replicas
        self.router = registry.get(
            "cluster_scheduler", config.cluster_scheduler.type
        ).factory(config.cluster_scheduler, num_replicas, config.seed)
        self._scheduler_factory = scheduler_entry.factory
        self.replicas: list[Replica] = []
        self.lockstep_groups: list[LockstepGroup] = []
        self.metrics: MetricsCollector | None = None

    def _check_parallelism(self) -> None:
        parallel = self.config.parallel
        model = self.model
        tp = parallel.tensor_parallel_size
        if model.num_heads % tp:
            raise ConfigError(
                f"parallel.tensor_parallel_size={tp} does not divide the model's "
                f"{model.num_heads} attention heads"
            )
        kv_heads = model.num_kv_heads
        if not model.is_mla and kv_heads % tp and tp % kv_heads:
            # vLLM splits KV heads over TP ranks, or replicates each on tp / kv.
            raise ConfigError(
                f"parallel.tensor_parallel_size={tp} neither divides nor is a "
                f"multiple of the model's {kv_heads} KV heads"
            )
        if parallel.pipeline_parallel_size > model.num_layers:
            raise ConfigError(
                f"parallel.pipeline_parallel_size={parallel.pipeline_parallel_size} is "
                f"more than the model's {model.num_layers} layers"
            )
        stages = parallel.pipeline_parallel_size
        if stages > 1 and getattr(
            self.config.replica_scheduler, "async_scheduling", False
        ):
            raise ConfigError(_ASYNC_WITH_STAGES.format(stages=stages))
        ep = parallel.expert_parallel_size
        if ep > 1 and not model.is_moe:
            raise ConfigError(
                f"parallel.expert_parallel_size={ep} needs a model with routed "
                f"experts; {model.name} has none (set it to 1)"
            )
        if ep > 1 and model.num_experts % ep:
            raise ConfigError(
                f"parallel.expert_parallel_size={ep} does not divide the "
                f"{model.num_experts} routed experts of {model.name}"
            )

    def _new_block_manager(self) -> KVBlockManager:
        cache = self.config.cache
        num_blocks, block_size = self.memory_plan.num_blocks, cache.block_size
        if cache.enable_prefix_caching and getattr(
            self._scheduler_factory, "uses_prefix_cache", False
        ):
            if self.generator.provides_block_hashes:
                return PrefixCachingBlockManager(num_blocks, block_size)
            # No block is shared, but a preempted request finds its own again.
            return PreemptionCachingBlockManager(num_blocks, block_size)
        # With a scheduler that never looks blocks up, counting blocks is exact.
        return KVBlockManager(num_blocks, block_size)

    def _build_replicas(self, metrics: MetricsCollector) -> None:
        self.replicas = []
        parallel = self.config.parallel
        lockstep = parallel.lockstep
        for replica_id in range(parallel.num_replicas):
            blocks = self._new_block_manager()
            replica = Replica(replica_id, blocks, self.execution, metrics)
            # Fast-forward skips per-step observer calls, so it is off when a
            # plugin watches every batch; lockstep groups step one at a time.
            replica.fast_forward = (
                replica.num_stages == 1
                and self.config.fast_forward
                and not lockstep
                and not self.plugins.has_implementations("frontier_batch_finished")
            )
            context = ReplicaContext(
                replica_id=replica_id,
                execution=self.execution_context,
                cache=self.config.cache,
                max_model_len=self.max_model_len,
                block_manager=blocks,
                reject=replica.reject,
                seed=self.config.seed + replica_id,
                client_max_tokens=self.config.engine.client_max_tokens,
            )
            replica.scheduler = self._scheduler_factory(
                self.config.replica_scheduler, context
            )
            if replica.scheduler.schedules_ahead and replica.num_stages > 1:
                # a scheduler plugin that schedules ahead by another switch
                raise ConfigError(_ASYNC_WITH_STAGES.format(stages=replica.num_stages))
            replica.lookahead = replica.scheduler.schedules_ahead
            if replica.lookahead:
                replica.fast_forward = False
            self.replicas.append(replica)
        self.lockstep_groups = []
        if lockstep:
            size = parallel.expert_group_size
            for first in range(0, len(self.replicas), size):
                self.lockstep_groups.append(
                    LockstepGroup(
                        self.replicas[first : first + size],
                        self.execution,
                        parallel.lockstep_dummy_tokens,
                        self.lockstep_padding_max_tokens,
                    )
                )

    # ------------------------------------------------------------------ running

    def run(
        self,
        output_dir: Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Simulate the whole workload and write the outputs.

        Args:
            output_dir: Where to write; nothing is written when ``None``.
            progress: Called now and then with the number of requests finished.

        Raises:
            SimulationError: Requests were left that no event could advance.
        """
        hook = self.plugins.hook
        on_request = None
        if self.plugins.has_implementations("frontier_request_finished"):

            def on_request(request: Request) -> None:
                hook.frontier_request_finished(request=request)

        request_csv = None
        if output_dir is not None:
            try:
                output_dir.mkdir(parents=True, exist_ok=True)
                (output_dir / "config.toml").write_text(
                    config_to_toml(self.config, absolute_paths=True), "utf-8"
                )
            except OSError as error:
                raise ConfigError(
                    f"metrics.output_dir: cannot write the outputs to {output_dir}: "
                    f"{error.strerror or error}; choose a folder you can create"
                ) from None
            request_csv = output_dir / "request_metrics.csv"
            if not self.config.metrics.write_request_metrics:
                # An earlier run's file in a reused folder would pass for this one's.
                request_csv.unlink(missing_ok=True)
                request_csv = None
        metrics = MetricsCollector(request_csv, on_request)
        self.metrics = metrics
        self._build_replicas(metrics)
        hook.frontier_run_started(simulation=self)

        started = time.perf_counter()
        try:
            try:
                self._loop(metrics, progress)
            finally:
                metrics.close()
            wall = time.perf_counter() - started
            summary = self._summary(metrics)
        except Exception as error:
            if output_dir is not None:
                error.add_note(
                    f"{output_dir} holds config.toml and request_metrics.csv (the "
                    "requests finished before the failure); system_metrics.json "
                    "was not written"
                )
            raise
        text = None
        if output_dir is not None:
            # Written before the observers run, so that a failing one loses nothing.
            text = json.dumps(summary, indent=2, sort_keys=False, allow_nan=False)
            (output_dir / "system_metrics.json").write_text(text + "\n", "utf-8")
        hook.frontier_run_finished(simulation=self, summary=summary)
        if text is not None:
            after = json.dumps(summary, indent=2, sort_keys=False, allow_nan=False)
            if after != text:  # an observer added to the summary
                (output_dir / "system_metrics.json").write_text(after + "\n", "utf-8")
        return RunResult(summary=summary, output_dir=output_dir, wall_time_s=wall)

    def _loop(
        self, metrics: MetricsCollector, progress: Callable[[int], None] | None
    ) -> None:
        queue = EventQueue()
        replicas = self.replicas
        router = self.router
        max_model_len = self.max_model_len
        batch_hook = None
        if self.plugins.has_implementations("frontier_batch_finished"):
            batch_hook = self.plugins.hook.frontier_batch_finished

        arrivals = iter(self.generator)
        first = next(arrivals, None)
        if first is None:
            raise InputError(
                f"the workload ({self.generator.label}) produced no requests: check "
                "that its file has rows after the header"
            )
        queue.push(first.arrived_at, Priority.ARRIVAL, _ARRIVAL, first)
        next_arrival = first.arrived_at
        events = 0
        now = first.arrived_at

        try:
            while queue:
                now, kind, payload = queue.pop()
                events += 1
                if kind == _BATCH_END:
                    replica, flight = payload
                    replica.finish_batch(flight, now)
                    if batch_hook is not None:
                        batch_hook(
                            replica_id=replica.replica_id,
                            batch=flight.batch,
                            started_at=flight.started_at,
                            finished_at=now,
                        )
                    ahead = replica.start_queued(now) if replica.lookahead else None
                    if ahead is not None:
                        queue.push(
                            ahead.finishes_at,
                            Priority.BATCH_END,
                            _BATCH_END,
                            (replica, ahead),
                        )
                    elif not replica.schedule_pending:
                        replica.schedule_pending = True
                        queue.push(now, Priority.SCHEDULE, _SCHEDULE, replica)
                elif kind == _ARRIVAL:
                    request: Request = payload
                    if now > _LATEST_ARRIVAL_S:
                        raise InputError(
                            f"request {request.request_id} arrives at {now:.6g} s; "
                            f"past {_LATEST_ARRIVAL_S:.0e} s (31 years) times lose the "
                            "sub-microsecond precision steps need. Raise the arrival "
                            "rate or scale the trace's times (workload.time_scale)."
                        )
                    metrics.record_arrival(request)
                    upcoming = next(arrivals, None)
                    next_arrival = math.inf
                    if upcoming is not None:
                        next_arrival = upcoming.arrived_at
                        if upcoming.arrived_at < request.arrived_at:
                            raise SimulationError(
                                f"workload produced request {upcoming.request_id} at "
                                f"{upcoming.arrived_at} s, before request "
                                f"{request.request_id} at {request.arrived_at} s"
                            )
                        queue.push(
                            upcoming.arrived_at, Priority.ARRIVAL, _ARRIVAL, upcoming
                        )
                    if not self._admit(request, max_model_len, metrics):
                        continue
                    index = router.route(request, replicas)
                    if type(index) is not int or not 0 <= index < len(replicas):
                        index = self._check_route(router, request, index, now)
                    replica = replicas[index]
                    replica.add_request(request, now)
                    group = replica.group
                    if group is not None:
                        group.wake()
                        if not group.stepping and not group.schedule_pending:
                            group.schedule_pending = True
                            queue.push(now, Priority.SCHEDULE, _GROUP_SCHEDULE, group)
                    elif not replica.schedule_pending and replica.can_start(now):
                        replica.schedule_pending = True
                        queue.push(now, Priority.SCHEDULE, _SCHEDULE, replica)
                elif kind == _SCHEDULE:
                    replica = payload
                    replica.schedule_pending = False
                    if not replica.can_start(now):
                        continue
                    flight = replica.start_batch(now, next_arrival)
                    if flight is None:
                        continue
                    queue.push(
                        flight.finishes_at,
                        Priority.BATCH_END,
                        _BATCH_END,
                        (replica, flight),
                    )
                    if replica.lookahead:
                        replica.queued = replica.schedule(now)
                    if replica.num_in_flight < replica.num_stages:
                        replica.schedule_pending = True
                        free_at = replica.stage_free_at[0]
                        queue.push(free_at, Priority.SCHEDULE, _SCHEDULE, replica)
                elif kind == _GROUP_END:
                    group = payload
                    for replica, flight in group.finish_step(now):
                        if batch_hook is not None:
                            batch_hook(
                                replica_id=replica.replica_id,
                                batch=flight.batch,
                                started_at=flight.started_at,
                                finished_at=now,
                            )
                    if group.running and not group.schedule_pending:
                        group.schedule_pending = True
                        queue.push(now, Priority.SCHEDULE, _GROUP_SCHEDULE, group)
                elif kind == _GROUP_SCHEDULE:
                    group = payload
                    group.schedule_pending = False
                    if group.stepping:
                        continue
                    ends = group.start_step(now)
                    if ends is not None:
                        queue.push(ends, Priority.BATCH_END, _GROUP_END, group)
                if progress is not None and events % 4096 == 0:
                    progress(metrics.num_finished)
        except Exception as error:
            if not isinstance(error, FrontierError):
                # A bug in a plugin or in Frontier: say when it happened.
                error.add_note(f"at simulated time {now:.6f} s (event {events})")
            raise

        if progress is not None:
            progress(metrics.num_finished)
        stuck = [r for r in replicas if r.num_outstanding]
        if stuck:
            details = "; ".join(
                f"replica {r.replica_id}: {r.scheduler.num_waiting} waiting, "
                f"{r.scheduler.num_running} running, {r.block_manager.num_free_blocks} "
                f"of {r.block_manager.num_blocks} KV blocks free"
                for r in stuck
            )
            raise SimulationError(
                "the simulation stopped with requests that can make no progress: "
                f"{details}. The scheduler formed no batch although requests remain; "
                "check the scheduler's limits against the KV cache size."
            )

    def _admit(
        self, request: Request, max_model_len: int, metrics: MetricsCollector
    ) -> bool:
        """Apply the engine's length rules; reject or cut, and count it.

        vLLM rejects a prompt that leaves no room for one output token
        (``prompt >= max_model_len``). A prompt plus output past
        ``max_model_len`` is refused by vLLM's API server when the client asks
        for that output as ``max_tokens`` (``serving.py``: ``prompt + max_tokens
        > max_model_len``); a request without ``max_tokens``
        (``engine.client_max_tokens = "none"``) stops when the sequence reaches
        ``max_model_len`` (``FINISHED_LENGTH_CAPPED``).
        """
        prompt = request.num_prompt_tokens
        if prompt >= max_model_len:
            request.outcome = Outcome.REJECTED_TOO_LONG
            metrics.record_request(request)
            return False
        if prompt + request.num_output_tokens > max_model_len:
            if self.reject_over_length:
                request.outcome = Outcome.REJECTED_TOO_LONG
                metrics.record_request(request)
                return False
            request.max_output_tokens = max_model_len - prompt
            request.outcome = Outcome.TRUNCATED
        blocks_needed = -(
            -(prompt + request.max_output_tokens - 1) // self.config.cache.block_size
        )
        if blocks_needed > self.memory_plan.num_blocks:
            request.outcome = Outcome.REJECTED_NO_FIT
            metrics.record_request(request)
            return False
        return True

    def _check_quantisation_kernels(self) -> None:
        """Refuse a checkpoint vLLM has no kernel for on this device: W4A8-FP8
        runs on Hopper only (vLLM 0.19 ``_is_fp8_w4a8_sm90``; elsewhere the
        config falls to a W4A8-INT scheme no CUDA kernel serves)."""
        model, device = self.model, self.device
        w4a8 = model.weight_dtype == "int4" and model.gemm_dtype == "fp8"
        if w4a8 and device.architecture != "hopper":
            where = device.architecture or "an unknown architecture"
            raise ConfigError(
                f"model: {model.name} is a W4A8-FP8 checkpoint (4-bit weights, "
                f"FP8 activations), which vLLM runs on Hopper GPUs only; "
                f"{device.name} is {where}. Pick a Hopper device (h100-sxm, "
                'h800, h200, h20), or set architecture = "hopper" in your own '
                "device's catalogue entry"
            )

    def _gemm_dtype(self) -> str:
        """The dtype the projections multiply in: a W8A8 (or FP4) checkpoint's on
        a device whose peak for it is above the model dtype's, the model dtype
        where vLLM falls back to weight-only kernels (FP8 on the A100)."""
        gemm = self.model.gemm_dtype
        device = self.device
        if gemm and device.peak_flops(gemm) > device.peak_flops(self.dtype):
            return gemm
        return self.dtype

    def _check_route(
        self, router: Any, request: Request, index: Any, now: float
    ) -> int:
        """``index`` as a replica index (a NumPy integer passes), or stop the run
        naming the router: a bad index failed deep in the core, or (-1) silently
        picked the last replica."""
        count = len(self.replicas)
        if (
            isinstance(index, numbers.Integral)
            and not isinstance(index, bool)
            and 0 <= index < count
        ):
            return int(index)
        raise SimulationError(
            f"the cluster scheduler ({type(router).__name__}) routed request "
            f"{request.request_id} at t={now:.6f} s to replica {index!r}; route() "
            f"must return an index from 0 to {count - 1}"
        )

    def _summary(self, metrics: MetricsCollector) -> dict[str, Any]:
        config = self.config
        summary: dict[str, Any] = {
            "metadata": {
                "frontier_version": __version__,
                "model": self.model.name,
                "device": self.device.name,
                "dtype": self.dtype,
                "weight_dtype": self.model.weight_dtype or self.dtype,
                "weight_bits": 8
                * self.model.linear_weight_bytes(DTYPE_BYTES[self.dtype]),
                "gemm_dtype": self._gemm_dtype(),
                "kv_cache_dtype": self.kv_cache_dtype,
                "tensor_parallel_size": config.parallel.tensor_parallel_size,
                "pipeline_parallel_size": config.parallel.pipeline_parallel_size,
                "num_replicas": config.parallel.num_replicas,
                "expert_parallel_size": config.parallel.expert_parallel_size,
                "data_parallel_lockstep": config.parallel.lockstep,
                "architecture": config.architecture,
                "replica_scheduler": config.replica_scheduler.type,
                "cluster_scheduler": config.cluster_scheduler.type,
                "predictor": config.predictor.type,
                "cc_backend": config.cc_backend.type,
                "workload": self.generator.label,
                "max_model_len": self.max_model_len,
                "seed": config.seed,
            }
        }
        summary.update(metrics.summary())
        duration = metrics.duration()
        prefix = self.replicas[0].block_manager.prefix_stats if self.replicas else None
        totals: dict[str, float] = {}
        for replica in self.replicas:
            for key, value in replica.block_manager.prefix_stats.as_dict().items():
                if not key.endswith("rate"):
                    totals[key] = totals.get(key, 0) + value
        if prefix is not None:
            first_q = totals.get("first_attempt_query_tokens", 0)
            all_q = totals.get("all_attempts_query_tokens", 0)
            totals["first_attempt_hit_rate"] = (
                totals.get("first_attempt_hit_tokens", 0) / first_q if first_q else 0.0
            )
            totals["all_attempts_hit_rate"] = (
                totals.get("all_attempts_hit_tokens", 0) / all_q if all_q else 0.0
            )
        summary["prefix_cache"] = {
            "enabled": bool(
                self.replicas and self.replicas[0].block_manager.enable_prefix_caching
            ),
            **totals,
        }
        summary["engine"] = {
            "cuda_graph_max_tokens": self.cuda_graph_max_tokens,
            "eager_step_overhead_ms": config.engine.eager_step_overhead_ms,
        }
        summary["memory"] = self.memory_plan.as_dict()
        summary["scheduler"] = (
            self.replicas[0].scheduler.describe() if self.replicas else {}
        )
        summary["predictor"] = self.predictor.describe()
        summary["replicas"] = [
            {
                "replica_id": r.replica_id,
                "batches": r.num_batches,
                "busy_s": r.busy_time,
                "utilisation": r.utilisation(
                    metrics.first_arrival, metrics.first_arrival + duration
                ),
                **({"dummy_steps": r.num_dummy_steps} if r.group is not None else {}),
            }
            for r in self.replicas
        ]
        return _finite(summary)


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) with ``None``."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
