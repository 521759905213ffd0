"""Closed-form collective costs from link bandwidth and latency.

Ring algorithms (Patarasuk and Yuan, 2009; the NCCL defaults for these sizes):

- all-reduce of ``S`` bytes over ``n`` ranks: ``2 (n - 1)`` steps, each moving
  ``S / n`` bytes: ``t = 2 (n - 1) (alpha + S / (n B))``;
- all-gather of an ``S``-byte result: ``n - 1`` steps of ``S / n`` bytes:
  ``t = (n - 1) (alpha + S / (n B))``;
- reduce-scatter of an ``S``-byte input: ``n - 1`` steps of ``S / n`` bytes, the
  all-gather's cost: ``t = (n - 1) (alpha + S / (n B))``;
- all-to-all where each rank holds ``S`` bytes: ``n - 1`` pairwise exchanges of
  ``S / n`` bytes, the same cost as the all-gather;
- send/recv of ``S`` bytes between two stages: ``t = alpha + S / B``.

``B`` is the one-direction bandwidth of the slowest link on the path (bytes/s) and
``alpha`` its per-message latency (s): the device's NVLink figures while a group
stays inside one node, its network figures once it spans nodes. Where the device
records the bus bandwidth a default NCCL collective actually reaches inside a node
(``collective_bandwidth_gbps``, PCIe systems), all-reduce, all-gather and
reduce-scatter use it as ``B`` instead of the link bandwidth times
``bandwidth_efficiency``.
"""

from __future__ import annotations

import attrs
from frontier.config import CCBackendConfig, fraction
from frontier.plugins import CCBackend, ExecutionContext

__all__ = ["AnalyticalBackend", "AnalyticalConfig"]


@attrs.frozen(kw_only=True)
class AnalyticalConfig(CCBackendConfig):
    """Options of the analytical backend.

    Attributes:
        bandwidth_efficiency: Fraction of the link's peak a collective reaches
            (NCCL bus bandwidth over link bandwidth; about 0.8 on NVLink).
    """

    type: str = "analytical"
    bandwidth_efficiency: float = attrs.field(default=0.8, validator=fraction)


class AnalyticalBackend(CCBackend):
    """Ring all-reduce/all-gather/reduce-scatter and point-to-point send/recv from
    link specs."""

    def __init__(self, config: AnalyticalConfig, context: ExecutionContext) -> None:
        super().__init__(config, context)
        device = context.device
        efficiency = config.bandwidth_efficiency
        self._intra = (
            device.intra_node_latency_us * 1e-6,
            device.intra_node_bandwidth_gbps * 1e9 * efficiency,
        )
        self._inter = (
            device.inter_node_latency_us * 1e-6,
            device.inter_node_bandwidth_gbps * 1e9 * efficiency,
        )
        self._collective = self._intra
        if device.collective_bandwidth_gbps is not None:
            self._collective = (self._intra[0], device.collective_bandwidth_gbps * 1e9)
        self._gpus_per_node = device.gpus_per_node
        self._tp = context.parallel.tensor_parallel_size

    def _link(self, num_ranks: int) -> tuple[float, float]:
        return self._collective if num_ranks <= self._gpus_per_node else self._inter

    def all_reduce_s(self, size_bytes: float, num_ranks: int) -> float:
        """Ring all-reduce: ``2 (n - 1) (alpha + S / (n B))`` seconds."""
        if num_ranks <= 1:
            return 0.0
        latency, bandwidth = self._link(num_ranks)
        return 2 * (num_ranks - 1) * (latency + size_bytes / (num_ranks * bandwidth))

    def all_gather_s(self, size_bytes: float, num_ranks: int) -> float:
        """Ring all-gather: ``(n - 1) (alpha + S / (n B))`` seconds."""
        if num_ranks <= 1:
            return 0.0
        latency, bandwidth = self._link(num_ranks)
        return (num_ranks - 1) * (latency + size_bytes / (num_ranks * bandwidth))

    def reduce_scatter_s(self, size_bytes: float, num_ranks: int) -> float:
        """Ring reduce-scatter: ``(n - 1) (alpha + S / (n B))`` seconds."""
        if num_ranks <= 1:
            return 0.0
        latency, bandwidth = self._link(num_ranks)
        return (num_ranks - 1) * (latency + size_bytes / (num_ranks * bandwidth))

    def replicas_all_gather_s(
        self, size_bytes: float, num_replicas: int, gpus_per_replica: int
    ) -> float:
        """The ring all-gather on the link the replicas' GPUs span: the network
        once together they hold more GPUs than a node."""
        return self._ring(size_bytes, num_replicas, num_replicas * gpus_per_replica)

    def replicas_reduce_scatter_s(
        self, size_bytes: float, num_replicas: int, gpus_per_replica: int
    ) -> float:
        """As :meth:`replicas_all_gather_s` (a ring moves the same bytes)."""
        return self._ring(size_bytes, num_replicas, num_replicas * gpus_per_replica)

    def _ring(self, size_bytes: float, num_ranks: int, span: int) -> float:
        if num_ranks <= 1:
            return 0.0
        latency, bandwidth = self._link(span)
        return (num_ranks - 1) * (latency + size_bytes / (num_ranks * bandwidth))

    def send_recv_s(self, size_bytes: float, from_stage: int) -> float:
        """Point-to-point ``alpha + S / B``; the network link when the stages'
        GPUs sit on different nodes."""
        last_rank = (from_stage + 1) * self._tp - 1
        next_rank = last_rank + 1
        same_node = last_rank // self._gpus_per_node == next_rank // self._gpus_per_node
        latency, bandwidth = self._intra if same_node else self._inter
        return latency + size_bytes / bandwidth
