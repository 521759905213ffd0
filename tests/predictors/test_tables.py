"""Feature pooling and table look-ups."""

from __future__ import annotations

import math

import numpy as np
import pytest
from frontier_predictors.features import batch_features, pooled_prefill
from frontier_predictors.roofline import default_factors, roofline_for
from frontier_predictors.tables import OperatorTable, StepTables

from .conftest import make_batch


def test_one_chunk_pools_to_itself():
    """A single chunk of 300 tokens over 100 cached stays (300, 100)."""
    # sum q^2 = 90000, sum q c = 30000 -> q_eq = 300, c_eq = 30000 / 300 = 100
    assert pooled_prefill(300 * 300, 300 * 100) == (300.0, 100.0)


def test_two_chunks_pool_to_their_work():
    """Chunks (30, 40) and (40, 0) pool to q = 50, c = 24."""
    # sum q^2 = 900 + 1600 = 2500 -> q_eq = 50; sum q c = 1200 -> c_eq = 24
    batch = make_batch(prefills=[(30, 40), (40, 0)])
    features = batch_features(batch)
    assert pooled_prefill(features.prefill_sq, features.prefill_cross) == (50.0, 24.0)


def test_batch_features_count_phases():
    """Two prefill chunks and three decodes give the sums the predictors use."""
    features = batch_features(
        make_batch(prefills=[(30, 40), (40, 0)], decodes=[9, 9, 19])
    )
    # tokens 30 + 40 + 3 = 73; decode context (9+1) + (9+1) + (19+1) = 40
    assert features.tokens == 73
    assert features.sequences == 5
    assert features.prefill_tokens == 70
    assert features.decodes == 3
    assert features.decode_context == 40


def test_a_table_clamps_below_and_interpolates_inside():
    """Below the grid the first value holds; between points it is linear."""
    table = OperatorTable("qkv_proj", (np.array([10.0, 20.0]),), np.array([1.0, 3.0]))
    assert table.lookup(np.array([5.0, 15.0])).tolist() == [1.0, 2.0]


def test_a_2d_table_is_bilinear():
    """The centre of a cell is the mean of its corners."""
    axes = (np.array([0.0, 2.0]), np.array([0.0, 4.0]))
    table = OperatorTable("attention_decode", axes, np.array([[1.0, 2.0], [3.0, 6.0]]))
    # (1 + 2 + 3 + 6) / 4 = 3
    assert table.lookup(np.array([1.0]), np.array([2.0]))[0] == pytest.approx(3.0)


def test_prefill_range_is_the_profiled_triangle():
    """A point with q + c beyond the largest profiled sum is out of range."""
    axes = (np.array([0.0, 100.0]), np.array([0.0, 100.0]))
    table = OperatorTable("attention_prefill", axes, np.ones((2, 2)), max_sum=120.0)
    # 60 + 60 = 120 is on the edge; 90 + 90 = 180 is beyond it.
    assert table.in_range(np.array([60.0]), np.array([60.0]))[0]
    assert not table.in_range(np.array([90.0]), np.array([90.0]))[0]


def test_scalar_answers_match_the_vectorised_sums(tiny_context):
    """A batch's block times equal the per-operator vectorised times summed."""
    roofline = roofline_for(tiny_context, default_factors())
    steps = StepTables(roofline, {})
    times, missed = steps.predict(make_batch(prefills=[(48, 16)], decodes=[40, 100]))
    # tokens 48 + 2 = 50; pooled prefill (48, 16); decodes n = 2, mean cached 70
    tokens = np.array([50.0])
    mlp = (
        sum(
            steps.operator_times(name, tokens)[0]
            for name in ("post_attention_norm", "mlp_up_gate", "mlp_act", "mlp_down")
        )
        + steps.operator_times("residual_add", tokens)[0]
    )
    assert times.mlp_s == pytest.approx(mlp, rel=1e-12)
    decode = steps.operator_times("attention_decode", np.array([2.0]), np.array([70.0]))
    prefill = steps.operator_times(
        "attention_prefill", np.array([48.0]), np.array([16.0])
    )
    rest = sum(
        steps.operator_times(name, tokens)[0]
        for name in ("input_norm", "qkv_proj", "rotary", "o_proj", "residual_add")
    )
    rest += steps.operator_times("kv_cache_write_prefill", np.array([48.0]))[0]
    rest += steps.operator_times("kv_cache_write_decode", np.array([2.0]))[0]
    assert times.attention_s == pytest.approx(rest + decode[0] + prefill[0], rel=1e-12)
    assert missed == 0


def test_tables_grow_for_large_steps(tiny_context):
    """A step larger than the first table length is answered (by the roofline)."""
    roofline = roofline_for(tiny_context, default_factors())
    steps = StepTables(roofline, {}, initial_size=16)
    times, _ = steps.predict(make_batch(prefills=[(1000, 0)]))
    expected = steps.operator_times("mlp_up_gate", np.array([1000.0]))[0]
    assert times.mlp_s > expected > 0
    assert math.isfinite(times.attention_s)
