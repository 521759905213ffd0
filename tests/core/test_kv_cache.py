"""KV blocks: ceil arithmetic, all-or-nothing allocation, and vLLM v1 prefix caching."""

from __future__ import annotations

import pytest
from frontier.kv_cache import KVBlockManager, PrefixCachingBlockManager
from frontier.request import Request


def _request(request_id: int, prompt: int, hashes=None) -> Request:
    return Request(request_id, 0.0, prompt, 8, tuple(hashes) if hashes else None)


def _step(manager, request: Request, num_new_tokens: int) -> bool:
    """Allocate a chunk and, as the replica does when the batch forms, count it."""
    ok = manager.allocate(request, num_new_tokens)
    if ok:
        request.num_computed_tokens += num_new_tokens
    return ok


def _admit(manager, request: Request) -> int:
    """Admit ``request`` as vLLM v1 does: take the cached prefix, allocate the rest.

    Returns the prefix-cache hit in tokens, or -1 when allocation failed.
    """
    cached = manager.find_cached_prefix(request)
    hit = len(cached) * manager.block_size
    request.num_computed_tokens += hit
    want = request.num_tokens - request.num_computed_tokens
    if not manager.allocate(request, want, cached):
        request.num_computed_tokens -= hit
        return -1
    request.num_computed_tokens += want
    return hit


# --------------------------------------------------------------- block counting


def test_blocks_for_tokens_is_a_ceiling():
    """n tokens occupy ceil(n / block_size) blocks."""
    manager = KVBlockManager(num_blocks=100, block_size=16)
    # 0 -> 0, 1 -> 1, 16 -> 1, 17 -> 2, 33 -> ceil(33/16) = 3
    assert [manager.blocks_for_tokens(n) for n in (0, 1, 16, 17, 33)] == [0, 1, 1, 2, 3]


def test_prefill_allocates_ceil_of_prompt_blocks():
    """A 20-token prefill with 16-token blocks takes ceil(20/16) = 2 blocks."""
    manager = KVBlockManager(num_blocks=10, block_size=16)
    request = _request(0, 20)
    assert _step(manager, request, 20)
    assert request.num_blocks == 2
    assert manager.num_used_blocks == 2
    assert manager.num_free_blocks == 8  # 10 - 2


def test_chunk_that_fills_the_partly_used_block_allocates_none():
    """20 tokens hold 2 blocks (4 of 16 slots used in the 2nd); 12 more fill it."""
    manager = KVBlockManager(num_blocks=10, block_size=16)
    request = _request(0, 40)
    _step(manager, request, 20)
    # 20 + 12 = 32 tokens -> ceil(32/16) = 2 blocks, already held: needs 0
    assert manager.blocks_needed(request, 12) == 0
    assert _step(manager, request, 12)
    assert manager.num_used_blocks == 2
    # one token more (33) crosses into a third block
    assert manager.blocks_needed(request, 1) == 1


def test_used_blocks_equal_sum_of_per_request_ceilings():
    """Used blocks are the sum over requests of ceil(tokens / block_size)."""
    manager = KVBlockManager(num_blocks=50, block_size=16)
    sizes = [20, 16, 33, 1, 47]
    for request_id, size in enumerate(sizes):
        request = _request(request_id, size)
        # grow each request in two chunks to check that chunking changes nothing
        first = size // 2
        assert _step(manager, request, first)
        assert _step(manager, request, size - first)
    # ceil: 20 -> 2, 16 -> 1, 33 -> 3, 1 -> 1, 47 -> 3; total 10
    assert manager.num_used_blocks == 10


def test_failed_allocation_changes_nothing():
    """Asking for more blocks than are free fails and leaves every count as it was."""
    manager = KVBlockManager(num_blocks=3, block_size=16)
    holder = _request(0, 32)
    assert _step(manager, holder, 32)  # 2 blocks, 1 free
    request = _request(1, 17)
    assert not manager.can_allocate(request, 17)  # needs ceil(17/16) = 2 > 1
    assert not manager.allocate(request, 17)
    assert request.num_blocks == 0
    assert manager.num_free_blocks == 1
    assert manager.num_used_blocks == 2


def test_free_returns_every_block():
    """Freeing a request returns all its blocks and zeroes its count."""
    manager = KVBlockManager(num_blocks=10, block_size=16)
    request = _request(0, 100)
    _step(manager, request, 100)  # ceil(100/16) = 7 blocks
    assert manager.num_free_blocks == 3
    manager.free(request)
    assert manager.num_free_blocks == 10
    assert request.num_blocks == 0


def test_block_manager_rejects_non_positive_sizes():
    """A cache of 0 blocks or 0-token blocks is refused."""
    with pytest.raises(ValueError, match="num_blocks"):
        KVBlockManager(num_blocks=0, block_size=16)
    with pytest.raises(ValueError, match="block_size"):
        KVBlockManager(num_blocks=10, block_size=0)


