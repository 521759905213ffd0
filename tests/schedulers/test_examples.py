"""The example configs of examples/schedulers: one per replica scheduler, each
replaying the real Splitwise coding trace."""

from __future__ import annotations

import pytest
from conftest import REPO, require_shared_data
from conftest import test_plugins as plugin_host
from frontier.config import build_config, read_config_file
from frontier.simulation import Simulation

EXAMPLES = REPO / "examples" / "schedulers"
SCHEDULERS = ("vllm_v1", "vllm", "sglang", "sarathi", "orca")


def load(kind: str):
    """The example config of scheduler ``kind``, built with the installed plugins."""
    data = read_config_file(EXAMPLES / f"{kind}.toml")
    data["metrics"] = {"progress": False}
    return build_config(data, plugin_host().registry.config_classes())


def test_there_is_one_example_per_scheduler():
    """Every registered replica scheduler has its example, and no other exists."""
    registered = {e.name for e in plugin_host().registry.entries("replica_scheduler")}
    examples = {path.stem for path in EXAMPLES.glob("*.toml")}
    assert examples == set(SCHEDULERS) <= registered


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_example_config_is_valid(kind):
    """The example builds into a config of its scheduler (no data needed)."""
    assert load(kind).replica_scheduler.type == kind


@pytest.mark.slow
@pytest.mark.parametrize("kind", SCHEDULERS)
def test_example_replays_splitwise_code(kind, monkeypatch):
    """All 8,819 requests of the trace complete; none is rejected or aborted."""
    require_shared_data()
    monkeypatch.chdir(REPO)  # the example's trace path is relative to the root
    result = Simulation(load(kind), plugin_host()).run()
    assert result.summary["requests"]["completed"] == 8819
    assert result.summary["requests"]["total"] == 8819
