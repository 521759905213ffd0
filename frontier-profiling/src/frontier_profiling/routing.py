"""Which experts the tokens of a profiled MoE layer go to, and how even that is.

Routing is synthetic so that a profile measures a chosen load, not whatever random
weights happen to produce:

- ``uniform``: token ``t``'s ``j``-th choice is expert ``(t * k + j) mod E``, so
  every expert receives the same number of tokens (to within one);
- ``zipf``: each token draws ``k`` distinct experts with probability proportional
  to ``1 / (i + 1) ** s`` (expert ``i``), the skew of popular experts seen in
  trained routers. Drawing uses the Gumbel-top-k trick (add Gumbel noise to the
  log-weights and keep the ``k`` largest), which samples without replacement
  exactly like drawing one expert at a time.

With expert parallelism the measured rank holds experts ``0 .. E/ep - 1``: under
``zipf`` those are the most popular, the rank that decides the step's time.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_statistics", "route"]


def route(
    num_tokens: int,
    num_experts: int,
    top_k: int,
    routing: str,
    zipf_exponent: float = 1.2,
    seed: int = 0,
) -> np.ndarray:
    """Expert ids of every token's choices, shape ``(num_tokens, top_k)``.

    Args:
        num_tokens: Tokens entering the layer.
        num_experts: Routed experts of the layer.
        top_k: Distinct experts per token.
        routing: ``uniform`` or ``zipf``.
        zipf_exponent: Skew ``s`` of ``zipf``.
        seed: Seed of the ``zipf`` draw.
    """
    if routing == "uniform":
        slots = np.arange(num_tokens * top_k, dtype=np.int64)
        return (slots % num_experts).reshape(num_tokens, top_k)
    if routing == "zipf":
        rng = np.random.default_rng(seed)
        log_weight = -zipf_exponent * np.log1p(np.arange(num_experts, dtype=float))
        keys = log_weight + rng.gumbel(size=(num_tokens, num_experts))
        chosen = np.argpartition(-keys, top_k - 1, axis=1)[:, :top_k]
        return np.sort(chosen, axis=1).astype(np.int64)
    raise ValueError(f"unknown routing {routing!r}")


def load_statistics(loads: np.ndarray) -> dict[str, float]:
    """How evenly ``loads`` (tokens per expert) are spread.

    Returns the columns of ``moe.csv``: ``total_routed_tokens``,
    ``tokens_per_expert_avg`` (= ``tokens_to_experts_ratio``),
    ``expert_utilization`` (share of experts with a token), ``min_load_ratio``
    and ``max_load_ratio`` (extremes over the mean), ``load_imbalance_cv``
    (population standard deviation over the mean), ``load_entropy`` (bits of the
    load shares) and ``load_gini_coefficient`` (mean absolute difference of all
    pairs over twice the mean).
    """
    loads = np.asarray(loads, dtype=float)
    total = float(loads.sum())
    mean = total / len(loads)
    shares = loads[loads > 0] / total if total else np.zeros(0)
    if mean > 0:
        pairs = np.abs(loads[:, None] - loads[None, :]).sum()
        gini = float(pairs / (2 * len(loads) ** 2 * mean))
        low, high, cv = loads.min() / mean, loads.max() / mean, loads.std() / mean
    else:
        gini = low = high = cv = 0.0
    return {
        "total_routed_tokens": int(total),
        "tokens_per_expert_avg": mean,
        "tokens_to_experts_ratio": mean,
        "expert_utilization": float((loads > 0).mean()),
        "min_load_ratio": float(low),
        "load_imbalance_cv": float(cv),
        "max_load_ratio": float(high),
        "load_entropy": float(-(shares * np.log2(shares)).sum()) + 0.0,
        "load_gini_coefficient": gini,
    }