# --------------------------------------------------------------- prefix caching


def test_prefix_manager_counts_blocks_like_the_plain_one_without_hashes():
    """Without block hashes the prefix manager allocates ceil(n / block_size) too."""
    manager = PrefixCachingBlockManager(num_blocks=10, block_size=4)
    request = _request(0, 10)
    assert _admit(manager, request) == 0
    assert request.num_blocks == 3  # ceil(10/4)
    assert manager.num_free_blocks == 7


def test_second_request_hits_shared_full_blocks():
    """A request whose two full prompt blocks are cached reuses them."""
    manager = PrefixCachingBlockManager(num_blocks=8, block_size=4)
    first = _request(0, 10, hashes=(101, 102))  # 10 tokens: 2 full blocks + 2 tokens
    assert _admit(manager, first) == 0
    assert manager.num_used_blocks == 3  # ceil(10/4)

    second = _request(1, 10, hashes=(101, 102))
    # both full blocks hit: 2 x 4 = 8 tokens; 2 left to compute need
    # ceil(10/4) = 3 blocks - 2 cached = 1 new block
    assert _admit(manager, second) == 8
    assert second.num_blocks == 3
    assert manager.num_used_blocks == 4  # 3 + 1, the 2 shared counted once


def test_lookup_stops_at_first_miss():
    """Only the leading run of cached blocks counts; a later match after a miss
    does not."""
    manager = PrefixCachingBlockManager(num_blocks=8, block_size=4)
    _admit(manager, _request(0, 13, hashes=(1, 2, 3)))
    probe = _request(1, 13, hashes=(1, 99, 3))
    assert len(manager.find_cached_prefix(probe)) == 1


def test_last_prompt_token_is_never_covered_by_a_hit():
    """An 8-token prompt whose 2 blocks are cached hits only 1 block: the 8th token
    is recomputed to sample from."""
    manager = PrefixCachingBlockManager(num_blocks=8, block_size=4)
    _admit(manager, _request(0, 8, hashes=(7, 8)))
    again = _request(1, 8, hashes=(7, 8))
    # the hit may cover at most 8 - 1 = 7 tokens, i.e. floor(7/4) = 1 block
    assert len(manager.find_cached_prefix(again)) == 1
    assert _admit(manager, again) == 4
    assert again.num_blocks == 2  # 1 cached + 1 new for tokens 5..8


def test_blocks_are_cached_only_once_their_step_fills_them():
    """After a 6-token first chunk of a 10-token prompt only block 1 is cached."""
    manager = PrefixCachingBlockManager(num_blocks=8, block_size=4)
    first = _request(0, 10, hashes=(1, 2))
    assert _step(manager, first, 6)  # floor(6/4) = 1 full block
    probe = _request(1, 10, hashes=(1, 2))
    assert len(manager.find_cached_prefix(probe)) == 1
    assert _step(manager, first, 4)  # now 10 tokens: floor(10/4) = 2 full blocks
    assert len(manager.find_cached_prefix(probe)) == 2


def test_freed_blocks_stay_cached_until_evicted():
    """A finished request's blocks return to the free count yet still hit."""
    manager = PrefixCachingBlockManager(num_blocks=4, block_size=4)
    first = _request(0, 12, hashes=(1, 2, 3))
    _admit(manager, first)
    manager.free(first)
    assert manager.num_free_blocks == 4
    assert len(manager.find_cached_prefix(_request(1, 13, hashes=(1, 2, 3)))) == 3


def test_tail_blocks_are_evicted_before_prefix_blocks():
    """Freed last block first, a sequence loses its tail before its prefix."""
    manager = PrefixCachingBlockManager(num_blocks=4, block_size=4)
    first = _request(0, 16, hashes=(1, 2, 3, 4))  # takes blocks 0, 1, 2, 3
    _admit(manager, first)
    manager.free(first)  # free queue, head first: 3, 2, 1, 0
    other = _request(1, 4)
    assert _admit(manager, other) == 0  # takes one block: block 3, hash 4 evicted
    probe = _request(2, 17, hashes=(1, 2, 3, 4))  # may hit up to floor(16/4) = 4
    assert manager.find_cached_prefix(probe) == [0, 1, 2]


def test_least_recently_freed_blocks_are_evicted_first():
    """Of two cached requests, the one freed earlier loses its block first."""
    manager = PrefixCachingBlockManager(num_blocks=3, block_size=4)
    a = _request(0, 4, hashes=(10,))
    b = _request(1, 4, hashes=(20,))
    _admit(manager, a)  # block 0
    _admit(manager, b)  # block 1
    manager.free(b)  # queue: 2, 1 (b)
    manager.free(a)  # queue: 2, 1 (b), 0 (a)
    _admit(manager, _request(2, 8))  # takes 2 blocks: 2 and 1, evicting hash 20
    assert manager.find_cached_prefix(_request(3, 5, hashes=(20,))) == []
    assert manager.find_cached_prefix(_request(4, 5, hashes=(10,))) == [0]


