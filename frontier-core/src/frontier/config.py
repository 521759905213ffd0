"""The run configuration: attrs classes, built from TOML plus ``--set`` overrides.

A config is a tree of frozen attrs classes. Its polymorphic parts (the replica
scheduler, cluster scheduler, predictor, CC backend and workload) each carry a
``type`` key naming a plugin; the plugin's own config class, a subclass of the slot's
base, says which other keys are allowed. Structuring is strict: an unknown key, a
value of the wrong type or one outside the allowed set is an error that names the
full dotted path of the field and what is allowed (:mod:`frontier.config_build`
builds configs from text).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

__all__ = [
    "ARCHITECTURES",
    "CCBackendConfig",
    "CacheConfig",
    "ClusterSchedulerConfig",
    "Config",
    "DeviceConfig",
    "EngineConfig",
    "FieldValueError",
    "MetricsConfig",
    "ModelConfig",
    "ParallelConfig",
    "PluginConfig",
    "PredictorConfig",
    "ReplicaSchedulerConfig",
    "WorkloadConfig",
    "fraction",
    "non_negative",
    "path_field",
    "positive",
]

ARCHITECTURES = ("co-location", "pd-disaggregation", "pd-af-disaggregation")


class FieldValueError(ValueError):
    """A value outside its allowed range; carries the field name for the path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def path_field(**kwargs: Any) -> Any:
    """An attrs field holding a file or folder path, relative to the working
    directory. The ``config.toml`` a run writes stores it absolute, so that the
    file runs again from any directory."""
    return attrs.field(metadata={"path": True}, **kwargs)


