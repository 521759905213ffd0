"""Drive one replica step by step, with the core's own progress rules.

:class:`Stepper` wires a real :class:`frontier.replica.Replica` (which advances
computed tokens when a batch forms, samples and frees finished requests when it
ends) to a scheduler built from its config, and runs one batch per call with a
fixed step time. Tests read each step's composition as ``(request_id, tokens)``
pairs and inspect the KV blocks between steps.
"""

from __future__ import annotations

from collections import deque

from frontier.config import CacheConfig, ParallelConfig
from frontier.devices import load_device
from frontier.kv_cache import KVBlockManager, PrefixCachingBlockManager
from frontier.metrics import MetricsCollector
from frontier.models import load_model
from frontier.plugins import ExecutionContext, ReplicaContext, default_plugins
from frontier.replica import Replica
from frontier.request import Request

_EXECUTION = {}


class FixedStep:
    """Execution stub: one pipeline stage, every step costs the same time."""

    num_stages = 1

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def stage_times(self, batch):
        return [self.seconds]


def execution_context(device: str = "a100-80gb") -> ExecutionContext:
    """Llama-2-7B on ``device``, one GPU (cached per device)."""
    if device not in _EXECUTION:
        _EXECUTION[device] = ExecutionContext(
            model=load_model("llama-2-7b"),
            device=load_device(device),
            parallel=ParallelConfig(),
            dtype="float16",
            kv_cache_dtype="float16",
        )
    return _EXECUTION[device]


def make_requests(specs) -> list[Request]:
    """Requests from ``(arrived_at_s, prompt, output[, block_hashes])`` tuples;
    ``Request`` objects pass through."""
    requests = []
    for request_id, spec in enumerate(specs):
        if isinstance(spec, Request):
            requests.append(spec)
            continue
        arrived_at, prompt, output, *rest = spec
        hashes = tuple(rest[0]) if rest and rest[0] is not None else None
        requests.append(Request(request_id, float(arrived_at), prompt, output, hashes))
    return requests


class Stepper:
    """One replica running scheduler ``kind`` on ``requests``.

    Args:
        kind: Registered replica-scheduler name.
        requests: See :func:`make_requests`.
        num_blocks: KV blocks of the replica.
        block_size: Tokens per block.
        max_model_len: The engine's longest sequence.
        prefix_caching: Use the core's prefix-caching block manager.
        manager: The block manager class, when another than the one
            ``prefix_caching`` picks.
        client_max_tokens: ``engine.client_max_tokens`` of the replica.
        device: Device catalogue name (engine defaults depend on it).
        step_ms: Duration of every step.
        **options: The scheduler's config fields.
    """

    def __init__(
        self,
        kind: str,
        requests,
        *,
        num_blocks: int,
        block_size: int = 16,
        max_model_len: int = 2048,
        prefix_caching: bool = False,
        device: str = "a100-80gb",
        step_ms: float = 10.0,
        manager: type | None = None,
        client_max_tokens: str = "output",
        **options,
    ) -> None:
        entry = default_plugins().registry.get("replica_scheduler", kind)
        budget = options.get("max_num_batched_tokens")
        if kind in ("vllm", "vllm_v1") and budget and "max_num_seqs" not in options:
            # vLLM refuses a budget below max_num_seqs; with no more requests than
            # seats the seat count changes nothing, so tiny hand-built budgets
            # keep their timelines.
            options["max_num_seqs"] = max(1, min(budget, len(requests)))
        self.config = entry.config_cls(type=kind, **options)
        if manager is None:
            manager = PrefixCachingBlockManager if prefix_caching else KVBlockManager
        self.blocks = manager(num_blocks, block_size)
        self.left: list[Request] = []
        self.metrics = MetricsCollector(on_request=self.left.append)
        self.replica = Replica(0, self.blocks, FixedStep(step_ms / 1e3), self.metrics)
        context = ReplicaContext(
            replica_id=0,
            execution=execution_context(device),
            cache=CacheConfig(
                block_size=block_size, enable_prefix_caching=prefix_caching
            ),
            max_model_len=max_model_len,
            block_manager=self.blocks,
            reject=self.replica.reject,
            client_max_tokens=client_max_tokens,
        )
        self.scheduler = entry.factory(self.config, context)
        self.replica.scheduler = self.scheduler
        self.requests = make_requests(requests)
        self.pending = deque(sorted(self.requests, key=lambda r: r.arrived_at))
        self.now = 0.0

    def _arrive(self) -> None:
        while self.pending and self.pending[0].arrived_at <= self.now:
            self.replica.add_request(self.pending.popleft(), self.now)

    def step(self) -> list[tuple[int, int]] | None:
        """Run the next batch; ``None`` when none can run and none will arrive."""
        while True:
            self._arrive()
            flight = self.replica.start_batch(self.now)
            if flight is not None:
                break
            if not self.pending:
                return None
            self.now = max(self.now, self.pending[0].arrived_at)
        batch = flight.batch
        composition = list(
            zip(
                (r.request_id for r in batch.requests),
                batch.num_new_tokens,
                strict=True,
            )
        )
        self.now = flight.finishes_at
        self.replica.finish_batch(flight, self.now)
        return composition

    def run(self, max_steps: int = 100_000) -> list[list[tuple[int, int]]]:
        """Every step until the replica is done."""
        steps = []
        while (composition := self.step()) is not None:
            steps.append(composition)
            assert len(steps) <= max_steps, "the scheduler does not finish"
        return steps

    def outcome(self, request_id: int) -> str:
        """How request ``request_id`` left (``pending`` if it has not)."""
        return self.requests[request_id].outcome.value
