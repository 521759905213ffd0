"""Registers the CC backends of this distribution."""

from __future__ import annotations

from frontier.hookspecs import hookimpl

from frontier_backends.analytical import AnalyticalBackend, AnalyticalConfig


@hookimpl
def frontier_register_cc_backends(registry):
    """Add the analytical (ring) backend."""
    registry.register("analytical", AnalyticalBackend, AnalyticalConfig)
