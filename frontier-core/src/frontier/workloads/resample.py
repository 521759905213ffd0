"""A trace's length distribution, stretched to any number of requests.

The trace's ``(num_prefill_tokens, num_decode_tokens)`` pairs (with
``num_reasoning_tokens`` where the trace has it) are read once; each generated
request draws one row uniformly with replacement (a seeded bootstrap, so prompt,
output and reasoning lengths keep their joint distribution), and arrivals come from an
arrival process at ``qps``. This is how a 19,366-request trace becomes a
million-request benchmark with the same traffic mix. Other columns, ``arrived_at``
and ``block_hash_ids`` included, are not read: the generated requests share no
prefix blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import attrs
import numpy as np

from frontier.config import WorkloadConfig, path_field, positive, request_count
from frontier.errors import InputError
from frontier.plugins import RequestGenerator, WorkloadContext
from frontier.request import Request
from frontier.workloads.arrivals import CHUNK, arrival_times
from frontier.workloads.trace import TraceConfig, TraceGenerator

__all__ = ["ResampleConfig", "ResampleGenerator"]


@attrs.frozen(kw_only=True)
class ResampleConfig(WorkloadConfig):
    """Requests drawn from a trace's lengths.

    Attributes:
        path: CSV trace with ``num_prefill_tokens`` and ``num_decode_tokens``.
        num_requests: Requests to generate.
        qps: Mean arrival rate, requests per second.
        arrival: ``poisson``, ``gamma``, ``fixed`` or ``offline``.
        cv: Coefficient of variation of gamma gaps.
        seed: Seed of the draws and arrivals; the run's seed when unset.
    """

    type: str = "trace_resample"
    path: str = path_field()
    num_requests: int = attrs.field(validator=request_count)
    qps: float = attrs.field(default=4.0, validator=positive)
    arrival: Literal["poisson", "gamma", "fixed", "offline"] = "poisson"
    cv: float = attrs.field(default=1.0, validator=positive)
    seed: int | None = None


class ResampleGenerator(RequestGenerator):
    """Bootstrap-resamples a trace's (prompt, output) pairs at a chosen rate."""

    def __init__(self, config: ResampleConfig, context: WorkloadContext) -> None:
        super().__init__(config, context)
        self.config: ResampleConfig = config
        reader = TraceGenerator(
            TraceConfig(path=config.path, arrival="offline"), context
        )
        # Only the lengths are drawn, so a block_hash_ids column is not read.
        reader.provides_block_hashes = False
        rows = [
            (r.num_prompt_tokens, r.num_output_tokens, r.num_reasoning_tokens)
            for r in reader
        ]
        if not rows:
            raise InputError(f"{config.path}: the trace has no requests to resample")
        table = np.array(rows, dtype=np.int64)
        self._prompts = table[:, 0]
        self._outputs = table[:, 1]
        self._reasoning = table[:, 2] if table[:, 2].any() else None
        self._stem = Path(config.path).stem

    @property
    def num_requests(self) -> int:
        """The configured request count."""
        return self.config.num_requests

    @property
    def label(self) -> str:
        """``<trace stem>_x<num_requests>``, e.g. ``splitwise_conv_x1000000``."""
        return f"{self._stem}_x{self.config.num_requests}"

    def __iter__(self) -> Iterator[Request]:
        config = self.config
        seed = self.context.seed if config.seed is None else config.seed
        index_rng, arrival_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)
        )
        times = arrival_times(config.arrival, config.qps, config.cv, arrival_rng)
        rows = len(self._prompts)
        request_id = 0
        while request_id < config.num_requests:
            size = min(CHUNK, config.num_requests - request_id)
            picks = index_rng.integers(0, rows, size=size)
            prompts = self._prompts[picks].tolist()
            outputs = self._outputs[picks].tolist()
            if self._reasoning is None:
                for prompt, output in zip(prompts, outputs, strict=True):
                    yield Request(request_id, next(times), prompt, output)
                    request_id += 1
                continue
            thoughts = self._reasoning[picks].tolist()
            for prompt, output, thinking in zip(
                prompts, outputs, thoughts, strict=True
            ):
                yield Request(request_id, next(times), prompt, output, None, thinking)
                request_id += 1