def test_evictable_cached_hits_count_against_free_blocks():
    """Hits on cached free blocks use up free blocks, as vLLM v1 allocate_slots
    counts them: 2 evictable hits + 1 new block do not fit in 2 free blocks."""
    manager = PrefixCachingBlockManager(num_blocks=4, block_size=4)
    cached = _request(0, 8, hashes=(1, 2))
    _admit(manager, cached)  # blocks 0, 1
    manager.free(cached)  # queue: 2, 3, 1, 0 with 0 and 1 cached
    _admit(manager, _request(1, 8))  # takes blocks 2 and 3: 2 free, both cached

    request = _request(2, 12, hashes=(1, 2))
    assert len(manager.find_cached_prefix(request)) == 2  # floor(11/4) = 2 hits
    # needs ceil(12/4) = 3 blocks: 2 cached (both in the free queue) + 1 new,
    # so 2 + 1 = 3 free blocks are used up, more than the 2 there are
    assert _admit(manager, request) == -1
    # nothing changed: still 2 free, both still cached
    assert manager.num_free_blocks == 2
    assert request.num_blocks == 0
    assert len(manager.find_cached_prefix(request)) == 2


def test_evictable_hits_that_exactly_fit_are_allowed():
    """1 evictable hit + 1 new block fit exactly in 2 free blocks."""
    manager = PrefixCachingBlockManager(num_blocks=4, block_size=4)
    cached = _request(0, 8, hashes=(1, 2))
    _admit(manager, cached)
    manager.free(cached)
    _admit(manager, _request(1, 8))  # 2 free left: blocks 1 and 0, cached
    request = _request(2, 8, hashes=(1, 2))  # hit limited to floor(7/4) = 1 block
    # needs ceil(8/4) = 2 blocks: 1 cached + 1 new = 2 <= 2 free
    assert _admit(manager, request) == 4
    assert manager.num_free_blocks == 0


def test_hit_on_a_block_held_by_a_running_request_costs_no_free_block():
    """A cached block another request still holds is shared without a free block."""
    manager = PrefixCachingBlockManager(num_blocks=3, block_size=4)
    _admit(manager, _request(0, 8, hashes=(1, 2)))  # holds blocks 0, 1; 1 free
    request = _request(1, 8, hashes=(1, 2))
    # 1 hit (held, not evictable) + 1 new block: 1 <= 1 free
    assert _admit(manager, request) == 4
    assert manager.num_free_blocks == 0


def test_shared_block_returns_only_when_its_last_holder_frees_it():
    """Freeing one of two holders keeps the shared blocks in use."""
    manager = PrefixCachingBlockManager(num_blocks=8, block_size=4)
    first = _request(0, 10, hashes=(1, 2))
    second = _request(1, 10, hashes=(1, 2))
    _admit(manager, first)  # 3 blocks
    _admit(manager, second)  # 2 shared + 1 own
    assert manager.num_used_blocks == 4
    manager.free(first)  # only first's own third block comes back
    assert manager.num_used_blocks == 3
    manager.free(second)
    assert manager.num_used_blocks == 0
    assert second.num_blocks == 0


def test_prefix_stats_keep_first_attempts_apart_from_all():
    """Lookups after a preemption count in ``all_*`` but not in ``first_*``."""
    manager = PrefixCachingBlockManager(num_blocks=8, block_size=4)
    request = _request(0, 10)
    manager.record_lookup(request, 8)  # first: 8 of 10 tokens
    request.preempt()
    request.num_tokens = 10  # re-admitted with the same tokens
    manager.record_lookup(request, 4)  # a retry: 4 of 10
    stats = manager.prefix_stats.as_dict()
    assert stats["first_attempt_query_tokens"] == 10
    assert stats["first_attempt_hit_tokens"] == 8
    assert stats["first_attempt_hit_rate"] == pytest.approx(0.8)  # 8 / 10
    assert stats["all_attempts_query_tokens"] == 20  # 10 + 10
    assert stats["all_attempts_hit_tokens"] == 12  # 8 + 4
    assert stats["all_attempts_hit_rate"] == pytest.approx(0.6)  # 12 / 20


def test_prefix_stats_rates_are_zero_without_lookups():
    """No lookups give hit rates of 0, not a division by zero."""
    stats = KVBlockManager(num_blocks=1, block_size=16).prefix_stats.as_dict()
    assert stats["first_attempt_hit_rate"] == 0.0
    assert stats["all_attempts_hit_rate"] == 0.0


