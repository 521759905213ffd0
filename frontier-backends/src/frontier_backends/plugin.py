"""Registers the CC backends of this distribution."""

from __future__ import annotations

from frontier.hookspecs import hookimpl

from frontier_backends.analytical import AnalyticalBackend, AnalyticalConfig
from frontier_backends.astra import AstraAnalyticalBackend, AstraAnalyticalConfig


@hookimpl
def frontier_register_cc_backends(registry):
    """Add the analytical (ring) and the ASTRA-sim-style analytical backends."""
    registry.register("analytical", AnalyticalBackend, AnalyticalConfig)
    registry.register("astra_analytical", AstraAnalyticalBackend, AstraAnalyticalConfig)
