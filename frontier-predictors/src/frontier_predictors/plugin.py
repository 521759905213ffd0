"""Registers this distribution's execution-time predictors."""

from __future__ import annotations

from frontier.hookspecs import hookimpl

from frontier_predictors.roofline import RooflineConfig, RooflinePredictor


@hookimpl
def frontier_register_predictors(registry):
    """Add ``roofline``."""
    registry.register("roofline", RooflinePredictor, RooflineConfig)
