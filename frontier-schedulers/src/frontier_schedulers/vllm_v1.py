"""vLLM v1's scheduler (``vllm/v1/core/sched/scheduler.py``, v0.8 to v0.11 rules).

One step, as ``Scheduler.schedule`` forms it:

1. Running requests first, in admission order. Each wants
   ``num_tokens - num_computed_tokens`` tokens, capped by
   ``long_prefill_token_threshold`` (when > 0), the remaining token budget and
   ``max_model_len - 1 - num_computed_tokens``. A request that wants nothing (its
   previous step is still in flight) is skipped.
2. When its KV blocks cannot be allocated, the *last* running request is preempted
   by recompute (all its blocks freed, back to the head of the waiting queue) and
   the allocation is retried; a request that has to preempt itself stops the loop.
3. Only if nothing was preempted this step, waiting requests are admitted FCFS while
   the budget lasts and fewer than ``max_num_seqs`` run. A new admission first looks
   up the prefix cache; it is chunked to the budget when chunked prefill is on (and
   must fit whole otherwise). Admission stops at the first request whose blocks
   cannot be allocated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs
from frontier.batch import Batch
from frontier.config import ReplicaSchedulerConfig
from frontier.plugins import ReplicaContext, ReplicaScheduler
from frontier.request import Request

__all__ = ["VllmV1Config", "VllmV1Scheduler", "engine_default_limits"]

_GIB = 1 << 30


def _optional_positive(instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class VllmV1Config(ReplicaSchedulerConfig):
    """Knobs of the vLLM v1 scheduler, with vLLM's names and defaults.

    Attributes:
        max_num_batched_tokens: Token budget of one step; by GPU when unset (see
            :func:`engine_default_limits`).
        max_num_seqs: Most requests running at once; by GPU when unset.
        enable_chunked_prefill: Split prompts across steps to fit the budget.
        long_prefill_token_threshold: Cap on one request's tokens per step; 0 is
            no cap.
    """

    type: str = "vllm_v1"
    max_num_batched_tokens: int | None = attrs.field(default=None, validator=_optional_positive)
    max_num_seqs: int | None = attrs.field(default=None, validator=_optional_positive)
    enable_chunked_prefill: bool = True
    long_prefill_token_threshold: int = 0


def engine_default_limits(device_name: str, memory_gib: float) -> tuple[int, int]:
    """vLLM's serving defaults ``(max_num_batched_tokens, max_num_seqs)`` by GPU.

    ``EngineArgs._set_default_args`` (v0.8+, OpenAI server usage context): GPUs with
    at least 70 GiB whose name does not contain "a100" get (8192, 1024); all
    others (2048, 256).
    """
    if memory_gib >= 70 and "a100" not in device_name.lower():
        return 8192, 1024
    return 2048, 256


class VllmV1Scheduler(ReplicaScheduler):
    """vLLM v1: running first, chunked prefill, recompute preemption, FCFS admission."""

    def __init__(self, config: VllmV1Config, context: ReplicaContext) -> None:
        super().__init__(config, context)
        # vLLM: without chunked prefill the budget must hold a whole prompt.
        self.max_num_batched_tokens, self.max_num_seqs = self.planning_limits(
            config, context.execution, context.max_model_len
        )
        self.chunked_prefill = config.enable_chunked_prefill
        self.long_prefill_threshold = config.long_prefill_token_threshold
        self.max_model_len = context.max_model_len
        self.block_manager = context.block_manager
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []

    @classmethod
    def planning_limits(
        cls, config: VllmV1Config, execution: Any, max_model_len: int
    ) -> tuple[int, int]:
        """The step's token budget and ``max_num_seqs`` after engine defaults."""
        device = execution.device
        tokens, seqs = engine_default_limits(device.name, device.memory_gib)
        tokens = config.max_num_batched_tokens or tokens
        if not config.enable_chunked_prefill and config.max_num_batched_tokens is None:
            tokens = max(max_model_len, tokens)
        return tokens, config.max_num_seqs or seqs

    @property
    def num_waiting(self) -> int:
        """Requests not yet admitted (or preempted back)."""
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        """Requests holding KV blocks."""
        return len(self.running)

    def add_request(self, request: Request, now: float) -> None:
        """Append to the waiting queue (FCFS)."""
        self.waiting.append(request)

    def schedule(self, now: float) -> Batch | None:
        """Form one step by the rules in the module docstring."""
        batch = Batch()
        budget = self.max_num_batched_tokens
        threshold = self.long_prefill_threshold
        blocks = self.block_manager
        running = self.running
        preempted = False

        index = 0
        while index < len(running) and budget > 0:
            request = running[index]
            want = request.num_tokens - request.num_computed_tokens
            if 0 < threshold < want:
                want = threshold
            want = min(want, budget, self.max_model_len - 1 - request.num_computed_tokens)
            if want <= 0:
                index += 1
                continue
            while not blocks.allocate(request, want):
                victim = running.pop()
                blocks.free(victim)
                victim.preempt()
                self.waiting.appendleft(victim)
                preempted = True
                if victim is request:
                    break
            else:
                batch.add(request, want)
                budget -= want
                index += 1
                continue
            break

        if not preempted:
            self._admit(batch, budget)
        return batch if batch.requests else None

    def _admit(self, batch: Batch, budget: int) -> None:
        blocks = self.block_manager
        threshold = self.long_prefill_threshold
        waiting = self.waiting
        while waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            request = waiting[0]
            cached = blocks.find_cached_prefix(request) if request.num_computed_tokens == 0 else []
            num_cached = len(cached) * blocks.block_size
            want = request.num_tokens - request.num_computed_tokens - num_cached
            if 0 < threshold < want:
                want = threshold
            if not self.chunked_prefill and want > budget:
                break
            want = min(want, budget)
            previous = request.num_computed_tokens
            request.num_computed_tokens = previous + num_cached
            if not blocks.allocate(request, want, cached):
                request.num_computed_tokens = previous
                break
            if previous == 0:
                blocks.record_lookup(request, num_cached)
                request.num_cached_tokens = max(request.num_cached_tokens, num_cached)
            waiting.popleft()
            self.running.append(request)
            batch.add(request, want)
            budget -= want

    def on_batch_end(self, batch: Batch, finished: Sequence[Request], now: float) -> None:
        """Drop finished requests from the running list."""
        if finished:
            done = {id(request) for request in finished}
            self.running = [r for r in self.running if id(r) not in done]

    def describe(self) -> dict[str, Any]:
        """Effective limits after engine defaults."""
        return {
            "type": self.config.type,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "max_num_seqs": self.max_num_seqs,
            "enable_chunked_prefill": self.chunked_prefill,
            "long_prefill_token_threshold": self.long_prefill_threshold,
        }
