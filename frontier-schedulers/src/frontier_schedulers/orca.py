"""Orca's iteration-level scheduling (Yu et al., OSDI 2022).

Orca is not open source; the rules follow the paper's Algorithm 1 as Sarathi-Serve
reproduces it (``sarathi/core/scheduler/orca_scheduler.py`` and
``OrcaBlockSpaceManager`` in microsoft/sarathi-serve):

- Every iteration runs all running requests (one decode token each) plus new
  admissions, whose whole prompt runs in that one iteration (no chunking, no
  token budget).
- Admission is FCFS while fewer than ``max_batch_size`` requests run and the KV
  blocks for the request's maximum length can be reserved up front: ``ceil(
  max_model_len / block_size)`` blocks by default (Sarathi-Serve's baseline), or
  ``ceil((prompt + max output) / block_size)`` with ``reservation = "request"``
  (the paper's ``max_tokens`` of a request). The first request that does not fit
  ends admission.
- A reservation always covers the request's growth, so nothing is ever preempted.
"""

from __future__ import annotations

from typing import Literal

import attrs
from frontier.batch import Batch
from frontier.config import positive
from frontier.plugins import ExecutionContext, ReplicaContext
from frontier.request import Request

from frontier_schedulers.base import GuardedConfig, QueueScheduler

__all__ = ["OrcaConfig", "OrcaScheduler"]


@attrs.frozen(kw_only=True)
class OrcaConfig(GuardedConfig):
    """Knobs of the Orca scheduler.

    Attributes:
        max_batch_size: Most requests running at once (Sarathi-Serve's
            ``max_num_seqs`` default for Orca).
        reservation: What a request reserves at admission: the engine's
            ``max_model_len`` or its own prompt plus maximum output.
    """

    type: str = "orca"
    max_batch_size: int = attrs.field(default=128, validator=positive)
    reservation: Literal["max_model_len", "request"] = "max_model_len"


class OrcaScheduler(QueueScheduler):
    """Orca (OSDI 2022, as Sarathi-Serve reproduces it): iteration-level batching
    with whole-sequence KV reservations (rules in the module docstring)."""

    def __init__(self, config: OrcaConfig, context: ReplicaContext) -> None:
        super().__init__(config, context)
        self.max_batch_size = config.max_batch_size
        self.per_request = config.reservation == "request"

    @classmethod
    def planning_limits(
        cls, config: OrcaConfig, execution: ExecutionContext, max_model_len: int
    ) -> tuple[int, int]:
        """A step may hold whole prompts: ``max_model_len`` tokens, batch size."""
        return max_model_len, config.max_batch_size

    def reserved_tokens(self, request: Request) -> int:
        """Tokens of KV the request reserves when it is admitted."""
        if self.per_request:
            return request.num_prompt_tokens + request.max_output_tokens
        return self.max_model_len

    def schedule(self, now: float) -> Batch | None:
        """All running requests, then FCFS admissions that can reserve."""
        batch = Batch()
        for request in self.running:
            want = request.num_tokens - request.num_computed_tokens
            if want > 0:
                batch.add(request, want)

        blocks = self.block_manager
        waiting = self.waiting
        running_before = len(self.running)
        while waiting and len(self.running) < self.max_batch_size:
            request = waiting[0]
            if not blocks.allocate(request, self.reserved_tokens(request)):
                break
            waiting.popleft()
            self.running.append(request)
            batch.add(request, request.num_tokens)
        # No admission and every running request in the batch: the reservation or
        # the batch size blocks the queue head until a request finishes.
        self._repeatable = len(self.running) == running_before == len(batch.requests)
        return batch if batch.requests else None

    def expected_blocks(self, request: Request) -> int:
        """The reservation's blocks."""
        return self.block_manager.blocks_for_tokens(self.reserved_tokens(request))
