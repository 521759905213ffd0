"""SGLang's scheduler: ``sglang/srt/managers/scheduler.py`` and ``schedule_policy.py``,
rules of v0.4.6.

Each step is ``get_next_batch_to_run``: a prefill batch whenever one can be
formed, a decode batch of every running request otherwise.

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

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import attrs
from frontier.batch import Batch
from frontier.config import FieldValueError, positive
from frontier.errors import ConfigError, SimulationError
from frontier.plugins import ExecutionContext, ReplicaContext
from frontier.request import Outcome, Request

from frontier_schedulers.base import GuardedConfig, QueueScheduler
from frontier_schedulers.radix_cache import RadixCache, RadixNode

__all__ = ["SglangConfig", "SglangScheduler", "default_chunked_prefill_size"]

_LPM_QUEUE_LIMIT = 128
"""Above this many waiting requests LPM falls back to FCFS."""
_IN_BATCH_CHECK_TOKENS = 32
"""A request with at most this many cached tokens is checked against the queue."""
_IN_BATCH_DEPRIORITIZE_TOKENS = 32
"""...and put last when more than this many of its tokens match a waiting request."""


def _chunk_size(instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value != -1 and value <= 0:
        raise FieldValueError(
            attribute.name, f"must be positive, or -1 to disable, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class SglangConfig(GuardedConfig):
    """Knobs of the SGLang scheduler, with SGLang's names and defaults.

    Attributes:
        schedule_policy: ``fcfs`` or ``lpm`` (longest prefix match).
        chunked_prefill_size: Chunk budget of a prefill step; by GPU memory when
            unset (see :func:`default_chunked_prefill_size`); -1 disables chunking.
        max_prefill_tokens: Input-token budget of a prefill step.
        max_running_requests: Most running requests; derived from the KV size
            when unset.
        enable_mixed_chunk: Run the decodes inside the prefill batch.
        schedule_conservativeness: Scales the initial new-token ratio.
        init_new_token_ratio: ``global_config.default_init_new_token_ratio``.
        min_new_token_ratio_factor: Floor of the ratio, as a fraction of init.
        new_token_ratio_decay_steps: Decode steps from init down to the floor.
        retract_decode_steps: Free tokens per running request after a retraction.
        clip_max_new_tokens: Cap on one request's future tokens in the budgets
            (``SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION``).
    """

    type: str = "sglang"
    schedule_policy: Literal["fcfs", "lpm"] = "fcfs"
    chunked_prefill_size: int | None = attrs.field(default=None, validator=_chunk_size)
    max_prefill_tokens: int = attrs.field(default=16384, validator=positive)
    max_running_requests: int | None = attrs.field(default=None, validator=positive)
    enable_mixed_chunk: bool = False
    schedule_conservativeness: float = attrs.field(default=1.0, validator=positive)
    init_new_token_ratio: float = attrs.field(default=0.7, validator=positive)
    min_new_token_ratio_factor: float = attrs.field(default=0.14, validator=positive)
    new_token_ratio_decay_steps: int = attrs.field(default=600, validator=positive)
    retract_decode_steps: int = attrs.field(default=20, validator=positive)
    clip_max_new_tokens: int = attrs.field(default=4096, validator=positive)


def default_chunked_prefill_size(memory_gib: float) -> int:
    """SGLang v0.4.6's ``chunked_prefill_size`` default: 2048 tokens on GPUs with
    less than 25,000 MiB of memory, 8192 on larger ones."""
    return 2048 if memory_gib * 1024 < 25_000 else 8192


def default_max_running_requests(kv_tokens: int, max_model_len: int) -> int:
    """SGLang's derived limit: ``min(kv_tokens // 2, request-pool size)``, the pool
    holding ``min(max(kv_tokens / context_len * 512, 2048), 4096)`` requests."""
    pool = min(max(int(kv_tokens / max_model_len * 512), 2048), 4096)
    return max(1, min(kv_tokens // 2, pool))


class _Add(enum.Enum):
    CONTINUE = 0
    NO_TOKEN = 1
    OTHER = 2


class _Entry:
    """An admitted request's memory: the tree path it locks and its own blocks."""

    __slots__ = ("nodes", "private")

    def __init__(self, nodes: list[RadixNode]) -> None:
        self.nodes = nodes
        self.private = 0


