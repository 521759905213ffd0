"""The dummy predictor: a fixed cost per token, labelled as no model."""

from __future__ import annotations

import pytest
from frontier_predictors.dummy import DummyConfig, DummyPredictor

from .conftest import make_batch


def test_a_step_costs_base_plus_per_token(tiny_context):
    """100 tokens at 50 us each plus 1000 us base take 6 ms over the 2 layers."""
    predictor = DummyPredictor(DummyConfig(), tiny_context)
    times = predictor.predict(make_batch(prefills=[(100, 0)]))
    # (1000 + 50 * 100) us = 6 ms, 3 ms in each of the 2 layers.
    assert times.attention_s == pytest.approx(3e-3)
    assert times.mlp_s == times.embedding_s == times.head_s == 0.0


def test_outputs_say_it_is_no_model(tiny_context):
    """describe(), hence system_metrics.json, carries the warning."""
    facts = DummyPredictor(DummyConfig(), tiny_context).describe()
    assert facts["type"] == "dummy"
    assert "smoke tests only" in facts["warning"]
