"""SGLang's ``lpm`` queue order (``schedule_policy.py``, v0.4.6)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from frontier.request import Request

from frontier_schedulers.radix_cache import RadixNode

__all__ = ["LPM_QUEUE_LIMIT", "lpm_order"]

LPM_QUEUE_LIMIT = 128
"""Above this many waiting requests LPM falls back to FCFS."""
IN_BATCH_CHECK_TOKENS = 32
"""A request with at most this many cached tokens is checked against the queue."""
IN_BATCH_DEPRIORITIZE_TOKENS = 32
"""...and put last when at least this many of its tokens match a waiting request
(SGLang: ``>= IN_BATCH_PREFIX_CACHING_DEPRIORITIZE_THRESHOLD``)."""


def lpm_order(
    waiting: Iterable[Request],
    match: Callable[[Request], list[RadixNode]],
    match_limit: Callable[[Request], int],
    block_size: int,
) -> tuple[list[Request], dict[int, list[RadixNode]]]:
    """Longest cached prefix first; a request with at most 32 tokens cached that
    shares at least 32 tokens with an earlier such waiting request goes last
    (SGLang's in-batch prefix caching, so the earlier one caches the prefix first).
    SGLang matches the waiting queue token by token; here the shared tokens are
    whole shared blocks, so with blocks above one token a match that ends inside
    a block counts only its full blocks.

    Args:
        waiting: The queue, in FCFS order.
        match: Looks a request up in the radix tree (touching its LRU times).
        match_limit: Blocks a lookup of the request may cover.
        block_size: Tokens per block.

    Returns:
        The new order (stable among equals) and each request's cached nodes.
    """
    matches: dict[int, list[RadixNode]] = {}
    seen: set[int] = set()
    last: set[int] = set()
    queue = list(waiting)
    for request in queue:
        nodes = match(request)
        matches[request.request_id] = nodes
        if len(nodes) * block_size > IN_BATCH_CHECK_TOKENS:
            continue
        limit = match_limit(request)
        hashes = request.block_hashes or ()
        shared = 0
        while shared < limit and hashes[shared] in seen:
            shared += 1
        if shared * block_size >= IN_BATCH_DEPRIORITIZE_TOKENS:
            last.add(request.request_id)
        else:
            seen.update(hashes[: max(limit, 0)])

    def key(request: Request) -> float:
        if request.request_id in last:
            return float("inf")
        return -len(matches[request.request_id])

    return sorted(queue, key=key), matches
