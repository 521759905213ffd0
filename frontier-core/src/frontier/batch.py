"""One model step: the requests a replica runs together and the tokens each computes.

A batch keeps, as it is built, the few aggregate features that execution-time
predictors need, so a predictor never walks the requests: the token count, the
prefill chunks as (query length, context already in the KV cache) pairs, and the
number and summed context length of decodes.
"""

from __future__ import annotations

from frontier.request import Request

__all__ = ["Batch"]


class Batch:
    """The requests of one iteration and how many new tokens each computes.

    Attributes:
        requests: The requests in scheduling order.
        num_new_tokens: Tokens each request computes this step (same order).
        num_tokens: Sum of ``num_new_tokens``.
        prefill_lengths: Query length of each prefill chunk.
        prefill_contexts: KV tokens each prefill chunk attends to before its own
            tokens (the request's computed tokens, prefix-cache hits included).
        num_decodes: Requests that compute exactly one token past their prompt
            (vLLM's attention treats a one-token query as a decode), also the
            first decode that asynchronous scheduling forms before the request's
            first token is out.
        decode_context_sum: Sum over decodes of the tokens each attends to,
            the new one included.
        decode_context_max: Most tokens one decode attends to (0 without decodes).
        decode_context_min: Fewest tokens one decode attends to (0 without decodes).
        ep_group_tokens: Tokens the MoE layers of this step process across the
            expert-parallel group, every member's step included (set by the
            execution model where the group spans several replicas; 0 when the
            experts see this batch's tokens only).
    """

    __slots__ = (
        "decode_context_max",
        "decode_context_min",
        "decode_context_sum",
        "ep_group_tokens",
        "num_decodes",
        "num_new_tokens",
        "num_tokens",
        "prefill_contexts",
        "prefill_lengths",
        "requests",
    )

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.num_new_tokens: list[int] = []
        self.num_tokens = 0
        self.prefill_lengths: list[int] = []
        self.prefill_contexts: list[int] = []
        self.num_decodes = 0
        self.decode_context_sum = 0
        self.decode_context_max = 0
        self.decode_context_min = 0
        self.ep_group_tokens = 0

    def add(self, request: Request, num_new_tokens: int) -> None:
        """Add ``request`` computing ``num_new_tokens`` tokens this step."""
        self.requests.append(request)
        self.num_new_tokens.append(num_new_tokens)
        self.num_tokens += num_new_tokens
        # One token past the prompt is a decode, also before the request's first
        # token is out (asynchronous scheduling forms that step ahead).
        if (
            num_new_tokens == 1
            and request.num_computed_tokens >= request.num_prompt_tokens
        ):
            self.num_decodes += 1
            context = request.num_computed_tokens + 1
            self.decode_context_sum += context
            if context > self.decode_context_max:
                self.decode_context_max = context
            if self.num_decodes == 1 or context < self.decode_context_min:
                self.decode_context_min = context
        else:
            self.prefill_lengths.append(num_new_tokens)
            self.prefill_contexts.append(request.num_computed_tokens)

    def add_decodes(self, requests: list[Request]) -> None:
        """Add ``requests``, each decoding one token: ``add(request, 1)`` for each
        of them (they have all generated a token), in one go."""
        if not requests:
            return
        contexts = [request.num_computed_tokens + 1 for request in requests]
        count = len(requests)
        self.requests.extend(requests)
        self.num_new_tokens.extend([1] * count)
        self.num_tokens += count
        first = self.num_decodes == 0
        self.num_decodes += count
        self.decode_context_sum += sum(contexts)
        highest = max(contexts)
        lowest = min(contexts)
        if highest > self.decode_context_max:
            self.decode_context_max = highest
        if first or lowest < self.decode_context_min:
            self.decode_context_min = lowest

    @property
    def num_prefill_tokens(self) -> int:
        """Tokens of the batch that belong to prefill chunks."""
        return self.num_tokens - self.num_decodes

    @property
    def num_requests(self) -> int:
        """Number of requests in the batch."""
        return len(self.requests)

    def __len__(self) -> int:
        return len(self.requests)

    def __repr__(self) -> str:
        return (
            f"Batch(requests={len(self.requests)}, tokens={self.num_tokens}, "
            f"prefills={len(self.prefill_lengths)}, decodes={self.num_decodes})"
        )
