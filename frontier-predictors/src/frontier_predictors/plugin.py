"""Registers this distribution's execution-time predictors and commands."""

from __future__ import annotations

from frontier.hookspecs import hookimpl

from frontier_predictors.dummy import DummyConfig, DummyPredictor
from frontier_predictors.lightgbm_predictor import LightGBMConfig, LightGBMPredictor
from frontier_predictors.roofline import RooflineConfig, RooflinePredictor
from frontier_predictors.sklearn_predictor import SklearnConfig, SklearnPredictor


@hookimpl
def frontier_register_predictors(registry):
    """Add ``roofline``, ``sklearn``, ``lightgbm`` and ``dummy``."""
    registry.register("roofline", RooflinePredictor, RooflineConfig)
    registry.register("sklearn", SklearnPredictor, SklearnConfig)
    registry.register("lightgbm", LightGBMPredictor, LightGBMConfig)
    registry.register("dummy", DummyPredictor, DummyConfig)


@hookimpl
def frontier_add_commands(app):
    """Add ``frontier train`` and ``frontier predictors validate``."""
    from frontier_predictors.cli import add_commands

    add_commands(app)
