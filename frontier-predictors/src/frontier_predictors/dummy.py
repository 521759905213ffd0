"""The ``dummy`` predictor: a fixed cost per token, for smoke tests only.

Every step costs ``base_us + per_token_us * tokens``, spread evenly over the
model's layers so pipeline stages still share it. It models no GPU; every run that
uses it says so in ``system_metrics.json`` (``predictor.warning``).
"""

from __future__ import annotations

from typing import Any

import attrs
from frontier.config import FieldValueError, PredictorConfig
from frontier.plugins import ExecutionContext, OperatorTimes, Predictor

__all__ = ["DUMMY_WARNING", "DummyConfig", "DummyPredictor"]

DUMMY_WARNING = (
    "dummy predictor: every step costs a fixed time per token; the latencies model "
    "no GPU and are for smoke tests only"
)


def _non_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise FieldValueError(attribute.name, f"must be zero or more, got {value!r}")


@attrs.frozen(kw_only=True)
class DummyConfig(PredictorConfig):
    """Settings of the ``dummy`` predictor.

    Attributes:
        per_token_us: Microseconds per token computed in a step.
        base_us: Microseconds every step costs on top.
    """

    type: str = "dummy"
    per_token_us: float = attrs.field(default=50.0, validator=_non_negative)
    base_us: float = attrs.field(default=1000.0, validator=_non_negative)


class DummyPredictor(Predictor):
    """Fixed cost per token (smoke tests only; labelled as such in outputs)."""

    def __init__(self, config: DummyConfig, context: ExecutionContext) -> None:
        super().__init__(config, context)
        self._per_layer = 1e-6 / context.model.num_layers

    def predict(self, batch: Any) -> OperatorTimes:
        """``(base_us + per_token_us * tokens) / layers`` in each layer's attention."""
        config = self.config
        per_layer = (config.base_us + config.per_token_us * batch.num_tokens) * (
            self._per_layer
        )
        return OperatorTimes(per_layer, 0.0, 0.0, 0.0, 0.0)

    def describe(self) -> dict[str, Any]:
        """Type, fallbacks (always 0) and the warning that this is no model."""
        return {**super().describe(), "warning": DUMMY_WARNING}
