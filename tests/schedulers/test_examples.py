"""The example configs of examples/schedulers: one per replica scheduler, each
replaying the real Splitwise coding trace."""

from __future__ import annotations

import pytest
from conftest import REPO, require_shared_data
from conftest import test_plugins as plugin_host
from frontier.config_build import build_config, read_config_file
from frontier.simulation import Simulation

EXAMPLES = REPO / "examples" / "schedulers"
SCHEDULERS = ("vllm_v1", "vllm", "sglang", "sarathi", "orca")


def load(kind: str, data_root=None):
    """The example config of scheduler ``kind``, built with the installed plugins;
    with ``data_root``, its ``../shared/data`` paths point there instead."""
    data = read_config_file(EXAMPLES / f"{kind}.toml")
    data["metrics"] = {"progress": False}
    workload = data.get("workload", {})
    if data_root is not None and "path" in workload:
        workload["path"] = workload["path"].replace("../shared/data", str(data_root))
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
    root = require_shared_data()
    monkeypatch.chdir(REPO)  # the example's paths are relative to the root
    result = Simulation(load(kind, root), plugin_host()).run()
    assert result.summary["requests"]["completed"] == 8819
    assert result.summary["requests"]["total"] == 8819
