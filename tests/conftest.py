"""Shared fixtures: a predictor with hand-checkable step times and a literal workload.

``step_time`` predicts every step as ``base_ms + per_token_ms * tokens``, so a
scenario's timeline can be computed by hand. ``literal`` replays the requests
written in the config: ``requests = [[arrived_at_s, prompt, output], ...]``.
``free`` is a CC backend whose collectives cost nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import pytest
from frontier.config import CCBackendConfig, PredictorConfig, WorkloadConfig
from frontier.config_build import build_config
from frontier.hookspecs import hookimpl
from frontier.plugins import (
    CCBackend,
    OperatorTimes,
    Predictor,
    RequestGenerator,
    load_plugins,
)
from frontier.request import Request
from frontier.simulation import Simulation

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """The shared real-data folder, or ``None`` when it is absent."""
    env = os.environ.get("FRONTIER_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def require_shared_data() -> Path:
    """The shared data folder; skips the test with the reason when absent."""
    path = shared_data()
    if path is None:
        pytest.skip(
            "real data not found: set FRONTIER_SHARED_DATA or place ../shared/data"
        )
    return path


@attrs.frozen(kw_only=True)
class StepTimeConfig(PredictorConfig):
    """``base_ms + per_token_ms * tokens`` per step."""

    type: str = "step_time"
    base_ms: float = 10.0
    per_token_ms: float = 0.0


class StepTimePredictor(Predictor):
    """Every step costs ``base_ms + per_token_ms * tokens`` (all of it on stage 0)."""

    def predict(self, batch):
        seconds = (
            self.config.base_ms + self.config.per_token_ms * batch.num_tokens
        ) / 1e3
        return OperatorTimes(0.0, 0.0, 0.0, seconds, 0.0)


@attrs.frozen(kw_only=True)
class LiteralConfig(WorkloadConfig):
    """Requests listed in the config as ``[arrived_at_s, prompt, output]``, or
    ``[arrived_at_s, prompt, output, reasoning]`` (reasoning tokens lead the
    output)."""

    type: str = "literal"
    requests: list[list[float]] = attrs.field(factory=list)


class LiteralGenerator(RequestGenerator):
    """Replays ``requests`` exactly as written."""

    @property
    def num_requests(self):
        return len(self.config.requests)

    def __iter__(self):
        for request_id, (arrived_at, prompt, output, *rest) in enumerate(
            self.config.requests
        ):
            reasoning = int(rest[0]) if rest else 0
            yield Request(
                request_id,
                float(arrived_at),
                int(prompt),
                int(output),
                num_reasoning_tokens=reasoning,
            )


class FreeBackend(CCBackend):
    """Every collective and transfer takes no time."""

    def all_reduce_s(self, size_bytes, num_ranks):
        return 0.0

    def all_gather_s(self, size_bytes, num_ranks):
        return 0.0

    def send_recv_s(self, size_bytes, from_stage):
        return 0.0


class _TestPlugins:
    @hookimpl
    def frontier_register_predictors(self, registry):
        registry.register("step_time", StepTimePredictor, StepTimeConfig)

    @hookimpl
    def frontier_register_cc_backends(self, registry):
        registry.register("free", FreeBackend, CCBackendConfig)

    @hookimpl
    def frontier_register_request_generators(self, registry):
        registry.register("literal", LiteralGenerator, LiteralConfig)


_HOST = None


def test_plugins():
    """Installed plugins plus the test-only ``step_time`` and ``literal``."""
    global _HOST
    if _HOST is None:
        _HOST = load_plugins(extra=[("frontier-tests", _TestPlugins())])
    return _HOST


def simulate(data: dict, output_dir: Path | None = None):
    """Build a config from ``data`` (with test plugins) and run it.

    Returns:
        ``(simulation, result)``.
    """
    host = test_plugins()
    config = build_config(data, host.registry.config_classes())
    simulation = Simulation(config, host)
    return simulation, simulation.run(output_dir)


def tiny_config(requests, **sections) -> dict:
    """A config for hand-checked scenarios: Llama-2-7B on an A100, ``step_time``
    predictor (10 ms per step by default), the ``literal`` workload."""
    data = {
        "model": {"name": "llama-2-7b"},
        "device": {"name": "a100-80gb"},
        "predictor": {"type": "step_time", "base_ms": 10.0, "per_token_ms": 0.0},
        "workload": {"type": "literal", "requests": [list(r) for r in requests]},
        "metrics": {"progress": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return data


@pytest.fixture
def run_scenario():
    """Run a scenario: ``run_scenario(requests, **sections)`` -> (sim, result)."""

    def run(requests, output_dir=None, **sections):
        return simulate(tiny_config(requests, **sections), output_dir)

    return run
