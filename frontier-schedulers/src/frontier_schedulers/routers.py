"""Cluster routers: which replica takes an arriving request.

Every router is deterministic for a given seed; ties always go to the lowest
replica index.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import attrs
from frontier.config import ClusterSchedulerConfig, non_negative, positive
from frontier.plugins import ClusterScheduler
from frontier.request import Request

__all__ = [
    "LeastLoadedConfig",
    "LeastLoadedRouter",
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


@attrs.frozen(kw_only=True)
class LeastLoadedConfig(ClusterSchedulerConfig):
    """Options of the ``least_loaded`` router (vLLM's data-parallel balancer).

    Attributes:
        waiting_weight: What a waiting request counts against a running one.
        stats_interval_s: How often the front end's view of the replicas' counts
            is refreshed, seconds (vLLM's coordinator publishes at most every
            100 ms); 0 reads the counts afresh for every request.
    """

    type: str = "least_loaded"
    waiting_weight: int = attrs.field(default=4, validator=positive)
    stats_interval_s: float = attrs.field(default=0.1, validator=non_negative)


class LeastLoadedRouter(ClusterScheduler):
    """The replica with the lowest ``waiting_weight x waiting + running``.

    vLLM's data-parallel front end (``DPLBAsyncMPClient.get_core_engine_for_
    request`` in ``vllm/v1/engine/core_client.py``) scores each engine
    ``waiting * 4 + running`` from the ``[waiting, running]`` counts the DP
    coordinator publishes (``vllm/v1/engine/coordinator.py``: at most every
    100 ms while they change) and takes the lowest score, the first from its
    start index among equals (index 0 for a single API server, so the lowest
    replica index here). Between two publications it adds each request it sends
    to the chosen engine's waiting count, so a burst spreads out.

    Here the view is refreshed from the replicas' schedulers (their waiting and
    running requests) at the first request at least ``stats_interval_s`` after
    the last refresh, and each routed request adds one to its replica's waiting
    count until the next refresh.
    """

    # XXX: one API server is assumed. With several, each balances on its own
    # view from its own start index (rank c x engines / servers) and adds the
    # server count per routed request; a request reaches a server at random.

    def __init__(self, config: LeastLoadedConfig, num_replicas: int, seed: int) -> None:
        super().__init__(config, num_replicas, seed)
        self._waiting_weight = config.waiting_weight
        self._interval = config.stats_interval_s
        self._refreshed_at = -float("inf")
        self._counts: list[list[int]] = []

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        """Lowest score; the lowest index among equals."""
        now = request.arrived_at
        if not self._counts or now - self._refreshed_at >= self._interval:
            self._counts = [
                [r.scheduler.num_waiting, r.scheduler.num_running] for r in replicas
            ]
            self._refreshed_at = now
        weight = self._waiting_weight
        best = 0
        best_score = None
        for index, (waiting, running) in enumerate(self._counts):
            score = weight * waiting + running
            if best_score is None or score < best_score:
                best, best_score = index, score
        self._counts[best][0] += 1
        return best
