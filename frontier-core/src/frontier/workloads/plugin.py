"""Registers the built-in request generators (through the same hook as any plugin)."""

from __future__ import annotations

from frontier.hookspecs import hookimpl
from frontier.workloads.synthetic import SyntheticConfig, SyntheticGenerator
from frontier.workloads.trace import TraceConfig, TraceGenerator


@hookimpl
def frontier_register_request_generators(registry):
    """Add ``synthetic`` and ``trace``."""
    registry.register("synthetic", SyntheticGenerator, SyntheticConfig)
    registry.register("trace", TraceGenerator, TraceConfig)
