"""vLLM v1's scheduler: ``vllm/v1/core/sched/scheduler.py``, rules of v0.8 to v0.11.

One step, as ``Scheduler.schedule`` forms it:

1. Running requests first, in admission order. Each wants
   ``num_tokens - num_computed_tokens`` tokens, capped by
   ``long_prefill_token_threshold`` (when > 0), the remaining token budget and
   ``max_model_len - 1 - num_computed_tokens``. A request that wants nothing (its
   previous step is still in flight) is skipped.
2. When its KV blocks cannot be allocated, the *last* running request is preempted
   by recompute (all its blocks freed, back to the head of the waiting queue, it
   re-prefills prompt plus generated tokens) and the allocation is retried; a
   request that has to preempt itself ends the running loop.
3. Only if nothing was preempted this step, waiting requests are admitted FCFS
   while the budget lasts and fewer than ``max_num_seqs`` run. An admission first
   looks up the prefix cache (never covering the last token); it is chunked to the
   budget when chunked prefill is on and must fit whole otherwise: a prompt longer
   than the budget left is skipped, later requests may still be admitted, and it
   keeps its place at the head of the queue (``stop_at_unfit_prompt`` stops
   admission there instead, as vLLM does from v0.12, PR #28911). Admission stops
   at the first request whose blocks cannot be allocated.

``async_scheduling`` (on by default in vLLM from late 2025, v0.12 on; off in the
0.8 to 0.11 releases these rules come from) forms each step while the previous one
runs (``AsyncScheduler``): a request that samples in the running step holds an
output placeholder and is scheduled again, except when its placeholders already
reach its last token (vLLM skips such a request rather than compute a token it
would drop). The replica supplies the timing (see :mod:`frontier.replica`). A
request preempted while its step runs keeps the token that step samples
(``update_from_output`` skips only finished requests), and finishes from the
waiting queue if that was its last.

``reserve_full_isl`` adds the admission gate of newer vLLM
(``scheduler_reserve_full_isl``, vLLM PR #37307, on by default from v0.19.0):
a request is admitted only when the blocks of its whole current sequence fit,
not just those of its first chunk.
"""

from __future__ import annotations

from typing import Any

import attrs
from frontier.batch import Batch
from frontier.config import non_negative, positive
from frontier.plugins import ExecutionContext, ReplicaContext

from frontier_schedulers.base import (
    GuardedConfig,
    QueueScheduler,
    check_budget_holds_prompt,
    check_budget_holds_seqs,
)

__all__ = ["VllmV1Config", "VllmV1Scheduler", "engine_default_limits"]


@attrs.frozen(kw_only=True)
class VllmV1Config(GuardedConfig):
    """Knobs of the vLLM v1 scheduler, with vLLM's names and defaults.

    Attributes:
        max_num_batched_tokens: Token budget of one step; by GPU when unset (see
            :func:`engine_default_limits`).
        max_num_seqs: Most requests running at once; by GPU when unset.
        enable_chunked_prefill: Split prompts across steps to fit the budget.
        long_prefill_token_threshold: Cap on one request's tokens per step; 0 is
            no cap.
        reserve_full_isl: Admit a request only when its whole sequence fits in
            the free blocks (newer vLLM's ``scheduler_reserve_full_isl``).
        async_scheduling: Form each step while the previous one runs (vLLM's
            ``async_scheduling``).
        stop_at_unfit_prompt: Without chunked prefill, stop admitting at the
            first prompt longer than the budget left (vLLM v0.12 on) instead of
            skipping it (v0.8 to v0.11).
    """

    type: str = "vllm_v1"
    max_num_batched_tokens: int | None = attrs.field(default=None, validator=positive)
    max_num_seqs: int | None = attrs.field(default=None, validator=positive)
    enable_chunked_prefill: bool = True
    long_prefill_token_threshold: int = attrs.field(default=0, validator=non_negative)
    reserve_full_isl: bool = False
    async_scheduling: bool = False
    stop_at_unfit_prompt: bool = False


def engine_default_limits(device_name: str, memory_gib: float) -> tuple[int, int]:
    """vLLM's serving defaults ``(max_num_batched_tokens, max_num_seqs)`` by GPU.

    ``EngineArgs`` (v0.8+, OpenAI-server usage context): GPUs with at least
    70 GiB whose name does not contain "a100" get (8192, 1024); all others
    (2048, 256). (The offline ``LLM`` class uses 16384 and 8192 tokens instead.)
    """
    if memory_gib >= 70 and "a100" not in device_name.lower():
        return 8192, 1024
    return 2048, 256


