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


# Requests without block hashes: ("admit", prompt tokens), ("grow", which, tokens,
# generated too), ("preempt", which), ("complete", which), ("take", blocks),
# ("return", blocks).
_hashless_operation = st.one_of(
    st.tuples(st.just("admit"), st.integers(1, 30)),
    st.tuples(st.just("grow"), st.integers(0, 9), st.integers(1, 9), st.booleans()),
    st.tuples(st.just("preempt"), st.integers(0, 9)),
    st.tuples(st.just("complete"), st.integers(0, 9)),
    st.tuples(st.just("take"), st.integers(0, 3)),
    st.tuples(st.just("return"), st.integers(0, 3)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_hashless_operation, max_size=60))
def test_preemption_caching_matches_the_block_by_block_manager(operations):
    """Without workload hashes the run-length free queue gives every lookup,
    allocation and free count the block-by-block manager gives, preempted
    requests finding their own surviving blocks in both."""
    from frontier.kv_cache import PreemptionCachingBlockManager

    managers = (
        PrefixCachingBlockManager(NUM_BLOCKS, BLOCK_SIZE),
        PreemptionCachingBlockManager(NUM_BLOCKS, BLOCK_SIZE),
    )
    # one copy of each request per manager, kept in step
    live: list[tuple[Request, Request]] = []
    waiting: list[tuple[Request, Request]] = []
    taken = 0
    next_id = 0

    def admit(pair) -> bool:
        results = []
        for manager, request in zip(managers, pair, strict=True):
            cached = manager.find_cached_prefix(request)
            request.num_computed_tokens = len(cached) * BLOCK_SIZE
            want = request.num_tokens - request.num_computed_tokens
            fits = manager.allocate(request, want, cached)
            request.num_computed_tokens = request.num_tokens if fits else 0
            results.append((len(cached), fits))
        assert results[0] == results[1]
        return results[0][1]

    for operation in operations:
        kind = operation[0]
        if kind == "admit":
            if waiting and admit(waiting[0]):
                live.append(waiting.pop(0))
            pair = tuple(Request(next_id, 0.0, operation[1], 50) for _ in managers)
            next_id += 1
            if admit(pair):
                live.append(pair)
        elif kind == "grow" and live:
            _, which, tokens, generated = operation
            pair = live[which % len(live)]
            fits = [m.allocate(r, tokens) for m, r in zip(managers, pair, strict=True)]
            assert fits[0] == fits[1]
            if fits[0]:
                for request in pair:
                    request.num_computed_tokens += tokens
                    request.num_tokens += tokens
                    if generated:
                        request.num_generated += tokens
        elif kind in ("preempt", "complete") and live:
            pair = live.pop(operation[1] % len(live))
            for manager, request in zip(managers, pair, strict=True):
                if kind == "complete":
                    request.completed_at = 1.0
                manager.free(request)
                if kind == "preempt":
                    request.preempt()
            if kind == "preempt":
                waiting.append(pair)
        elif kind == "take":
            fits = [m.take_blocks(operation[1]) for m in managers]
            assert fits[0] == fits[1]
            taken += operation[1] if fits[0] else 0
        elif kind == "return" and taken >= operation[1]:
            for manager in managers:
                manager.return_blocks(operation[1])
            taken -= operation[1]
        assert managers[0].num_free_blocks == managers[1].num_free_blocks
        for a, b in live:
            assert a.num_blocks == b.num_blocks
