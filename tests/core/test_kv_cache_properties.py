"""Invariants of the prefix-caching block manager under random admissions."""

from __future__ import annotations

from frontier.kv_cache import PrefixCachingBlockManager
from frontier.request import Request
from frontier.workloads.trace import chain_block_hashes
from hypothesis import given, settings
from hypothesis import strategies as st

BLOCK_SIZE = 4
NUM_BLOCKS = 12

# an operation: ("admit", prompt tokens, id of the shared prefix), ("grow", which,
# tokens) or ("free", which); prefixes come from 3 ids so requests share blocks
_operation = st.one_of(
    st.tuples(st.just("admit"), st.integers(1, 20), st.integers(0, 2)),
    st.tuples(st.just("grow"), st.integers(0, 9), st.integers(1, 6)),
    st.tuples(st.just("free"), st.integers(0, 9)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_operation, max_size=40))
def test_blocks_are_conserved_and_never_over_capacity(operations):
    """Whatever is admitted, grown and freed: the free count stays in range, each
    request holds ceil(tokens / block_size) blocks, and freeing all frees all."""
    manager = PrefixCachingBlockManager(NUM_BLOCKS, BLOCK_SIZE)
    live: list[Request] = []
    next_id = 0
    for operation in operations:
        if operation[0] == "admit":
            _, prompt, prefix = operation
            ids = [prefix * 100 + i for i in range(prompt // BLOCK_SIZE)]
            request = Request(next_id, 0.0, prompt, 4, chain_block_hashes(ids))
            next_id += 1
            cached = manager.find_cached_prefix(request)
            request.num_computed_tokens = len(cached) * BLOCK_SIZE
            want = request.num_tokens - request.num_computed_tokens
            assert want >= 1  # the last prompt token is never a hit
            if manager.allocate(request, want, cached):
                request.num_computed_tokens += want
                live.append(request)
            else:
                request.num_computed_tokens = 0
                assert request.num_blocks == 0
        elif operation[0] == "grow" and live:
            _, which, tokens = operation
            request = live[which % len(live)]
            before = manager.num_free_blocks
            if manager.allocate(request, tokens):
                request.num_computed_tokens += tokens
                request.num_tokens += tokens
            else:
                assert manager.num_free_blocks == before
        elif operation[0] == "free" and live:
            manager.free(live.pop(operation[1] % len(live)))

        assert 0 <= manager.num_free_blocks <= NUM_BLOCKS
        for request in live:
            expected = -(-request.num_computed_tokens // BLOCK_SIZE)
            assert request.num_blocks == expected
        # shared blocks are counted once, so the used count never exceeds the
        # sum of what each request holds
        assert manager.num_used_blocks <= sum(r.num_blocks for r in live)

    for request in live:
        manager.free(request)
    assert manager.num_free_blocks == NUM_BLOCKS
