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


class _StubCosts:
    """Every operator applies; no expert parallelism."""

    ep = 1

    def applies(self, name: str) -> bool:
        return True


class _StubRoofline:
    """A roofline easy to compute by hand: ``0.5 + x`` (1-D), ``x (1 + y)`` (2-D)."""

    costs = _StubCosts()

    def time(self, name, x, y=None):
        if y is None:
            return 0.5 + x * 1.0
        return x * (1.0 + y)


def test_a_table_continues_beyond_its_edge_by_the_rooflines_growth():
    """Past the last profiled size a 1-D table is its edge value scaled by the
    roofline's growth from the edge, so it is continuous there."""
    table = OperatorTable("qkv_proj", (np.array([10.0, 20.0]),), np.array([1.0, 3.0]))
    steps = StepTables(_StubRoofline(), {"qkv_proj": table}, initial_size=32)
    times = steps.operator_times("qkv_proj", np.array([20.0, 30.0]))
    # edge 20: table 3.0; at 30: 3.0 * (0.5 + 30) / (0.5 + 20) = 91.5 / 20.5
    assert times.tolist() == pytest.approx([3.0, 91.5 / 20.5])


def test_a_2d_table_continues_from_the_nearest_edge_point():
    """A decode batch beyond the grid is the grid at the clamped point, scaled by
    the roofline's ratio between the point and the clamped point."""
    axes = (np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    values = np.array([[1.0, 2.0], [3.0, 6.0]])
    table = OperatorTable("attention_decode", axes, values)
    steps = StepTables(_StubRoofline(), {"attention_decode": table}, initial_size=8)
    times = steps.operator_times("attention_decode", np.array([4.0]), np.array([2.0]))
    # clamped point (2, 2): table 3 + (6 - 3) * 2 / 4 = 4.5;
    # roofline 4 * (1 + 2) = 12 at (4, 2), 2 * (1 + 2) = 6 at (2, 2): 4.5 * 2 = 9
    assert times[0] == pytest.approx(9.0)


def test_prefill_points_project_into_the_profiled_triangle():
    """Beyond q + c = max_sum the context is lowered first, then the query."""
    axes = (np.array([0.0, 100.0]), np.array([0.0, 100.0]))
    table = OperatorTable("attention_prefill", axes, np.ones((2, 2)), max_sum=120.0)
    x, y = table.project(np.array([90.0, 150.0, 200.0]), np.array([90.0, 10.0, 0.0]))
    # (90, 90): c lowered to 120 - 90 = 30; (150, 10): q clamped to 100, 100 + 10
    # is inside; (200, 0): q clamped to 100
    assert x.tolist() == [90.0, 100.0, 100.0]
    assert y.tolist() == [30.0, 10.0, 0.0]


def test_scalar_continuation_matches_the_vectorised_one(tiny_context):
    """A batch beyond a learned attention grid gets the same attention time from
    the scalar path as from ``operator_times``."""
    axes = (np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    table = OperatorTable(
        "attention_decode", axes, np.array([[1e-5, 2e-5], [3e-5, 6e-5]])
    )
    roofline = roofline_for(tiny_context, default_factors())
    steps = StepTables(roofline, {"attention_decode": table})
    with_table, missed = steps.predict(make_batch(decodes=[2, 2, 2, 2]))
    without, _ = StepTables(roofline, {}).predict(make_batch(decodes=[2, 2, 2, 2]))
    # n = 4 decodes of 2 cached tokens: only the decode kernel differs
    decode = steps.operator_times("attention_decode", np.array([4.0]), np.array([2.0]))
    roof = roofline.time("attention_decode", 4.0, 2.0)
    assert with_table.attention_s - without.attention_s == pytest.approx(
        decode[0] - roof, rel=1e-9
    )
    assert missed & 32
