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

Decode fast-forward: when the scheduler says the batch it just formed would repeat
(every running request decoding one token; see
:meth:`frontier.plugins.ReplicaScheduler.decode_window`), the replica applies the
repetitions in bulk until the first of: a request's last token, the next arrival
anywhere (it could change the batch or read this replica's state), or a step whose
KV blocks would not all be free (the scheduler must then decide on preemption).
Each repeated step is still timed by the predictor, one call per step, and its
timestamps are summed in the same order, so the request metrics are identical to
one step at a time; only the per-request work of the repeated steps is done once.
The last repetition is started as an ordinary batch.

Asynchronous scheduling (a scheduler that ``schedules_ahead``, vLLM's
``async_scheduling``): the next batch is formed as soon as one starts, from what
is known then, and waits in ``queued`` until the running one ends. A request that
will sample in the running batch counts its token at once (a placeholder), so it
can be scheduled again; the token's time is still the batch's end.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from frontier.batch import Batch
from frontier.errors import SimulationError
from frontier.execution import ExecutionModel
from frontier.kv_cache import KVBlockManager
from frontier.request import Outcome, Request

_PENDING = Outcome.PENDING

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
        samples: list[bool] | None,
        epochs: list[int] | None,
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
        self.num_fast_forwarded = 0
        self.busy_time = 0.0
        self.num_dummy_steps = 0
        self.group = None
        """The :class:`~frontier.lockstep.LockstepGroup` this replica steps with,
        or ``None`` when it steps on its own."""
        self.lookahead = False
        """Whether the next batch is formed while one runs (asynchronous
        scheduling); set by the simulation from the scheduler."""
        self.queued: Batch | None = None
        """The batch formed ahead, to start when the running one ends."""
        self.fast_forward = False
        """Whether to fast-forward decode windows; the simulation turns it on
        (for a single pipeline stage), a replica built by hand steps one by one."""
        self.unqueued: list[Request] = []
        """Requests routed here that no scheduling pass has seen yet."""

    def add_request(self, request: Request, now: float) -> None:
        """Take a routed request into the scheduler's queue."""
        request.replica_id = self.replica_id
        self.num_outstanding += 1
        self.scheduler.add_request(request, now)
        self.unqueued.append(request)

    def schedule(self, now: float) -> Batch | None:
        """Form the next batch at ``now``: the engine's scheduling pass.

        Requests routed here since the previous pass are taken in first
        (``queued_at = now``). vLLM's engine core reads its input queue once per
        loop, right before it schedules; while a step runs it waits on the step's
        result, so a request arriving then is queued when the step ends
        (``EngineCoreEvent.QUEUED``, the ``queued_ts`` its TTFT is measured from).
        """
        unqueued = self.unqueued
        if unqueued:
            for request in unqueued:
                request.queued_at = now
            unqueued.clear()
        batch = self.scheduler.schedule(now)
        if batch is None:
            return None
        if not isinstance(batch, Batch):
            scheduler = type(self.scheduler)
            raise SimulationError(
                f"replica {self.replica_id}'s scheduler ({scheduler.__module__}."
                f"{scheduler.__qualname__}) returned {batch!r:.80} from schedule() at "
                f"t={now:.6f} s; a scheduler returns a frontier.batch.Batch or None"
            )
        if not batch.requests:
            return None  # an empty batch is no batch: the stall check sees it
        return batch

    def can_start(self, now: float) -> bool:
        """Whether a new batch may enter the first stage at ``now``."""
        return self.num_in_flight < self.num_stages and self.stage_free_at[0] <= now

    def start_batch(
        self, now: float, horizon: float = math.inf
    ) -> InFlightBatch | None:
        """Ask the scheduler for a batch and send it down the stages.

        Args:
            now: Simulated time, seconds.
            horizon: Time of the next event that could change this replica's next
                batch (the next arrival); decode fast-forward stops before it.
        """
        scheduler = self.scheduler
        batch = self.schedule(now)
        if batch is None:
            return None
        stage_times = None
        if (
            self.fast_forward
            and batch.num_decodes == len(batch.requests)
            and scheduler.decode_window()
        ):
            outcome = self._fast_forward(batch, now, horizon)
            if isinstance(outcome, InFlightBatch):
                return outcome
            now, stage_times = outcome
        return self.launch(batch, now, stage_times)

    def _advance(self, batch: Batch, now: float) -> tuple[list[bool], list[int]]:
        """Advance each request's computed tokens by its share of ``batch``;
        return whether each will sample a token and its preemption epoch."""
        samples: list[bool] = []
        epochs: list[int] = []
        sample = samples.append
        epoch = epochs.append
        lookahead = self.lookahead
        pending = _PENDING
        for request, tokens in zip(batch.requests, batch.num_new_tokens, strict=True):
            if request.scheduled_at != request.scheduled_at:  # NaN: first schedule
                request.scheduled_at = now
            computed = request.num_computed_tokens + tokens
            total = request.num_tokens
            if tokens < 1 or computed > total or request.outcome is not pending:
                self._check_share(request, tokens, computed, now)
            request.num_computed_tokens = computed
            sampled = computed == total
            if sampled and lookahead:
                request.num_tokens += 1  # the placeholder of the coming token
            sample(sampled)
            epoch(request.num_preemptions)
        return samples, epochs

    def _check_share(
        self, request: Request, tokens: int, computed: int, now: float
    ) -> None:
        """Stop the run, naming the scheduler, when it gave ``request`` a share no
        engine could run or scheduled it after it left (a plugin bug would
        otherwise loop or miscount); a truncated request still running passes."""
        where = (
            f"replica {self.replica_id}'s scheduler ({type(self.scheduler).__name__})"
        )
        if tokens < 1 or computed > request.num_tokens:
            left = request.num_tokens - request.num_computed_tokens
            raise SimulationError(
                f"{where} gave request {request.request_id} {tokens} token(s) at "
                f"t={now:.6f} s, but it has {left} left to compute "
                f"({request.num_computed_tokens} of {request.num_tokens} computed); "
                "every request in a batch needs 1 to its remaining tokens"
            )
        if request.outcome is Outcome.TRUNCATED and math.isnan(request.completed_at):
            return
        raise SimulationError(
            f"{where} scheduled request {request.request_id} at t={now:.6f} s, but "
            f"it has already left ({request.outcome.value}); a scheduler must drop a "
            "request from its queues when on_batch_end reports it finished or when "
            "it rejects it"
        )

    def start_queued(self, now: float) -> InFlightBatch | None:
        """Start the batch formed ahead (asynchronous scheduling), then form the
        next one from what is known now; ``None`` when none was queued."""
        batch = self.queued
        if batch is None:
            return None
        self.queued = None
        flight = self.launch(batch, now)
        self.queued = self.schedule(now)
        return flight

    def launch(
        self, batch: Batch, now: float, stage_times: list[float] | None = None
    ) -> InFlightBatch:
        """Send a formed ``batch`` down the stages at ``now`` (``stage_times``
        when already known, as at the end of a fast-forward window)."""
        samples, epochs = self._advance(batch, now)
        if stage_times is None:
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

    def start_lockstep_batch(
        self, batch: Batch, now: float, finishes_at: float
    ) -> InFlightBatch:
        """Send ``batch``, formed by the scheduler, through the replica's single
        stage as one step of its lockstep group, ending at ``finishes_at``."""
        samples, epochs = self._advance(batch, now)
        self.stage_free_at[0] = finishes_at
        self.num_in_flight += 1
        self.num_batches += 1
        self.busy_time += finishes_at - now
        return InFlightBatch(batch, samples, epochs, now, finishes_at)

    def run_dummy_step(self, now: float, finishes_at: float) -> None:
        """Account a dummy step (no request) of the lockstep group."""
        self.stage_free_at[0] = finishes_at
        self.num_dummy_steps += 1
        self.busy_time += finishes_at - now

    def _fast_forward(
        self, batch: Batch, now: float, horizon: float
    ) -> InFlightBatch | tuple[float, list[float]]:
        """Apply repetitions of the all-decode ``batch`` in bulk (pipeline of one
        stage).

        Step 1 is the batch as scheduled (its blocks are allocated). Step ``j + 1``
        joins the window only if no request finishes before it, it starts before
        ``horizon``, and the blocks its requests cross into are free. When no
        request finishes in the window's last step either, every step is applied
        at once and a hollow in-flight batch, with nothing left to do, is returned
        to end at the last step's end: what that step changes (token counts) is
        read by nobody before then. Otherwise the steps before the last are
        applied, and the time the last starts and its stage times are returned,
        for it to run as an ordinary batch that finishes requests.
        """
        requests = batch.requests
        count = len(requests)
        blocks = self.block_manager
        size = blocks.block_size
        # One pass: the step at which the first request finishes, the computed
        # tokens, and the step at which each first needs a block
        # (blocks.first_decode_allocation, inlined: this runs for every window).
        last_step = 1 << 62
        computed = []
        firsts = []
        for request in requests:
            tokens = request.num_computed_tokens
            computed.append(tokens)
            firsts.append(request.num_blocks * size - tokens + 1)
            left = request.max_output_tokens - request.num_generated
            if left < last_step:
                last_step = left
        firsts.sort()
        per_residue = [0] * size
        activated = 0
        free = blocks.num_free_blocks - self.scheduler.decode_window_min_free_blocks
        used = 0
        timing = self.execution.stage_times

        ends: list[float] = []
        durations: list[float] = []
        start = now
        step = 1
        times = timing(batch)
        while True:
            end = start + times[0]
            following = step + 1
            if following > last_step or end >= horizon:
                break
            while activated < count and firsts[activated] <= following:
                per_residue[firsts[activated] % size] += 1
                activated += 1
            need = per_residue[following % size]
            if used + need > free:
                break
            used += need
            ends.append(end)
            durations.append(times[0])
            start = end
            step = following
            batch.decode_context_sum += count
            batch.decode_context_max += 1
            batch.decode_context_min += 1
            times = timing(batch)
        hollow = step < last_step
        if hollow:
            ends.append(end)
            durations.append(times[0])
        elif not ends:
            return now, times

        repeats = len(ends)
        skipped = step - 1
        if used:
            blocks.extend_decodes(requests, computed, skipped)
        itl = self.metrics.itl
        first = ends[0]
        last = ends[-1]
        first_gaps = []
        for request in requests:
            first_gaps.append(first - request.last_token_at)
            request.num_computed_tokens += repeats
            # A reasoning request whose answer starts inside the window.
            answer = request.token_mark - request.num_generated
            if 0 < answer <= repeats:
                request.first_answer_at = ends[answer - 1]
                request.token_mark = 0
            request.num_generated += repeats
            request.num_tokens += repeats
            request.last_token_at = last
        itl.add_many(first_gaps)
        if repeats > 1:
            gaps = [ends[k] - ends[k - 1] for k in range(1, repeats)]
            itl.add_repeated(gaps, [count] * (repeats - 1))
        busy = self.busy_time
        for seconds in durations:
            busy += seconds
        self.busy_time = busy
        self.num_batches += repeats
        self.num_fast_forwarded += skipped
        self.stage_free_at[0] = last
        self.scheduler.on_fast_forward(skipped)
        if hollow:
            self.num_in_flight += 1
            started = ends[-2] if repeats > 1 else now
            return InFlightBatch(batch, None, None, started, last)
        return last, times

    def finish_batch(self, flight: InFlightBatch, now: float) -> list[Request]:
        """Account a batch that left the last stage; return requests that finished."""
        self.num_in_flight -= 1
        if flight.samples is None:  # hollow: applied when it was fast-forwarded
            self.scheduler.on_batch_end(flight.batch, (), now)
            return []
        finished = []
        gaps = []
        metrics = self.metrics
        lookahead = self.lookahead
        for request, sampled, epoch in zip(
            flight.batch.requests, flight.samples, flight.epochs, strict=True
        ):
            if not sampled:
                continue
            preempted = request.num_preemptions != epoch
            if preempted:  # preempted while the step ran
                if not self._keeps_sample_of_preempted(request):
                    continue
                request.num_tokens += 1  # the preemption dropped its placeholder
            elif not lookahead:  # ahead, the placeholder already counted it
                request.num_tokens += 1
            generated = request.num_generated + 1
            request.num_generated = generated
            if generated != request.token_mark:
                gaps.append(now - request.last_token_at)
            elif generated == 1:
                request.first_token_at = now
                reasoning = request.num_reasoning_tokens
                if reasoning:
                    request.token_mark = reasoning + 1
                else:
                    request.first_answer_at = now
                    request.token_mark = 0
            else:  # a reasoning request's first answer token
                gaps.append(now - request.last_token_at)
                request.first_answer_at = now
                request.token_mark = 0
            request.last_token_at = now
            if generated >= request.max_output_tokens:
                request.completed_at = now
                if request.outcome is Outcome.PENDING:
                    request.outcome = Outcome.COMPLETED
                if not preempted:
                    self._check_held_kv(request, now)
                self.block_manager.free(request)
                self.num_outstanding -= 1
                finished.append(request)
        if gaps:
            metrics.itl.add_many(gaps)
        for request in finished:
            metrics.record_request(request)
        self.scheduler.on_batch_end(flight.batch, finished, now)
        return finished

    def _check_held_kv(self, request: Request, now: float) -> None:
        """Stop the run, naming the scheduler, when ``request`` finishes while
        the KV cache holds fewer blocks than its computed tokens fill: its
        scheduler never allocated them (``ReplicaContext.block_manager``), and
        the run would go on with a cache that never fills. Blocks shared by
        prefix caching, and capacity held with ``take_blocks``, count; one
        comparison per finished request."""
        blocks = self.block_manager
        held_tokens = blocks.num_used_blocks * blocks.block_size
        if held_tokens >= request.num_computed_tokens:
            return
        raise SimulationError(
            f"replica {self.replica_id}'s scheduler ({type(self.scheduler).__name__}) "
            f"finished request {request.request_id} at t={now:.6f} s after computing "
            f"{request.num_computed_tokens} tokens, but the KV cache held "
            f"{blocks.num_used_blocks} blocks of {blocks.block_size} tokens: a "
            "scheduler must allocate the blocks of every token it schedules "
            "(context.block_manager.allocate, or take_blocks for a cache of its own)"
        )

    def _keeps_sample_of_preempted(self, request: Request) -> bool:
        """Whether the token a step sampled for ``request``, preempted while the
        step ran, counts: when its scheduler says so, the request is still
        waiting (not re-admitted meanwhile, which only pipeline stages allow, nor
        gone: an abort)."""
        return (
            self.scheduler.keeps_samples_of_preempted
            and not request.num_computed_tokens
            and request.outcome in (Outcome.PENDING, Outcome.TRUNCATED)
        )

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

    def utilisation(self, start: float, end: float) -> float:
        """Fraction of the time from ``start`` to ``end``, or to the end of this
        replica's last step if later (a lockstep group's dummy steps run past the
        last completion), that the first stage was busy."""
        span = max(end, self.stage_free_at[0]) - start
        return self.busy_time / span if span > 0 and math.isfinite(span) else 0.0
