"""Paged KV-cache blocks, shared by every replica scheduler.

The rules follow vLLM v1's ``KVCacheManager`` and ``BlockPool``:

- A request holding ``n`` tokens of KV needs ``ceil(n / block_size)`` blocks; a step
  that computes ``k`` more tokens allocates only the blocks that ``n + k`` needs
  beyond those it holds, so a chunk that fills a partly used block allocates none.
- Allocation fails, changing nothing, when fewer blocks are free than needed.
- Freeing a request returns its blocks to the tail of the free queue, last block
  first, so the tail of a sequence is evicted before its prefix.

Without prefix caching only block *counts* matter, so :class:`KVBlockManager` keeps
counters. :class:`PrefixCachingBlockManager` adds block identity: a hash per full
prompt block, reference counts, and an LRU free queue whose cached blocks stay
reusable until they are evicted.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable

from frontier.request import Request

__all__ = [
    "KVBlockManager",
    "PreemptionCachingBlockManager",
    "PrefixCacheStats",
    "PrefixCachingBlockManager",
]


class PrefixCacheStats:
    """Prefix-cache lookups, in tokens, kept apart for first attempts and all.

    A request looks up the cache when it is admitted; after a preemption it looks
    up again. ``first_*`` counts only the first admission of each request, the
    figure to compare with a real engine's hit rate; ``all_*`` counts every one.
    """

    __slots__ = (
        "all_hit_tokens",
        "all_query_tokens",
        "first_hit_tokens",
        "first_query_tokens",
    )

    def __init__(self) -> None:
        self.first_query_tokens = 0
        self.first_hit_tokens = 0
        self.all_query_tokens = 0
        self.all_hit_tokens = 0

    def record(self, query_tokens: int, hit_tokens: int, first_attempt: bool) -> None:
        """Count one lookup of ``query_tokens`` tokens that hit ``hit_tokens``."""
        self.all_query_tokens += query_tokens
        self.all_hit_tokens += hit_tokens
        if first_attempt:
            self.first_query_tokens += query_tokens
            self.first_hit_tokens += hit_tokens

    def as_dict(self) -> dict[str, float]:
        """The counters and both hit rates (hits / queries, 0 when no queries)."""
        return {
            "first_attempt_query_tokens": self.first_query_tokens,
            "first_attempt_hit_tokens": self.first_hit_tokens,
            "first_attempt_hit_rate": _ratio(
                self.first_hit_tokens, self.first_query_tokens
            ),
            "all_attempts_query_tokens": self.all_query_tokens,
            "all_attempts_hit_tokens": self.all_hit_tokens,
            "all_attempts_hit_rate": _ratio(self.all_hit_tokens, self.all_query_tokens),
        }


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


class KVBlockManager:
    """Block accounting of one replica's KV cache, without prefix caching.

    Args:
        num_blocks: Blocks in the cache (from the memory planner).
        block_size: Tokens per block.
    """

    enable_prefix_caching = False

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks <= 0:
            raise ValueError(f"num_blocks must be positive, got {num_blocks}")
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._num_free = num_blocks
        self._num_taken = 0
        self.prefix_stats = PrefixCacheStats()

    @property
    def num_free_blocks(self) -> int:
        """Blocks that an allocation may take now (evictable cached ones included)."""
        return self._num_free

    @property
    def num_used_blocks(self) -> int:
        """Blocks held by at least one request."""
        return self.num_blocks - self._num_free

    def blocks_for_tokens(self, num_tokens: int) -> int:
        """Blocks that ``num_tokens`` tokens of KV occupy: ``ceil(n / block_size)``."""
        return -(-num_tokens // self.block_size)

    def blocks_needed(self, request: Request, num_new_tokens: int) -> int:
        """Blocks ``request`` must add to compute ``num_new_tokens`` more tokens."""
        total = request.num_computed_tokens + num_new_tokens
        return max(0, -(-total // self.block_size) - request.num_blocks)

    def can_allocate(
        self,
        request: Request,
        num_new_tokens: int,
        cached_blocks: list[int] | None = None,
    ) -> bool:
        """Whether :meth:`allocate` with the same arguments would succeed now."""
        return self.blocks_needed(request, num_new_tokens) <= self._num_free

    def take_blocks(self, num_blocks: int) -> bool:
        """Hold ``num_blocks`` blocks that belong to no request.

        For a scheduler that keeps its own cache structure (SGLang's radix tree)
        and only needs the core to count capacity. Fails, changing nothing, when
        fewer blocks are free.
        """
        if num_blocks > self._num_free:
            return False
        self._num_free -= num_blocks
        self._num_taken += num_blocks
        return True

    def return_blocks(self, num_blocks: int) -> None:
        """Give back ``num_blocks`` blocks held through :meth:`take_blocks`."""
        if not 0 <= num_blocks <= self._num_taken:
            raise ValueError(
                f"returning {num_blocks} blocks but {self._num_taken} are taken"
            )
        self._num_free += num_blocks
        self._num_taken -= num_blocks

    def find_cached_prefix(self, request: Request) -> list[int]:
        """Cached blocks that cover the start of ``request``'s tokens (none here)."""
        return []

    def allocate(
        self,
        request: Request,
        num_new_tokens: int,
        cached_blocks: list[int] | None = None,
    ) -> bool:
        """Give ``request`` the blocks to compute ``num_new_tokens`` more tokens.

        Args:
            request: The request; its ``num_computed_tokens`` must already count
                any prefix-cache hit in ``cached_blocks``.
            num_new_tokens: Tokens it computes this step.
            cached_blocks: Blocks from :meth:`find_cached_prefix` to take first.

        Returns:
            False, changing nothing, when too few blocks are free.
        """
        needed = self.blocks_needed(request, num_new_tokens)
        if needed > self._num_free:
            return False
        self._num_free -= needed
        request.num_blocks += needed
        return True

    def free(self, request: Request) -> None:
        """Return all of ``request``'s blocks (completion or preemption)."""
        self._num_free += request.num_blocks
        request.num_blocks = 0

    @staticmethod
    def first_decode_allocation(
        computed: int, held_blocks: int, block_size: int
    ) -> int:
        """Step (from 1) at which a decoding request first needs one more block.

        Step ``j`` of a run of one-token steps brings the request to
        ``computed + j`` tokens, which needs a new block once it passes
        ``held_blocks * block_size``: ``j = held_blocks * block_size - computed + 1``;
        after that, every ``block_size`` steps.
        """
        return held_blocks * block_size - computed + 1

    def extend_decodes(
        self, requests: list[Request], computed: list[int], steps: int
    ) -> None:
        """Give decoding requests the blocks for ``steps`` more one-token steps.

        ``computed[i]`` is request ``i``'s token count before the step it already
        holds blocks for; afterwards it holds blocks for ``computed + 1 + steps``
        tokens. The caller has checked that enough blocks are free.
        """
        self._num_free -= self._grow_for_decodes(requests, computed, steps)

    def _grow_for_decodes(
        self, requests: list[Request], computed: list[int], steps: int
    ) -> int:
        """Raise each request's block count for ``steps`` more one-token steps;
        return how many blocks that takes."""
        size = self.block_size
        taken = 0
        for request, count in zip(requests, computed, strict=True):
            target = -(-(count + 1 + steps) // size)
            if target > request.num_blocks:
                taken += target - request.num_blocks
                request.num_blocks = target
        return taken

    def record_lookup(self, request: Request, hit_tokens: int) -> None:
        """Count a prefix-cache lookup of ``request`` (no-op without caching)."""


class PrefixCachingBlockManager(KVBlockManager):
    """Block accounting with vLLM v1's automatic prefix caching.

    A full prompt block is known by ``request.block_hashes[i]`` (a hash chained
    over its parent block, so equal hashes mean equal prefixes). Blocks whose
    reference count drops to zero stay in the cache at the tail of an LRU free
    queue; allocation takes from the head and evicts whatever hash that block held.
    A lookup stops at the first miss and never covers the last prompt token, which
    the engine always recomputes to sample from.

    vLLM hashes every full block of a request, generated tokens included
    (``Request.append_output_token_ids`` extends its block hashes), so a request
    preempted by recompute finds its own blocks again when it is re-admitted, as
    far as they were not evicted meanwhile. The blocks past the workload's prompt
    hashes (all of them when the workload gives none) hold tokens no other
    request shares; they are known here by the private key ``(request_id,
    index)``, registered when a preemption frees them (only their owner can hit
    them, and only after that).
    """

    enable_prefix_caching = True

    def __init__(self, num_blocks: int, block_size: int) -> None:
        super().__init__(num_blocks, block_size)
        self._ref_count = [0] * num_blocks
        self._block_hash: list[Hashable | None] = [None] * num_blocks
        # hash -> blocks holding it, oldest first: as in vLLM v1's BlockPool, a
        # block computed again while an equal one is cached is cached too, so the
        # prefix survives the eviction of either copy.
        self._cached: dict[Hashable, dict[int, None]] = {}
        self._free_queue: OrderedDict[int, None] = OrderedDict.fromkeys(
            range(num_blocks)
        )
        self._request_blocks: dict[int, list[int]] = {}
        self._num_hashed: dict[int, int] = {}
        self._anonymous: list[int] = []

    def find_cached_prefix(self, request: Request) -> list[int]:
        """Blocks of the longest cached run of ``request``'s prompt blocks.

        Only blocks inside the first ``num_tokens - 1`` tokens count, so at least
        one token is computed (vLLM v1 ``get_computed_blocks``).
        """
        hashes = request.block_hashes or ()
        limit = (request.num_tokens - 1) // self.block_size
        shared = min(len(hashes), limit)
        blocks = []
        cached = self._cached
        for index in range(shared):
            holders = cached.get(hashes[index])
            if not holders:
                return blocks
            blocks.append(next(iter(holders)))
        if request.num_preemptions:  # its own blocks, freed by the preemption
            rid = request.request_id
            for index in range(shared, limit):
                holders = cached.get((rid, index))
                if not holders:
                    break
                blocks.append(next(iter(holders)))
        return blocks

    def can_allocate(
        self,
        request: Request,
        num_new_tokens: int,
        cached_blocks: list[int] | None = None,
    ) -> bool:
        """Whether :meth:`allocate` with the same arguments would succeed now."""
        return self._blocks_to_allocate(request, num_new_tokens, cached_blocks or [])[1]

    def take_blocks(self, num_blocks: int) -> bool:
        """Hold ``num_blocks`` blocks outside any request, evicting LRU cached ones."""
        if num_blocks > self._num_free:
            return False
        for _ in range(num_blocks):
            self._anonymous.append(self._pop_free())
        self._num_taken += num_blocks
        return True

    def return_blocks(self, num_blocks: int) -> None:
        """Give back ``num_blocks`` blocks held through :meth:`take_blocks`."""
        if not 0 <= num_blocks <= self._num_taken:
            raise ValueError(
                f"returning {num_blocks} blocks but {self._num_taken} are taken"
            )
        for _ in range(num_blocks):
            block = self._anonymous.pop()
            self._ref_count[block] = 0
            self._free_queue[block] = None
            self._num_free += 1
        self._num_taken -= num_blocks

    def _blocks_to_allocate(
        self, request: Request, num_new_tokens: int, cached_blocks: list[int]
    ) -> tuple[int, bool]:
        held = self._request_blocks.get(request.request_id)
        num_held = len(held) if held else 0
        total_tokens = request.num_computed_tokens + num_new_tokens
        needed = max(
            0, -(-total_tokens // self.block_size) - num_held - len(cached_blocks)
        )
        evictable_hits = sum(1 for b in cached_blocks if self._ref_count[b] == 0)
        return needed, needed <= self._num_free - evictable_hits

    def _pop_free(self) -> int:
        block, _ = self._free_queue.popitem(last=False)
        old_hash = self._block_hash[block]
        if old_hash is not None:
            holders = self._cached[old_hash]
            del holders[block]
            if not holders:
                del self._cached[old_hash]
            self._block_hash[block] = None
        self._ref_count[block] = 1
        self._num_free -= 1
        return block

    def allocate(
        self,
        request: Request,
        num_new_tokens: int,
        cached_blocks: list[int] | None = None,
    ) -> bool:
        """Take ``cached_blocks`` and enough free blocks for ``num_new_tokens``.

        Cached blocks that sit in the free queue count against the free blocks,
        as vLLM v1 ``allocate_slots`` counts them, so the check is exact.
        """
        cached_blocks = cached_blocks or []
        needed, fits = self._blocks_to_allocate(request, num_new_tokens, cached_blocks)
        if not fits:
            return False

        held = self._request_blocks.get(request.request_id)
        if held is None:
            held = self._request_blocks[request.request_id] = []
        for block in cached_blocks:
            self._take(block)
            held.append(block)
        for _ in range(needed):
            held.append(self._pop_free())
        total_tokens = request.num_computed_tokens + num_new_tokens
        request.num_blocks = len(held)
        self._cache_full_blocks(request, held, total_tokens)
        return True

    def free(self, request: Request) -> None:
        """Release ``request``'s blocks, last block first, to the free queue tail.

        A request freed before it completed (a recompute preemption) first
        registers its full computed blocks past the prompt hashes under their
        private keys, so that it can find them again.
        """
        held = self._request_blocks.pop(request.request_id, None)
        self._num_hashed.pop(request.request_id, None)
        request.num_blocks = 0
        if not held:
            return
        if request.completed_at != request.completed_at:  # NaN: it will run again
            self._cache_private_blocks(request, held)
        for block in reversed(held):
            self._ref_count[block] -= 1
            if self._ref_count[block] == 0:
                self._free_queue[block] = None
                self._num_free += 1

    def extend_decodes(
        self, requests: list[Request], computed: list[int], steps: int
    ) -> None:
        """Allocate decode blocks one at a time, in step then batch order.

        The order matters here: each allocation takes the head of the LRU free
        queue and may evict a cached block, exactly as one step at a time would.
        """
        size = self.block_size
        crossings = []
        for index, count in enumerate(computed):
            held = requests[index].num_blocks
            first = self.first_decode_allocation(count, held, size)
            for step in range(first, steps + 2, size):
                crossings.append((step, index))
        crossings.sort()
        for step, index in crossings:
            request = requests[index]
            saved = request.num_computed_tokens
            request.num_computed_tokens = computed[index] + step - 1
            allocated = self.allocate(request, 1)
            request.num_computed_tokens = saved
            if not allocated:  # pragma: no cover - the caller checked the budget
                raise RuntimeError("decode window allocation failed")

    def record_lookup(self, request: Request, hit_tokens: int) -> None:
        """Count a lookup of all of ``request``'s tokens that hit ``hit_tokens``."""
        self.prefix_stats.record(
            request.num_tokens, hit_tokens, request.num_preemptions == 0
        )

    def _take(self, block: int) -> None:
        if self._ref_count[block] == 0:
            del self._free_queue[block]
            self._num_free -= 1
        self._ref_count[block] += 1

    def _cache_private_blocks(self, request: Request, held: list[int]) -> None:
        # Full blocks whose tokens are all known (prompt and generated; an output
        # placeholder of asynchronous scheduling is not) and scheduled.
        known = request.num_prompt_tokens + request.num_generated
        num_full = min(request.num_computed_tokens, known) // self.block_size
        start = len(request.block_hashes or ())
        rid = request.request_id
        block_hash = self._block_hash
        cached = self._cached
        for index in range(start, min(num_full, len(held))):
            block = held[index]
            if block_hash[block] is None:
                key = (rid, index)
                cached.setdefault(key, {})[block] = None
                block_hash[block] = key

    def _cache_full_blocks(
        self, request: Request, held: list[int], total_tokens: int
    ) -> None:
        # vLLM v1 registers a block's hash as soon as the step that fills it is
        # scheduled. Only prompt blocks carry shared hashes here; the others get
        # private keys when a preemption frees them (_cache_private_blocks).
        hashes = request.block_hashes
        if not hashes:
            return
        num_full = min(len(hashes), total_tokens // self.block_size, len(held))
        start = self._num_hashed.get(request.request_id, 0)
        if num_full <= start:
            return
        self._num_hashed[request.request_id] = num_full
        block_hash = self._block_hash
        cached = self._cached
        for index in range(start, num_full):
            block = held[index]
            if block_hash[block] is None:
                digest = hashes[index]
                cached.setdefault(digest, {})[block] = None
                block_hash[block] = digest


class PreemptionCachingBlockManager(KVBlockManager):
    """vLLM v1's prefix caching for a workload without block hashes: counters,
    plus the order of the free queue, so that a preempted request finds its own
    blocks again.

    Without the prompts' tokens no two requests are known to share a block, so
    the only hits are a recompute-preempted request's own full blocks (prompt and
    generated tokens; vLLM hashes both), still cached when it is re-admitted.
    :class:`PrefixCachingBlockManager` gives the same answers block by block;
    this one keeps the free queue as runs ``[owner, count]``, head first: blocks
    that nobody can hit (``owner`` ``None``: never used, freed by a completed
    request, or the partial blocks of a preempted one) and, per preempted
    request, the run of its full blocks, its last block nearest the head as
    vLLM's last-first freeing leaves them. Allocation consumes runs from the
    head, so a run is evicted from its owner's last block back, and what is left
    of it when the owner returns is its prefix hit. While no preempted request
    has blocks queued, every free block is alike and only counts are kept
    (``_queue`` is ``None``), so a run without preemptions costs what
    :class:`KVBlockManager` does.
    """

    enable_prefix_caching = True

    def __init__(self, num_blocks: int, block_size: int) -> None:
        super().__init__(num_blocks, block_size)
        self._queue: deque[list] | None = None  # None: all free blocks alike
        self._runs: dict[int, list] = {}  # owner's request id -> its run

    def _consume(self, count: int) -> None:
        """Take ``count`` blocks from the head of the free queue (evicting)."""
        queue = self._queue
        if queue is None or not count:
            return
        head = queue[0]
        if count < head[1]:  # the common case: inside the head run
            head[1] -= count
            return
        runs = self._runs
        while count:
            run = queue[0]
            take = count if count < run[1] else run[1]
            run[1] -= take
            count -= take
            if not run[1]:
                queue.popleft()
                if run[0] is not None:
                    del runs[run[0]]
        if not runs:
            self._queue = None  # what is left is alike

    def _append(self, owner: int | None, count: int) -> None:
        """Queue ``count`` freed blocks at the tail (the queue is tracked)."""
        if not count:
            return
        queue = self._queue
        if owner is None and queue and queue[-1][0] is None:
            queue[-1][1] += count
            return
        run = [owner, count]
        queue.append(run)
        if owner is not None:
            self._runs[owner] = run

    def find_cached_prefix(self, request: Request) -> list[int]:
        """Placeholders for the surviving prefix of ``request``'s own blocks, at
        most those inside its first ``num_tokens - 1`` tokens."""
        if not request.num_preemptions or self._queue is None:
            return []
        run = self._runs.get(request.request_id)
        if run is None:
            return []
        hit = min(run[1], (request.num_tokens - 1) // self.block_size)
        return list(range(hit))

    def can_allocate(
        self,
        request: Request,
        num_new_tokens: int,
        cached_blocks: list[int] | None = None,
    ) -> bool:
        """Whether :meth:`allocate` with the same arguments would succeed now."""
        hits = len(cached_blocks) if cached_blocks else 0
        needed = self.blocks_needed(request, num_new_tokens) - hits
        return needed <= self._num_free - hits

    def allocate(
        self,
        request: Request,
        num_new_tokens: int,
        cached_blocks: list[int] | None = None,
    ) -> bool:
        """Take the hit blocks out of the queue, then enough from its head."""
        total = request.num_computed_tokens + num_new_tokens
        needed = -(-total // self.block_size) - request.num_blocks
        if not cached_blocks:
            if needed <= 0:
                return True
            if needed > self._num_free:
                return False
            if self._queue is not None:
                self._consume(needed)
            self._num_free -= needed
            request.num_blocks += needed
            return True
        hits = len(cached_blocks)
        needed = max(0, needed - hits)
        if needed > self._num_free - hits:
            return False
        # The rest of the run stays queued where it is; nobody looks it up.
        run = self._runs.pop(request.request_id)
        run[0] = None
        run[1] -= hits
        self._num_free -= needed + hits
        request.num_blocks += needed + hits
        if self._runs:
            self._consume(needed)
        else:
            self._queue = None  # what is left is alike
        return True

    def free(self, request: Request) -> None:
        """Queue ``request``'s blocks: its full computed ones as its own run when
        it was preempted (it will look them up), else as blocks nobody hits."""
        count = request.num_blocks
        if not count:
            return
        self._num_free += count
        request.num_blocks = 0
        if request.completed_at == request.completed_at:  # completed: not NaN
            if self._queue is not None:
                self._append(None, count)
            return
        known = request.num_prompt_tokens + request.num_generated
        full = min(min(request.num_computed_tokens, known) // self.block_size, count)
        if self._queue is None:
            if not full:
                return
            # Start tracking: every block free before, and the partial ones
            # freed first (last-first), lead the new run.
            self._queue = deque([[None, self._num_free - full]])
        else:
            self._append(None, count - full)
        self._append(request.request_id, full)

    def take_blocks(self, num_blocks: int) -> bool:
        """Hold ``num_blocks`` blocks outside any request (from the queue's head)."""
        if not super().take_blocks(num_blocks):
            return False
        self._consume(num_blocks)
        return True

    def return_blocks(self, num_blocks: int) -> None:
        """Give back blocks held through :meth:`take_blocks`."""
        super().return_blocks(num_blocks)
        if self._queue is not None:
            self._append(None, num_blocks)

    def extend_decodes(
        self, requests: list[Request], computed: list[int], steps: int
    ) -> None:
        """Give decoding requests the blocks for ``steps`` more one-token steps,
        taken from the queue's head in one go (the order among them evicts the
        same blocks)."""
        taken = self._grow_for_decodes(requests, computed, steps)
        self._num_free -= taken
        self._consume(taken)

    def record_lookup(self, request: Request, hit_tokens: int) -> None:
        """Count a lookup of all of ``request``'s tokens that hit ``hit_tokens``."""
        self.prefix_stats.record(
            request.num_tokens, hit_tokens, request.num_preemptions == 0
        )
