"""A replica: one copy of the model on ``tp x pp`` GPUs, its scheduler and KV cache.

The replica owns the parts every scheduler shares: request progress, the pipeline
stages a batch flows through, and the bookkeeping when a batch ends.

Progress follows vLLM v1: when a batch is formed, each request's
``num_computed_tokens`` advances by the tokens it was given (so, with pipeline
parallelism, a request whose step is still in flight wants nothing more); when the
batch ends, every request whose scheduled tokens reached ``num_tokens`` samples one
token. A request preempted while its step was in flight ignores that step's result.

Pipeline stages: stage ``s`` works on one batch at a time. A batch enters stage
``s`` when it has left stage ``s - 1`` and stage ``s`` is free; up to
``pipeline_parallel_size`` batches are in flight, and the scheduler runs again as
soon as the first stage is free.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from frontier.batch import Batch
from frontier.execution import ExecutionModel
from frontier.kv_cache import KVBlockManager
from frontier.request import Outcome, Request

if TYPE_CHECKING:
    from frontier.metrics import MetricsCollector
    from frontier.plugins import ReplicaScheduler

__all__ = ["InFlightBatch", "Replica"]


class InFlightBatch:
    """A batch on its way through the stages, with what it will produce."""

    __slots__ = ("batch", "epochs", "finishes_at", "samples", "started_at")

    def __init__(
        self,
        batch: Batch,
        samples: list[bool],
        epochs: list[int],
        started_at: float,
        finishes_at: float,
    ) -> None:
        self.batch = batch
        self.samples = samples
        self.epochs = epochs
        self.started_at = started_at
        self.finishes_at = finishes_at


class Replica:
    """One model replica: scheduler, KV blocks, pipeline stages and progress.

    Args:
        replica_id: Index from 0.
        block_manager: The replica's KV cache.
        execution: Times batches on the stages.
        metrics: Where finished requests and token gaps go.
    """

    def __init__(
        self,
        replica_id: int,
        block_manager: KVBlockManager,
        execution: ExecutionModel,
        metrics: MetricsCollector,
    ) -> None:
        self.replica_id = replica_id
        self.block_manager = block_manager
        self.execution = execution
        self.metrics = metrics
        self.scheduler: ReplicaScheduler | None = None
        self.num_stages = execution.num_stages
        self.stage_free_at = [0.0] * self.num_stages
        self.num_in_flight = 0
        self.num_outstanding = 0
        self.schedule_pending = False
        self.num_batches = 0
        self.busy_time = 0.0

    def add_request(self, request: Request, now: float) -> None:
        """Take a routed request into the scheduler's queue."""
        request.replica_id = self.replica_id
        self.num_outstanding += 1
        self.scheduler.add_request(request, now)

    def can_start(self, now: float) -> bool:
        """Whether a new batch may enter the first stage at ``now``."""
        return self.num_in_flight < self.num_stages and self.stage_free_at[0] <= now

    def start_batch(self, now: float) -> InFlightBatch | None:
        """Ask the scheduler for a batch and send it down the stages."""
        batch = self.scheduler.schedule(now)
        if batch is None:
            return None
        samples = []
        epochs = []
        for request, tokens in zip(batch.requests, batch.num_new_tokens, strict=True):
            if request.scheduled_at != request.scheduled_at:  # NaN: first schedule
                request.scheduled_at = now
            request.num_computed_tokens += tokens
            samples.append(request.num_computed_tokens == request.num_tokens)
            epochs.append(request.num_preemptions)

        stage_times = self.execution.stage_times(batch)
        ready = now
        free = self.stage_free_at
        for stage, seconds in enumerate(stage_times):
            begin = ready if ready > free[stage] else free[stage]
            ready = begin + seconds
            free[stage] = ready
        self.num_in_flight += 1
        self.num_batches += 1
        self.busy_time += stage_times[0]
        return InFlightBatch(batch, samples, epochs, now, ready)

    def finish_batch(self, flight: InFlightBatch, now: float) -> list[Request]:
        """Account a batch that left the last stage; return requests that finished."""
        self.num_in_flight -= 1
        finished = []
        metrics = self.metrics
        for request, sampled, epoch in zip(
            flight.batch.requests, flight.samples, flight.epochs, strict=True
        ):
            if not sampled or request.num_preemptions != epoch:
                continue
            request.num_generated += 1
            request.num_tokens += 1
            if request.num_generated == 1:
                request.first_token_at = now
            else:
                metrics.record_token_gap(now - request.last_token_at)
            request.last_token_at = now
            if request.num_generated >= request.max_output_tokens:
                request.completed_at = now
                if request.outcome is Outcome.PENDING:
                    request.outcome = Outcome.COMPLETED
                self.block_manager.free(request)
                self.num_outstanding -= 1
                finished.append(request)
                metrics.record_request(request)
        self.scheduler.on_batch_end(flight.batch, finished, now)
        return finished

    def reject(self, request: Request, outcome: Outcome) -> None:
        """Drop a routed request that can never run (called by the scheduler)."""
        self.block_manager.free(request)
        request.outcome = outcome
        self.num_outstanding -= 1
        self.metrics.record_request(request)

    @property
    def is_idle(self) -> bool:
        """No batch in flight."""
        return self.num_in_flight == 0

    def utilisation(self, duration: float) -> float:
        """Fraction of ``duration`` the first stage was busy."""
        return (
            self.busy_time / duration
            if duration > 0 and math.isfinite(duration)
            else 0.0
        )
