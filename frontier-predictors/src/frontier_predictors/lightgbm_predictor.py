"""The ``lightgbm`` predictor: gradient-boosted trees per operator.

Trained on an operator profile, evaluated once on a grid of each operator's
features and answered from those tables (see :mod:`frontier_predictors.learned`).
The defaults suit profiles of a few hundred rows: shallow trees (15 leaves) that
may end in leaves of two samples (LightGBM's default of 20 would flatten a
261-row profile into a handful of steps), 300 rounds at learning rate 0.05, no
row or column subsampling, deterministic histogram building.
"""

from __future__ import annotations

from typing import Any

import attrs
from frontier.config import FieldValueError

from frontier_predictors.learned import LearnedConfig, LearnedPredictor

__all__ = ["LightGBMConfig", "LightGBMPredictor"]


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise FieldValueError(attribute.name, f"must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class LightGBMConfig(LearnedConfig):
    """Settings of the ``lightgbm`` predictor.

    Example (TOML)::

        [predictor]
        type = "lightgbm"
        profile_dir = "data/profiling/compute/a800/meta-llama/Llama-2-7b-hf"

    Attributes:
        profile_dir: Directory of the operator profile (``mlp.csv`` or
            ``linear_op.csv``, ``attention.csv``, ``moe.csv`` for MoE models),
            measured on the deployment's device at its TP size. Required.
        n_estimators: Boosting rounds.
        learning_rate: Shrinkage of each round.
        num_leaves: Most leaves of one tree.
        min_child_samples: Fewest samples in a leaf.
        n_jobs: Worker threads for training (one is fastest on profiles this
            small: the threads cost more than they save).
        cache_dir: Where trained tables are kept; ``$FRONTIER_CACHE_DIR`` or
            ``~/.cache/frontier/predictors`` when unset.
        statistic: Which ``time_stats`` statistic to learn (``median``, ``mean``,
            ``min``, ``max``).
        seed: Seed of the boosting.
    """

    type: str = "lightgbm"
    n_estimators: int = attrs.field(default=300, validator=_positive)
    learning_rate: float = attrs.field(default=0.05, validator=_positive)
    num_leaves: int = attrs.field(default=15, validator=_positive)
    min_child_samples: int = attrs.field(default=2, validator=_positive)
    n_jobs: int = 1

    def learner_name(self) -> str:
        """``lightgbm``."""
        return "lightgbm"

    def learner_params(self) -> dict[str, Any]:
        """The boosting's hyper-parameters."""
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "n_jobs": self.n_jobs,
        }


class LightGBMPredictor(LearnedPredictor):
    """Gradient-boosted trees per operator (LightGBM), answered from tables."""
