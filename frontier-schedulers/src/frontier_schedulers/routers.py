"""Cluster routers: which replica takes an arriving request.

Every router is deterministic for a given seed; ties always go to the lowest
replica index.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from frontier.plugins import ClusterScheduler
from frontier.request import Request

__all__ = [
    "LeastOutstandingRouter",
    "PrefixAwareRouter",
    "RandomRouter",
    "RoundRobinRouter",
]


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


class LeastOutstandingRouter(ClusterScheduler):
    """The replica with the fewest outstanding (waiting or running) requests."""

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        """Fewest ``num_outstanding``; the lowest index among equals."""
        return min(range(len(replicas)), key=lambda i: replicas[i].num_outstanding)


class RandomRouter(ClusterScheduler):
    """A uniformly random replica, from a generator seeded with the run's seed."""

    def __init__(self, config: Any, num_replicas: int, seed: int) -> None:
        super().__init__(config, num_replicas, seed)
        self._rng = random.Random(seed)

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        """A seeded uniform draw."""
        return self._rng.randrange(self.num_replicas)


def cached_prefix_blocks(replica: Any, request: Request) -> int:
    """Blocks of ``request``'s prompt cached on ``replica`` (a lookup only).

    Asks the replica's scheduler when it keeps its own cache (SGLang's radix
    tree), the core's block manager otherwise.
    """
    lookup = getattr(replica.scheduler, "cached_prefix_blocks", None)
    if lookup is not None:
        return lookup(request)
    return len(replica.block_manager.find_cached_prefix(request))


class PrefixAwareRouter(ClusterScheduler):
    """The replica holding the longest cached prefix of the request's prompt.

    Ties (including no hit anywhere) go to the replica with the fewest
    outstanding requests, then the lowest index.
    """

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        """Longest cached prefix, then least outstanding, then lowest index."""
        if not request.block_hashes:
            return min(range(len(replicas)), key=lambda i: replicas[i].num_outstanding)
        return min(
            range(len(replicas)),
            key=lambda i: (
                -cached_prefix_blocks(replicas[i], request),
                replicas[i].num_outstanding,
            ),
        )
