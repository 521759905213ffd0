"""SGLang's radix prefix cache (``sglang/srt/mem_cache/radix_cache.py``, v0.4.6),
at the granularity of full prompt blocks.

A node is one full KV block, known by its chained block hash (equal hashes mean
equal prefixes), under the node of the block before it. A request that uses a
path *locks* it: every node on it gains a reference, and a locked node cannot be
evicted. Unlocked nodes stay cached and count as evictable memory. Eviction
removes unlocked *leaves*, least recently used first (a lookup or an insert
touches every node on its path); a parent becomes a candidate once its last child
is gone.

The tree keeps no block ids: capacity is counted by the core's block manager, and
the scheduler that owns the tree takes and returns blocks as nodes appear and are
evicted.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

__all__ = ["RadixCache", "RadixNode"]


class RadixNode:
    """One cached block.

    Attributes:
        block_hash: Chained hash of the block (``None`` for the root).
        parent: The node of the previous block (the root for a first block).
        children: Child nodes by block hash.
        lock_ref: Requests using this node; 0 means evictable.
        last_access: Logical time of the latest lookup or insert through it.
        serial: Creation order, the tie-break of equal access times.
    """

    __slots__ = (
        "block_hash",
        "children",
        "last_access",
        "lock_ref",
        "parent",
        "serial",
    )

    def __init__(
        self, block_hash: int | None, parent: RadixNode | None, serial: int
    ) -> None:
        self.block_hash = block_hash
        self.parent = parent
        self.children: dict[int, RadixNode] = {}
        self.lock_ref = 0
        self.last_access = 0
        self.serial = serial


class RadixCache:
    """A radix tree of cached prompt blocks with lock counts and LRU leaf eviction."""

    def __init__(self) -> None:
        self.root = RadixNode(None, None, 0)
        self.root.lock_ref = 1  # the root is never evicted
        self.num_nodes = 0
        self.num_evictable = 0
        self._clock = 0
        self._serial = 0
        self._leaves: dict[RadixNode, None] = {}  # unlocked nodes with no children

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def match(self, block_hashes: Sequence[int], limit: int) -> list[RadixNode]:
        """The cached path of the first ``limit`` blocks; touches every node on it."""
        path = []
        node = self.root
        for index in range(limit):
            child = node.children.get(block_hashes[index])
            if child is None:
                break
            child.last_access = self._tick()
            path.append(child)
            node = child
        return path

    def peek(self, block_hashes: Sequence[int], limit: int) -> int:
        """Length of the cached path of the first ``limit`` blocks; touches nothing."""
        node = self.root
        for index in range(limit):
            node = node.children.get(block_hashes[index])
            if node is None:
                return index
        return limit

    def insert(self, parent: RadixNode, block_hash: int) -> tuple[RadixNode, bool]:
        """The child of ``parent`` for ``block_hash``, created when missing.

        Returns:
            ``(node, created)``; a created node is unlocked and holds one block
            that the caller hands over to the tree.
        """
        child = parent.children.get(block_hash)
        if child is not None:
            child.last_access = self._tick()
            return child, False
        self._serial += 1
        child = RadixNode(block_hash, parent, self._serial)
        child.last_access = self._tick()
        parent.children[block_hash] = child
        self._leaves.pop(parent, None)
        self._leaves[child] = None
        self.num_nodes += 1
        self.num_evictable += 1
        return child, True

    def touch(self, nodes: Sequence[RadixNode]) -> None:
        """Mark each node of a path used now, root side first (SGLang's insert
        of a finished request sets every node's access time on its way down)."""
        for node in nodes:
            node.last_access = self._tick()

    def lock(self, nodes: Sequence[RadixNode]) -> None:
        """Add one reference to each node (a request uses them)."""
        for node in nodes:
            if node.lock_ref == 0:
                self.num_evictable -= 1
                self._leaves.pop(node, None)
            node.lock_ref += 1

    def unlock(self, nodes: Sequence[RadixNode]) -> None:
        """Drop one reference from each node."""
        for node in nodes:
            node.lock_ref -= 1
            if node.lock_ref == 0:
                self.num_evictable += 1
                if not node.children:
                    self._leaves[node] = None

    def evict(self, num_blocks: int) -> int:
        """Evict up to ``num_blocks`` unlocked blocks, least recently used leaf
        first. Returns how many were evicted (their blocks are free again)."""
        heap = [(node.last_access, node.serial, node) for node in self._leaves]
        heapq.heapify(heap)
        evicted = 0
        while evicted < num_blocks and heap:
            _, _, node = heapq.heappop(heap)
            parent = node.parent
            del parent.children[node.block_hash]
            del self._leaves[node]
            self.num_nodes -= 1
            self.num_evictable -= 1
            evicted += 1
            if parent is not self.root and not parent.children and parent.lock_ref == 0:
                self._leaves[parent] = None
                heapq.heappush(heap, (parent.last_access, parent.serial, parent))
        return evicted
