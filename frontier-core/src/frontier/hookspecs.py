"""The hooks a Frontier plugin may implement.

A plugin is a module (or object) registered under the entry-point group
``frontier``. The ``frontier_register_*`` hooks receive a registry and add named
factories to it; the observer hooks are called as a run progresses. Implement a hook
with the :data:`hookimpl` marker::

    from frontier.hookspecs import hookimpl

    @hookimpl
    def frontier_register_replica_schedulers(registry):
        registry.register("my_scheduler", MyScheduler, MySchedulerConfig)
"""

from __future__ import annotations

from typing import Any

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "frontier"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def frontier_register_replica_schedulers(registry: Any) -> None:
    """Add replica schedulers: ``registry.register(name, cls, config_cls)``.

    ``cls(config, context)`` must implement :class:`frontier.plugins.ReplicaScheduler`.
    """


@hookspec
def frontier_register_cluster_schedulers(registry: Any) -> None:
    """Add cluster routers (:class:`frontier.plugins.ClusterScheduler`)."""


@hookspec
def frontier_register_predictors(registry: Any) -> None:
    """Add execution-time predictors (:class:`frontier.plugins.Predictor`)."""


@hookspec
def frontier_register_cc_backends(registry: Any) -> None:
    """Add communication-cost backends (:class:`frontier.plugins.CCBackend`)."""


@hookspec
def frontier_register_request_generators(registry: Any) -> None:
    """Add workload generators (:class:`frontier.plugins.RequestGenerator`)."""


@hookspec
def frontier_add_commands(app: Any) -> None:
    """Add sub-commands to the ``frontier`` typer app (``app.add_typer``)."""


@hookspec
def frontier_run_started(simulation: Any) -> None:
    """A run is about to start; ``simulation`` holds the resolved parts."""


@hookspec
def frontier_batch_finished(
    replica_id: int, batch: Any, started_at: float, finished_at: float
) -> None:
    """A replica finished a batch (times in simulated seconds)."""


@hookspec
def frontier_request_finished(request: Any) -> None:
    """A request completed or was rejected; its timestamps are final."""


@hookspec
def frontier_run_finished(simulation: Any, summary: dict) -> None:
    """The run ended; ``summary`` is the content of ``system_metrics.json``."""
