"""Registers this distribution's replica schedulers and cluster routers."""

from __future__ import annotations

from frontier.hookspecs import hookimpl

from frontier_schedulers.routers import RoundRobinRouter
from frontier_schedulers.vllm_v1 import VllmV1Config, VllmV1Scheduler


@hookimpl
def frontier_register_replica_schedulers(registry):
    """Add ``vllm_v1``."""
    registry.register("vllm_v1", VllmV1Scheduler, VllmV1Config)


@hookimpl
def frontier_register_cluster_schedulers(registry):
    """Add ``round_robin``."""
    registry.register("round_robin", RoundRobinRouter)
