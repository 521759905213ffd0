"""SGLang's ``PrefillAdder``: the token budgets that decide one prefill batch."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from frontier.request import Request

from frontier_schedulers.radix_cache import RadixNode

if TYPE_CHECKING:
    from frontier_schedulers.sglang.scheduler import SglangScheduler

__all__ = ["AddResult", "PrefillAdder"]


class AddResult(enum.Enum):
    """What adding one request did to the batch (SGLang's ``AddReqResult``)."""

    CONTINUE = 0
    NO_TOKEN = 1
    OTHER = 2


class PrefillAdder:
    """SGLang's ``PrefillAdder``: the token budgets of one prefill batch.

    It also checks, in blocks, that everything it adds can be allocated: at page
    size 1 the token budgets already ensure it; with larger blocks rounding could
    otherwise overrun the cache.
    """

    def __init__(self, scheduler: SglangScheduler, mixed_decodes: int) -> None:
        self.s = scheduler
        config = scheduler.config
        self.chosen: list[tuple[Request, int, list[RadixNode]]] = []
        self.new_chunked: Request | None = None
        self.blocks = 0
        self.rem_input = config.max_prefill_tokens - mixed_decodes
        chunk = scheduler.chunked_prefill_size
        self.rem_chunk = None if chunk is None else chunk - mixed_decodes
        self.total_offset = float(mixed_decodes)
        self.cur_offset = mixed_decodes
        ratio = scheduler.new_token_ratio
        for request in scheduler.running:
            left = scheduler.max_new_tokens(request) - request.num_generated
            self.total_offset += min(left, scheduler.clip) * ratio
        self.decode_blocks = 0
        if mixed_decodes:
            bs = scheduler.block_size
            self.decode_blocks = sum(
                1
                for r in scheduler.running
                if r.num_tokens > r.num_computed_tokens
                and r.num_computed_tokens % bs == 0
            )
        self.blocks = self.decode_blocks
        self.chunk_pending = False

    def _available_tokens(self) -> int:
        s = self.s
        return (s.block_manager.num_free_blocks + s._evictable()) * s.block_size

    def rem_total(self) -> float:
        return self._available_tokens() - self.total_offset

    def cur_rem(self) -> int:
        return self._available_tokens() - self.cur_offset

    def _account(self, tokens: int, future: int) -> None:
        self.total_offset += tokens + future
        self.cur_offset += tokens
        self.rem_input -= tokens
        if self.rem_chunk is not None:
            self.rem_chunk -= tokens

    def state(self) -> AddResult:
        if self.rem_total() <= 0 or self.cur_rem() <= 0:
            return AddResult.NO_TOKEN
        if self.rem_input <= 0 or (self.rem_chunk is not None and self.rem_chunk <= 0):
            return AddResult.OTHER
        return AddResult.CONTINUE

    def _blocks_fit(self, blocks: int) -> bool:
        s = self.s
        return self.blocks + blocks <= s.block_manager.num_free_blocks + s._evictable()

    def add_chunked(self, request: Request) -> Request | None:
        """The next chunk of the chunked request; returns it while more remain."""
        extend = request.num_tokens - request.num_computed_tokens
        truncated = extend > self.rem_chunk
        extend = min(extend, self.rem_chunk)
        blocks = self.s._blocks_to_add(request, extend) if extend > 0 else 0
        if extend <= 0 or not self._blocks_fit(blocks):
            # XXX: SGLang has no rule for a chunk budget used up by mixed decodes
            # or a cache too full for the chunk; here the chunk waits a step.
            self.chunk_pending = True
            return request
        self.chosen.append((request, extend, []))
        self.blocks += blocks
        future = 0 if truncated else self.s.future_tokens(request)
        self._account(extend, future)
        self.chunk_pending = truncated
        return request if truncated else None

    def add_one(self, request: Request, nodes: list[RadixNode]) -> AddResult:
        """SGLang's ``add_one_req`` for a waiting request with cached ``nodes``."""
        s = self.s
        bs = s.block_size
        extend = request.num_tokens - len(nodes) * bs
        future = s.future_tokens(request)
        total = extend + future
        input_tokens = -(-extend // bs) * bs
        if total >= self.rem_total():
            return AddResult.NO_TOKEN
        if input_tokens > self.rem_input and self.chosen:
            return AddResult.OTHER

        s.lock(nodes)
        if total > self.rem_total():
            s.unlock(nodes)
            return AddResult.NO_TOKEN
        if self.rem_chunk is None or input_tokens <= self.rem_chunk:
            tokens, counted, reserve = extend, input_tokens, future
        else:
            # Chunk it, keeping one page of the chunk budget free (SGLang's rule).
            tokens = min(self.rem_chunk - bs + 1, extend)
            counted, reserve = tokens, (future if tokens == extend else 0)
            if tokens <= 0 or self.chunk_pending:
                s.unlock(nodes)
                return AddResult.OTHER
        blocks = -(-tokens // bs)
        if not self._blocks_fit(blocks):
            s.unlock(nodes)
            return AddResult.NO_TOKEN
        self.chosen.append((request, tokens, nodes))
        self.blocks += blocks
        if tokens < extend:
            self.new_chunked = request
            self.chunk_pending = True
        self._account(counted, reserve)
        return self.state()
