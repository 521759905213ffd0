"""Per-request rows, streamed to CSV as requests leave, and the run's summary.

Definitions follow ``vllm bench serve`` (all latencies in milliseconds):

- TTFT: first token time minus arrival time.
- TPOT: ``(E2E - TTFT) / (output tokens - 1)``, for requests with more than one
  output token.
- ITL: the gap between consecutive tokens of a request, every gap of every
  completed request.
- E2E latency: completion time minus arrival time.
- Throughputs divide by the duration from the first arrival to the last completion;
  only completed requests (truncated ones included) count, as the benchmark counts
  only successful ones.

Percentiles are NumPy's linear interpolation (``numpy.percentile``), as the benchmark
computes them, while a distribution holds up to 262,144 samples; past that it becomes
a logarithmic sketch with 0.1% relative error (:mod:`frontier.quantiles`), so memory
stays bounded however long the run. Counts, minima and maxima are always exact, means
exact to the nanosecond.
"""

from __future__ import annotations

import copy
import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from frontier.quantiles import Distribution
from frontier.request import Outcome, Request

__all__ = ["REQUEST_COLUMNS", "MetricsCollector", "summarise"]

REQUEST_COLUMNS = (
    "request_id",
    "replica_id",
    "outcome",
    "arrived_at_ms",
    "queued_at_ms",
    "scheduled_at_ms",
    "first_token_at_ms",
    "completed_at_ms",
    "queue_delay_ms",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "num_prompt_tokens",
    "num_output_tokens",
    "requested_output_tokens",
    "num_cached_tokens",
    "num_preemptions",
    "reasoning_tokens",
    "answer_ttft_ms",
)

_PERCENTILES = (50, 90, 95, 99)


