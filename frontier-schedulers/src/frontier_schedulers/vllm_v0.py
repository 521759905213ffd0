"""vLLM v0's default scheduler: ``vllm/core/scheduler.py``, rules of v0.6.

``Scheduler._schedule_default`` (chunked prefill off) with the block manager's
watermark (``SelfAttnBlockSpaceManager``):

1. Prefill first. Waiting requests are taken FCFS into a prefill-only step while
   their whole sequence (prompt plus any tokens generated before a preemption)
   fits the token budget, ``max_num_seqs`` (running requests included) and the
   KV watermark: admission needs ``free - required >= watermark_blocks``, with
   ``watermark_blocks = int(watermark * num_blocks)``. The first request that does
   not fit ends the loop. A request with ``num_blocks - required < watermark_blocks``
   can never be admitted and is rejected (``FINISHED_IGNORED`` in vLLM), or
   ``aborted`` when it had produced tokens before a preemption sent it back.
2. Only when no prefill was scheduled, every running request decodes one token,
   in admission order. When a request's next token needs a block and none is
   free, the *newest* running request is preempted by recompute (blocks freed,
   back to the head of the waiting queue); a request with nobody left to preempt
   preempts itself. Appending a token ignores the watermark.

Swapping (the default preemption for beam search and parallel sampling) and
prefix caching (off by default in v0) are not modelled.
"""

from __future__ import annotations

from typing import Any

import attrs
from frontier.batch import Batch
from frontier.config import positive
from frontier.plugins import ExecutionContext, ReplicaContext

from frontier_schedulers.base import (
    GuardedConfig,
    QueueScheduler,
    check_budget_holds_prompt,
    check_budget_holds_seqs,
    fraction_below_one,
)

__all__ = ["VllmV0Config", "VllmV0Scheduler"]

_DEFAULT_TOKENS = 2048
"""vLLM's ``DEFAULT_MAX_NUM_BATCHED_TOKENS``; the budget is at least max_model_len."""


@attrs.frozen(kw_only=True)
class VllmV0Config(GuardedConfig):
    """Knobs of the vLLM v0 scheduler, with vLLM's names and defaults.

    Attributes:
        max_num_batched_tokens: Token budget of a prefill step; ``max(max_model_len,
            2048)`` when unset.
        max_num_seqs: Most requests running at once.
        watermark: Fraction of the KV blocks an admission must leave free.
    """

    type: str = "vllm"
    max_num_batched_tokens: int | None = attrs.field(default=None, validator=positive)
    max_num_seqs: int = attrs.field(default=256, validator=positive)
    watermark: float = attrs.field(default=0.01, validator=fraction_below_one)


class VllmV0Scheduler(QueueScheduler):
    """vLLM v0 (v0.6): prefill-only steps, watermark admission, preempt the newest
    (rules in the module docstring)."""

    def __init__(self, config: VllmV0Config, context: ReplicaContext) -> None:
        super().__init__(config, context)
        self.max_num_batched_tokens, self.max_num_seqs = self.planning_limits(
            config, context.execution, context.max_model_len
        )
        check_budget_holds_prompt(
            "max_num_batched_tokens",
            self.max_num_batched_tokens,
            context.max_model_len,
            False,
            True,
            can_chunk=False,
        )
        check_budget_holds_seqs(self.max_num_batched_tokens, self.max_num_seqs)
        self.watermark_blocks = int(config.watermark * self.block_manager.num_blocks)

    @classmethod
    def planning_limits(
        cls, config: VllmV0Config, execution: ExecutionContext, max_model_len: int
    ) -> tuple[int, int]:
        """The prefill budget (at least ``max_model_len`` when unset) and seqs."""
        tokens = config.max_num_batched_tokens or max(max_model_len, _DEFAULT_TOKENS)
        return tokens, config.max_num_seqs

    def schedule(self, now: float) -> Batch | None:
        """A prefill-only step if the queue head fits, else a decode step."""
        batch = self._prefills()
        self._repeatable = False
        if not batch.requests:
            batch = self._decodes()
            # The queue head still cannot be prefilled once decoding has taken
            # more blocks; a decode step with every running request repeats.
            self._repeatable = not self._preempted and len(batch.requests) == len(
                self.running
            )
        return batch if batch.requests else None

    def _prefills(self) -> Batch:
        batch = Batch()
        blocks = self.block_manager
        waiting = self.waiting
        budget = self.max_num_batched_tokens
        while waiting:
            request = waiting[0]
            required = blocks.blocks_for_tokens(request.num_tokens)
            if blocks.num_blocks - required < self.watermark_blocks:
                waiting.popleft()
                self.reject(request, self.never_fits(request))
                continue
            if blocks.num_free_blocks - required < self.watermark_blocks:
                break
            if request.num_tokens > budget or len(self.running) >= self.max_num_seqs:
                break
            waiting.popleft()
            blocks.allocate(request, request.num_tokens)
            self.running.append(request)
            batch.add(request, request.num_tokens)
            budget -= request.num_tokens
        return batch

    def _decodes(self) -> Batch:
        batch = Batch()
        blocks = self.block_manager
        running = self.running
        self._preempted = False
        index = 0
        while index < len(running):
            request = running[index]
            want = request.num_tokens - request.num_computed_tokens
            if want <= 0:
                index += 1
                continue
            scheduled = True
            while not blocks.allocate(request, want):
                victim = running.pop()
                self._preempted = True
                self.preempt(victim)
                if victim is request:
                    scheduled = False
                    break
            if not scheduled:
                break
            batch.add(request, want)
            index += 1
        return batch

    def describe(self) -> dict[str, Any]:
        """Effective limits and the watermark in blocks."""
        return {
            **super().describe(),
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "watermark_blocks": self.watermark_blocks,
        }
