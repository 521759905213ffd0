"""Held-out validation: seeded splits and exact figures for an exact model."""

from __future__ import annotations

import pytest
from frontier_predictors.learned import train_from_samples
from frontier_predictors.profiles import read_profile
from frontier_predictors.sklearn_predictor import SklearnConfig
from frontier_predictors.validation import held_out_rows, split_samples, validate


def test_the_split_is_seeded(older_profile, tiny_model):
    """One seed holds out the same rows twice; another seed other rows."""
    profile = read_profile(older_profile, tiny_model)
    first = held_out_rows(profile, 0.3, seed=1)
    again = held_out_rows(profile, 0.3, seed=1)
    other = held_out_rows(profile, 0.3, seed=2)
    assert first == again
    assert first != other


def test_the_split_holds_out_the_fraction_of_each_file(older_profile, tiny_model):
    """30% of mlp.csv's 5 rows is 2 rows; of attention.csv's 24 rows, 7."""
    profile = read_profile(older_profile, tiny_model)
    held = held_out_rows(profile, 0.3, seed=0)
    # round(0.3 * 5) = 2; round(0.3 * 24) = 7 (12 prefill + 12 decode rows)
    assert sorted(len(rows) for rows in held.values()) == [2, 7]


def test_held_out_rows_are_not_trained_on(older_profile, tiny_model):
    """No operator's training samples share a row with its held-out samples."""
    profile = read_profile(older_profile, tiny_model)
    train, test = split_samples(profile, held_out_rows(profile, 0.3, seed=0))
    for name, samples in test.items():
        assert not set(samples.rows) & set(train[name].rows)


def test_an_exact_model_has_no_error(older_profile, tiny_model, tiny_context):
    """Linear regression on the exactly linear hand-made profile: 0% error."""
    profile = read_profile(older_profile, tiny_model)
    config = SklearnConfig(model="linear")

    def train(samples):
        return train_from_samples(samples, config, tiny_context)

    # Seed 1 holds out mlp.csv lines 3 and 4 (16 and 32 tokens) and attention
    # lines 2, 4 and 7 among others, all inside the range the rest covers.
    result = validate(profile, tiny_context, train, fraction=0.3, seed=1)
    assert result["operators"]["qkv_proj"]["mape_percent"] == pytest.approx(0, abs=1e-9)
    assert result["iteration"]["samples"] >= 3
    assert result["iteration"]["mape_percent"] == pytest.approx(0, abs=1e-9)
