"""A bug in a plugin or in Frontier ends ``frontier`` with one paragraph saying
whose bug it is, where it was raised and when in the simulation, not with
Python's traceback (which ``FRONTIER_TRACEBACK=1`` still shows)."""

from __future__ import annotations

import os
import subprocess
import sys
import types

from frontier.cli.crash import describe_crash

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
    assert "the plugin distribution frontier-schedulers" in result.stderr
