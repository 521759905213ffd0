"""Sarathi-Serve's stall-free batching (Agrawal et al., OSDI 2024).

Rules of ``sarathi/core/scheduler/sarathi_scheduler.py`` in microsoft/sarathi-serve
(static chunk size), with its vLLM-style block manager:

1. Decodes first, in arrival order (the running list is sorted by arrival every
   step). Each needs a slot for its next token; while no
   KV block at all is free (Sarathi checks for any free block, not whether this
   request needs one), the *last* running request is preempted by recompute
   (blocks freed, back to the head of the waiting queue), or the request itself
   when no other is left. Every decode counts one token against ``chunk_size``.
2. Then ongoing partial prefills, in order, each taking
   ``min(prompt left, chunk_size - tokens so far)``. Their blocks were reserved
   at admission, so they need none now.
3. Then new admissions FCFS: a request is admitted when the blocks of its whole
   prompt (plus any tokens generated before a preemption) leave
   ``watermark_blocks = int(watermark * num_blocks)`` free, fewer than
   ``max_num_seqs`` run, and at least one token of the chunk budget is left; its
   first chunk is ``min(prompt, chunk_size - tokens so far)``. The first request
   that fails ends admission.

Departure from the engine: a request whose prompt could never pass the
watermark test (``num_blocks - required < watermark_blocks``) is rejected; the
engine would keep it at the head of its queue and stall every request behind it.
One that fails it only after a recompute preemption (its generated tokens count) is
``aborted``, keeping the tokens it produced.
"""

from __future__ import annotations

from typing import Any

import attrs
from frontier.batch import Batch
from frontier.config import positive
from frontier.plugins import ExecutionContext, ReplicaContext
from frontier.request import Request

from frontier_schedulers.base import GuardedConfig, QueueScheduler, fraction_below_one

__all__ = ["SarathiConfig", "SarathiScheduler"]


@attrs.frozen(kw_only=True)
class SarathiConfig(GuardedConfig):
    """Knobs of the Sarathi-Serve scheduler, with its names and defaults.

    Attributes:
        chunk_size: Token budget of one step (decodes and prefill chunks).
        max_num_seqs: Most requests running at once.
        watermark: Fraction of the KV blocks an admission must leave free.
    """

    type: str = "sarathi"
    chunk_size: int = attrs.field(default=512, validator=positive)
    max_num_seqs: int = attrs.field(default=128, validator=positive)
    watermark: float = attrs.field(default=0.01, validator=fraction_below_one)


class SarathiScheduler(QueueScheduler):
    """Sarathi-Serve (OSDI 2024): decodes, then partial prefills, then admissions,
    in one token budget (rules in the module docstring)."""

    decode_window_min_free_blocks = 1
    """Sarathi preempts whenever no block is free, so a window keeps one."""

    def __init__(self, config: SarathiConfig, context: ReplicaContext) -> None:
        super().__init__(config, context)
        self.chunk_size = config.chunk_size
        self.max_num_seqs = config.max_num_seqs
        self.watermark_blocks = int(config.watermark * self.block_manager.num_blocks)
        self._reserved: dict[int, int] = {}

    @classmethod
    def planning_limits(
        cls, config: SarathiConfig, execution: ExecutionContext, max_model_len: int
    ) -> tuple[int, int]:
        """``(chunk_size, max_num_seqs)``: Sarathi never runs more tokens a step."""
        return config.chunk_size, config.max_num_seqs

    def schedule(self, now: float) -> Batch | None:
        """Form one step by the rules in the module docstring."""
        batch = Batch()
        blocks = self.block_manager
        tokens = 0
        preempted = False

        # 1. Decodes, in arrival order (Sarathi's FCFS policy sorts the running
        # list every step); partial prefills are set aside for step 2.
        remaining = sorted(self.running, key=lambda r: (r.arrived_at, r.request_id))
        kept: list[Request] = []
        prefills: list[Request] = []
        while remaining:
            request = remaining.pop(0)
            want = request.num_tokens - request.num_computed_tokens
            if want <= 0 or request.request_id in self.in_flight:
                kept.append(request)  # Sarathi skips requests still executing
                continue
            if request.num_computed_tokens < self._reserved[request.request_id]:
                prefills.append(request)
                continue
            while blocks.num_free_blocks == 0:
                victim = remaining.pop() if remaining else request
                preempted = True
                self.preempt(victim)
                if victim is request:
                    break
            else:
                blocks.allocate(request, want)
                kept.append(request)
                batch.add(request, want)
                tokens += want

        # 2. Ongoing prefills, whose blocks are reserved.
        for request in prefills:
            chunk = min(
                self._reserved[request.request_id] - request.num_computed_tokens,
                self.chunk_size - tokens,
            )
            kept.append(request)
            if chunk > 0:
                batch.add(request, chunk)
                tokens += chunk
        self.running = kept

        # 3. Admissions that reserve the whole prompt's blocks.
        waiting = self.waiting
        while waiting:
            request = waiting[0]
            if request.request_id in self.in_flight:
                break  # preempted while its last step is still executing
            required = blocks.blocks_for_tokens(request.num_tokens)
            if blocks.num_blocks - required < self.watermark_blocks:
                waiting.popleft()
                self.reject(request, self.never_fits(request))
                continue
            if blocks.num_free_blocks - required < self.watermark_blocks:
                break
            if len(self.running) >= self.max_num_seqs:
                break
            chunk = min(request.num_tokens, self.chunk_size - tokens)
            if chunk <= 0:
                break
            waiting.popleft()
            blocks.allocate(request, request.num_tokens)
            self._reserved[request.request_id] = request.num_tokens
            self.running.append(request)
            batch.add(request, chunk)
            tokens += chunk
        # Only decodes, every running request among them, no preemption: the
        # admission test failed on the watermark, max_num_seqs or the budget,
        # none of which decoding can undo.
        self._repeatable = (
            not preempted
            and len(batch.requests) == len(self.running)
            and batch.num_decodes == len(batch.requests)
        )
        return self.launch(batch)

    def release(self, request: Request) -> None:
        """Free the request's blocks and forget its reservation."""
        self.block_manager.free(request)
        self._reserved.pop(request.request_id, None)

    def on_batch_end(self, batch: Batch, finished, now: float) -> None:
        """Drop finished requests and their reservations."""
        for request in finished:
            self._reserved.pop(request.request_id, None)
        super().on_batch_end(batch, finished, now)

    def expected_blocks(self, request: Request) -> int:
        """The reserved prompt's blocks, or more once decoding has grown past it."""
        tokens = max(self._reserved[request.request_id], request.num_computed_tokens)
        return self.block_manager.blocks_for_tokens(tokens)

    def describe(self) -> dict[str, Any]:
        """The knobs and the watermark in blocks."""
        return {**super().describe(), "watermark_blocks": self.watermark_blocks}
