"""Collective costs on a multi-dimensional network, as ASTRA-sim's analytical
backend models them.

ASTRA-sim (Rashidi et al., ISPASS 2020; Won et al., ISPASS 2023, "ASTRA-sim2.0")
describes a cluster as dimensions, each a topology of ``n`` NPUs with a link
bandwidth ``B`` (bytes/s, one direction) and a per-step latency ``alpha`` (s):
here the GPUs of a node (dimension 1) and the nodes (dimension 2). A collective
over ranks that span several dimensions runs hierarchically, one dimension after
the other, each with its topology's algorithm, on the data left at that stage:

- reduce-scatter of ``S`` bytes: dimension 1 reduce-scatters ``S`` over its
  ``n_1`` ranks, leaving ``S / n_1`` per rank; dimension 2 reduce-scatters that
  over ``n_2``, and so on;
- all-gather of an ``S``-byte result: the reverse order (the last dimension
  gathers ``S / n_1``, the first ``S``);
- all-reduce: the reduce-scatter, then the all-gather.

One dimension of ``n`` ranks moving a message of ``m`` bytes (the whole
message, of which each rank ends with ``m / n``), by topology:

- ``ring``: ``n - 1`` steps of ``m / n`` bytes: ``(n - 1) (alpha + m / (n B))``;
- ``fully_connected``: every rank sends its ``n - 1`` chunks of ``m / n`` at once,
  each on its own link: ``alpha + m / (n B)`` (``B`` per link);
- ``switch``: recursive halving (doubling to gather), ``ceil(log2 n)`` steps
  moving ``m / 2, m / 4, ...``: ``ceil(log2 n) alpha + (n - 1) m / (n B)``.
  ``alpha`` is a whole step: ASTRA-sim's switch routes NPU, switch, NPU, two link
  latencies.

An all-to-all where each rank holds ``S`` bytes sends ``S / n`` to every other
rank: on one dimension ``ring`` ``(n - 1) alpha + (n - 1) (n / 2) S / (n B)``
(on a one-direction ring the chunk for the rank ``d`` hops away crosses ``d``
links, so each link carries ``(n - 1) n / 2`` chunks), ``fully_connected``
``alpha + S / (n B)``, ``switch`` ``alpha + (n - 1) S / (n B)`` (direct: the
sends share the rank's link, their latencies overlap); over several dimensions,
each in turn on the whole ``S``. An expert-parallel group of replicas spans the
dimensions past one replica's GPUs (its members are a replica apart).
Point-to-point send/recv is ``alpha + S / B`` on the dimension the two stages'
GPUs first differ in.

The dimensions default to the device's figures: its node (``gpus_per_node``
GPUs on a ``switch`` of its intra-node bandwidth and latency; ``fully_connected``
for AMD's Infinity Fabric meshes, whose intra-node figure is split over the
``n - 1`` links) and the nodes on a ``switch`` of its network figures. Unlike the
``analytical`` backend, the links' figures are used as they are, not the bus
bandwidth a default NCCL collective reaches (``collective_bandwidth_gbps``).
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
from frontier.config import CCBackendConfig, FieldValueError, fraction
from frontier.errors import ConfigError
from frontier.plugins import CCBackend, ExecutionContext

__all__ = ["AstraAnalyticalBackend", "AstraAnalyticalConfig", "Dimension"]

Topology = Literal["ring", "fully_connected", "switch"]


def _within(low: float, high: float):
    """attrs validator: a number from ``low`` to ``high`` (a typo of 1e-300 GB/s
    gave 1e304-ms steps)."""

    def check(instance: object, attribute: attrs.Attribute, value: float) -> None:
        if not low <= value <= high:
            raise FieldValueError(
                attribute.name, f"must be from {low:g} to {high:g}, got {value!r}"
            )

    return check


def _dimensions(instance: object, attribute: attrs.Attribute, value) -> None:
    if value is not None and not value:
        raise FieldValueError(
            attribute.name,
            "needs at least one dimension (leave it out for the device's network)",
        )


@attrs.frozen(kw_only=True)
class Dimension:
    """One network dimension.

    Attributes:
        topology: ``ring``, ``fully_connected`` or ``switch``.
        npus: GPUs along the dimension.
        bandwidth_gbps: One-direction bandwidth of one link, 1e9 B/s.
        latency_ns: Latency of one step, nanoseconds.
    """

    topology: Topology
    npus: int = attrs.field(validator=_within(1, 1e6))
    bandwidth_gbps: float = attrs.field(validator=_within(1e-3, 1e9))
    latency_ns: float = attrs.field(validator=_within(0, 1e12))


@attrs.frozen(kw_only=True)
class AstraAnalyticalConfig(CCBackendConfig):
    """Options of the ``astra_analytical`` backend.

    Example (TOML)::

        [cc_backend]
        type = "astra_analytical"
        dimensions = [
            { topology = "switch", npus = 8, bandwidth_gbps = 450, latency_ns = 700 },
            { topology = "switch", npus = 16, bandwidth_gbps = 50, latency_ns = 5000 },
        ]

    Attributes:
        dimensions: The network, innermost first; the device's node and its
            network when unset (module docstring).
        bandwidth_efficiency: Fraction of each link's bandwidth a transfer
            reaches.
    """

    type: str = "astra_analytical"
    dimensions: list[Dimension] | None = attrs.field(
        default=None, validator=_dimensions
    )
    bandwidth_efficiency: float = attrs.field(default=1.0, validator=fraction)


def default_dimensions(context: ExecutionContext) -> list[Dimension]:
    """The device's node and the nodes, as two dimensions."""
    device = context.device
    parallel = context.parallel
    per_node = device.gpus_per_node
    gpus = parallel.tensor_parallel_size * parallel.pipeline_parallel_size
    if parallel.expert_parallel_size > parallel.tensor_parallel_size:
        gpus *= parallel.num_replicas  # the group's replicas exchange tokens
    nodes = max(1, math.ceil(gpus / per_node))
    if device.vendor == "AMD" and per_node > 1:
        node = Dimension(
            topology="fully_connected",
            npus=per_node,
            bandwidth_gbps=device.intra_node_bandwidth_gbps / (per_node - 1),
            latency_ns=device.intra_node_latency_us * 1e3,
        )
    else:
        node = Dimension(
            topology="switch",
            npus=per_node,
            bandwidth_gbps=device.intra_node_bandwidth_gbps,
            latency_ns=device.intra_node_latency_us * 1e3,
        )
    network = Dimension(
        topology="switch",
        npus=max(nodes, 1),
        bandwidth_gbps=device.inter_node_bandwidth_gbps,
        latency_ns=device.inter_node_latency_us * 1e3,
    )
    return [node, network]


