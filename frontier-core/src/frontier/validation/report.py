"""What ``frontier validate`` prints and writes.

Files, in the output folder:

- ``comparison.json``: per metric both sides' mean, median, p90 and p99 (ms),
  the difference in percent and the KS statistic, plus the run, its inputs and
  the simulator's facts (KV blocks, prefix-cache hit rate, predictor);
- ``comparison.csv``: the same table, one row per metric and statistic;
- ``requests.csv``: the per-request pairs (measured and simulated TTFT, TPOT and
  latency in ms, in workload order);
- ``cdf.png``: both CDFs of each metric, when matplotlib is installed;
- ``simulation/``: the simulation's own outputs (config, request and system
  metrics).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from frontier.validation.compare import STATISTICS
from frontier.validation.replay import ValidationResult

__all__ = ["METRIC_LABELS", "print_comparison", "write_outputs"]

METRIC_LABELS = {"ttft": "TTFT", "tpot": "TPOT", "latency": "latency"}


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def _cell(value: float, form: str) -> str:
    """``value`` in ``form`` for the printed table; ``n/a`` where undefined (a
    difference from a measured 0 ms, a metric no request has)."""
    return format(value, form) if math.isfinite(value) else "n/a"


def print_comparison(console: Console, result: ValidationResult) -> None:
    """The table: per metric and statistic, vLLM, the simulator, the difference."""
    table = Table(title=f"{result.run.folder.name}: vLLM vs simulated")
    for column in ("metric", "statistic", "vLLM (ms)", "simulated (ms)", "diff %"):
        table.add_column(
            column, justify="left" if column in ("metric", "statistic") else "right"
        )
    table.add_column("KS", justify="right")
    for metric in result.comparison.metrics:
        for i, statistic in enumerate(STATISTICS):
            table.add_row(
                METRIC_LABELS.get(metric.name, metric.name) if i == 0 else "",
                statistic,
                _cell(metric.real[statistic], ".1f"),
                _cell(metric.simulated[statistic], ".1f"),
                _cell(metric.difference_pct(statistic), "+.1f"),
                _cell(metric.ks, ".3f") if i == 0 else "",
                end_section=i == len(STATISTICS) - 1,
            )
    console.print(table)
    memory = result.summary.get("memory", {})
    prefix = result.summary.get("prefix_cache", {})
    predictor = result.summary.get("predictor", {})
    console.print(
        f"{result.run.num_requests} requests; KV blocks per replica "
        f"{memory.get('num_gpu_blocks')}; simulated prefix-cache hit rate "
        f"{prefix.get('first_attempt_hit_rate', 0.0):.1%}; predictions outside the "
        f"profile {predictor.get('fallback_predictions', 0)}; simulated in "
        f"{result.wall_time_s:.2f} s",
        highlight=False,
    )
    engine = result.summary.get("engine", {})
    console.print(
        f"steps above {engine.get('cuda_graph_max_tokens')} tokens (no CUDA graph) "
        f"add {engine.get('eager_step_overhead_ms', 0.0):g} ms "
        "(engine.eager_step_overhead_ms; benchmarks/validation_steps.py measures "
        "it from a run)",
        highlight=False,
    )


def _comparison_data(result: ValidationResult) -> dict[str, Any]:
    run = result.run
    inputs = result.inputs
    return _finite(
        {
            "run": str(run.folder),
            "model": run.model,
            "num_requests": run.num_requests,
            "engine_kwargs": run.engine,
            "inputs": {
                "workload": str(inputs.workload),
                "model_config": str(inputs.model_config),
                "profile": str(inputs.profile),
                "device": inputs.device,
            },
            "metrics": {m.name: m.as_dict() for m in result.comparison.metrics},
            # no wall time: the file is byte-identical across replays
            "simulation": {
                "engine": result.summary.get("engine"),
                "memory": result.summary.get("memory"),
                "prefix_cache": result.summary.get("prefix_cache"),
                "predictor": result.summary.get("predictor"),
                "scheduler": result.summary.get("scheduler"),
            },
        }
    )


def _write_plot(path: Path, result: ValidationResult) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(result.real)
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6))
    for axis, name in zip(np.atleast_1d(axes), names, strict=True):
        for label, values in (
            ("vLLM", result.real[name]),
            ("simulated", result.simulated[name]),
        ):
            data = np.sort(values[~np.isnan(values)])
            axis.step(data, np.arange(1, len(data) + 1) / len(data), label=label)
        axis.set_xlabel(f"{METRIC_LABELS.get(name, name)} (ms)")
        axis.set_ylabel("fraction of requests")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(result.run.folder.name)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def write_outputs(folder: Path, result: ValidationResult) -> list[Path]:
    """Write the comparison, the per-request pairs and the plot; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    path = folder / "comparison.json"
    text = json.dumps(_comparison_data(result), indent=2, allow_nan=False)
    path.write_text(text + "\n", "utf-8")
    written.append(path)

    path = folder / "comparison.csv"
    rows = result.comparison.rows()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: _number(v) if isinstance(v, float) else v for k, v in row.items()}
            )
    written.append(path)

    path = folder / "requests.csv"
    names = list(result.real)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        header = ["request_id", "input_tokens", "output_tokens"]
        for name in names:
            header += [f"vllm_{name}_ms", f"simulated_{name}_ms"]
        writer.writerow(header)
        run = result.run
        for i in range(run.num_requests):
            row = [i, int(run.input_tokens[i]), int(run.output_tokens[i])]
            for name in names:
                row += [
                    _number(float(result.real[name][i])),
                    _number(float(result.simulated[name][i])),
                ]
            writer.writerow(row)
    written.append(path)

    path = folder / "cdf.png"
    if _write_plot(path, result):
        written.append(path)
    return written
