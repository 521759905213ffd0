"""Cluster routers: which replica takes an arriving request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from frontier.plugins import ClusterScheduler
from frontier.request import Request

__all__ = ["RoundRobinRouter"]


class RoundRobinRouter(ClusterScheduler):
    """Replicas in turn: request ``i`` goes to replica ``i mod n`` of those routed."""

    def __init__(self, config: Any, num_replicas: int, seed: int) -> None:
        super().__init__(config, num_replicas, seed)
        self._next = 0

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        """The next replica in turn."""
        choice = self._next
        self._next = (choice + 1) % self.num_replicas
        return choice
