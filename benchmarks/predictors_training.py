"""Training time of the learned predictors, and how fast a cached run starts.

Trains the ``sklearn`` (random forest) and ``lightgbm`` predictors on every
operator of the A800 Llama-2-7B profile into an empty cache, then times building
the same predictor again (a cache hit) in this process and in a fresh Python
process (imports included). Needs the shared data (``FRONTIER_SHARED_DATA`` or
``../shared/data``).

Run: ``uv run python benchmarks/predictors_training.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILE = "profiling/compute/a800/meta-llama/Llama-2-7b-hf"

_COLD_START = """
import sys, time
started = time.perf_counter()
from frontier.config import ParallelConfig
from frontier.devices import load_device
from frontier.models import load_model
from frontier.plugins import ExecutionContext, default_plugins
context = ExecutionContext(model=load_model("llama-2-7b"), device=load_device("a800"),
    parallel=ParallelConfig(), dtype="float16", kv_cache_dtype="float16")
entry = default_plugins().registry.get("predictor", sys.argv[1])
config = entry.config_cls(profile_dir=sys.argv[2], cache_dir=sys.argv[3])
predictor = entry.factory(config, context)
assert predictor.cache_hit
print(time.perf_counter() - started)
"""


def shared_data() -> Path:
    """The shared data folder, or exit with the reason."""
    env = os.environ.get("FRONTIER_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not path.is_dir():
        sys.exit(
            "shared data not found: set FRONTIER_SHARED_DATA or place ../shared/data"
        )
    return path


def main() -> None:
    """Print training and cached-start seconds per learned predictor."""
    from frontier.config import ParallelConfig
    from frontier.devices import load_device
    from frontier.models import load_model
    from frontier.plugins import ExecutionContext, default_plugins

    profile = str(shared_data() / PROFILE)
    context = ExecutionContext(
        model=load_model("llama-2-7b"),
        device=load_device("a800"),
        parallel=ParallelConfig(),
        dtype="float16",
        kv_cache_dtype="float16",
    )
    registry = default_plugins().registry
    print(f"profile: {profile}; {os.cpu_count()} CPUs")
    for name in ("sklearn", "lightgbm"):
        entry = registry.get("predictor", name)
        with tempfile.TemporaryDirectory() as cache:
            config = entry.config_cls(profile_dir=profile, cache_dir=cache)
            started = time.perf_counter()
            trained = entry.factory(config, context)
            first = time.perf_counter() - started
            assert not trained.cache_hit
            started = time.perf_counter()
            again = entry.factory(config, context)
            cached = time.perf_counter() - started
            assert again.cache_hit
            cold = subprocess.run(
                [sys.executable, "-c", _COLD_START, name, profile, cache],
                capture_output=True,
                text=True,
                check=True,
            )
        print(
            f"{name}: training {first:.2f} s (all operators, read and calibration "
            f"included); cached start {cached:.3f} s in process, "
            f"{float(cold.stdout):.2f} s in a fresh process"
        )


if __name__ == "__main__":
    main()
