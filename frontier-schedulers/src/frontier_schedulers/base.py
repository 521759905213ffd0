"""What every replica scheduler of this distribution shares.

The queues (FCFS waiting, admission-ordered running), the finish bookkeeping and
the two guards that make every run end:

- a request preempted more than ``max_preemptions_per_request`` times is aborted
  (``Outcome.ABORTED``, counted in ``system_metrics.json``) instead of going back
  to the queue;
- a replica that aborts ``max_consecutive_aborts`` requests in a row without
  completing any stops the run with a :class:`~frontier.errors.SimulationError`:
  it can only thrash.

No engine has these guards; they bound pathological input. With the defaults
they do not act on ordinary workloads: every scheduler here always lets its
oldest running request progress, so a request is preempted again only while
others move forward.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs
from frontier.batch import Batch
from frontier.config import (
    FieldValueError,
    ReplicaSchedulerConfig,
    non_negative,
    positive,
)
from frontier.errors import ConfigError, SimulationError
from frontier.plugins import ReplicaContext, ReplicaScheduler
from frontier.request import Outcome, Request

__all__ = [
    "GuardedConfig",
    "QueueScheduler",
    "check_budget_holds_prompt",
    "fraction_below_one",
]


def fraction_below_one(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """attrs validator: a fraction in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise FieldValueError(attribute.name, f"must be in [0, 1), got {value!r}")


@attrs.frozen(kw_only=True)
class GuardedConfig(ReplicaSchedulerConfig):
    """The termination guards, shared by every scheduler of this distribution.

    Attributes:
        max_preemptions_per_request: A request preempted more often than this is
            aborted rather than queued again.
        max_consecutive_aborts: This many aborts in a row, with no completion in
            between, end the run with an error.
    """

    max_preemptions_per_request: int = attrs.field(default=100, validator=non_negative)
    max_consecutive_aborts: int = attrs.field(default=16, validator=positive)