class AstraAnalyticalBackend(CCBackend):
    """Hierarchical collectives over ring, fully-connected and switch dimensions."""

    def __init__(
        self, config: AstraAnalyticalConfig, context: ExecutionContext
    ) -> None:
        super().__init__(config, context)
        dimensions = config.dimensions or default_dimensions(context)
        parallel = context.parallel
        needed = parallel.tensor_parallel_size * parallel.pipeline_parallel_size
        if parallel.expert_parallel_size > parallel.tensor_parallel_size:
            needed *= parallel.num_replicas
        holds = math.prod(d.npus for d in dimensions)
        if needed > holds:
            raise ConfigError(
                f"cc_backend.dimensions hold {holds} GPUs (the product of their "
                f"npus), but the deployment's collectives span {needed}; add a "
                "dimension or raise an npus"
            )
        efficiency = config.bandwidth_efficiency
        # (topology, npus, seconds per byte, latency seconds) per dimension
        self._dims = [
            (
                d.topology,
                d.npus,
                1.0 / (d.bandwidth_gbps * 1e9 * efficiency),
                d.latency_ns * 1e-9,
            )
            for d in dimensions
        ]
        self._tp = context.parallel.tensor_parallel_size

    def _span(
        self, num_ranks: int, stride: int = 1
    ) -> list[tuple[str, int, float, float]]:
        """The dimensions a group of ``num_ranks`` ranks ``stride`` apart spans,
        each with the ranks it has along it (the last takes what is left); a
        dimension whose blocks are no larger than the stride is skipped."""
        # XXX: a group that fills a dimension unevenly (12 ranks on 8-GPU nodes)
        # is taken as whole blocks (8 x 2); ASTRA-sim needs whole blocks too.
        # Concurrent collectives of different groups do not slow each other.
        span = []
        left = num_ranks
        block = 1  # ranks in one block of the dimensions walked so far
        for topology, npus, per_byte, latency in self._dims:
            if left <= 1:
                break
            if block * npus <= stride:  # members sit in different blocks
                block *= npus
                continue
            room = max(1, block * npus // max(stride, block))
            along = min(left, room)
            span.append((topology, along, per_byte, latency))
            left = math.ceil(left / along)
            block *= npus
        if left > 1 and self._dims:  # more ranks than the network holds
            topology, _, per_byte, latency = self._dims[-1]
            span.append((topology, left, per_byte, latency))
        return span

    @staticmethod
    def _scatter(
        topology: str, n: int, message: float, per_byte: float, alpha: float
    ) -> float:
        """One dimension's reduce-scatter (or all-gather) of ``message`` bytes."""
        if n <= 1:
            return 0.0
        chunk = message / n
        if topology == "ring":
            return (n - 1) * (alpha + chunk * per_byte)
        if topology == "fully_connected":
            return alpha + chunk * per_byte
        return math.ceil(math.log2(n)) * alpha + (n - 1) * chunk * per_byte

    def reduce_scatter_s(
        self, size_bytes: float, num_ranks: int, stride: int = 1
    ) -> float:
        """Dimension by dimension, innermost first, on what is left."""
        seconds = 0.0
        message = size_bytes
        for topology, n, per_byte, latency in self._span(num_ranks, stride):
            seconds += self._scatter(topology, n, message, per_byte, latency)
            message /= n
        return seconds

    def replicas_all_gather_s(
        self, size_bytes: float, num_replicas: int, gpus_per_replica: int
    ) -> float:
        """The members' GPUs are ``gpus_per_replica`` ranks apart: the group
        spans the dimensions past one replica's."""
        return self.reduce_scatter_s(size_bytes, num_replicas, gpus_per_replica)

    def replicas_reduce_scatter_s(
        self, size_bytes: float, num_replicas: int, gpus_per_replica: int
    ) -> float:
        """As :meth:`replicas_all_gather_s`."""
        return self.reduce_scatter_s(size_bytes, num_replicas, gpus_per_replica)

    def all_gather_s(self, size_bytes: float, num_ranks: int) -> float:
        """The reduce-scatter's steps in reverse: the same seconds."""
        return self.reduce_scatter_s(size_bytes, num_ranks)

    def all_reduce_s(self, size_bytes: float, num_ranks: int) -> float:
        """Reduce-scatter, then all-gather."""
        return 2 * self.reduce_scatter_s(size_bytes, num_ranks)

    def all_to_all_s(self, size_bytes: float, num_ranks: int) -> float:
        """Each rank sends ``S / n`` to every other, dimension by dimension."""
        seconds = 0.0
        for topology, n, per_byte, alpha in self._span(num_ranks):
            chunk = size_bytes / n
            if topology == "ring":
                # n - 1 pipelined steps; the chunk for the rank d hops away
                # crosses d links: (n - 1) n / 2 chunks on each link
                seconds += (n - 1) * alpha + (n - 1) * n / 2 * chunk * per_byte
            elif topology == "fully_connected":
                seconds += alpha + chunk * per_byte
            else:  # direct: the n - 1 sends share the rank's link, latencies overlap
                seconds += alpha + (n - 1) * chunk * per_byte
        return seconds

    def send_recv_s(self, size_bytes: float, from_stage: int) -> float:
        """``alpha + S / B`` on the dimension the two stages' GPUs first differ in."""
        last_rank = (from_stage + 1) * self._tp - 1
        next_rank = last_rank + 1
        stride = 1
        for _topology, npus, per_byte, latency in self._dims:
            if last_rank // (stride * npus) == next_rank // (stride * npus):
                return latency + size_bytes * per_byte
            stride *= npus
        _topology, _npus, per_byte, latency = self._dims[-1]
        return latency + size_bytes * per_byte
