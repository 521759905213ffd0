"""Plugin loading: the registry, name clashes, FRONTIER_PLUGINS and observers."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import attrs
import pytest
from conftest import tiny_config
from frontier import registry as registry_module
from frontier.config import PluginConfig, ReplicaSchedulerConfig
from frontier.config_build import build_config
from frontier.errors import PluginError
from frontier.hookspecs import hookimpl
from frontier.plugins import ReplicaScheduler, load_plugins
from frontier.simulation import Simulation

BUILT_IN = {
    ("replica_scheduler", "vllm_v1"): "frontier-schedulers",
    ("cluster_scheduler", "round_robin"): "frontier-schedulers",
    ("predictor", "roofline"): "frontier-predictors",
    ("cc_backend", "analytical"): "frontier-backends",
    ("request_generator", "synthetic"): "frontier-core",
    ("request_generator", "trace"): "frontier-core",
}


class _Scheduler(ReplicaScheduler):
    """A scheduler that never schedules (only its registration matters here)."""

    def add_request(self, request, now):
        pass

    def schedule(self, now):
        return None

    def on_batch_end(self, batch, finished, now):
        pass

    num_waiting = 0
    num_running = 0


class _Registers:
    """A plugin that registers one replica scheduler under ``name``."""

    def __init__(self, name: str, config_cls=None) -> None:
        self.name = name
        self.config_cls = config_cls

    @hookimpl
    def frontier_register_replica_schedulers(self, registry):
        registry.register(self.name, _Scheduler, self.config_cls)


@pytest.fixture
def no_filter(monkeypatch):
    monkeypatch.delenv("FRONTIER_PLUGINS", raising=False)


def test_every_built_in_plugin_is_registered_under_its_distribution(no_filter):
    """vllm_v1, round_robin, roofline, analytical, synthetic and trace come from
    their own distributions."""
    registry = load_plugins().registry
    for (kind, name), distribution in BUILT_IN.items():
        entry = registry.get(kind, name)
        assert entry.distribution == distribution, (kind, name)
        assert entry.version not in ("", "?")
        assert entry.description  # the factory docstring's first line


def test_two_plugins_registering_one_name_is_an_error_naming_both(no_filter):
    """A name registered by two distributions names both in the error."""
    with pytest.raises(PluginError) as error:
        load_plugins(
            extra=[("dist-a", _Registers("twin")), ("dist-b", _Registers("twin"))]
        )
    message = str(error.value)
    assert "'twin'" in message
    assert "dist-a" in message
    assert "dist-b" in message
    assert "FRONTIER_PLUGINS" in message  # the way out


def test_clash_with_a_built_in_names_the_built_in_distribution(no_filter):
    """Re-registering ``vllm_v1`` names frontier-schedulers and the newcomer."""
    with pytest.raises(PluginError) as error:
        load_plugins(extra=[("dist-a", _Registers("vllm_v1"))])
    assert "frontier-schedulers" in str(error.value)
    assert "dist-a" in str(error.value)


def test_same_name_of_different_kinds_is_allowed(no_filter):
    """A scheduler and a predictor may share a name: names are per kind."""

    class Predictors:
        @hookimpl
        def frontier_register_predictors(self, registry):
            from conftest import StepTimeConfig, StepTimePredictor

            registry.register("shared", StepTimePredictor, StepTimeConfig)

    host = load_plugins(extra=[("a", _Registers("shared")), ("b", Predictors())])
    assert host.registry.get("replica_scheduler", "shared").distribution == "a"
    assert host.registry.get("predictor", "shared").distribution == "b"


def test_frontier_plugins_restricts_loading_to_named_distributions(monkeypatch):
    """``FRONTIER_PLUGINS=frontier-core`` loads only the core's workloads."""
    monkeypatch.setenv("FRONTIER_PLUGINS", "frontier-core")
    registry = load_plugins().registry
    assert {e.distribution for e in registry.entries()} == {"frontier-core"}
    assert {e.kind for e in registry.entries()} == {"request_generator"}
    names = {e.name for e in registry.entries()}
    assert {"synthetic", "trace"} <= names


