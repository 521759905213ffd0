"""A bug in a plugin or in Frontier ends ``frontier`` with one paragraph saying
whose bug it is, where it was raised and when in the simulation, not with
Python's traceback (which ``FRONTIER_TRACEBACK=1`` still shows)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest
from conftest import _TestPlugins, tiny_config
from frontier.cli.crash import describe_crash
from frontier.config_build import build_config
from frontier.hookspecs import hookimpl
from frontier.registry import load_plugins
from frontier.simulation import Simulation

# The default run with vllm_v1's schedule() replaced by one that raises on its
# third call (the simulation is then running, past its first steps).
_BROKEN_RUN = r"""
import sys
import frontier_schedulers.vllm_v1 as module
# Defined in the plugin's module, as a bug of the plugin would be.
exec(
    "calls = []\n"
    "original = VllmV1Scheduler.schedule\n"
    "def broken(self, now):\n"
    "    calls.append(now)\n"
    "    if len(calls) == 3:\n"
    "        raise ZeroDivisionError('division by zero')\n"
    "    return original(self, now)\n",
    module.__dict__,
)
module.VllmV1Scheduler.schedule = module.broken
sys.argv = ["frontier", "run", "--num-requests", "20"]
from frontier.cli.app import main
main()
"""


def _run_broken(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FRONTIER")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", _BROKEN_RUN],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=120,
    )


def _raise_from(module_name: str):
    """An exception raised by a function of a module called ``module_name``."""
    module = types.ModuleType(module_name)
    exec("def step(now):\n    raise KeyError('block 7')\n", module.__dict__)
    try:
        module.step(1.5)
    except KeyError as error:
        return error
    raise AssertionError("step() did not raise")


def test_a_crash_inside_a_plugin_names_its_distribution():
    error = _raise_from("acme_scheduler.policy")
    error.add_note("at simulated time 1.500000 s (event 12)")
    message = describe_crash(error, {"acme_scheduler": ("acme-frontier", "0.3.1")})
    assert message.startswith(
        "the plugin distribution acme-frontier (0.3.1) failed: KeyError: 'block 7'"
    )
    assert "line 2, in step" in message
    assert "at simulated time 1.500000 s (event 12)" in message
    assert "bug in that plugin" in message


def test_a_crash_outside_every_plugin_is_frontiers():
    error = _raise_from("frontier.replica")
    message = describe_crash(error, {"acme_scheduler": ("acme-frontier", "0.3.1")})
    assert message.startswith("Frontier failed: KeyError: 'block 7'")
    assert "bug in Frontier" in message


def test_the_cli_reports_a_plugin_crash_without_a_traceback(tmp_path):
    result = _run_broken(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "frontier-schedulers" in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert "at simulated time" in result.stderr
    assert "FRONTIER_TRACEBACK=1" in result.stderr


def test_frontier_traceback_shows_pythons_traceback_too(tmp_path):
    result = _run_broken(tmp_path, FRONTIER_TRACEBACK="1")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    # frontier-schedulers ships with Frontier: its bug is Frontier's
    assert "Frontier (frontier-schedulers 0.1.0) failed" in result.stderr


def test_a_plugin_subclassing_a_built_in_owns_the_base_class_code_it_runs():
    """A crash inside a built-in base class's method, run on a plugin's object,
    is the plugin's: the object's class names the owner."""
    base = types.ModuleType("frontier_schedulers.base_like")
    exec(
        "class Base:\n    def schedule(self):\n        return self.waiting[0]\n",
        base.__dict__,
    )
    plugin = types.ModuleType("acme_scheduler.policy")
    plugin.Base = base.Base
    exec("class Acme(Base):\n    waiting = 5\n", plugin.__dict__)
    try:
        plugin.Acme().schedule()
    except TypeError as error:
        caught = error
    packages = {
        "acme_scheduler": ("acme-frontier", "0.3.1"),
        "frontier_schedulers": ("frontier-schedulers", "0.1.0"),
    }
    message = describe_crash(caught, packages)
    assert message.startswith("the plugin distribution acme-frontier (0.3.1) failed")
    assert "in schedule" in message


def test_an_exception_that_cannot_print_itself_is_still_reported():
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    try:
        raise Unprintable
    except Unprintable as error:
        message = describe_crash(error, {})
    assert "Unprintable: <the exception's message could not be printed>" in message


def test_frontier_traceback_accepts_the_usual_words_for_off(monkeypatch):
    from frontier.cli.crash import wants_traceback

    for value, wanted in [
        ("1", True),
        ("yes", True),
        ("false", False),
        ("Off", False),
        ("no", False),
        ("0", False),
        ("", False),
    ]:
        monkeypatch.setenv("FRONTIER_TRACEBACK", value)
        assert wants_traceback() is wanted, value


class _FailingObserver:
    @hookimpl
    def frontier_run_finished(self, simulation, summary):
        raise RuntimeError("observer broke")


def test_a_failing_observer_loses_no_result(tmp_path):
    """system_metrics.json is written before frontier_run_finished runs."""
    host = load_plugins(extra=[("tests", _TestPlugins()), ("obs", _FailingObserver())])
    config = build_config(tiny_config([(0.0, 8, 2)]), host.registry.config_classes())
    with pytest.raises(RuntimeError, match="observer broke"):
        Simulation(config, host).run(tmp_path)
    summary = json.loads((tmp_path / "system_metrics.json").read_text())
    assert summary["requests"]["completed"] == 1


def test_a_crash_mid_run_says_what_was_written(tmp_path):
    result = _run_broken(tmp_path)
    assert "holds config.toml and request_metrics.csv" in result.stderr
    assert "system_metrics.json was not written" in result.stderr


_INTERRUPTED_RUN = r"""
import sys
import frontier_schedulers.vllm_v1 as module
def interrupt(self, now):
    raise KeyboardInterrupt
module.VllmV1Scheduler.schedule = interrupt
sys.argv = ["frontier", "run", "--num-requests", "20", "-o", "out"]
from frontier.cli.app import main
main()
"""


def test_an_interrupted_run_says_what_it_left(tmp_path):
    """Ctrl-C printed nothing: typer turned it into exit 130 silently."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FRONTIER")}
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_RUN],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 130
    assert "interrupted;" in result.stderr
    assert "system_metrics.json was not written" in result.stderr
