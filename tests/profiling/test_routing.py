"""Synthetic MoE routing and the load statistics written to moe.csv."""

from __future__ import annotations

import numpy as np
import pytest
from frontier_profiling.routing import load_statistics, route


def test_uniform_routing_balances_the_experts():
    """5 tokens x 2 choices over 4 experts: slots 0..9 mod 4 -> loads 3, 3, 2, 2."""
    ids = route(5, 4, 2, "uniform")
    assert ids.tolist()[:3] == [[0, 1], [2, 3], [0, 1]]
    assert np.bincount(ids.reshape(-1), minlength=4).tolist() == [3, 3, 2, 2]


def test_zipf_routing_favours_the_first_experts():
    """Under s = 1.2 expert 0 gets many times the load of expert 15."""
    ids = route(4096, 16, 2, "zipf", 1.2, seed=0)
    loads = np.bincount(ids.reshape(-1), minlength=16)
    assert loads.sum() == 8192  # every token routed twice
    assert loads[0] == loads.max()
    assert loads[0] > 3 * loads[15]  # weight ratio 16 ** 1.2 = 27.9 before top-k


def test_zipf_choices_of_a_token_are_distinct():
    """Top-k draws without replacement: no token picks an expert twice."""
    ids = route(1000, 8, 4, "zipf", 2.0, seed=1)
    assert all(len(set(row)) == 4 for row in ids.tolist())


def test_zipf_routing_is_seeded():
    """The same seed gives the same routing; another seed another one."""
    first = route(64, 16, 2, "zipf", seed=7)
    assert np.array_equal(first, route(64, 16, 2, "zipf", seed=7))
    assert not np.array_equal(first, route(64, 16, 2, "zipf", seed=8))


def test_unknown_routing_raises():
    """Only uniform and zipf exist."""
    with pytest.raises(ValueError, match="unknown routing"):
        route(4, 4, 1, "hot")


def test_statistics_of_one_token_over_sixteen_experts():
    """Loads [1, 1, 0 x 14] (one token, top 2): the shared H800 profile's figures."""
    stats = load_statistics(np.array([1, 1] + [0] * 14))
    # mean 2 / 16 = 0.125; population std sqrt(2/16 * 0.875^2 + 14/16 * 0.125^2)
    # = sqrt(0.109375) = 0.330719; cv = 0.330719 / 0.125 = 2.645751
    assert stats["load_imbalance_cv"] == pytest.approx(2.6457513110645907)
    # pairs differing: 2 x 14 ordered twice = 56; 56 / (2 * 16^2 * 0.125) = 0.875
    assert stats["load_gini_coefficient"] == pytest.approx(0.875)
    assert stats["load_entropy"] == pytest.approx(1.0)  # two equal shares: 1 bit
    assert stats["max_load_ratio"] == pytest.approx(8.0)  # 1 / 0.125
    assert stats["min_load_ratio"] == 0.0
    assert stats["expert_utilization"] == pytest.approx(0.125)  # 2 of 16
    assert stats["total_routed_tokens"] == 2


def test_statistics_of_a_balanced_load():
    """Four experts with 3 tokens each: no imbalance, 2 bits of entropy."""
    stats = load_statistics(np.array([3, 3, 3, 3]))
    assert stats["load_imbalance_cv"] == 0.0
    assert stats["load_gini_coefficient"] == 0.0
    assert stats["load_entropy"] == pytest.approx(2.0)  # log2(4)
    assert stats["tokens_per_expert_avg"] == 3.0


def test_statistics_of_no_tokens_are_zero():
    """A rank that received nothing has zero ratios, not a division by zero."""
    stats = load_statistics(np.zeros(4))
    assert stats["max_load_ratio"] == 0.0
    assert stats["load_entropy"] == 0.0
