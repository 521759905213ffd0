"""The table printed when a run ends."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from frontier.simulation import RunResult

__all__ = ["print_summary", "print_sweep"]


def _number(value: float | None, digits: int = 2) -> str:
    """``value`` to ``digits`` decimals; "-" for ``None`` (a statistic that
    overflowed, written as null in ``system_metrics.json``)."""
    return "-" if value is None else f"{value:.{digits}f}"


def _row(table: Table, label: str, stats: dict) -> None:
    if not stats.get("count"):
        table.add_row(label, "-", "-", "-", "-")
        return
    table.add_row(
        label, *(_number(stats[key]) for key in ("mean", "p50", "p90", "p99"))
    )


def print_summary(console: Console, result: RunResult) -> None:
    """Latency percentiles, throughput and outcomes of a finished run."""
    summary = result.summary
    meta = summary["metadata"]
    requests = summary["requests"]
    throughput = summary["throughput"]
    expert = meta.get("expert_parallel_size") or 1
    title = (
        f"{meta['model']} on {meta['device']} (TP{meta['tensor_parallel_size']} "
        f"PP{meta['pipeline_parallel_size']}"
        + (f" EP{expert}" if expert > 1 else "")
        + f" x{meta['num_replicas']}), "
        f"{meta['replica_scheduler']}, {meta['predictor']}, {meta['workload']}"
    )
    table = Table(title=title)
    for column in ("metric (ms)", "mean", "p50", "p90", "p99"):
        table.add_column(column, justify="right" if column != "metric (ms)" else "left")
    _row(table, "TTFT", summary["ttft_ms"])
    if summary["reasoning"]["requests"]:
        _row(table, "answer TTFT", summary["answer_ttft_ms"])
    _row(table, "TPOT", summary["tpot_ms"])
    _row(table, "ITL", summary["itl_ms"])
    _row(table, "E2E latency", summary["e2e_ms"])
    console.print(table)
    rejected = requests["rejected_too_long"] + requests["rejected_no_fit"]
    console.print(
        f"requests: {requests['completed']} completed, "
        f"{requests['truncated']} truncated, "
        f"{rejected} rejected, {requests['aborted']} aborted; "
        f"preemptions: {summary['preemption']['total']}"
    )
    console.print(
        f"throughput: {_number(throughput['request_throughput_per_s'])} req/s, "
        f"{_number(throughput['output_token_throughput_per_s'], 1)} output tok/s, "
        f"{_number(throughput['total_token_throughput_per_s'], 1)} total tok/s over "
        f"{_number(throughput['duration_s'])} s simulated"
    )
    where = f" -> {result.output_dir}" if result.output_dir else ""
    console.print(f"simulated in {result.wall_time_s:.2f} s wall{where}")


def print_sweep(console: Console, points: list, results: list, sweep_dir) -> None:
    """One row per sweep point: its values, status and headline metrics."""
    table = Table(title=f"Sweep of {len(points)} points")
    paths = list(points[0].values) if points else []
    for column in ("point", *paths, "status"):
        table.add_column(column, no_wrap=True)
    for column in ("req/s", "TTFT mean", "TPOT mean", "E2E mean", "rejected"):
        table.add_column(column, justify="right")
    for point, result in zip(points, results, strict=True):
        cells = [str(point.index), *(str(point.values[p]) for p in paths)]
        summary = result.summary
        if summary is None:
            cells += [result.status, "-", "-", "-", "-", "-"]
        else:
            requests = summary["requests"]
            cells += [
                result.status,
                _number(summary["throughput"]["request_throughput_per_s"]),
                _number(summary["ttft_ms"].get("mean")),
                _number(summary["tpot_ms"].get("mean")),
                _number(summary["e2e_ms"].get("mean")),
                str(requests["rejected_too_long"] + requests["rejected_no_fit"]),
            ]
        table.add_row(*cells)
    console.print(table)
    for point, result in zip(points, results, strict=True):
        if result.status != "ok":
            console.print(f"point {point.index} {result.status}: {result.error}")
    if sweep_dir is not None:
        console.print(f"-> {sweep_dir / 'sweep.csv'}")
