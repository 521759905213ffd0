"""Step by step: a replayed vLLM run against the step lengths its timestamps show.

vLLM's engine stamps each request when it takes it in (``queued_ts``: the start of
an engine loop, right after a step's result came back) and when its first and last
tokens come out (``first_token_ts``, ``last_token_ts``: the end of a step). Sorted
together, the timestamps of all requests are step boundaries, and two that follow
each other within about one step are one step apart. This prints, for a run of one
engine (``data_parallel_size`` 1):

0. The tokens generated in the first ``FILL_S`` seconds, from the engine's
   ``timeseries.csv`` and from the simulated steps (their decodes).
1. Decode steps. Each gap between consecutive timestamps shorter than 1.5 times
   the simulated decode step at that moment, set beside the simulated steps of
   the same batch size (the requests between their first and last token) within
   half a second.
2. Prefill steps. For a request taken into a batch at once (``scheduled_ts`` within
   1 ms of ``queued_ts``) whose prompt the simulator ran in one step beside
   decodes only, vLLM's TTFT is the step that was running when the request was
   queued (a decode step: asynchronous scheduling had formed it) plus the step
   holding the prompt. Subtracting the first (interpolated from part 1's vLLM
   decode steps by batch size) leaves vLLM's prefill step, set beside the
   simulated one. Their median difference over the steps above the CUDA-graph
   limit is a measure of ``engine.eager_step_overhead_ms`` for the run's host
   (with the replay's default of 0 ms), printed where at least
   ``MIN_EAGER_STEPS`` steps give it.

Needs the shared data (``FRONTIER_SHARED_DATA`` or ``../shared/data``).

Run: ``uv run python benchmarks/validation_steps.py [RUN_DIR] [--set a.b=v ...]``
(default: the Llama-3.1-8B TP1 run; ``--set`` overrides the replay's config, e.g.
``predictor.skew_correction=false``).
"""

from __future__ import annotations

import bisect
import csv
import itertools
import os
import sys
from pathlib import Path

import numpy as np
from frontier.errors import FrontierError
from frontier.hookspecs import hookimpl
from frontier.validation import load_run, validate_run

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUN = "validation/vllm-0.19.0/rtxpro6000/llama-3.1-8b-tp1"
FILL_S = 12.0
"""Seconds the Llama run's batch takes to fill (128 running at 12 s)."""
MIN_EAGER_STEPS = 10
"""Fewest prefill steps a suggested eager-step overhead rests on."""