class QueueScheduler(ReplicaScheduler):
    """A FCFS waiting queue, an admission-ordered running list, and the guards.

    Subclasses implement :meth:`schedule`; they preempt through :meth:`preempt`
    and reject through :meth:`reject`, so the guards and the counts stay in one
    place.
    """

    def __init__(self, config: GuardedConfig, context: ReplicaContext) -> None:
        super().__init__(config, context)
        self.block_manager = context.block_manager
        self.block_size = context.block_manager.block_size
        self.max_model_len = context.max_model_len
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.in_flight: set[int] = set()
        """Ids of the requests of batches not yet ended (pipeline parallelism)."""
        self._aborts_in_a_row = 0
        self._repeatable = False
        """Set by :meth:`schedule`: the batch just formed would repeat (every
        running request decoding, admission blocked for as long as nothing
        arrives or finishes, no preemption)."""

    def decode_window(self) -> bool:
        """Whether the batch just formed may be fast-forwarded (see the core's
        contract); each scheduler sets ``_repeatable`` when it forms a batch."""
        return self._repeatable

    @property
    def num_waiting(self) -> int:
        """Requests not yet admitted, or preempted back to the queue."""
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        """Admitted requests that hold KV blocks."""
        return len(self.running)

    def add_request(self, request: Request, now: float) -> None:
        """Append to the waiting queue (first come, first served)."""
        self.waiting.append(request)

    def launch(self, batch: Batch) -> Batch | None:
        """``batch``, its requests marked in flight; ``None`` when it is empty."""
        if not batch.requests:
            return None
        self.in_flight.update(request.request_id for request in batch.requests)
        return batch

    def on_batch_end(
        self, batch: Batch, finished: Sequence[Request], now: float
    ) -> None:
        """Drop finished requests from the running list, and from the waiting
        queue those that finished there (a request preempted while its last
        step ran, with :attr:`keeps_samples_of_preempted`)."""
        if self.in_flight:
            self.in_flight.difference_update(r.request_id for r in batch.requests)
        if finished:
            self._aborts_in_a_row = 0
            done = {id(request) for request in finished}
            self.running = [r for r in self.running if id(r) not in done]
            if any(not r.num_computed_tokens for r in finished):
                self.waiting = deque(r for r in self.waiting if id(r) not in done)

    def preempt(self, victim: Request, *, to_front: bool = True) -> bool:
        """Preempt ``victim`` by recompute: free its blocks, send it back.

        The caller has already taken ``victim`` out of its running list. The
        request goes to the head of the waiting queue (vLLM, Sarathi-Serve) or
        its tail (``to_front=False``, SGLang), or is aborted when it has been
        preempted more than ``max_preemptions_per_request`` times.

        Returns:
            False when the request was aborted instead of queued.

        Raises:
            SimulationError: ``max_consecutive_aborts`` aborts in a row.
        """
        self.release(victim)
        victim.preempt()
        if victim.num_preemptions <= self.config.max_preemptions_per_request:
            if to_front:
                self.waiting.appendleft(victim)
            else:
                self.waiting.append(victim)
            return True
        self.context.reject(victim, Outcome.ABORTED)
        self._aborts_in_a_row += 1
        if self._aborts_in_a_row >= self.config.max_consecutive_aborts:
            blocks = self.block_manager
            count = self._aborts_in_a_row
            aborted = f"{count} requests in a row" if count > 1 else "1 request"
            raise SimulationError(
                f"replica {self.context.replica_id} ({self.config.type}) aborted "
                f"{aborted}, each preempted more "
                f"than {self.config.max_preemptions_per_request} times, and "
                "completed none in between: the configuration can only thrash. "
                f"Its KV cache holds {blocks.num_blocks} blocks of "
                f"{blocks.block_size} tokens for {len(self.running)} running and "
                f"{len(self.waiting)} waiting requests; give it more KV blocks, "
                "admit fewer requests at once, or raise "
                "replica_scheduler.max_preemptions_per_request."
            )
        return False

    def release(self, request: Request) -> None:
        """Free every block ``request`` holds (subclasses with their own cache
        override this)."""
        self.block_manager.free(request)

    def reject(self, request: Request, outcome: Outcome) -> None:
        """Drop ``request`` for good; the core counts it and writes its row."""
        self.context.reject(request, outcome)

    @staticmethod
    def never_fits(request: Request) -> Outcome:
        """The outcome of a request whose blocks the cache can never admit:
        ``rejected_no_fit`` before it produced a token, ``aborted`` after (a
        recompute preemption sent it back longer than the admission test can
        ever pass; vLLM v0 then ignores it with the tokens it had produced)."""
        if request.num_generated:
            return Outcome.ABORTED
        return Outcome.REJECTED_NO_FIT

    def cached_prefix_blocks(self, request: Request) -> int:
        """Blocks of ``request``'s prompt this replica holds in its prefix cache.

        A lookup only: nothing is locked and no LRU time is touched. Cluster
        routers (``prefix_aware``) call it.
        """
        return len(self.block_manager.find_cached_prefix(request))

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` when the block accounting is inconsistent.

        Without prefix caching every running request holds exactly the blocks
        its KV needs (:meth:`expected_blocks`) and nothing else holds any; with
        it, shared blocks are counted once, so only the bound is checked.
        """
        blocks = self.block_manager
        assert 0 <= blocks.num_used_blocks <= blocks.num_blocks
        held = 0
        for request in self.running:
            expected = self.expected_blocks(request)
            assert request.num_blocks == expected, (request, expected)
            held += request.num_blocks
        for request in self.waiting:
            assert request.num_blocks == 0, request
        if blocks.enable_prefix_caching:
            assert blocks.num_used_blocks <= held
        else:
            assert blocks.num_used_blocks == held, (blocks.num_used_blocks, held)

    def expected_blocks(self, request: Request) -> int:
        """Blocks a running request should hold: those of its computed tokens."""
        return self.block_manager.blocks_for_tokens(request.num_computed_tokens)

    def describe(self) -> dict[str, Any]:
        """The config's fields after defaults, for ``system_metrics.json``."""
        return attrs.asdict(self.config)


def check_budget_holds_prompt(
    name: str,
    tokens: int,
    max_model_len: int,
    chunked: bool,
    explicit: bool,
    can_chunk: bool = True,
) -> None:
    """Refuse a token budget that can never hold a whole prompt, as vLLM does.

    ``can_chunk`` is whether the scheduler has a chunked-prefill switch to
    suggest.

    Raises:
        ConfigError: Chunking is off and an explicit budget is below
            ``max_model_len``.
    """
    if not chunked and explicit and tokens < max_model_len:
        raise ConfigError(
            f"replica_scheduler.{name}={tokens} is smaller than max_model_len="
            f"{max_model_len}: without chunked prefill a prompt that long could "
            f"never be scheduled. Raise {name} or lower model.max_model_len"
            + (
                ", or enable chunked prefill."
                if can_chunk
                else " (this scheduler has no chunked prefill)."
            )
        )


def check_budget_holds_seqs(tokens: int, seqs: int) -> None:
    """Refuse a step token budget below ``max_num_seqs``, as vLLM's
    ``SchedulerConfig`` does (v0 and v1): every running request must be able to
    decode in the same step.

    Raises:
        ConfigError: ``max_num_batched_tokens < max_num_seqs`` after defaults.
    """
    if tokens < seqs:
        raise ConfigError(
            f"replica_scheduler.max_num_batched_tokens={tokens} is smaller than "
            f"max_num_seqs={seqs}; vLLM requires at least one token of the step's "
            "budget per running request. Raise max_num_batched_tokens or lower "
            "max_num_seqs."
        )
