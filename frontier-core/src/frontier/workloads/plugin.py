"""Registers the built-in request generators (through the same hook as any plugin)."""

from __future__ import annotations

from frontier.hookspecs import hookimpl
from frontier.workloads.jsonl import VllmJsonlConfig, VllmJsonlGenerator
from frontier.workloads.resample import ResampleConfig, ResampleGenerator
from frontier.workloads.synthetic import SyntheticConfig, SyntheticGenerator
from frontier.workloads.trace import TraceConfig, TraceGenerator


@hookimpl
def frontier_register_request_generators(registry):
    """Add ``synthetic``, ``trace``, ``trace_resample`` and ``vllm_jsonl``."""
    registry.register("synthetic", SyntheticGenerator, SyntheticConfig)
    registry.register("trace", TraceGenerator, TraceConfig)
    registry.register("trace_resample", ResampleGenerator, ResampleConfig)
    registry.register("vllm_jsonl", VllmJsonlGenerator, VllmJsonlConfig)
