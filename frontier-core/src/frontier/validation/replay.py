"""Simulate a real run's workload under its engine settings and compare.

:func:`validate_run` builds the config with
:func:`~frontier.validation.mapping.build_config_data`, applies ``--set``
overrides, simulates, and pairs each request the run served with the simulated
one of its workload line; TTFT and latency are measured from the simulated
engine's ``queued_at``, as vLLM measures them from ``queued_ts``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from frontier.config import Config
from frontier.config_build import apply_overrides, build_config, parse_override
from frontier.errors import ConfigError
from frontier.hookspecs import hookimpl
from frontier.plugins import load_plugins
from frontier.request import Request
from frontier.simulation import Simulation
from frontier.validation.compare import Comparison, compare
from frontier.validation.inputs import RunInputs, check_workload, locate_inputs
from frontier.validation.mapping import build_config_data
from frontier.validation.runs import RealRun, load_run

__all__ = ["ValidationResult", "validate_run"]


class _RequestRecorder:
    """Observer that keeps each finished request's timestamps (seconds)."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[float, float, float, float, int]] = {}

    @hookimpl
    def frontier_request_finished(self, request: Request) -> None:
        self.rows[request.request_id] = (
            request.queued_at,
            request.first_token_at,
            request.last_token_at,
            request.completed_at,
            request.num_generated,
        )

    def metrics(self, count: int) -> dict[str, np.ndarray]:
        """TTFT, TPOT and latency in ms by request id (NaN where missing).

        As vLLM measures them: TTFT and latency from the moment the engine took
        the request in (``queued_at``, vLLM's ``queued_ts``), not from the
        client's send; a request that arrives during a step waits for the step's
        end before either clock starts.
        """
        table = np.full((count, 5), np.nan)
        for request_id, row in self.rows.items():
            if request_id < count:
                table[request_id] = row
        queued, first, last, completed, generated = table.T
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(generated > 1, (last - first) / (generated - 1), np.nan)
        return {
            "ttft": (first - queued) * 1e3,
            "tpot": tpot * 1e3,
            "latency": (completed - queued) * 1e3,
        }


@attrs.frozen(kw_only=True)
class ValidationResult:
    """A replayed run: its inputs, both sides per request, and the comparison.

    Attributes:
        run: The real run.
        inputs: Where the simulator's inputs came from.
        config: The resolved config that was simulated.
        real: Measured TTFT, TPOT and latency per request, ms.
        simulated: Simulated TTFT, TPOT and latency per request, ms.
        comparison: The table of statistics.
        summary: The simulation's ``system_metrics.json`` content.
        wall_time_s: Seconds the simulation took.
    """

    run: RealRun
    inputs: RunInputs
    config: Config
    real: dict[str, np.ndarray]
    simulated: dict[str, np.ndarray]
    comparison: Comparison
    summary: dict[str, Any]
    wall_time_s: float


def validate_run(
    run_dir: str | Path,
    profiles: str | Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    simulation_dir: Path | None = None,
    observers: Sequence[object] = (),
) -> ValidationResult:
    """Simulate the run in ``run_dir`` and compare it with the measurements.

    Args:
        run_dir: The real run's folder.
        profiles: The operator profiles (see :func:`locate_inputs`).
        sets: ``dotted.path=value`` overrides of the built config.
        simulation_dir: Where the simulation writes its own outputs; nothing
            when ``None``.
        observers: Plugin objects that watch the replay through the hooks
            (``frontier_batch_finished`` and the like).

    Raises:
        FrontierError: An input is missing or malformed, or the config is bad.
    """
    run = load_run(run_dir)
    inputs = locate_inputs(run, profiles)
    check_workload(run, inputs.workload)
    recorder = _RequestRecorder()
    extra = [("frontier-validation", recorder)]
    extra += [("frontier-validation", observer) for observer in observers]
    plugins = load_plugins(extra=extra)
    data = build_config_data(run, inputs)
    overrides = [parse_override(text) for text in sets]
    replayed = data["predictor"]
    data = apply_overrides(data, overrides)
    replaced = any(keys == ["predictor"] for keys, _ in overrides)
    if not replaced and data["predictor"].get("type") != replayed["type"]:
        # Another predictor: the profile path was the replay's, not the user's.
        chosen = {
            keys[1] for keys, _ in overrides if keys[0] == "predictor" and keys[1:]
        }
        data["predictor"] = {
            key: value for key, value in data["predictor"].items() if key in chosen
        }
    config = build_config(
        data, plugins.registry.config_classes(), f"validation of {run.folder}"
    )
    simulation = Simulation(config, plugins)
    started = time.perf_counter()
    result = simulation.run(simulation_dir)
    wall = time.perf_counter() - started

    real = {"ttft": run.ttft_ms, "tpot": run.tpot_ms, "latency": run.latency_ms}
    numbers = run.request_numbers
    simulated = {
        name: values[numbers]
        for name, values in recorder.metrics(run.workload_requests).items()
    }
    missing = int(np.isnan(simulated["latency"]).sum())
    if missing:
        raise ConfigError(
            f"validation of {run.folder}: {missing} of the run's {run.num_requests} "
            "requests did not complete in the simulation (a --set override that "
            "changes the workload, its length limits or the KV cache?); the "
            "comparison needs every one"
        )
    return ValidationResult(
        run=run,
        inputs=inputs,
        config=config,
        real=real,
        simulated=simulated,
        comparison=compare(real, simulated),
        summary=result.summary,
        wall_time_s=wall if math.isfinite(wall) else 0.0,
    )
