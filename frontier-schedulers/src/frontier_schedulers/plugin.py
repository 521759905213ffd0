"""Registers this distribution's replica schedulers and cluster routers."""

from __future__ import annotations

from frontier.hookspecs import hookimpl

from frontier_schedulers.orca import OrcaConfig, OrcaScheduler
from frontier_schedulers.routers import (
    LeastLoadedConfig,
    LeastLoadedRouter,
    LeastOutstandingRouter,
    PrefixAwareRouter,
    RandomRouter,
    RoundRobinRouter,
)
from frontier_schedulers.sarathi import SarathiConfig, SarathiScheduler
from frontier_schedulers.sglang import SglangConfig, SglangScheduler
from frontier_schedulers.vllm_v0 import VllmV0Config, VllmV0Scheduler
from frontier_schedulers.vllm_v1 import VllmV1Config, VllmV1Scheduler


@hookimpl
def frontier_register_replica_schedulers(registry):
    """Add ``vllm_v1``, ``vllm`` (v0), ``sglang``, ``sarathi`` and ``orca``."""
    registry.register("vllm_v1", VllmV1Scheduler, VllmV1Config)
    registry.register("vllm", VllmV0Scheduler, VllmV0Config)
    registry.register("sglang", SglangScheduler, SglangConfig)
    registry.register("sarathi", SarathiScheduler, SarathiConfig)
    registry.register("orca", OrcaScheduler, OrcaConfig)


@hookimpl
def frontier_register_cluster_schedulers(registry):
    """Add ``round_robin``, ``least_outstanding``, ``least_loaded`` (vLLM's
    data-parallel balancer), ``random`` and ``prefix_aware``."""
    registry.register("round_robin", RoundRobinRouter)
    registry.register("least_loaded", LeastLoadedRouter, LeastLoadedConfig)
    registry.register("least_outstanding", LeastOutstandingRouter)
    registry.register("random", RandomRouter)
    registry.register("prefix_aware", PrefixAwareRouter)
