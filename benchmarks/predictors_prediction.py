"""Cost of one batch prediction, amortised over the batches of a real run.

Replays the first 2,000 requests of ``splitwise_conv.csv`` on Llama-2-7B / A800
once to collect the batches the scheduler forms, then times each predictor
answering all of them, five times over, and prints microseconds per batch.
Needs the shared data (``FRONTIER_SHARED_DATA`` or ``../shared/data``).

Run: ``uv run python benchmarks/predictors_prediction.py``
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILE = "profiling/compute/a800/meta-llama/Llama-2-7b-hf"
TRACE = "processed_traces/splitwise_conv.csv"


def shared_data() -> Path:
    """The shared data folder, or exit with the reason."""
    env = os.environ.get("FRONTIER_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not path.is_dir():
        sys.exit(
            "shared data not found: set FRONTIER_SHARED_DATA or place ../shared/data"
        )
    return path


def _collector(batches: list):
    """A plugin that keeps every batch a run forms (their features stay fixed)."""
    from frontier.hookspecs import hookimpl

    class Collector:
        @hookimpl
        def frontier_batch_finished(self, replica_id, batch, started_at, finished_at):
            batches.append(batch)

    return Collector()


def collect_batches(data: Path, cache: str) -> list:
    """The batches of a 2,000-request replay."""
    from frontier.config_build import build_config
    from frontier.plugins import load_plugins
    from frontier.simulation import Simulation

    batches: list = []
    host = load_plugins(extra=[("benchmark", _collector(batches))])
    config = build_config(
        {
            "model": {"name": "llama-2-7b"},
            "device": {"name": "a800"},
            "predictor": {
                "type": "sklearn",
                "profile_dir": str(data / PROFILE),
                "cache_dir": cache,
            },
            "workload": {
                "type": "trace",
                "path": str(data / TRACE),
                "num_requests": 2000,
            },
            "metrics": {"progress": False},
        },
        host.registry.config_classes(),
    )
    Simulation(config, host).run(None)
    return batches


def main() -> None:
    """Print microseconds per batch prediction for each predictor."""
    from frontier.config import ParallelConfig
    from frontier.devices import load_device
    from frontier.models import load_model
    from frontier.plugins import ExecutionContext, default_plugins

    data = shared_data()
    context = ExecutionContext(
        model=load_model("llama-2-7b"),
        device=load_device("a800"),
        parallel=ParallelConfig(),
        dtype="float16",
        kv_cache_dtype="float16",
    )
    registry = default_plugins().registry
    with tempfile.TemporaryDirectory() as cache:
        batches = collect_batches(data, cache)
        print(f"{len(batches)} batches from 2,000 requests of splitwise_conv")
        for name in ("roofline", "sklearn", "lightgbm", "dummy"):
            entry = registry.get("predictor", name)
            settings = {}
            if name in ("sklearn", "lightgbm"):
                settings = {"profile_dir": str(data / PROFILE), "cache_dir": cache}
            predictor = entry.factory(entry.config_cls(**settings), context)
            predict = predictor.predict
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                for batch in batches:
                    predict(batch)
                best = min(best, time.perf_counter() - started)
            print(f"{name}: {best / len(batches) * 1e6:.2f} us per batch (best of 5)")


if __name__ == "__main__":
    main()
