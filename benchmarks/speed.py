"""Simulator speed: simulated requests and iterations per wall-clock second, peak RSS.

Each benchmark runs in a fresh Python process (imports and start-up included in
``total_s``) and prints one line::

    conv_1m  1000000 req  95.1 s total  93.8 s loop  10663 req/s  52110 it/s  410 MB

``req/s`` is simulated requests per second of the event loop, ``it/s`` model
iterations (batches, fast-forwarded ones included) per second of the loop, and the
last figure the process's peak resident memory.

The workloads are Splitwise's conversation trace (``splitwise_conv.csv``, 19,366
requests) replayed as is, and its (prompt, output) pairs bootstrap-resampled to
100,000 and 1,000,000 requests with Poisson arrivals at 4 requests/s per replica, a
rate one Llama-2-7B replica on an A800 sustains with queues that stay short. Needs
the shared data (``FRONTIER_SHARED_DATA`` or ``../shared/data``).

Run: ``uv run python benchmarks/speed.py`` (all but the 1M run), or name them:
``uv run python benchmarks/speed.py conv_trace conv_1m``; ``--list`` lists them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The shared data folder, or exit with the reason."""
    env = os.environ.get("FRONTIER_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not path.is_dir():
        sys.exit(f"real data not found at {path}: set FRONTIER_SHARED_DATA")
    return path


def benchmarks(data: Path) -> dict[str, dict]:
    """Benchmark name -> config mapping."""
    conv = str(data / "processed_traces" / "splitwise_conv.csv")
    profile = str(data / "profiling/compute/a800/meta-llama/Llama-2-7b-hf")
    llama_a800 = {
        "model": {"name": "llama-2-7b", "max_model_len": 4096},
        "device": {"name": "a800"},
        "metrics": {"progress": False, "write_request_metrics": True},
    }

    def resampled(count: int, replicas: int = 1, **extra) -> dict:
        config = {
            **llama_a800,
            "workload": {
                "type": "trace_resample",
                "path": conv,
                "num_requests": count,
                "qps": 4.0 * replicas,
            },
        }
        config.update(extra)
        return config

    table = {
        "default": {"metrics": {"progress": False}},
        "conv_trace": {
            **llama_a800,
            "predictor": {"type": "sklearn", "profile_dir": profile},
            "workload": {"type": "trace", "path": conv},
        },
        "conv_100k": resampled(100_000),
        "conv_1m": resampled(1_000_000),
        "conv_100k_tp2_x4": resampled(
            100_000, replicas=4, parallel={"tensor_parallel_size": 2, "num_replicas": 4}
        ),
    }
    for scheduler in ("vllm", "sglang", "sarathi", "orca"):
        table[f"conv_100k_{scheduler}"] = resampled(
            100_000, replica_scheduler={"type": scheduler}
        )
    return table


DEFAULT_SET = [
    "default",
    "conv_trace",
    "conv_100k",
    "conv_100k_tp2_x4",
    "conv_100k_vllm",
    "conv_100k_sglang",
    "conv_100k_sarathi",
    "conv_100k_orca",
]


def child(name: str, output_dir: str) -> None:
    """Run one benchmark in this process and print its figures as JSON."""
    from frontier.config_build import build_config
    from frontier.plugins import default_plugins
    from frontier.simulation import Simulation

    host = default_plugins()
    config = build_config(
        benchmarks(shared_data())[name], host.registry.config_classes()
    )
    simulation = Simulation(config, host)
    result = simulation.run(Path(output_dir))
    requests = result.summary["requests"]["total"]
    batches = sum(replica["batches"] for replica in result.summary["replicas"])
    print(
        json.dumps(
            {"requests": requests, "batches": batches, "loop_s": result.wall_time_s}
        )
    )


def run(name: str, output_root: Path) -> dict:
    """Run ``name`` in a fresh process; return its figures."""
    command = [sys.executable, __file__, "--child", name, str(output_root / name)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    _, status, usage = os.wait4(process.pid, 0)
    total = time.perf_counter() - started
    output = process.stdout.read()
    process.stdout.close()
    if status != 0:
        sys.exit(f"{name} failed (status {status})")
    figures = json.loads(output.strip().splitlines()[-1])
    figures["total_s"] = total
    figures["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return figures


def main(argv: list[str]) -> None:
    """Run the named benchmarks (or the default set) and print one line each."""
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2])
        return
    table = benchmarks(shared_data())
    if argv[:1] == ["--list"]:
        print("\n".join(table))
        return
    names = argv or DEFAULT_SET
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; see --list")
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        for name in names:
            f = run(name, Path(root))
            print(
                f"{name:20s} {f['requests']:>8d} req {f['total_s']:7.1f} s total "
                f"{f['loop_s']:7.1f} s loop {f['requests'] / f['loop_s']:9.0f} req/s "
                f"{f['batches'] / f['loop_s']:8.0f} it/s {f['peak_rss_mb']:6.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
