"""Synthetic workloads: an arrival process crossed with prompt and output lengths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import attrs
import numpy as np

from frontier.config import WorkloadConfig, positive, request_count
from frontier.plugins import RequestGenerator, WorkloadContext
from frontier.request import Request
from frontier.workloads.arrivals import LengthDistribution, arrival_times, lengths

__all__ = ["SyntheticConfig", "SyntheticGenerator"]


@attrs.frozen(kw_only=True)
class SyntheticConfig(WorkloadConfig):
    """A seeded synthetic workload.

    Attributes:
        num_requests: Requests to generate.
        arrival: ``poisson``, ``gamma``, ``fixed`` (evenly spaced) or ``offline``
            (every request at t = 0).
        qps: Mean arrival rate, requests per second (ignored when offline).
        cv: Coefficient of variation of gamma gaps (1 is Poisson).
        prompt_tokens: Prompt length distribution.
        output_tokens: Output length distribution (the answer, with
            ``reasoning_tokens``).
        reasoning_tokens: Distribution of the tokens a reasoning ("thinking")
            model generates before its answer; each request then generates a
            draw of it followed by a draw of ``output_tokens``. Unset: no
            reasoning.
        seed: Seed of this workload; the run's seed when unset.
    """

    type: str = "synthetic"
    num_requests: int = attrs.field(default=1000, validator=request_count)
    arrival: Literal["poisson", "gamma", "fixed", "offline"] = "poisson"
    qps: float = attrs.field(default=4.0, validator=positive)
    cv: float = attrs.field(default=1.0, validator=positive)
    prompt_tokens: LengthDistribution = attrs.field(
        factory=lambda: LengthDistribution(distribution="uniform", min=128, max=2048)
    )
    output_tokens: LengthDistribution = attrs.field(
        factory=lambda: LengthDistribution(distribution="uniform", min=32, max=512)
    )
    reasoning_tokens: LengthDistribution | None = None
    seed: int | None = None


class SyntheticGenerator(RequestGenerator):
    """Poisson, gamma, fixed-interval or offline arrivals with drawn lengths."""

    def __init__(self, config: SyntheticConfig, context: WorkloadContext) -> None:
        super().__init__(config, context)
        self.config: SyntheticConfig = config

    @property
    def num_requests(self) -> int:
        """The configured request count."""
        return self.config.num_requests

    @property
    def label(self) -> str:
        """``synthetic_<arrival>``, e.g. ``synthetic_poisson``."""
        return f"synthetic_{self.config.arrival}"

    def __iter__(self) -> Iterator[Request]:
        config = self.config
        seed = self.context.seed if config.seed is None else config.seed
        # The reasoning stream is the fourth child: the first three, and so
        # the workload without reasoning, stay as they were.
        arrival_rng, prompt_rng, output_rng, reasoning_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
        )
        times = arrival_times(config.arrival, config.qps, config.cv, arrival_rng)
        prompts = lengths(config.prompt_tokens, prompt_rng)
        outputs = lengths(config.output_tokens, output_rng)
        if config.reasoning_tokens is None:
            for request_id in range(config.num_requests):
                yield Request(request_id, next(times), next(prompts), next(outputs))
            return
        thoughts = lengths(config.reasoning_tokens, reasoning_rng)
        for request_id in range(config.num_requests):
            thinking = next(thoughts)
            yield Request(
                request_id,
                next(times),
                next(prompts),
                thinking + next(outputs),
                num_reasoning_tokens=thinking,
            )
