"""A request as a serving engine sees it: a prompt to prefill and tokens to decode.

Progress follows vLLM v1's single counter: a request holds ``num_tokens`` tokens (its
prompt plus the tokens it has generated so far) of which ``num_computed_tokens`` have
their KV cache computed. A step that brings ``num_computed_tokens`` up to
``num_tokens`` samples one new token. Prefill, chunked prefill, decode and
re-prefill after a preemption are all the same rule, so every scheduler shares it.
"""

from __future__ import annotations

import enum
import math

__all__ = ["Outcome", "Request"]


class Outcome(enum.StrEnum):
    """How a request left the system; written to ``request_metrics.csv``."""

    PENDING = "pending"
    COMPLETED = "completed"
    TRUNCATED = "truncated"
    """Completed, but its output was cut where it reached ``max_model_len``."""
    REJECTED_TOO_LONG = "rejected_too_long"
    """Its prompt leaves no room for one output token within ``max_model_len``."""
    REJECTED_NO_FIT = "rejected_no_fit"
    """Its KV cache can never fit in the replica, even running alone."""
    ABORTED = "aborted"
    """Dropped after too many preemptions; see the scheduler's preemption cap."""


class Request:
    """One inference request and its progress through a replica.

    Args:
        request_id: Position of the request in its workload, from 0.
        arrived_at: Arrival time in simulated seconds.
        num_prompt_tokens: Prompt length (tokens to prefill).
        num_output_tokens: Tokens the request will generate (its decode length).
        block_hashes: Optional hashes of the prompt's full KV blocks, for prefix
            caching; the i-th hash identifies the first ``(i + 1) * block_size``
            prompt tokens.
        num_reasoning_tokens: Of the output, the leading tokens a reasoning
            ("thinking") model spends before its answer; the answer starts with
            output token ``num_reasoning_tokens + 1`` (the OpenAI API counts
            reasoning tokens in ``completion_tokens`` the same way).
    """

    __slots__ = (
        "arrived_at",
        "block_hashes",
        "completed_at",
        "first_answer_at",
        "first_token_at",
        "last_token_at",
        "max_output_tokens",
        "num_blocks",
        "num_cached_tokens",
        "num_computed_tokens",
        "num_generated",
        "num_output_tokens",
        "num_preemptions",
        "num_prompt_tokens",
        "num_reasoning_tokens",
        "num_tokens",
        "outcome",
        "queued_at",
        "replica_id",
        "request_id",
        "scheduled_at",
        "scheduler_state",
        "token_mark",
    )

    def __init__(
        self,
        request_id: int,
        arrived_at: float,
        num_prompt_tokens: int,
        num_output_tokens: int,
        block_hashes: tuple[int, ...] | None = None,
        num_reasoning_tokens: int = 0,
    ) -> None:
        self.request_id = request_id
        self.arrived_at = arrived_at
        self.num_prompt_tokens = num_prompt_tokens
        self.num_output_tokens = num_output_tokens
        self.max_output_tokens = num_output_tokens
        self.block_hashes = block_hashes
        self.num_reasoning_tokens = num_reasoning_tokens
        # The output count at which the replica next records a time: 1 (the
        # first token), then a reasoning request's first answer token; 0 after.
        self.token_mark = 1
        self.first_answer_at = math.nan
        self.num_tokens = num_prompt_tokens
        self.num_computed_tokens = 0
        self.num_generated = 0
        self.num_blocks = 0
        self.num_cached_tokens = 0
        self.num_preemptions = 0
        self.queued_at = math.nan
        self.scheduled_at = math.nan
        self.first_token_at = math.nan
        self.last_token_at = math.nan
        self.completed_at = math.nan
        self.outcome = Outcome.PENDING
        self.replica_id = -1
        self.scheduler_state: object = None

    @property
    def num_new_tokens(self) -> int:
        """Tokens whose KV cache is still to compute before the next sample."""
        return self.num_tokens - self.num_computed_tokens

    @property
    def is_prefill(self) -> bool:
        """Whether the request is still (re-)prefilling rather than decoding."""
        return self.num_tokens - self.num_computed_tokens > 1 or self.num_generated == 0

    @property
    def is_finished(self) -> bool:
        """Whether the request has generated every token it will generate."""
        return self.num_generated >= self.max_output_tokens

    def preempt(self) -> None:
        """Drop all computed KV, as vLLM's recompute preemption does.

        The request keeps the tokens it generated; it will re-prefill prompt plus
        generated tokens when it is scheduled again.
        """
        self.num_computed_tokens = 0
        self.num_preemptions += 1
        # A token scheduled ahead of its step's end (asynchronous scheduling)
        # is dropped with the step's result.
        self.num_tokens = self.num_prompt_tokens + self.num_generated

    def __repr__(self) -> str:
        return (
            f"Request(id={self.request_id}, prompt={self.num_prompt_tokens}, "
            f"output={self.num_generated}/{self.max_output_tokens}, "
            f"computed={self.num_computed_tokens}/{self.num_tokens})"
        )