def test_plain_manager_records_no_lookups():
    """Without prefix caching a lookup is not counted."""
    manager = KVBlockManager(num_blocks=4, block_size=4)
    manager.record_lookup(_request(0, 10), 0)
    assert manager.prefix_stats.as_dict()["all_attempts_query_tokens"] == 0


def test_a_recomputed_duplicate_block_is_cached_too():
    """A block computed again while an equal one is cached is cached as well (vLLM
    v1 BlockPool keeps every copy), so evicting the first copy keeps the prefix."""
    manager = PrefixCachingBlockManager(num_blocks=6, block_size=4)
    first = _request(0, 8, hashes=(1, 2))
    _admit(manager, first)  # blocks 0, 1 hold hashes 1, 2
    second = _request(1, 8, hashes=(1, 2))
    # the hit stops at floor(7/4) = 1 block, so block 2 recomputes hash 2's tokens
    assert _admit(manager, second) == 4  # holds blocks 0 (shared) and 2
    manager.free(first)  # only block 1 reaches the free queue: 3, 4, 5, 1
    _admit(manager, _request(2, 16))  # takes 3, 4, 5, 1: block 1 (hash 2) evicted
    probe = _request(3, 9, hashes=(1, 2))  # may hit floor(8/4) = 2 blocks
    assert manager.find_cached_prefix(probe) == [0, 2]


def test_lookup_takes_the_oldest_copy_of_a_duplicated_block():
    """With two cached copies of one block a lookup returns the first cached."""
    manager = PrefixCachingBlockManager(num_blocks=6, block_size=4)
    _admit(manager, _request(0, 8, hashes=(1, 2)))  # blocks 0, 1
    _admit(manager, _request(1, 8, hashes=(1, 2)))  # shares 0, recomputes into 2
    assert manager.find_cached_prefix(_request(2, 9, hashes=(1, 2))) == [0, 1]


@pytest.mark.parametrize("manager_cls", [KVBlockManager, PrefixCachingBlockManager])
def test_taken_blocks_count_as_used_until_returned(manager_cls):
    """Blocks held outside requests (a scheduler's own cache) use capacity."""
    manager = manager_cls(num_blocks=10, block_size=4)
    assert manager.take_blocks(4)
    assert manager.num_free_blocks == 6  # 10 - 4
    assert not manager.take_blocks(7)  # more than the 6 free: nothing changes
    assert manager.num_free_blocks == 6
    manager.return_blocks(3)
    assert manager.num_free_blocks == 9  # 6 + 3


@pytest.mark.parametrize("manager_cls", [KVBlockManager, PrefixCachingBlockManager])
def test_returning_more_than_was_taken_raises(manager_cls):
    """Giving back blocks that were never taken is a bug in the caller."""
    manager = manager_cls(num_blocks=10, block_size=4)
    manager.take_blocks(2)
    with pytest.raises(ValueError, match="returning 3 blocks but 2 are taken"):
        manager.return_blocks(3)


def test_taking_blocks_evicts_cached_ones_in_lru_order():
    """Taking blocks evicts the least recently freed cached block first."""
    manager = PrefixCachingBlockManager(num_blocks=2, block_size=4)
    cached = _request(0, 8, hashes=(1, 2))
    _admit(manager, cached)
    manager.free(cached)  # queue: 1 (hash 2), 0 (hash 1)
    assert manager.take_blocks(1)  # evicts block 1
    assert manager.find_cached_prefix(_request(1, 9, hashes=(1, 2))) == [0]


def test_can_allocate_agrees_with_allocate_on_cached_hits():
    """``can_allocate`` with the cached blocks predicts ``allocate`` exactly."""
    manager = PrefixCachingBlockManager(num_blocks=4, block_size=4)
    cached = _request(0, 8, hashes=(1, 2))
    _admit(manager, cached)
    manager.free(cached)
    _admit(manager, _request(1, 8))  # 2 free blocks left, both cached
    request = _request(2, 12, hashes=(1, 2))
    hits = manager.find_cached_prefix(request)
    request.num_computed_tokens = 8
    # 2 evictable hits + 1 new block > 2 free (see the test above)
    assert not manager.can_allocate(request, 4, hits)
    assert not manager.allocate(request, 4, hits)


def test_taking_nothing_from_a_full_cache_changes_nothing():
    """SGLang's scheduler holds 0 blocks at times; with every block in use the
    free queue is empty and taking none must still succeed."""
    from frontier.kv_cache import PreemptionCachingBlockManager

    manager = PreemptionCachingBlockManager(num_blocks=2, block_size=16)
    request = Request(0, 0.0, 32, 4)
    assert manager.allocate(request, 32)  # 2 blocks: none free
    assert manager.take_blocks(0)
    manager.return_blocks(0)
    assert manager.num_free_blocks == 0