def _not_blank(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: a text with something in it (an empty path would mean
    the working directory)."""
    if not value.strip():
        raise FieldValueError(attribute.name, "must not be empty")


def positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: ``None`` or a value above 0 (errors name the field)."""
    if value is not None and value <= 0:
        raise FieldValueError(attribute.name, f"must be positive, got {value!r}")


MAX_REQUESTS = 1_000_000_000
"""Most requests a generated workload may ask for: at about 100 microseconds a
request, a billion take a day to simulate; more is a typo, not a study."""


def request_count(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: ``None`` or a request count from 1 to :data:`MAX_REQUESTS`."""
    positive(instance, attribute, value)
    if value is not None and value > MAX_REQUESTS:
        raise FieldValueError(
            attribute.name,
            f"{value} requests would take days to simulate (about 100 us each); "
            f"the most is {MAX_REQUESTS:,}",
        )


def non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: ``None`` or a value of at least 0."""
    if value is not None and value < 0:
        raise FieldValueError(attribute.name, f"must be zero or more, got {value!r}")


def fraction(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: a value in (0, 1]."""
    if not 0.0 < value <= 1.0:
        raise FieldValueError(attribute.name, f"must be in (0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class PluginConfig:
    """Base of every plugin's config: ``type`` names the plugin."""

    type: str


@attrs.frozen(kw_only=True)
class ReplicaSchedulerConfig(PluginConfig):
    """Base of replica-scheduler configs (slot ``replica_scheduler``)."""

    type: str = "vllm_v1"


@attrs.frozen(kw_only=True)
class ClusterSchedulerConfig(PluginConfig):
    """Base of cluster-router configs (slot ``cluster_scheduler``)."""

    type: str = "round_robin"


@attrs.frozen(kw_only=True)
class PredictorConfig(PluginConfig):
    """Base of execution-time predictor configs (slot ``predictor``)."""

    type: str = "roofline"


@attrs.frozen(kw_only=True)
class CCBackendConfig(PluginConfig):
    """Base of communication-cost backend configs (slot ``cc_backend``)."""

    type: str = "analytical"


@attrs.frozen(kw_only=True)
class WorkloadConfig(PluginConfig):
    """Base of request-generator configs (slot ``workload``)."""

    type: str = "synthetic"


SLOTS: dict[str, tuple[str, type[PluginConfig]]] = {
    "replica_scheduler": ("replica_scheduler", ReplicaSchedulerConfig),
    "cluster_scheduler": ("cluster_scheduler", ClusterSchedulerConfig),
    "predictor": ("predictor", PredictorConfig),
    "cc_backend": ("cc_backend", CCBackendConfig),
    "workload": ("request_generator", WorkloadConfig),
}
"""Config slot -> (plugin kind in the registry, base config class)."""


@attrs.frozen(kw_only=True)
class ModelConfig:
    """Which model to simulate.

    Attributes:
        name: Built-in catalogue name or hub id (``frontier models list``).
        config_path: A Hugging Face ``config.json``; wins over ``name``'s catalogue
            entry and ``name`` then only labels the outputs.
        dtype: Weight and activation dtype; ``auto`` takes the model's own.
        kv_cache_dtype: KV-cache dtype; ``auto`` follows ``dtype``.
        max_model_len: Longest sequence (prompt + output) the engine accepts;
            defaults to the model's ``max_position_embeddings``.
    """

    name: str = "meta-llama/Meta-Llama-3-8B"
    config_path: str | None = path_field(default=None)
    dtype: Literal["auto", "bfloat16", "float16", "float32", "fp8"] = "auto"
    kv_cache_dtype: Literal["auto", "bfloat16", "float16", "float32", "fp8"] = "auto"
    max_model_len: int | None = attrs.field(default=None, validator=positive)


@attrs.frozen(kw_only=True)
class DeviceConfig:
    """Which accelerator each replica runs on; single fields may be overridden.

    Attributes:
        name: Catalogue name (``frontier devices list``).
        catalogue_path: TOML file of extra devices, same format as the built-in.
        memory_gib: Override of the device memory, GiB.
        memory_bandwidth_gbps: Override of the memory bandwidth, 1e9 B/s.
        bf16_tflops: Override of the dense BF16 peak, 1e12 FLOP/s.
        intra_node_bandwidth_gbps: Override of the per-GPU link bandwidth, 1e9 B/s.
        inter_node_bandwidth_gbps: Override of the per-GPU network bandwidth, 1e9 B/s.
    """

    name: str = "h100-sxm"
    catalogue_path: str | None = path_field(default=None)
    memory_gib: float | None = attrs.field(default=None, validator=positive)
    memory_bandwidth_gbps: float | None = attrs.field(default=None, validator=positive)
    bf16_tflops: float | None = attrs.field(default=None, validator=positive)
    intra_node_bandwidth_gbps: float | None = attrs.field(
        default=None, validator=positive
    )
    inter_node_bandwidth_gbps: float | None = attrs.field(
        default=None, validator=positive
    )

    def overrides(self) -> dict[str, float]:
        """The fields the user set, to apply on the catalogue entry."""
        names = (
            "memory_gib",
            "memory_bandwidth_gbps",
            "bf16_tflops",
            "intra_node_bandwidth_gbps",
            "inter_node_bandwidth_gbps",
        )
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@attrs.frozen(kw_only=True)
class ParallelConfig:
    """How the model is split and replicated.

    Expert parallelism follows vLLM's ``enable_expert_parallel``: the routed
    experts of every MoE layer are split over ``expert_parallel_size`` GPUs,
    which is the tensor-parallel GPUs of ``expert_parallel_size / tp`` replicas
    (vLLM: ``tp x data_parallel_size``). Replicas of one such expert-parallel
    group exchange their tokens in every MoE layer, and so step together
    (``data_parallel_lockstep``), as vLLM's data-parallel engines of an MoE
    model do.

    Attributes:
        tensor_parallel_size: GPUs that split each layer (heads, MLP width).
        pipeline_parallel_size: Stages that split the layers.
        num_replicas: Copies behind the cluster router (data parallel).
        expert_parallel_size: GPUs the routed experts are split over; 1 keeps
            them split like the other weights (tensor parallel). A multiple of
            ``tensor_parallel_size`` whose quotient divides ``num_replicas``.
        data_parallel_lockstep: Replicas of an expert-parallel group start each
            step together and every step lasts as long as the slowest member's
            (an idle member runs a dummy step). Unset: on exactly where an
            expert-parallel group spans several replicas, as in vLLM.
        lockstep_dummy_tokens: Tokens of the dummy batch an idle member runs
            (vLLM's ``execute_dummy_batch`` runs one).
        lockstep_padding_max_tokens: Members pad their step to the group's
            largest token count when every member's count is at most this (vLLM
            pads when the step runs as CUDA graphs, up to
            ``max_cudagraph_capture_size``); 0 turns padding off. Unset:
            ``engine.cuda_graph_max_tokens``, which also bounds it.
    """

    tensor_parallel_size: int = attrs.field(default=1, validator=positive)
    pipeline_parallel_size: int = attrs.field(default=1, validator=positive)
    num_replicas: int = attrs.field(default=1, validator=positive)
    expert_parallel_size: int = attrs.field(default=1, validator=positive)
    data_parallel_lockstep: bool | None = None
    lockstep_dummy_tokens: int = attrs.field(default=1, validator=positive)
    lockstep_padding_max_tokens: int | None = attrs.field(
        default=None, validator=non_negative
    )

    def __attrs_post_init__(self) -> None:
        tp = self.tensor_parallel_size
        ep = self.expert_parallel_size
        if ep > 1 and ep % tp:
            raise FieldValueError(
                "expert_parallel_size",
                f"must be a multiple of tensor_parallel_size={tp} (the experts are "
                f"split over the TP GPUs of whole replicas), got {ep}",
            )
        group = self.expert_group_size
        if self.num_replicas % group:
            raise FieldValueError(
                "expert_parallel_size",
                f"{ep} spans {group} replicas of tensor_parallel_size={tp} GPUs, "
                f"and num_replicas={self.num_replicas} is not a multiple of {group}; "
                "make num_replicas a multiple of expert_parallel_size / "
                "tensor_parallel_size",
            )
        if group > 1 and self.pipeline_parallel_size > 1:
            raise FieldValueError(
                "expert_parallel_size",
                "expert parallelism across replicas with pipeline_parallel_size > 1 "
                "is not built yet; use pipeline_parallel_size = 1",
            )
        if self.data_parallel_lockstep and group == 1:
            raise FieldValueError(
                "data_parallel_lockstep",
                "lockstep groups are the replicas of one expert-parallel group, "
                f"and expert_parallel_size={ep} spans a single replica; raise it to "
                "tensor_parallel_size x the replicas that share the experts, or "
                "leave data_parallel_lockstep unset",
            )

    @property
    def expert_group_size(self) -> int:
        """Replicas whose GPUs share the experts (1 without expert parallelism
        across replicas)."""
        if self.expert_parallel_size <= self.tensor_parallel_size:
            return 1
        return self.expert_parallel_size // self.tensor_parallel_size

    @property
    def lockstep(self) -> bool:
        """Whether the replicas of each expert-parallel group step together."""
        if self.data_parallel_lockstep is None:
            return self.expert_group_size > 1
        return self.data_parallel_lockstep


@attrs.frozen(kw_only=True)
class CacheConfig:
    """KV cache and memory planning (vLLM's cache config).

    Attributes:
        block_size: Tokens per KV block.
        gpu_memory_utilization: Fraction of device memory the engine may use.
        num_gpu_blocks: Pin the KV block count per replica instead of planning it.
        enable_prefix_caching: Reuse cached KV blocks across requests with equal
            prefixes (needs a workload that carries block hashes).
        activation_memory_gib: Peak activation memory per GPU; planned from the
            token budget when unset.
        overhead_memory_gib: Non-torch memory per GPU (CUDA context, NCCL and
            cuBLAS workspaces, CUDA graphs).
    """

    block_size: int = attrs.field(default=16, validator=positive)
    gpu_memory_utilization: float = attrs.field(default=0.9, validator=fraction)
    num_gpu_blocks: int | None = attrs.field(default=None, validator=positive)
    enable_prefix_caching: bool = True
    activation_memory_gib: float | None = attrs.field(
        default=None, validator=non_negative
    )
    overhead_memory_gib: float = attrs.field(default=1.0, validator=non_negative)


@attrs.frozen(kw_only=True)
class EngineConfig:
    """What a step costs beyond its operators (vLLM's compilation config), and
    what the engine's front end does with a request longer than the model.

    vLLM runs a step as a CUDA graph when it holds at most
    ``max_cudagraph_capture_size`` tokens (``CUDAGraphMode.FULL_AND_PIECEWISE``,
    the default since 0.11: a full graph for decode-only steps, a piecewise one
    otherwise) and without one above it, launching every kernel from the host.
    Operator profiles time the kernels alone.

    Attributes:
        cuda_graph_max_tokens: Most tokens of a step run as a CUDA graph (vLLM's
            ``max_cudagraph_capture_size``); 0 runs every step without one
            (``enforce_eager``). Unset: vLLM's default, ``min(2 x max_num_seqs,
            512, max_num_batched_tokens)`` of the replica scheduler.
        eager_step_overhead_ms: Milliseconds a step run without a CUDA graph
            takes beyond its operators and collectives: kernel launches and the
            host's work between them. 0 by default, as no figure is known for a
            host in general; ``benchmarks/validation_steps.py`` measures it from
            a real run's timestamps (docs/validation.md).
        client_max_tokens: What clients ask for as ``max_tokens``: ``"output"``,
            each request's output length (benchmark clients such as ``vllm
            bench serve`` and SGLang's ``bench_serving``), so vLLM's and
            SGLang's API servers refuse a request whose prompt plus output runs
            past ``model.max_model_len`` (``rejected_too_long``) and SGLang's
            budgets know every output; ``"none"``: no limit (chat clients), so
            such a request generates up to ``max_model_len`` (``truncated``, as
            also vLLM's offline ``LLM`` class does) and SGLang reserves
            ``max_req_len - prompt - 1`` tokens for each request.
    """

    cuda_graph_max_tokens: int | None = attrs.field(
        default=None, validator=non_negative
    )
    eager_step_overhead_ms: float = attrs.field(default=0.0, validator=non_negative)
    client_max_tokens: Literal["output", "none"] = "output"


@attrs.frozen(kw_only=True)
class MetricsConfig:
    """Where and what to write.

    Attributes:
        output_dir: Root of the outputs; a run writes to
            ``<output_dir>/<model>/<workload>/<run_id>/``.
        run_id: Name of the run's folder; a timestamp when unset.
        write_request_metrics: Write ``request_metrics.csv``.
        progress: Show a progress bar on stderr.
    """

    output_dir: str = path_field(default="outputs", validator=_not_blank)
    run_id: str | None = None
    write_request_metrics: bool = True
    progress: bool = True


@attrs.frozen(kw_only=True)
class Config:
    """A whole simulation: deployment, policies, workload and outputs.

    Attributes:
        seed: Seed of every random choice in the run.
        architecture: System architecture; only ``co-location`` is built.
        fast_forward: Advance runs of identical decode steps at once (the
            request metrics are the same either way; off is for checking that).
    """

    seed: int = attrs.field(default=0, validator=non_negative)
    fast_forward: bool = True
    architecture: Literal[
        "co-location", "pd-disaggregation", "pd-af-disaggregation"
    ] = "co-location"
    model: ModelConfig = attrs.field(factory=ModelConfig)
    device: DeviceConfig = attrs.field(factory=DeviceConfig)
    parallel: ParallelConfig = attrs.field(factory=ParallelConfig)
    cache: CacheConfig = attrs.field(factory=CacheConfig)
    engine: EngineConfig = attrs.field(factory=EngineConfig)
    replica_scheduler: ReplicaSchedulerConfig = attrs.field(
        factory=ReplicaSchedulerConfig
    )
    cluster_scheduler: ClusterSchedulerConfig = attrs.field(
        factory=ClusterSchedulerConfig
    )
    predictor: PredictorConfig = attrs.field(factory=PredictorConfig)
    cc_backend: CCBackendConfig = attrs.field(factory=CCBackendConfig)
    workload: WorkloadConfig = attrs.field(factory=WorkloadConfig)
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)
