"""What a plugin implements, and how plugins are found.

Plugins are modules registered under the entry-point group ``frontier``; the built-in
ones ship in the ``frontier-*`` distributions and are found exactly like a third
party's. Each ``frontier_register_*`` hook adds named factories to a
:class:`PluginRegistry`; the same name registered twice is an error that names both
distributions. ``FRONTIER_PLUGINS=a,b`` loads only the entry points (or
distributions) named.

The abstract classes below are the contracts: a replica scheduler decides what runs
next, a predictor says how long it takes, a CC backend what collectives cost, a
cluster scheduler routes, a request generator produces the workload.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
import pluggy

from frontier import hookspecs
from frontier.config import SLOTS, CacheConfig, ParallelConfig, PluginConfig
from frontier.errors import PluginError

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
    "load_plugins",
]

KINDS = (
    "replica_scheduler",
    "cluster_scheduler",
    "predictor",
    "cc_backend",
    "request_generator",
)

_HOOK_OF_KIND = {
    "replica_scheduler": "frontier_register_replica_schedulers",
    "cluster_scheduler": "frontier_register_cluster_schedulers",
    "predictor": "frontier_register_predictors",
    "cc_backend": "frontier_register_cc_backends",
    "request_generator": "frontier_register_request_generators",
}


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
    """

    replica_id: int
    execution: ExecutionContext
    cache: CacheConfig
    max_model_len: int
    block_manager: KVBlockManager
    reject: Callable[[Request, Outcome], None]
    seed: int = 0


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


# --------------------------------------------------------------------------- registry


@attrs.frozen(kw_only=True)
class PluginEntry:
    """One registered plugin.

    Attributes:
        kind: One of :data:`KINDS`.
        name: The name configs use in ``type = "..."``.
        factory: Class (or callable) that builds the plugin.
        config_cls: The plugin's config class (a subclass of the slot's base).
        distribution: Distribution that registered it.
        version: That distribution's version.
        module: Module that registered it.
        description: One line for ``frontier plugins list``.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    config_cls: type[PluginConfig]
    distribution: str
    version: str
    module: str
    description: str


class PluginRegistry:
    """Every registered plugin, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, PluginEntry]] = {kind: {} for kind in KINDS}

    def add(self, entry: PluginEntry) -> None:
        """Add ``entry``; a second plugin with its kind and name is an error."""
        existing = self._entries[entry.kind].get(entry.name)
        if existing is not None:
            raise PluginError(
                f"{entry.kind} {entry.name!r} is registered twice: by "
                f"{existing.distribution} ({existing.module}) and by "
                f"{entry.distribution} ({entry.module}). Uninstall one, or restrict "
                "loading with FRONTIER_PLUGINS."
            )
        self._entries[entry.kind][entry.name] = entry

    def get(self, kind: str, name: str) -> PluginEntry:
        """The plugin ``name`` of ``kind``.

        Raises:
            PluginError: Not installed; the message lists what is.
        """
        entries = self._entries[kind]
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise PluginError(f"no {kind} plugin named {name!r}; installed: {known}")
        return entries[name]

    def entries(self, kind: str | None = None) -> list[PluginEntry]:
        """All entries, or those of ``kind``, sorted by kind then name."""
        kinds = [kind] if kind else list(KINDS)
        return [e for k in kinds for _, e in sorted(self._entries[k].items())]

    def config_classes(self) -> dict[str, dict[str, type[PluginConfig]]]:
        """For each kind, plugin name -> config class (for config building)."""
        return {
            kind: {name: e.config_cls for name, e in entries.items()}
            for kind, entries in self._entries.items()
        }


class _Registrar:
    """The object a ``frontier_register_*`` hook receives: adds plugins of one kind."""

    def __init__(
        self, registry: PluginRegistry, kind: str, distribution: str, version: str
    ) -> None:
        self._registry = registry
        self._kind = kind
        self._distribution = distribution
        self._version = version

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        config_cls: type[PluginConfig] | None = None,
        description: str | None = None,
    ) -> None:
        """Register ``factory`` under ``name`` with its config class.

        Args:
            name: What configs write in ``type = "..."``.
            factory: The plugin class.
            config_cls: Subclass of the slot's base config; the base itself (no
                options beyond ``type``) when omitted.
            description: One line; the factory's docstring summary by default.
        """
        base = {kind: cls for kind, cls in SLOTS.values()}[self._kind]
        config_cls = config_cls or base
        if not (isinstance(config_cls, type) and issubclass(config_cls, base)):
            raise PluginError(
                f"{self._distribution}: config class of {self._kind} {name!r} must "
                f"subclass {base.__name__}"
            )
        doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
        self._registry.add(
            PluginEntry(
                kind=self._kind,
                name=name,
                factory=factory,
                config_cls=config_cls,
                distribution=self._distribution,
                version=self._version,
                module=getattr(factory, "__module__", "?"),
                description=description or (doc[0] if doc else ""),
            )
        )


class PluginHost:
    """The loaded plugin manager and the registry its hooks filled."""

    def __init__(self, manager: pluggy.PluginManager, registry: PluginRegistry) -> None:
        self.manager = manager
        self.registry = registry

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``host.hook.frontier_run_started(...)``)."""
        return self.manager.hook

    def has_implementations(self, hook_name: str) -> bool:
        """Whether any plugin implements ``hook_name`` (lets hot paths skip calls)."""
        return bool(getattr(self.manager.hook, hook_name).get_hookimpls())


def _wanted() -> set[str] | None:
    raw = os.environ.get("FRONTIER_PLUGINS", "").strip()
    if not raw:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def load_plugins(extra: Sequence[tuple[str, object]] = ()) -> PluginHost:
    """Load every plugin of the ``frontier`` entry-point group and fill a registry.

    Args:
        extra: ``(distribution label, plugin object)`` pairs to register as well;
            tests use it to add plugins without installing a distribution.

    Raises:
        PluginError: A plugin fails to import, or two register one name.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str]] = {}
    wanted = _wanted()
    for point in sorted(
        entry_points(group=hookspecs.PROJECT_NAME), key=lambda p: p.name
    ):
        dist = point.dist
        dist_name = dist.name if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        if wanted is not None and point.name not in wanted and dist_name not in wanted:
            continue
        try:
            plugin = point.load()
        except Exception as error:
            raise PluginError(
                f"plugin {point.name!r} of {dist_name} failed to load ({point.value}): "
                f"{type(error).__name__}: {error}"
            ) from error
        label = f"{dist_name}:{point.name}"
        if manager.is_registered(plugin):
            continue
        manager.register(plugin, name=label)
        origins[label] = (dist_name, version)
    for dist_name, plugin in extra:
        label = f"{dist_name}:{id(plugin)}"
        manager.register(plugin, name=label)
        origins[label] = (dist_name, "local")

    registry = PluginRegistry()
    for kind, hook_name in _HOOK_OF_KIND.items():
        for impl in reversed(getattr(manager.hook, hook_name).get_hookimpls()):
            dist_name, version = origins.get(impl.plugin_name, (impl.plugin_name, "?"))
            impl.function(registry=_Registrar(registry, kind, dist_name, version))
    return PluginHost(manager, registry)


@cache
def default_plugins() -> PluginHost:
    """The installed plugins, loaded once per process."""
    return load_plugins()