class VllmV1Scheduler(QueueScheduler):
    """vLLM v1 (v0.8 to v0.11): running first, chunked prefill, recompute
    preemption of the last request, FCFS admission (rules in the module docstring).
    """

    uses_prefix_cache = True
    keeps_samples_of_preempted = True

    def __init__(self, config: VllmV1Config, context: ReplicaContext) -> None:
        super().__init__(config, context)
        self.max_num_batched_tokens, self.max_num_seqs = self.planning_limits(
            config, context.execution, context.max_model_len
        )
        check_budget_holds_prompt(
            "max_num_batched_tokens",
            self.max_num_batched_tokens,
            context.max_model_len,
            config.enable_chunked_prefill,
            config.max_num_batched_tokens is not None,
        )
        check_budget_holds_seqs(self.max_num_batched_tokens, self.max_num_seqs)
        self.chunked_prefill = config.enable_chunked_prefill
        self.schedules_ahead = config.async_scheduling
        self.long_prefill_threshold = config.long_prefill_token_threshold
        self.reserve_full_isl = config.reserve_full_isl
        self.stop_at_unfit_prompt = config.stop_at_unfit_prompt

    @classmethod
    def planning_limits(
        cls, config: VllmV1Config, execution: ExecutionContext, max_model_len: int
    ) -> tuple[int, int]:
        """The step's token budget and ``max_num_seqs`` after engine defaults.

        As vLLM's ``EngineArgs._set_default_max_num_seqs_and_batched_tokens_args``
        (v0.19): an unset budget is the GPU's default, raised to ``max_model_len``
        without chunked prefill (so that any prompt fits in one step) and cut to
        ``max_num_seqs x max_model_len``; an unset ``max_num_seqs`` is the GPU's
        default cut to the budget, so a small budget alone is accepted.
        """
        device = execution.device
        default_tokens, default_seqs = engine_default_limits(
            device.name, device.memory_gib
        )
        tokens = config.max_num_batched_tokens
        if tokens is None:
            tokens = default_tokens
            if not config.enable_chunked_prefill:
                tokens = max(max_model_len, tokens)
            tokens = min((config.max_num_seqs or default_seqs) * max_model_len, tokens)
        seqs = config.max_num_seqs
        if seqs is None:
            seqs = min(default_seqs, tokens)
        return tokens, seqs

    def schedule(self, now: float) -> Batch | None:
        """Form one step by the rules in the module docstring."""
        batch = Batch()
        budget = self.max_num_batched_tokens
        threshold = self.long_prefill_threshold
        blocks = self.block_manager
        running = self.running
        preempted = False

        size = self.block_size
        last_position = self.max_model_len - 1
        ahead = self.schedules_ahead
        decodes: list = []  # consecutive plain decodes, added to the batch at once
        index = 0
        while index < len(running) and budget > 0:
            request = running[index]
            if ahead and (
                request.num_tokens - request.num_prompt_tokens
                >= request.max_output_tokens
            ):
                index += 1  # its running step brings its last token
                continue
            computed = request.num_computed_tokens
            want = request.num_tokens - computed
            if (
                want == 1
                and request.num_generated
                and computed < request.num_blocks * size
                and computed < last_position
            ):
                # A decode whose token fits its last block: no allocation and no
                # prompt block to cache, so the general path below would change
                # nothing but the batch and the budget.
                decodes.append(request)
                budget -= 1
                index += 1
                continue
            batch.add_decodes(decodes)
            decodes = []
            if 0 < threshold < want:
                want = threshold
            want = min(want, budget, last_position - computed)
            if want <= 0:
                index += 1
                continue
            scheduled = True
            while not blocks.allocate(request, want):
                victim = running.pop()
                preempted = True
                self.preempt(victim)
                if victim is request:
                    scheduled = False
                    break
            if not scheduled:
                break
            batch.add(request, want)
            budget -= want
            index += 1
        batch.add_decodes(decodes)

        if not preempted:
            self._admit(batch, budget)
        # Nothing preempted and nothing admitted although every running request
        # decodes: admission is blocked (empty queue, budget, max_num_seqs or KV)
        # and stays so while no request arrives or finishes, since decoding only
        # takes blocks away.
        self._repeatable = (
            not ahead and not preempted and len(batch.requests) == len(running)
        )
        return batch if batch.requests else None

    def _admit(self, batch: Batch, budget: int) -> None:
        blocks = self.block_manager
        threshold = self.long_prefill_threshold
        waiting = self.waiting
        skipped = []  # prompts too long for the budget left, put back after
        while waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            request = waiting[0]
            cached = blocks.find_cached_prefix(request)
            num_cached = len(cached) * self.block_size
            want = request.num_tokens - num_cached
            if 0 < threshold < want:
                want = threshold
            if not self.chunked_prefill and want > budget:
                if self.stop_at_unfit_prompt:
                    break
                skipped.append(waiting.popleft())
                continue
            want = min(want, budget)

            request.num_computed_tokens = num_cached
            whole = request.num_tokens - num_cached
            if (
                self.reserve_full_isl
                and not blocks.can_allocate(request, whole, cached)
            ) or not blocks.allocate(request, want, cached):
                request.num_computed_tokens = 0
                break
            blocks.record_lookup(request, num_cached)
            if request.num_preemptions == 0:
                request.num_cached_tokens = num_cached
            waiting.popleft()
            self.running.append(request)
            batch.add(request, want)
            budget -= want
        if skipped:
            waiting.extendleft(reversed(skipped))

    def describe(self) -> dict[str, Any]:
        """Effective limits after engine defaults, and the other knobs."""
        return {
            **super().describe(),
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "max_num_seqs": self.max_num_seqs,
        }