def summarise(values: Any) -> dict[str, float | int]:
    """Count, mean, min, max, std and the p50/p90/p95/p99 of ``values``.

    An empty input gives ``count = 0`` and no statistics.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return {"count": 0}
    result: dict[str, float | int] = {
        "count": int(data.size),
        "mean": float(data.mean()),
        "std": float(data.std()),
        "min": float(data.min()),
        "max": float(data.max()),
    }
    for pct, value in zip(_PERCENTILES, np.percentile(data, _PERCENTILES), strict=True):
        result[f"p{pct}"] = float(value)
    result["median"] = result["p50"]
    return result


def _ms(seconds: float) -> str:
    return "" if seconds != seconds else f"{seconds * 1e3:.6f}"


class MetricsCollector:
    """Collects request outcomes and token gaps while the simulation runs.

    Args:
        request_csv: Where to stream ``request_metrics.csv`` (``None``: no file).
        on_request: Called with each request that leaves (completed or rejected).
    """

    def __init__(
        self,
        request_csv: Path | None = None,
        on_request: Callable[[Request], None] | None = None,
    ) -> None:
        self.ttft = Distribution()
        self.tpot = Distribution()
        self.e2e = Distribution()
        self.queue_delay = Distribution()
        self.itl = Distribution()
        # TTFT to the first answer token: the TTFT distribution itself until a
        # request reasons (then a copy of it, which goes its own way).
        self.answer_ttft: Distribution | None = None
        self.reasoning_requests = 0
        self.reasoning_tokens = 0
        self.outcomes = dict.fromkeys(Outcome, 0)
        self.num_preemptions = 0
        self.num_preempted_requests = 0
        self.max_preemptions = 0
        self.prompt_tokens = 0
        self.output_tokens = 0
        self.cached_tokens = 0
        self.first_arrival = math.inf
        self.last_completion = -math.inf
        self._on_request = on_request
        self._handle: IO[str] | None = None
        self._writer: Any = None
        if request_csv is not None:
            self._handle = request_csv.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle, lineterminator="\n")
            self._writer.writerow(REQUEST_COLUMNS)

    def record_arrival(self, request: Request) -> None:
        """Note an arrival (for the duration's start)."""
        if request.arrived_at < self.first_arrival:
            self.first_arrival = request.arrived_at

    def record_token_gap(self, seconds: float) -> None:
        """Add one inter-token latency."""
        self.itl.add(seconds)

    def record_request(self, request: Request) -> None:
        """Account a request that left the system and write its row."""
        outcome = request.outcome
        self.outcomes[outcome] += 1
        completed = outcome in (Outcome.COMPLETED, Outcome.TRUNCATED)
        ttft = tpot = e2e = queue = answer = math.nan
        reasoning = request.num_reasoning_tokens
        if completed:
            ttft = request.first_token_at - request.arrived_at
            if reasoning:
                self._record_reasoning(request)
                # NaN when the output was cut before the answer began
                answer = request.first_answer_at - request.arrived_at
            else:
                answer = ttft
            if self.answer_ttft is not None and answer == answer:
                self.answer_ttft.add(answer)
            e2e = request.completed_at - request.arrived_at
            queue = request.scheduled_at - request.arrived_at
            self.ttft.add(ttft)
            self.e2e.add(e2e)
            self.queue_delay.add(queue)
            if request.num_generated > 1:
                tpot = (e2e - ttft) / (request.num_generated - 1)
                self.tpot.add(tpot)
            self.prompt_tokens += request.num_prompt_tokens
            self.output_tokens += request.num_generated
            self.cached_tokens += request.num_cached_tokens
            if request.completed_at > self.last_completion:
                self.last_completion = request.completed_at
        if request.num_preemptions:
            self.num_preemptions += request.num_preemptions
            self.num_preempted_requests += 1
            self.max_preemptions = max(self.max_preemptions, request.num_preemptions)
        if self._writer is not None:
            ttft_text = _ms(ttft)
            self._writer.writerow(
                (
                    request.request_id,
                    request.replica_id,
                    outcome.value,
                    _ms(request.arrived_at),
                    _ms(request.queued_at),
                    _ms(request.scheduled_at),
                    _ms(request.first_token_at),
                    _ms(request.completed_at),
                    _ms(queue),
                    ttft_text,
                    _ms(tpot),
                    _ms(e2e),
                    request.num_prompt_tokens,
                    request.num_generated,
                    request.num_output_tokens,
                    request.num_cached_tokens,
                    request.num_preemptions,
                    reasoning,
                    _ms(answer) if reasoning else ttft_text,
                )
            )
        if self._on_request is not None:
            self._on_request(request)

    def _record_reasoning(self, request: Request) -> None:
        """Count a completed reasoning request; the first one starts the answer
        TTFT distribution from the TTFT of the requests before it, which
        answered with their first token."""
        if self.answer_ttft is None:
            self.answer_ttft = copy.deepcopy(self.ttft)  # before this one's
        self.reasoning_requests += 1
        self.reasoning_tokens += min(
            request.num_reasoning_tokens, request.num_generated
        )

    def close(self) -> None:
        """Flush and close the request file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._writer = None

    @property
    def num_finished(self) -> int:
        """Requests that left the system, in any outcome."""
        return sum(
            count for outcome, count in self.outcomes.items() if outcome != "pending"
        )

    @property
    def num_completed(self) -> int:
        """Requests that completed (truncated ones included)."""
        return self.outcomes[Outcome.COMPLETED] + self.outcomes[Outcome.TRUNCATED]

    def duration(self) -> float:
        """Seconds from the first arrival to the last completion (0 if none)."""
        if not math.isfinite(self.last_completion) or not math.isfinite(
            self.first_arrival
        ):
            return 0.0
        return self.last_completion - self.first_arrival

    def summary(self) -> dict[str, Any]:
        """Latency, throughput, outcome and preemption sections, in ms and tok/s."""
        to_ms = 1e3
        duration = self.duration()
        completed = self.num_completed

        def rate(amount: float) -> float:
            return amount / duration if duration > 0 else 0.0

        return {
            "requests": {
                "total": self.num_finished,
                "completed": self.outcomes[Outcome.COMPLETED],
                "truncated": self.outcomes[Outcome.TRUNCATED],
                "rejected_too_long": self.outcomes[Outcome.REJECTED_TOO_LONG],
                "rejected_no_fit": self.outcomes[Outcome.REJECTED_NO_FIT],
                "aborted": self.outcomes[Outcome.ABORTED],
            },
            "ttft_ms": self.ttft.summary(to_ms),
            "tpot_ms": self.tpot.summary(to_ms),
            "itl_ms": self.itl.summary(to_ms),
            "e2e_ms": self.e2e.summary(to_ms),
            "queue_delay_ms": self.queue_delay.summary(to_ms),
            "answer_ttft_ms": (self.answer_ttft or self.ttft).summary(to_ms),
            "reasoning": {
                "requests": self.reasoning_requests,
                "reasoning_tokens": self.reasoning_tokens,
                "answer_tokens": self.output_tokens - self.reasoning_tokens,
            },
            "throughput": {
                "duration_s": duration,
                "first_arrival_s": self.first_arrival
                if math.isfinite(self.first_arrival)
                else 0.0,
                "makespan_s": self.last_completion if completed else 0.0,
                "request_throughput_per_s": rate(completed),
                "output_token_throughput_per_s": rate(self.output_tokens),
                "total_token_throughput_per_s": rate(
                    self.prompt_tokens + self.output_tokens
                ),
                "prompt_tokens": self.prompt_tokens,
                "output_tokens": self.output_tokens,
                "prefix_cached_tokens": self.cached_tokens,
            },
            "preemption": {
                "total": self.num_preemptions,
                "requests_preempted": self.num_preempted_requests,
                "max_per_request": self.max_preemptions,
            },
        }
