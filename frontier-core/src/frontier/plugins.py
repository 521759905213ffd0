"""What a plugin implements.

Plugins are found through the entry-point group ``frontier``
(:mod:`frontier.registry`, whose loading functions this module re-exports). The
abstract classes below are the contracts: a replica scheduler decides what runs
next, a predictor says how long it takes, a CC backend what collectives cost, a
cluster scheduler routes, a request generator produces the workload.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from frontier.config import CacheConfig, ParallelConfig, PluginConfig
from frontier.registry import (
    KINDS,
    PluginEntry,
    PluginHost,
    PluginRegistry,
    default_plugins,
    load_plugins,
)

if TYPE_CHECKING:
    from frontier.batch import Batch
    from frontier.devices import DeviceSpec
    from frontier.kv_cache import KVBlockManager
    from frontier.models import ModelSpec
    from frontier.request import Outcome, Request

__all__ = [
    "KINDS",
    "CCBackend",
    "ClusterScheduler",
    "ExecutionContext",
    "OperatorTimes",
    "PluginEntry",
    "PluginHost",
    "PluginRegistry",
    "Predictor",
    "ReplicaContext",
    "ReplicaScheduler",
    "RequestGenerator",
    "WorkloadContext",
    "default_plugins",
    "load_plugins",
]

# --------------------------------------------------------------------------- contexts


@attrs.frozen(kw_only=True)
class ExecutionContext:
    """What predictors and CC backends know about the deployment.

    Attributes:
        model: The model's shapes.
        device: The accelerator.
        parallel: Tensor/pipeline parallel sizes and replica count.
        dtype: Compute dtype name (weights and activations).
        kv_cache_dtype: KV-cache dtype name.
        seed: The run's seed.
    """

    model: ModelSpec
    device: DeviceSpec
    parallel: ParallelConfig
    dtype: str
    kv_cache_dtype: str
    seed: int = 0


@attrs.frozen(kw_only=True)
class ReplicaContext:
    """What a replica scheduler is given about its replica.

    Attributes:
        replica_id: Index of the replica, from 0.
        execution: Model, device and parallelism.
        cache: The cache config (block size, prefix caching).
        max_model_len: Longest sequence the engine accepts.
        block_manager: The replica's KV blocks; schedulers allocate through it.
        reject: Call ``reject(request, outcome)`` to drop a request that can
            never run; the core counts it and writes its row.
        seed: Seed for any random choice of the scheduler.
        client_max_tokens: ``engine.client_max_tokens`` (``"output"`` or
            ``"none"``), for schedulers whose rules read ``max_tokens``.
    """

    replica_id: int
    execution: ExecutionContext
    cache: CacheConfig
    max_model_len: int
    block_manager: KVBlockManager
    reject: Callable[[Request, Outcome], None]
    seed: int = 0
    client_max_tokens: str = "output"


@attrs.frozen(kw_only=True)
class WorkloadContext:
    """What a request generator is given.

    Attributes:
        seed: The run's seed.
        block_size: KV block size, for generators that compute block hashes.
        max_model_len: Longest sequence the engine accepts (for generators that
            want to stay inside it; the core enforces it either way).
    """

    seed: int
    block_size: int
    max_model_len: int


# --------------------------------------------------------------------------- contracts


class OperatorTimes(NamedTuple):
    """Predicted times of one step, per TP rank, in seconds, collectives excluded.

    Attributes:
        attention_s: One decoder layer's attention block (norm, QKV projection,
            rotary, attention kernel, KV-cache write, output projection).
        mlp_s: One dense decoder layer's MLP block (norm, up/gate, activation,
            down projection, residual adds).
        moe_s: One MoE layer's expert block (gate, routing, experts, combine);
            0 for dense models.
        embedding_s: The token embedding (first pipeline stage).
        head_s: Final norm, LM head and sampler (last pipeline stage).
    """

    attention_s: float
    mlp_s: float
    moe_s: float
    embedding_s: float
    head_s: float


class Predictor(abc.ABC):
    """Says how long a batch's operators take on one GPU of the deployment.

    Subclasses answer from precomputed tables or closed forms, never by calling a
    model per batch. ``fallback_count`` counts predictions made outside the
    measured range (answered by the roofline instead).
    """

    fallback_count = 0

    def __init__(self, config: PluginConfig, context: ExecutionContext) -> None:
        self.config = config
        self.context = context

    @abc.abstractmethod
    def predict(self, batch: Batch) -> OperatorTimes:
        """Operator times of ``batch`` on one TP rank, collectives excluded."""

    def describe(self) -> dict[str, Any]:
        """Facts about the predictor for ``system_metrics.json``."""
        return {"type": self.config.type, "fallback_predictions": self.fallback_count}


class CCBackend(abc.ABC):
    """Says what collectives cost between the GPUs of one replica.

    GPU ranks of a replica are laid out tensor-parallel first: pipeline stage ``s``
    holds ranks ``s * tp .. s * tp + tp - 1``; ranks fill nodes of
    ``device.gpus_per_node`` in order.
    """

    def __init__(self, config: PluginConfig, context: ExecutionContext) -> None:
        self.config = config
        self.context = context

    @abc.abstractmethod
    def all_reduce_s(self, size_bytes: float, num_ranks: int) -> float:
        """Seconds to all-reduce ``size_bytes`` over the TP group of ``num_ranks``."""

    @abc.abstractmethod
    def all_gather_s(self, size_bytes: float, num_ranks: int) -> float:
        """Seconds to all-gather a ``size_bytes`` result over ``num_ranks``."""

    @abc.abstractmethod
    def send_recv_s(self, size_bytes: float, from_stage: int) -> float:
        """Seconds to pass ``size_bytes`` from stage ``from_stage`` to the next."""

    def all_to_all_s(self, size_bytes: float, num_ranks: int) -> float:
        """Seconds of an all-to-all where each rank holds ``size_bytes`` in all."""
        return self.all_gather_s(size_bytes, num_ranks)

    def reduce_scatter_s(self, size_bytes: float, num_ranks: int) -> float:
        """Seconds to reduce-scatter a ``size_bytes`` input over ``num_ranks``
        (each rank keeps the reduced ``1 / num_ranks`` of it). A ring moves the
        same bytes as an all-gather of the same size, hence the default."""
        return self.all_gather_s(size_bytes, num_ranks)

    def replicas_all_gather_s(
        self, size_bytes: float, num_replicas: int, gpus_per_replica: int
    ) -> float:
        """Seconds of an all-gather between ``num_replicas`` replicas of
        ``gpus_per_replica`` GPUs each (an expert-parallel group's dispatch):
        the members' GPUs are ``gpus_per_replica`` ranks apart. The default
        takes them as neighbours (``all_gather_s``)."""
        return self.all_gather_s(size_bytes, num_replicas)

    def replicas_reduce_scatter_s(
        self, size_bytes: float, num_replicas: int, gpus_per_replica: int
    ) -> float:
        """The reduce-scatter of :meth:`replicas_all_gather_s` (the combine)."""
        return self.reduce_scatter_s(size_bytes, num_replicas)


class ReplicaScheduler(abc.ABC):
    """Decides which requests run in a replica's next step, and how many tokens.

    The core owns request progress: after a batch ends it advances each
    request's computed tokens, samples tokens, frees finished requests' blocks and
    then calls :meth:`on_batch_end`. The scheduler owns its queues, admission,
    token budgets and preemption (through ``context.block_manager``).
    """

    def __init__(self, config: PluginConfig, context: ReplicaContext) -> None:
        self.config = config
        self.context = context

    @abc.abstractmethod
    def add_request(self, request: Request, now: float) -> None:
        """Take a newly routed request into the waiting queue."""

    @abc.abstractmethod
    def schedule(self, now: float) -> Batch | None:
        """Form the next batch, or ``None`` when nothing can run now."""

    @abc.abstractmethod
    def on_batch_end(
        self, batch: Batch, finished: Sequence[Request], now: float
    ) -> None:
        """Account a finished batch; ``finished`` requests have left (blocks freed)."""

    @property
    @abc.abstractmethod
    def num_waiting(self) -> int:
        """Requests waiting for admission."""

    @property
    @abc.abstractmethod
    def num_running(self) -> int:
        """Admitted requests that hold KV blocks."""

    def describe(self) -> dict[str, Any]:
        """Facts for ``system_metrics.json`` (effective limits and the like)."""
        return {"type": self.config.type}

    def decode_window(self) -> bool:
        """Whether the batch just formed may be repeated, step after step.

        Answer True only if, for as long as no request arrives or finishes and
        every KV allocation succeeds, each following step would be this batch
        again: every running request decoding one token, nothing admitted,
        nothing preempted, and no internal state changing per step other than
        what :meth:`on_fast_forward` applies. The core then advances those steps
        at once (decode fast-forward), with the timestamps that calling
        :meth:`schedule` for each would give. The default, False, always takes
        one step at a time.
        """
        return False

    schedules_ahead = False
    """Whether the scheduler forms step N + 1 while step N runs (vLLM's
    asynchronous scheduling): then a request sampling in step N already counts
    the token it will get (a placeholder), arrivals during step N wait for step
    N + 2, and a finished request's slot is free one step later. The replica
    handles the timing; the scheduler must not schedule a request whose
    placeholders already reach its last token."""

    uses_prefix_cache = False
    """Whether the scheduler looks up cached prefix blocks; only then does the
    replica keep block identity (``cache.enable_prefix_caching``)."""

    keeps_samples_of_preempted = False
    """Whether a token sampled by a step for a request preempted while that step
    ran still counts (vLLM v1's ``update_from_output`` skips only finished
    requests, so a preempted one keeps it, and may even finish from the waiting
    queue: :meth:`on_batch_end` then lists it among the finished). Only
    asynchronous scheduling or pipeline stages preempt a request in flight."""

    decode_window_min_free_blocks = 0
    """Blocks that must stay free during a decode window (a scheduler that
    preempts whenever no block is free, like Sarathi-Serve, needs 1)."""

    def on_fast_forward(self, steps: int) -> None:  # noqa: B027 - optional hook
        """``steps`` more repetitions of the last batch were applied in bulk."""

    @classmethod
    def planning_limits(
        cls, config: PluginConfig, execution: ExecutionContext, max_model_len: int
    ) -> tuple[int, int]:
        """``(max tokens per step, max running requests)`` the memory planner
        sizes activations for, before the scheduler exists."""
        return 2048, 256


class ClusterScheduler(abc.ABC):
    """Routes each arriving request to one replica."""

    def __init__(self, config: PluginConfig, num_replicas: int, seed: int) -> None:
        self.config = config
        self.num_replicas = num_replicas
        self.seed = seed

    @abc.abstractmethod
    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        """Index of the replica that takes ``request``.

        ``replicas`` are :class:`frontier.replica.Replica` objects; read their
        ``num_outstanding`` and ``block_manager``, do not change them.
        """


class RequestGenerator(abc.ABC):
    """Produces the workload: requests in non-decreasing arrival order."""

    provides_block_hashes = False
    """Whether requests carry prompt block hashes (prefix caching can hit)."""

    def __init__(self, config: PluginConfig, context: WorkloadContext) -> None:
        self.config = config
        self.context = context

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Request]:
        """Yield requests with ids 0, 1, ... and non-decreasing ``arrived_at``."""

    @property
    def num_requests(self) -> int | None:
        """How many requests will be produced, when known in advance."""
        return None

    @property
    def label(self) -> str:
        """Short name of the workload for the output path."""
        return self.config.type