class _Flight:
    """What a formed batch holds, for the bookkeeping when it ends.

    ``extends`` pairs each prefill request with its preemption count when the
    batch formed: a request retracted since then is not merged.
    """

    __slots__ = ("extends", "mixed")

    def __init__(self, extends: list[tuple[Request, int]], mixed: bool) -> None:
        self.extends = extends
        self.mixed = mixed


class SglangScheduler(QueueScheduler):
    """SGLang: prefill-first loop, token budgets with a new-token ratio, radix cache."""

    def __init__(self, config: SglangConfig, context: ReplicaContext) -> None:
        super().__init__(config, context)
        blocks = self.block_manager
        device = context.execution.device
        self.kv_tokens = blocks.num_blocks * self.block_size
        chunk = config.chunked_prefill_size
        if chunk is None:
            chunk = default_chunked_prefill_size(device.memory_gib)
        self.chunked_prefill_size = None if chunk == -1 else chunk
        if chunk != -1 and chunk % self.block_size:
            raise ConfigError(
                f"replica_scheduler.chunked_prefill_size={chunk} is not a multiple "
                f"of cache.block_size={self.block_size}; SGLang requires chunks of "
                "whole pages."
            )
        self.max_running_requests = config.max_running_requests or (
            default_max_running_requests(self.kv_tokens, context.max_model_len)
        )
        self.max_req_len = min(context.max_model_len - 1, self.kv_tokens - 1)
        self.max_req_input_len = self.max_req_len - 5
        self.tree = RadixCache() if context.cache.enable_prefix_caching else None
        self.lpm = config.schedule_policy == "lpm" and self.tree is not None
        self.clip = config.clip_max_new_tokens

        init = min(config.init_new_token_ratio * config.schedule_conservativeness, 1.0)
        self.init_new_token_ratio = init
        self.min_new_token_ratio = min(init * config.min_new_token_ratio_factor, 1.0)
        self.new_token_ratio_decay = (
            init - self.min_new_token_ratio
        ) / config.new_token_ratio_decay_steps
        self.new_token_ratio = init

        self.chunked: Request | None = None
        self.prefilling: list[Request] = []
        self.batch_is_full = False
        self._reset_full_at_decode = False
        self._entries: dict[int, _Entry] = {}
        self._flights: dict[int, _Flight] = {}
        self._lpm_matches: dict[int, list[RadixNode]] | None = None

    @classmethod
    def planning_limits(
        cls, config: SglangConfig, execution: ExecutionContext, max_model_len: int
    ) -> tuple[int, int]:
        """The chunk (or prefill) token budget, and the running-request limit."""
        chunk = config.chunked_prefill_size
        if chunk is None:
            chunk = default_chunked_prefill_size(execution.device.memory_gib)
        tokens = config.max_prefill_tokens if chunk == -1 else chunk
        return tokens, config.max_running_requests or 2048

    # ------------------------------------------------------------------ queues

    @property
    def num_running(self) -> int:
        """Requests holding KV: decoding, prefilling, or chunked."""
        return len(self.running) + len(self.prefilling) + (self.chunked is not None)

    def add_request(self, request: Request, now: float) -> None:
        """Queue ``request`` after SGLang's length rules.

        A prompt longer than ``max_req_input_len = min(max_model_len - 1, KV
        tokens - 1) - 5`` is refused; the output is clipped to ``max_req_len -
        prompt - 1`` tokens.
        """
        prompt = request.num_prompt_tokens
        if prompt > self.max_req_input_len:
            self.reject(request, Outcome.REJECTED_TOO_LONG)
            return
        limit = self.max_req_len - prompt - 1
        if request.max_output_tokens > limit:
            request.max_output_tokens = limit
            request.outcome = Outcome.TRUNCATED
        self.waiting.append(request)

    # ------------------------------------------------------------------ memory

    def _hashed_blocks(self, request: Request) -> int:
        hashes = request.block_hashes
        if not hashes or self.tree is None:
            return 0
        return min(len(hashes), request.num_prompt_tokens // self.block_size)

    def _match(self, request: Request) -> list[RadixNode]:
        """The cached prefix of ``request``, never covering its last token."""
        limit = min(
            self._hashed_blocks(request), (request.num_tokens - 1) // self.block_size
        )
        if limit <= 0:
            return []
        return self.tree.match(request.block_hashes, limit)

    def lock(self, nodes: list[RadixNode]) -> None:
        """Lock tree nodes (no-op without a tree)."""
        if self.tree is not None:
            self.tree.lock(nodes)

    def unlock(self, nodes: list[RadixNode]) -> None:
        """Unlock tree nodes (no-op without a tree)."""
        if self.tree is not None:
            self.tree.unlock(nodes)

    def future_tokens(self, request: Request) -> int:
        """Outputs a request may still generate, clipped, as the budgets count them.

        SGLang releases after v0.4.6 count the outputs *left*
        (``max_new_tokens - len(output_ids)``); v0.4.6 counted all of
        ``max_new_tokens``, which can keep a retracted request out forever.
        """
        left = request.max_output_tokens - request.num_generated
        return min(max(left, 0), self.clip)

    def _evictable(self) -> int:
        return self.tree.num_evictable if self.tree is not None else 0

    def _take(self, num_blocks: int) -> bool:
        """Take blocks from the core, evicting ``num_blocks`` first when short."""
        blocks = self.block_manager
        if num_blocks > blocks.num_free_blocks and self.tree is not None:
            blocks.return_blocks(self.tree.evict(num_blocks))
        return blocks.take_blocks(num_blocks)

    def _blocks_to_add(self, request: Request, num_new_tokens: int) -> int:
        entry = self._entries[request.request_id]
        total = request.num_computed_tokens + num_new_tokens
        held = len(entry.nodes) + entry.private
        return max(0, self.block_manager.blocks_for_tokens(total) - held)

    def _cache_prompt(self, request: Request) -> None:
        """Put the request's computed full prompt blocks into the tree, locked.

        A block another request cached meanwhile replaces the request's own copy,
        which is freed (SGLang's ``cache_unfinished_req``).
        """
        entry = self._entries[request.request_id]
        full = min(
            self._hashed_blocks(request),
            request.num_computed_tokens // self.block_size,
        )
        tree = self.tree
        for index in range(len(entry.nodes), full):
            parent = entry.nodes[-1] if entry.nodes else tree.root
            node, created = tree.insert(parent, request.block_hashes[index])
            tree.lock([node])
            entry.nodes.append(node)
            entry.private -= 1
            if not created:
                self.block_manager.return_blocks(1)

    def release(self, request: Request) -> None:
        """Free the request's own blocks and unlock its tree path."""
        entry = self._entries.pop(request.request_id, None)
        if entry is None:
            return
        self.block_manager.return_blocks(entry.private)
        if self.tree is not None:
            self.tree.unlock(entry.nodes)

    # ------------------------------------------------------------------ schedule

    def schedule(self, now: float) -> Batch | None:
        """A prefill batch if one can be formed, else a decode batch."""
        for _ in range(2):
            batch = self._prefill_batch() or self._decode_batch()
            if batch is not None:
                return batch
            if not self._flights:
                # Idle: SGLang resets the ratio, then loops again at once.
                self.new_token_ratio = self.init_new_token_ratio
            if self.batch_is_full or not (self.waiting or self.chunked):
                break
        return None

    def _sort_lpm(self) -> None:
        """Longest cached prefix first; requests sharing an uncached prefix with an
        earlier waiting request go last (SGLang's in-batch prefix caching)."""
        self._lpm_matches = None
        if not self.lpm or len(self.waiting) > _LPM_QUEUE_LIMIT:
            return
        bs = self.block_size
        matches: dict[int, list[RadixNode]] = {}
        seen: set[int] = set()
        last: set[int] = set()
        for request in self.waiting:
            nodes = self._match(request)
            matches[request.request_id] = nodes
            if len(nodes) * bs > _IN_BATCH_CHECK_TOKENS:
                continue
            limit = min(self._hashed_blocks(request), (request.num_tokens - 1) // bs)
            hashes = request.block_hashes or ()
            shared = 0
            while shared < limit and hashes[shared] in seen:
                shared += 1
            if shared * bs > _IN_BATCH_DEPRIORITIZE_TOKENS:
                last.add(request.request_id)
            else:
                seen.update(hashes[:limit])
        self.waiting = deque(
            sorted(
                self.waiting,
                key=lambda r: (
                    float("inf")
                    if r.request_id in last
                    else -len(matches[r.request_id])
                ),
            )
        )
        self._lpm_matches = matches

    def _prefill_batch(self) -> Batch | None:
        if (self.batch_is_full or not self.waiting) and self.chunked is None:
            return None
        running_bs = len(self.running)
        if running_bs >= self.max_running_requests:
            self.batch_is_full = True
            return None
        self._sort_lpm()

        mixed = self.config.enable_mixed_chunk and running_bs > 0
        adder = _Adder(self, running_bs if self.config.enable_mixed_chunk else 0)
        new_chunked = None
        if self.chunked is not None:
            if self.chunked.request_id in self.in_flight:
                # XXX: its previous chunk is still in a pipeline stage; SGLang
                # v0.4.6 has no pipeline parallelism to say what to do.
                new_chunked = self.chunked
                adder.chunk_pending = True
            else:
                new_chunked = adder.add_chunked(self.chunked)
        for request in self.waiting:
            if request.request_id in self.in_flight:
                break  # retracted while its last step is still in a stage
            if running_bs + len(adder.chosen) >= self.max_running_requests:
                self.batch_is_full = True
                break
            if self._lpm_matches is not None:
                nodes = self._lpm_matches[request.request_id]
            else:
                nodes = self._match(request)
            result = adder.add_one(request, nodes)
            if result is not _Add.CONTINUE:
                if result is _Add.NO_TOKEN:
                    self.batch_is_full = True
                break
        if adder.new_chunked is not None:
            new_chunked = adder.new_chunked
        if not adder.chosen:
            return None

        chosen_ids = {id(request) for request, _, _ in adder.chosen}
        self.waiting = deque(r for r in self.waiting if id(r) not in chosen_ids)
        self.chunked = new_chunked
        self._take(adder.blocks - adder.decode_blocks)  # the adder checked the fit

        batch = Batch()
        extends = []
        for request, tokens, nodes in adder.chosen:
            if request.request_id not in self._entries:
                self._admit(request, nodes)
            entry = self._entries[request.request_id]
            entry.private += self._blocks_to_add(request, tokens)
            batch.add(request, tokens)
            extends.append(request)
            if request is not new_chunked:
                self.prefilling.append(request)
        if mixed:
            self._add_decodes(batch)
        self._flights[id(batch)] = _Flight(
            [(r, r.num_preemptions) for r in extends], mixed
        )
        return self.launch(batch)

    def _admit(self, request: Request, nodes: list[RadixNode]) -> None:
        """Start a request on its cached prefix (already locked by the adder)."""
        self._entries[request.request_id] = _Entry(list(nodes))
        hit = len(nodes) * self.block_size
        request.num_computed_tokens = hit
        self.block_manager.prefix_stats.record(
            request.num_tokens, hit, request.num_preemptions == 0
        )
        if request.num_preemptions == 0:
            request.num_cached_tokens = hit

    def _add_decodes(self, batch: Batch) -> list[Request]:
        """Give every running request one decode token (blocks already checked)."""
        decodes = []
        for request in self.running:
            want = request.num_tokens - request.num_computed_tokens
            if want <= 0 or request.request_id in self.in_flight:
                continue
            needed = self._blocks_to_add(request, want)
            if not self._take(needed):
                raise SimulationError(
                    f"replica {self.context.replica_id} (sglang): no KV block left "
                    f"for the next token of request {request.request_id} with "
                    f"{len(self.running)} running; SGLang stops here with 'No space "
                    "left for only one request'. Give the replica more KV blocks."
                )
            self._entries[request.request_id].private += needed
            batch.add(request, want)
            decodes.append(request)
        return decodes

    def _decode_batch(self) -> Batch | None:
        if self._reset_full_at_decode:
            self._reset_full_at_decode = False
            self.batch_is_full = False
        if not self.running:
            self.batch_is_full = False
            return None
        if not any(r.num_tokens > r.num_computed_tokens for r in self.running):
            return None  # every running request has a step in flight
        if not self._fits(self._decode_blocks(self.running)):
            self._retract()
            self.batch_is_full = False
            if self.chunked is not None and not self._fits(
                self._decode_blocks(self.running)
            ):
                # XXX: SGLang stops here ("No space left for only one request"):
                # the chunked request holds the memory and retraction cannot take
                # it. The simulator retracts the chunked request instead.
                chunked, self.chunked = self.chunked, None
                self.preempt(chunked, to_front=False)
        else:
            self.new_token_ratio = max(
                self.new_token_ratio - self.new_token_ratio_decay,
                self.min_new_token_ratio,
            )
        batch = Batch()
        if not self._add_decodes(batch):
            return None
        self._flights[id(batch)] = _Flight([], False)
        return self.launch(batch)

    def _decode_blocks(self, requests: Sequence[Request]) -> int:
        """Blocks the next decode token of ``requests`` needs (a new block for a
        request whose computed tokens fill their last block)."""
        bs = self.block_size
        return sum(
            1
            for r in requests
            if r.num_tokens > r.num_computed_tokens and r.num_computed_tokens % bs == 0
        )

    def _fits(self, num_blocks: int) -> bool:
        """SGLang's ``check_decode_mem``: free blocks, evicting once when short."""
        blocks = self.block_manager
        if blocks.num_free_blocks >= num_blocks:
            return True
        if self.tree is not None:
            blocks.return_blocks(self.tree.evict(num_blocks))
        return blocks.num_free_blocks >= num_blocks

    def _retract(self) -> None:
        """Retract decodes until ``retract_decode_steps`` tokens per request are
        free (SGLang's ``retract_decode``), and re-estimate the new-token ratio."""
        steps = self.config.retract_decode_steps
        bs = self.block_size
        blocks = self.block_manager
        order = sorted(
            self.running,
            key=lambda r: (r.num_generated, -r.num_prompt_tokens),
            reverse=True,
        )
        first = True
        # XXX: the block condition is the simulator's: with blocks of more than
        # retract_decode_steps tokens the token condition alone can leave too few.
        while (
            first
            or blocks.num_free_blocks * bs < len(order) * steps
            or blocks.num_free_blocks < self._decode_blocks(order)
        ):
            if len(order) == 1:
                break
            first = False
            victim = order.pop()
            self.running.remove(victim)
            self.preempt(victim, to_front=False)
            free = blocks.num_free_blocks
            residual = -(-(len(order) * steps - free * bs) // bs)
            residual = max(residual, self._decode_blocks(order) - free)
            if residual > 0 and self.tree is not None:
                blocks.return_blocks(self.tree.evict(residual))
        decoded = sum(r.num_generated for r in self.running)
        budget = sum(r.max_output_tokens for r in self.running)
        self.new_token_ratio = min(1.0, (decoded + steps * len(self.running)) / budget)

    # ------------------------------------------------------------------ batch end

    def on_batch_end(
        self, batch: Batch, finished: Sequence[Request], now: float
    ) -> None:
        """Cache prompts, merge finished prefills into the running batch, free the
        finished requests' blocks."""
        flight = self._flights.pop(id(batch))
        self.in_flight.difference_update(r.request_id for r in batch.requests)
        done = {id(request) for request in finished}
        for request in finished:
            if request.request_id in self._entries:
                if self.tree is not None:
                    self._cache_prompt(request)
                self.release(request)
        if finished:
            self._aborts_in_a_row = 0

        if flight.extends:
            shrank = bool(done) or any(r is self.chunked for r, _ in flight.extends)
            merged = []
            for request, epoch in flight.extends:
                if request.num_preemptions != epoch:
                    continue  # retracted since: this step's result is void
                if request in self.prefilling:
                    self.prefilling.remove(request)
                if request.request_id not in self._entries:
                    continue  # finished
                if self.tree is not None:
                    self._cache_prompt(request)
                if request is not self.chunked:
                    merged.append(request)
            kept = [r for r in self.running if id(r) not in done]
            if flight.mixed:
                # The mixed batch becomes the running batch: new requests first.
                self.running = merged + kept
            else:
                self.running = kept + merged
            if shrank:
                self.batch_is_full = False
        elif done:
            self.running = [r for r in self.running if id(r) not in done]
            self._reset_full_at_decode = True

    # ------------------------------------------------------------------ checks

    def cached_prefix_blocks(self, request: Request) -> int:
        """Blocks of ``request``'s prompt in the radix tree (lookup only)."""
        limit = min(
            self._hashed_blocks(request), (request.num_tokens - 1) // self.block_size
        )
        return self.tree.peek(request.block_hashes, limit) if limit > 0 else 0

    def check_invariants(self) -> None:
        """Core blocks in use equal tree nodes plus every request's own blocks,
        and each admitted request covers exactly its computed tokens."""
        blocks = self.block_manager
        assert 0 <= blocks.num_used_blocks <= blocks.num_blocks
        admitted = [*self.running, *self.prefilling]
        if self.chunked is not None:
            admitted.append(self.chunked)
        assert len(admitted) == len(self._entries), (admitted, list(self._entries))
        private = 0
        for request in admitted:
            entry = self._entries[request.request_id]
            held = len(entry.nodes) + entry.private
            expected = blocks.blocks_for_tokens(request.num_computed_tokens)
            assert held == expected, (request, held, expected)
            assert entry.private >= 0
            private += entry.private
        nodes = self.tree.num_nodes if self.tree is not None else 0
        assert blocks.num_used_blocks == nodes + private, (
            blocks.num_used_blocks,
            nodes,
            private,
        )

    def describe(self) -> dict[str, Any]:
        """Effective limits after SGLang's defaults, and the knobs."""
        return {
            **super().describe(),
            "chunked_prefill_size": self.chunked_prefill_size or -1,
            "max_running_requests": self.max_running_requests,
            "init_new_token_ratio": self.init_new_token_ratio,
            "min_new_token_ratio": self.min_new_token_ratio,
            "new_token_ratio_decay": self.new_token_ratio_decay,
        }


class _Adder:
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
            left = request.max_output_tokens - request.num_generated
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

    def state(self) -> _Add:
        if self.rem_total() <= 0 or self.cur_rem() <= 0:
            return _Add.NO_TOKEN
        if self.rem_input <= 0 or (self.rem_chunk is not None and self.rem_chunk <= 0):
            return _Add.OTHER
        return _Add.CONTINUE

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

    def add_one(self, request: Request, nodes: list[RadixNode]) -> _Add:
        """SGLang's ``add_one_req`` for a waiting request with cached ``nodes``."""
        s = self.s
        bs = s.block_size
        extend = request.num_tokens - len(nodes) * bs
        future = s.future_tokens(request)
        total = extend + future
        input_tokens = -(-extend // bs) * bs
        if total >= self.rem_total():
            return _Add.NO_TOKEN
        if input_tokens > self.rem_input and self.chosen:
            return _Add.OTHER

        s.lock(nodes)
        if total > self.rem_total():
            s.unlock(nodes)
            return _Add.NO_TOKEN
        if self.rem_chunk is None or input_tokens <= self.rem_chunk:
            tokens, counted, reserve = extend, input_tokens, future
        else:
            # Chunk it, keeping one page of the chunk budget free (SGLang's rule).
            tokens = min(self.rem_chunk - bs + 1, extend)
            counted, reserve = tokens, (future if tokens == extend else 0)
            if tokens <= 0 or self.chunk_pending:
                s.unlock(nodes)
                return _Add.OTHER
        blocks = -(-tokens // bs)
        if not self._blocks_fit(blocks):
            s.unlock(nodes)
            return _Add.NO_TOKEN
        self.chosen.append((request, tokens, nodes))
        self.blocks += blocks
        if tokens < extend:
            self.new_chunked = request
            self.chunk_pending = True
        self._account(counted, reserve)
        return self.state()
