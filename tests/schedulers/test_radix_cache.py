"""SGLang's radix cache at block granularity: matching, locking, LRU leaf eviction."""

from __future__ import annotations

from frontier_schedulers.radix_cache import RadixCache


def build(cache: RadixCache, path: list[int]):
    """Insert ``path`` (block hashes) under the root; return its nodes."""
    nodes = []
    parent = cache.root
    for block_hash in path:
        parent, _ = cache.insert(parent, block_hash)
        nodes.append(parent)
    return nodes


def test_match_returns_the_cached_run_up_to_the_first_miss():
    """A lookup stops at the first block not in the tree, and at its limit."""
    cache = RadixCache()
    build(cache, [1, 2, 3])
    assert len(cache.match([1, 2, 9, 3], 4)) == 2
    assert len(cache.match([1, 2, 3], 2)) == 2
    assert cache.match([2, 3], 2) == []  # 2 is cached only below 1


def test_inserting_an_existing_block_creates_nothing():
    """Two requests with one prefix share its nodes."""
    cache = RadixCache()
    first = build(cache, [1, 2])
    second = build(cache, [1, 2, 3])
    assert second[:2] == first
    assert cache.num_nodes == 3


def test_locked_blocks_are_not_evictable():
    """Locked nodes leave the evictable count; unlocking returns them."""
    cache = RadixCache()
    nodes = build(cache, [1, 2, 3])
    cache.lock(nodes)
    assert (cache.num_evictable, cache.evict(3)) == (0, 0)
    cache.unlock(nodes)
    assert cache.num_evictable == 3


def test_eviction_takes_the_least_recently_used_leaf_first():
    """Leaves go in LRU order; an internal node only once its children are gone."""
    cache = RadixCache()
    build(cache, [1, 2])  # 1 -> 2
    build(cache, [1, 3])  # 1 -> 3, touching 1 again
    cache.match([1, 2], 2)  # 2 is now more recent than 3
    assert cache.evict(1) == 1
    assert cache.peek([1, 3], 2) == 1  # 3 was the LRU leaf
    assert cache.peek([1, 2], 2) == 2
    # Two more: leaf 2, then 1, which became a leaf.
    assert cache.evict(5) == 2
    assert cache.num_nodes == 0


def test_a_leaf_under_a_locked_path_is_evicted_but_not_the_path():
    """Locking a path protects it, not the blocks that branch off it."""
    cache = RadixCache()
    path = build(cache, [1, 2])
    build(cache, [1, 2, 3])
    cache.lock(path)
    assert cache.evict(3) == 1  # only block 3
    assert cache.num_nodes == 2


def test_peek_touches_nothing():
    """A router's lookup does not change the eviction order."""
    cache = RadixCache()
    build(cache, [1])
    build(cache, [2])
    cache.peek([1], 1)
    cache.evict(1)
    assert cache.peek([1], 1) == 0  # 1 was still the least recent
