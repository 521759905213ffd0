"""The ``sklearn`` predictor: a random forest or a linear regression per operator.

Trained on an operator profile, evaluated once on a grid of each operator's
features and answered from those tables (see :mod:`frontier_predictors.learned`).
The forest has fixed hyper-parameters that fit the profiles in seconds: 64 trees
grown to single-sample leaves on all features, learning the logarithm of the
time. The linear regression fits the time on the terms the kernels scale with
(tokens; ``q``, ``q c``, ``q^2`` for prefill attention; ``n``, ``n m`` for decode
attention); it is quick and transparent but misses the launch-bound floor of
small batches.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
from frontier.config import FieldValueError

from frontier_predictors.learned import LearnedConfig, LearnedPredictor

__all__ = ["SklearnConfig", "SklearnPredictor"]


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value <= 0:
        raise FieldValueError(attribute.name, f"must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class SklearnConfig(LearnedConfig):
    """Settings of the ``sklearn`` predictor.

    Example (TOML)::

        [predictor]
        type = "sklearn"
        profile_dir = "data/profiling/compute/a800/meta-llama/Llama-2-7b-hf"
        model = "random_forest"

    Attributes:
        profile_dir: Directory of the operator profile (``mlp.csv`` or
            ``linear_op.csv``, ``attention.csv``, ``moe.csv`` for MoE models),
            measured on the deployment's device at its TP size. Required.
        model: ``random_forest`` (default) or ``linear``.
        n_estimators: Trees of the forest.
        min_samples_leaf: Fewest samples in a leaf of the forest.
        n_jobs: Worker threads for training (-1: all cores).
        cache_dir: Where trained tables are kept; ``$FRONTIER_CACHE_DIR`` or
            ``~/.cache/frontier/predictors`` when unset.
        statistic: Which ``time_stats`` statistic to learn (``median``, ``mean``,
            ``min``, ``max``).
        seed: Seed of the forest.
    """

    type: str = "sklearn"
    model: Literal["random_forest", "linear"] = "random_forest"
    n_estimators: int = attrs.field(default=64, validator=_positive)
    min_samples_leaf: int = attrs.field(default=1, validator=_positive)
    n_jobs: int = -1

    def learner_name(self) -> str:
        """``random_forest`` or ``linear``."""
        return self.model

    def learner_params(self) -> dict[str, Any]:
        """The forest's hyper-parameters (none for linear regression)."""
        if self.model == "linear":
            return {}
        return {
            "n_estimators": self.n_estimators,
            "min_samples_leaf": self.min_samples_leaf,
            "n_jobs": self.n_jobs,
        }


class SklearnPredictor(LearnedPredictor):
    """Random forest or linear regression per operator, answered from tables."""
