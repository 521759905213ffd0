"""SGLang's scheduler: ``sglang/srt/managers/scheduler.py``, ``schedule_policy.py``
and ``mem_cache/radix_cache.py``, rules of v0.4.6.

Each step is ``get_next_batch_to_run``: a prefill batch whenever one can be
formed, a decode batch of every running request otherwise. By default, as in
SGLang since v0.4 (``event_loop_overlap``), step N + 1 is formed while step N runs:
the requests that step N prefills join the running batch then, with their coming
tokens as placeholders, arrivals during step N wait for step N + 2, and results
(finished requests, freed memory) count from step N + 2 on
(``disable_overlap_schedule`` runs the plain loop; pipeline stages turn it off,
as SGLang does). SGLang decodes a request whose last token is still in flight
once more and drops that token; here it is skipped.

Prefill (``PrefillAdder``). Budgets, in tokens:

- total: free plus evictable KV, minus ``min(max_new - generated, clip) *
  new_token_ratio`` for every running request, minus ``extend + min(max_new -
  generated, clip)`` for every request already added (``clip`` is 4096; counting
  only the outputs left is the fix of releases after v0.4.6, without which a
  retracted request can be refused forever);
- input: ``max_prefill_tokens`` minus the tokens added;
- chunk: ``chunked_prefill_size`` minus the tokens added.

The chunked request left from the previous step goes first (at most one request
is chunked at a time). Then waiting requests, in policy order: ``fcfs``, or
``lpm`` (most cached prefix blocks first; requests whose prefix another waiting
request shares are put last; plain FCFS above 128 waiting). A request is refused
when ``extend + min(max_new - generated, clip) >= total budget`` (the step then
stops and the batch is marked full until a running request leaves), when its
extend exceeds the input budget and others were added, or when
``max_running_requests`` is reached; it is chunked when its extend exceeds the
chunk budget. With
``enable_mixed_chunk`` the running requests' decodes join the prefill batch.

Decode (``update_running_batch``). When the free plus evictable KV cannot take
one more token of every running request, requests are retracted, fewest outputs
first and among those the longest prompt, until ``retract_decode_steps`` tokens per
remaining request are free; they go to the back of the queue and the new-token
ratio becomes ``(decoded + retract_decode_steps * n) / sum(max_new)`` of those left.
Otherwise the ratio decays by ``(init - min) / 600`` per decode step, down to
``min = 0.14 * init``; it resets to ``init = 0.7 * schedule_conservativeness``
whenever the replica is idle.

Memory: SGLang's radix cache (:mod:`frontier_schedulers.radix_cache`). A prompt's
full blocks enter the tree when its prefill (or chunk) ends and stay locked until
the request finishes or is retracted; eviction frees unlocked leaves, least
recently used first, and when an allocation finds too few free blocks it evicts as
many blocks as it asks for, as SGLang does. Requests longer than the cache allows
are refused (SGLang's ``max_req_input_len``) and outputs are clipped to fit.
"""

from frontier_schedulers.sglang.config import (
    SglangConfig,
    default_chunked_prefill_size,
    default_max_running_requests,
)
from frontier_schedulers.sglang.scheduler import SglangScheduler

__all__ = [
    "SglangConfig",
    "SglangScheduler",
    "default_chunked_prefill_size",
    "default_max_running_requests",
]