class StepLog:
    """Observer keeping every simulated step: start, end, decodes, tokens, and
    the prompt chunks it ran as ``(request id, tokens)``."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, float, int, int, list[tuple[int, int]]]] = []

    @hookimpl
    def frontier_batch_finished(self, replica_id, batch, started_at, finished_at):
        chunks = [
            (request.request_id, tokens)
            for request, tokens in zip(
                batch.requests, batch.num_new_tokens, strict=True
            )
            if tokens > 1
        ]
        self.steps.append(
            (started_at, finished_at, batch.num_decodes, batch.num_tokens, chunks)
        )


def arguments() -> tuple[list[str], list[str]]:
    """Positional arguments and ``--set`` overrides from the command line."""
    positional, sets = [], []
    words = iter(sys.argv[1:])
    for word in words:
        if word == "--set":
            value = next(words, None)
            if value is None:
                sys.exit("error: --set needs dotted.path=value")
            sets.append(value)
        else:
            positional.append(word)
    return positional, sets


def run_folder(positional: list[str]) -> Path:
    """The run folder from the command line, or the default one."""
    if positional:
        return Path(positional[0])
    env = os.environ.get("FRONTIER_SHARED_DATA")
    data = Path(env) if env else REPO.parent / "shared" / "data"
    if not (data / DEFAULT_RUN).is_dir():
        sys.exit(f"run folder {data / DEFAULT_RUN} not found: pass RUN_DIR")
    return data / DEFAULT_RUN


def compare(folder: Path, sets: list[str]) -> None:
    """Print both tables for the run in ``folder`` (module doc), the replay
    configured with ``sets`` overrides."""
    run = load_run(folder)
    if (run.engine.get("data_parallel_size") or 1) > 1:
        sys.exit(
            f"{folder}: {run.engine['data_parallel_size']} data-parallel engines "
            "share the run's timestamps, which this script cannot split; give a "
            "run of one engine (docs/validation.md describes the MoE run's steps)"
        )
    log = StepLog()
    result = validate_run(folder, sets=["fast_forward=false", *sets], observers=[log])
    scheduler = result.config.replica_scheduler
    graph_tokens = result.config.engine.cuda_graph_max_tokens
    if graph_tokens is None:
        graph_tokens = min(
            2 * scheduler.max_num_seqs, 512, scheduler.max_num_batched_tokens
        )
    start = float(run.queued_ts.min())
    first = run.first_token_ts - start
    last = run.last_token_ts - start
    steps = sorted(log.steps)
    starts = [s[0] for s in steps]

    def running(t: float) -> int:
        return int(np.sum((first <= t) & (t < last)))

    def decode_steps_near(t: float, size: int | None = None) -> list[float]:
        """Simulated decode-only steps within 0.5 s of ``t`` (of ``size``)."""
        lo = bisect.bisect_left(starts, t - 0.5)
        hi = bisect.bisect_right(starts, t + 0.5)
        return [
            (end - begin) * 1e3
            for begin, end, decodes, tokens, _ in steps[lo:hi]
            if tokens == decodes and (size is None or decodes == size)
        ]

    # 0. tokens generated while the batch fills, against the engine's log
    series = folder / "timeseries.csv"
    if series.is_file():
        try:
            with series.open(newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if float(r["t"]) <= FILL_S]
            generated = sum(float(r["gen_throughput"]) for r in rows)
        except (KeyError, TypeError, ValueError, UnicodeDecodeError):
            print(f"{series}: not the engine's t, gen_throughput columns; skipped")
        else:
            decoded = sum(s[2] for s in steps if s[1] <= FILL_S)
            print(
                f"{folder.name}: first {FILL_S:g} s, tokens generated: vLLM "
                f"{generated:,.0f} (timeseries.csv), simulated decodes {decoded:,}"
            )

    # 1. decode steps
    stamps = np.sort(np.concatenate([run.queued_ts - start, first, last]))
    pairs = []
    for a, b in itertools.pairwise(stamps):
        gap = (b - a) * 1e3
        nearby = decode_steps_near(a)
        if gap < 0.5 or not nearby or gap > 1.5 * float(np.median(nearby)):
            continue
        size = running(a + 1e-4)
        same = decode_steps_near(a, size)
        if same:
            pairs.append((a, size, gap, float(np.mean(same))))
    print(f"{folder.name}: decode steps, vLLM (gap between timestamps) against")
    print("simulated steps of as many requests within 0.5 s")
    print("  batch   steps   vLLM ms   sim ms   diff ms")
    for lo, hi in ((1, 32), (32, 64), (64, 96), (96, 128), (128, 129)):
        chosen = [p for p in pairs if lo <= p[1] < hi]
        if chosen:
            real_ms = np.mean([p[2] for p in chosen])
            sim_ms = np.mean([p[3] for p in chosen])
            print(
                f"  {lo:>3}-{hi - 1:<3} {len(chosen):6d}  {real_ms:8.1f}  "
                f"{sim_ms:7.1f}  {real_ms - sim_ms:+8.2f}"
            )
    if not pairs:
        print("  none found")
        return

    # 2. prefill steps
    by_size = sorted((p[1], p[2]) for p in pairs)
    size_axis = np.array([s for s, _ in by_size], dtype=float)
    gap_axis = np.array([g for _, g in by_size])
    holding: dict[int, list] = {}
    for step in steps:
        for request_id, _ in step[4]:
            holding.setdefault(request_id, []).append(step)
    rows = []
    for i, number in enumerate(run.request_numbers):
        if not run.scheduled_ts[i] - run.queued_ts[i] <= 1e-3:
            continue  # queued, or scheduled_ts not recorded
        held = holding.get(int(number), [])
        if len(held) != 1 or len(held[0][4]) != 1:
            continue
        begin, end, decodes, tokens, _ = held[0]
        ttft = (run.first_token_ts[i] - run.queued_ts[i]) * 1e3
        before = float(np.interp(decodes, size_axis, gap_axis))
        rows.append((tokens - decodes, ttft - before, (end - begin) * 1e3, tokens))
    print()
    print("prefill steps alone beside decodes: vLLM (TTFT less the decode step")
    print("before it) against simulated")
    print("  chunk tokens   steps   vLLM ms   sim ms   diff ms (median, IQR)")
    if not rows:
        print("  none found")
        return
    table = np.array(rows)
    for lo, hi in ((1, 512), (512, 1024), (1024, 2049)):
        chosen = table[(table[:, 0] >= lo) & (table[:, 0] < hi)]
        if len(chosen):
            diff = chosen[:, 1] - chosen[:, 2]
            q1, q2, q3 = np.percentile(diff, [25, 50, 75])
            real_ms, sim_ms = np.median(chosen[:, 1]), np.median(chosen[:, 2])
            print(
                f"  {lo:>5}-{hi - 1:<5} {len(chosen):7d}  {real_ms:8.1f}"
                f"  {sim_ms:7.1f}  {q2:+7.2f} ({q1:+.1f} to {q3:+.1f})"
            )
    eager = table[table[:, 3] > graph_tokens]
    print()
    if len(eager) < MIN_EAGER_STEPS:
        print(
            f"{len(eager)} of these steps hold more than {graph_tokens} tokens (no "
            f"CUDA graph): fewer than {MIN_EAGER_STEPS}, too few to measure "
            "engine.eager_step_overhead_ms"
        )
        return
    extra = float(np.median(eager[:, 1] - eager[:, 2]))
    print(
        f"{len(eager)} of these steps hold more than {graph_tokens} tokens (no CUDA "
        f"graph); vLLM's exceed the simulated by {extra:.1f} ms (median)"
    )
    if extra > 0:
        print(f"  --set engine.eager_step_overhead_ms={extra:.1f}")
    else:
        print("  vLLM's are not longer: no eager-step overhead to set")


def main() -> None:
    positional, sets = arguments()
    try:
        compare(run_folder(positional), sets)
    except FrontierError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
