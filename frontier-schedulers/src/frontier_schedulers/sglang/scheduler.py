"""The SGLang v0.4.6 scheduler: the prefill-first loop, retraction and the radix
cache's bookkeeping (the rules are listed in the package docstring)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from frontier.batch import Batch
from frontier.errors import ConfigError, SimulationError
from frontier.plugins import ExecutionContext, ReplicaContext
from frontier.request import Outcome, Request

from frontier_schedulers.base import QueueScheduler
from frontier_schedulers.radix_cache import RadixCache, RadixNode
from frontier_schedulers.sglang.adder import AddResult, PrefillAdder
from frontier_schedulers.sglang.config import (
    SglangConfig,
    default_chunked_prefill_size,
    default_max_running_requests,
)
from frontier_schedulers.sglang.policy import LPM_QUEUE_LIMIT, lpm_order

__all__ = ["SglangScheduler"]


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
    """SGLang v0.4.6: prefill-first loop, token budgets, retraction, radix cache.

    The rules, with their sources, are in :mod:`frontier_schedulers.sglang`.
    """

    uses_prefix_cache = True

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
        # Clients that send the output length as max_tokens (else none).
        self.client_sets_max_tokens = context.client_max_tokens == "output"
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

        # The overlap scheduler (event_loop_overlap) forms batch N + 1 while
        # batch N runs; SGLang turns it off with pipeline stages.
        self.schedules_ahead = (
            not config.disable_overlap_schedule
            and context.execution.parallel.pipeline_parallel_size == 1
        )
        self._unmerged: _Flight | None = None
        """The prefill batch in flight whose requests have not joined the running
        batch yet (the overlap loop merges them when it forms the next batch)."""
        self.chunked: Request | None = None
        self.prefilling: list[Request] = []
        self.batch_is_full = False
        self._reset_full_at_decode = False
        self._finished_seats = 0
        """Requests that finished in a decode step: SGLang keeps them in
        ``running_batch`` (counted by the next prefill's ``running_bs``) until
        ``update_running_batch`` filters them, before the next decode step."""
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

        The tokenizer manager refuses ``prompt + max_new_tokens >=
        max_model_len`` (``_validate_one_request``; a client that sets no
        ``max_tokens``, ``engine.client_max_tokens = "none"``, is not checked).
        A prompt longer than ``max_req_input_len = min(max_model_len - 1, KV
        tokens - 1) - 5`` is refused; the output is clipped to ``max_req_len -
        prompt - 1`` tokens.
        """
        prompt = request.num_prompt_tokens
        if prompt > self.max_req_input_len or (
            self.client_sets_max_tokens
            and prompt + request.num_output_tokens >= self.context.max_model_len
        ):
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

    def _match_limit(self, request: Request) -> int:
        """Blocks a lookup may cover: hashed prompt blocks, never the last token."""
        return min(
            self._hashed_blocks(request), (request.num_tokens - 1) // self.block_size
        )

    def _match(self, request: Request) -> list[RadixNode]:
        """The cached prefix of ``request`` (touching the nodes' LRU time)."""
        limit = self._match_limit(request)
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

    def max_new_tokens(self, request: Request) -> int:
        """SGLang's ``max_new_tokens`` of ``request``: its output length when
        clients send it as ``max_tokens``, else ``max_req_len - prompt - 1``,
        the value SGLang gives a request without one (the request still stops
        after its own output, at its end-of-sequence token)."""
        if self.client_sets_max_tokens:
            return request.max_output_tokens
        return self.max_req_len - request.num_prompt_tokens - 1

    def future_tokens(self, request: Request) -> int:
        """Outputs a request may still generate, clipped, as the budgets count them.

        SGLang releases after v0.4.6 count the outputs *left*
        (``max_new_tokens - len(output_ids)``); v0.4.6 counted all of
        ``max_new_tokens``, which can keep a retracted request out forever.
        """
        left = self.max_new_tokens(request) - request.num_generated
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
        if self._unmerged is not None:
            # The overlap loop's get_next_batch_to_run: the prefill batch still
            # running joins the running batch now; its requests decode next
            # with their coming tokens as placeholders.
            self._merge(self._unmerged)
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
        """Apply the ``lpm`` policy to the queue; remember the matches it made."""
        self._lpm_matches = None
        if not self.lpm or len(self.waiting) > LPM_QUEUE_LIMIT:
            return
        order, self._lpm_matches = lpm_order(
            self.waiting, self._match, self._match_limit, self.block_size
        )
        self.waiting = deque(order)

    def _prefill_batch(self) -> Batch | None:
        if (self.batch_is_full or not self.waiting) and self.chunked is None:
            return None
        running_bs = len(self.running) + self._finished_seats
        if running_bs >= self.max_running_requests:
            self.batch_is_full = True
            return None
        self._sort_lpm()

        # SGLang: is_mixed_chunk = chunked_prefill_size is not None and
        # enable_mixed_chunk, so without chunked prefill the switch does nothing.
        mixing = (
            self.config.enable_mixed_chunk and self.chunked_prefill_size is not None
        )
        mixed = mixing and running_bs > 0
        adder = PrefillAdder(self, running_bs if mixing else 0)
        if mixed:
            self._finished_seats = 0  # mixing filters the running batch
        new_chunked = None
        if self.chunked is not None:
            if not self.schedules_ahead and self.chunked.request_id in self.in_flight:
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
            if result is not AddResult.CONTINUE:
                if result is AddResult.NO_TOKEN:
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
        flight = _Flight([(r, r.num_preemptions) for r in extends], mixed)
        self._flights[id(batch)] = flight
        if self.schedules_ahead:
            self._unmerged = flight
        return self.launch(batch)

    def _admit(self, request: Request, nodes: list[RadixNode]) -> None:
        """Start a request on its cached prefix (already locked by the adder)."""
        self._entries[request.request_id] = _Entry(list(nodes))
        hit = len(nodes) * self.block_size
        request.num_computed_tokens = hit
        if self.tree is not None:  # no lookups to count with the cache off
            self.block_manager.prefix_stats.record(
                request.num_tokens, hit, request.num_preemptions == 0
            )
        if request.num_preemptions == 0:
            request.num_cached_tokens = hit

    def _add_decodes(self, batch: Batch) -> list[Request]:
        """Give every running request one decode token (blocks already checked)."""
        decodes = []
        ahead = self.schedules_ahead
        for request in self.running:
            want = request.num_tokens - request.num_computed_tokens
            if want <= 0 or (not ahead and request.request_id in self.in_flight):
                continue
            if ahead and (
                request.num_tokens - request.num_prompt_tokens
                >= request.max_output_tokens
            ):
                # Its running step brings its last token. XXX: SGLang's overlap
                # loop still decodes it once more and drops that token.
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
        self._finished_seats = 0  # update_running_batch filters them
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
        budget = sum(self.max_new_tokens(r) for r in self.running)
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
                    # cache_finished_req inserts the request's tokens: the path
                    # it held counts as used now, for the LRU eviction.
                    self._cache_prompt(request)
                    self.tree.touch(self._entries[request.request_id].nodes)
                self.release(request)
        if finished:
            self._aborts_in_a_row = 0

        if flight.extends:
            shrank = bool(done) or any(r is self.chunked for r, _ in flight.extends)
            if self.tree is not None:
                for request, epoch in flight.extends:
                    # a request retracted since: this step's result is void
                    if (
                        request.num_preemptions == epoch
                        and request.request_id in self._entries
                    ):
                        self._cache_prompt(request)
            if not self.schedules_ahead or self._unmerged is flight:
                self._merge(flight)  # not merged when a batch formed as it ran
            self.running = [r for r in self.running if id(r) not in done]
            if shrank:
                self.batch_is_full = False
        elif done:
            self.running = [r for r in self.running if id(r) not in done]
            self._reset_full_at_decode = True
            self._finished_seats += len(done)

    def _merge(self, flight: _Flight) -> None:
        """The requests of prefill batch ``flight`` that finished their prompt
        join the running batch (a mixed batch's new requests first, as the mixed
        batch becomes SGLang's running batch)."""
        if self._unmerged is flight:
            self._unmerged = None
        merged = []
        for request, epoch in flight.extends:
            if request.num_preemptions != epoch:
                continue  # retracted since: this step's result is void
            if request in self.prefilling:
                self.prefilling.remove(request)
            if request.request_id not in self._entries:
                continue  # finished
            if request is not self.chunked:
                merged.append(request)
        if flight.mixed:
            self.running = merged + self.running
        else:
            self.running = self.running + merged

    # ------------------------------------------------------------------ checks

    def cached_prefix_blocks(self, request: Request) -> int:
        """Blocks of ``request``'s prompt in the radix tree (lookup only)."""
        limit = self._match_limit(request)
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
            # off with pipeline stages whatever the knob says, as in SGLang
            "disable_overlap_schedule": not self.schedules_ahead,
        }