def test_frontier_plugins_accepts_entry_point_names(monkeypatch):
    """Entry-point names (``backends``) select too, and lists are comma-separated."""
    monkeypatch.setenv("FRONTIER_PLUGINS", "backends, frontier-predictors")
    registry = load_plugins().registry
    assert {e.distribution for e in registry.entries()} == {
        "frontier-backends",
        "frontier-predictors",
    }


def test_unset_plugin_lookup_lists_what_is_installed(monkeypatch):
    """Asking for a plugin that was filtered out lists the installed ones."""
    monkeypatch.setenv("FRONTIER_PLUGINS", "frontier-core")
    registry = load_plugins().registry
    with pytest.raises(PluginError, match=r"installed: .*synthetic, trace"):
        registry.get("request_generator", "poisson_file")
    with pytest.raises(PluginError, match="installed: none"):
        registry.get("replica_scheduler", "vllm_v1")


def test_config_class_must_subclass_the_slot_base(no_filter):
    """A scheduler whose config class is not a ReplicaSchedulerConfig is refused."""

    @attrs.frozen(kw_only=True)
    class Wrong(PluginConfig):
        type: str = "wrong"

    with pytest.raises(PluginError, match="must subclass ReplicaSchedulerConfig"):
        load_plugins(extra=[("dist-a", _Registers("wrong", Wrong))])


def test_plugin_without_a_config_class_gets_the_slot_base(no_filter):
    """Registering without a config class uses the base: only ``type`` allowed."""
    host = load_plugins(extra=[("dist-a", _Registers("plain"))])
    assert host.registry.get("replica_scheduler", "plain").config_cls is (
        ReplicaSchedulerConfig
    )


def test_plugin_that_fails_to_import_is_named(monkeypatch):
    """An entry point whose module is missing gives a PluginError naming it."""
    monkeypatch.delenv("FRONTIER_PLUGINS", raising=False)
    broken = EntryPoint(name="broken", value="no_such_module_xyz", group="frontier")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [broken])
    with pytest.raises(
        PluginError, match=r"'broken'.*failed to load.*no_such_module_xyz"
    ):
        load_plugins()


class _Observer:
    """Counts the observer hooks a run calls."""

    def __init__(self) -> None:
        self.requests = []
        self.batches = []
        self.started = 0
        self.finished = []

    @hookimpl
    def frontier_run_started(self, simulation):
        self.started += 1

    @hookimpl
    def frontier_request_finished(self, request):
        self.requests.append(request.request_id)

    @hookimpl
    def frontier_batch_finished(self, replica_id, batch, started_at, finished_at):
        self.batches.append((replica_id, batch.num_tokens, started_at, finished_at))

    @hookimpl
    def frontier_run_finished(self, simulation, summary):
        self.finished.append(summary)


def test_observers_are_called_when_implemented(no_filter):
    """A plugin's observer hooks see the run start, each batch, each request and
    the end."""
    from conftest import _TestPlugins

    observer = _Observer()
    host = load_plugins(extra=[("frontier-tests", _TestPlugins()), ("obs", observer)])
    assert host.has_implementations("frontier_batch_finished")
    # two requests of 16-token prompts and 2 outputs, both at t = 0, 10 ms steps:
    # step 1 (0-10 ms) prefills both (32 tokens), step 2 (10-20 ms) decodes both
    data = tiny_config([(0.0, 16, 2), (0.0, 16, 2)])
    config = build_config(data, host.registry.config_classes())
    result = Simulation(config, host).run()
    assert observer.started == 1
    assert sorted(observer.requests) == [0, 1]
    assert observer.batches == [
        (0, 32, 0.0, pytest.approx(0.010)),
        (0, 2, pytest.approx(0.010), pytest.approx(0.020)),
    ]
    assert observer.finished == [result.summary]


def test_unimplemented_observer_hooks_are_reported_as_absent(monkeypatch):
    """Without observers, the hot-path hooks report no implementation (and are
    skipped)."""
    monkeypatch.setenv("FRONTIER_PLUGINS", "frontier-core")
    host = load_plugins()
    assert not host.has_implementations("frontier_batch_finished")
    assert not host.has_implementations("frontier_request_finished")
