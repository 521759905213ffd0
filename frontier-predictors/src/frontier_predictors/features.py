"""From a batch to the few aggregate features the operators depend on.

Prefill chunks are summarised by four sums over chunks of query length ``q`` and
cached context ``c``: ``sum q``, ``sum q^2``, ``sum q c`` and ``sum c``. The
attention kernel runs all chunks in one launch and its work is
``sum(q c + q^2 / 2)`` query-key pairs (causal), so the chunks are pooled into one
equivalent chunk that does the same work::

    q_eq = sqrt(sum q^2)          c_eq = sum(q c) / q_eq

One chunk maps onto itself (``q_eq = q``, ``c_eq = c``), which is what a profile
row of a single prefill measured; many short chunks cost what their work costs,
not what one long chunk of the same total length would.

Decodes are summarised by their count ``n`` and the mean number of tokens already
in their KV cache, ``m = decode_context_sum / n - 1`` (the batch counts the new
token in its context sum; profiles record the cache before it).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from frontier.batch import Batch

__all__ = ["BatchFeatures", "batch_features", "pooled_prefill"]


class BatchFeatures(NamedTuple):
    """What the predictors need to know about one batch.

    Attributes:
        tokens: Tokens computed in the step.
        sequences: Requests in the step.
        prefill_tokens: ``sum q`` over prefill chunks.
        prefill_sq: ``sum q^2``.
        prefill_cross: ``sum q c``.
        prefill_context: ``sum c``.
        decodes: Decode requests.
        decode_context: Sum over decodes of the tokens attended to, the new one
            included (the batch's ``decode_context_sum``).
    """

    tokens: int
    sequences: int
    prefill_tokens: int
    prefill_sq: int
    prefill_cross: int
    prefill_context: int
    decodes: int
    decode_context: int


def batch_features(batch: Batch) -> BatchFeatures:
    """The aggregate features of ``batch`` (one pass over its prefill chunks)."""
    sq = cross = context = 0
    for q, c in zip(batch.prefill_lengths, batch.prefill_contexts, strict=True):
        sq += q * q
        cross += q * c
        context += c
    return BatchFeatures(
        batch.num_tokens,
        len(batch.requests),
        batch.num_tokens - batch.num_decodes,
        sq,
        cross,
        context,
        batch.num_decodes,
        batch.decode_context_sum,
    )


def pooled_prefill(prefill_sq: float, prefill_cross: float) -> tuple[float, float]:
    """The equivalent single chunk ``(q_eq, c_eq)`` of the module docstring."""
    if prefill_sq <= 0:
        return 0.0, 0.0
    q_eq = math.sqrt(prefill_sq)
    return q_eq, prefill_cross / q_eq


def pooled_prefill_arrays(
    chunk_lengths: list[list[int]], chunk_contexts: list[list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`pooled_prefill` for profile rows with chunk lists."""
    sq = np.array([sum(q * q for q in qs) for qs in chunk_lengths], dtype=float)
    cross = np.array(
        [
            sum(q * c for q, c in zip(qs, cs, strict=True))
            for qs, cs in zip(chunk_lengths, chunk_contexts, strict=True)
        ],
        dtype=float,
    )
    q_eq = np.sqrt(sq)
    c_eq = np.divide(cross, q_eq, out=np.zeros_like(cross), where=q_eq > 0)
    return q_eq, c_eq
