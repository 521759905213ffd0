"""Predictors learned from an operator profile, answered from tables.

:class:`LearnedPredictor` is the shared machinery of the ``sklearn`` and
``lightgbm`` predictors: read the profile (:mod:`frontier_predictors.profiles`),
train one model per operator and tabulate it (:mod:`frontier_predictors.training`),
fit the fallback roofline's factors to the same profile
(:mod:`frontier_predictors.calibration`), keep all of it in the cache
(:mod:`frontier_predictors.cache`), and answer batches from the tables
(:mod:`frontier_predictors.tables`). Operators the profile does not measure (the
LM head of older profiles, for instance) are answered by the roofline with its
default factors; ``describe()`` lists them.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import attrs
from frontier.config import FieldValueError, PredictorConfig, path_field
from frontier.errors import ConfigError, FrontierWarning
from frontier.plugins import ExecutionContext, OperatorTimes, Predictor

from frontier_predictors.cache import (
    TrainedTables,
    cache_key,
    cache_root,
    load_or_train,
)
from frontier_predictors.calibration import calibrate
from frontier_predictors.operators import OPERATORS
from frontier_predictors.profiles import (
    OperatorSamples,
    files_digest,
    profile_files,
    read_profile,
)
from frontier_predictors.provenance import check_profile_device
from frontier_predictors.roofline import default_factors, roofline_for
from frontier_predictors.tables import FALLBACK_BITS, StepTables
from frontier_predictors.training import train_tables

__all__ = ["LearnedConfig", "LearnedPredictor", "train_from_samples"]


def _positive(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value <= 0:
        raise FieldValueError(attribute.name, f"must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class LearnedConfig(PredictorConfig):
    """Settings every learned predictor shares.

    Attributes:
        check_device: Refuse a profile whose path names another device than
            the run's (see :mod:`frontier_predictors.provenance`).
        profile_dir: Directory of the operator profile (``mlp.csv`` or
            ``linear_op.csv``, ``attention.csv``, ``moe.csv`` for MoE models),
            measured on the deployment's device at its TP size.
        cache_dir: Where trained tables are kept; ``$FRONTIER_CACHE_DIR`` or
            ``~/.cache/frontier/predictors`` when unset.
        statistic: Which ``time_stats`` statistic to learn: ``median`` (robust
            to outliers), ``mean``, ``min`` or ``max``.
        seed: Seed of the models' randomness.
    """

    type: str = "learned"
    profile_dir: str | None = path_field(default=None)
    check_device: bool = True
    cache_dir: str | None = path_field(default=None)
    statistic: Literal["median", "mean", "min", "max"] = "median"
    seed: int = 0

    def learner_name(self) -> str:
        """Which model family trains the tables."""
        return "random_forest"

    def learner_params(self) -> dict[str, Any]:
        """Hyper-parameters handed to the model (see ``training.make_model``)."""
        return {}


def _package_version() -> str:
    try:
        return version("frontier-predictors")
    except PackageNotFoundError:
        return "unknown"


def train_from_samples(
    samples: dict[str, OperatorSamples],
    config: LearnedConfig,
    context: ExecutionContext,
    progress: Callable[[str], None] | None = None,
) -> TrainedTables:
    """Train tables and the fallback roofline's factors on ``samples``."""
    started = time.perf_counter()
    factors, _ = calibrate(samples, roofline_for(context, default_factors()))
    calibrated = default_factors()
    calibrated.update(factors)
    baseline = roofline_for(context, calibrated).time
    tables, report = train_tables(
        samples,
        config.learner_name(),
        config.learner_params(),
        config.seed,
        progress,
        baseline,
    )
    seconds = time.perf_counter() - started
    meta = {
        "learner": config.learner_name(),
        "params": config.learner_params(),
        "training_s": seconds,
    }
    return TrainedTables(tables, factors, report, meta)


class LearnedPredictor(Predictor):
    """Operator times from per-operator models of a profile, answered from tables.

    Subclasses set the config class and the learner; everything else is shared.
    """

    kind = "learned"

    def __init__(
        self,
        config: LearnedConfig,
        context: ExecutionContext,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config, context)
        if not config.profile_dir:
            raise ConfigError(
                f"predictor.profile_dir: the {config.type} predictor learns from an "
                "operator profile; set profile_dir to a directory with mlp.csv or "
                "linear_op.csv and attention.csv (see docs/predictors.md)"
            )
        if config.check_device:
            check_profile_device(config.profile_dir, context.device, "profile_dir")
        self.trained, self.cache_hit, self.cache_file = self._load_or_train(progress)
        factors = default_factors()
        factors.update(self.trained.factors)
        self.tables = StepTables(roofline_for(context, factors), self.trained.tables)
        self._missed: dict[int, int] = {}
        self._warn_of_thin_tables()

    def _warn_of_thin_tables(self) -> None:
        """A table learned from a single size along an axis is not a curve: every
        other size is the roofline scaled through that one point. Say so."""
        thin = sorted(
            name
            for name, table in self.trained.tables.items()
            if any(len(axis) < 2 for axis in table.axes)
        )
        if thin:
            warnings.warn(
                f"predictor.profile_dir {self.config.profile_dir}: "
                f"{', '.join(thin)} measured at a single size along an axis; their "
                "times elsewhere are the roofline scaled through that point. Profile "
                "more sizes for a curve.",
                FrontierWarning,
                stacklevel=2,
            )

    def _key_parts(self) -> dict[str, Any]:
        config, context = self.config, self.context
        _, files = profile_files(config.profile_dir, context.model)
        # Where files live and how many threads train do not change the tables.
        settings = attrs.asdict(config)
        for field in ("profile_dir", "cache_dir", "n_jobs"):
            settings.pop(field, None)
        params = {k: v for k, v in config.learner_params().items() if k != "n_jobs"}
        return {
            "profile": files_digest(files),
            "model": attrs.asdict(context.model),
            "device": attrs.asdict(context.device),
            "tp": context.parallel.tensor_parallel_size,
            "dtype": context.dtype,
            "kv_cache_dtype": context.kv_cache_dtype,
            "learner": config.learner_name(),
            "params": params,
            "settings": settings,
            "version": _package_version(),
        }

    def _load_or_train(
        self, progress: Callable[[str], None] | None
    ) -> tuple[TrainedTables, bool, str]:
        config, context = self.config, self.context
        key = cache_key(self._key_parts())
        root = cache_root(config.cache_dir)

        def train() -> TrainedTables:
            profile = read_profile(
                config.profile_dir,
                context.model,
                context.parallel.tensor_parallel_size,
                config.statistic,
            )
            return train_from_samples(profile.samples, config, context, progress)

        trained, hit = load_or_train(root, key, train)
        return trained, hit, str(root / f"{key}.npz")

    def predict(self, batch: Any) -> OperatorTimes:
        """Operator times of ``batch`` per TP rank, from the tables."""
        times, missed = self.tables.predict(batch)
        if missed:
            self.fallback_count += 1
            self._missed[missed] = self._missed.get(missed, 0) + 1
        return times

    def describe(self) -> dict[str, Any]:
        """Type, fallbacks (total and by feature), profile, cache file, ranges."""
        facts = super().describe()
        by_feature = {}
        for feature, bit in FALLBACK_BITS.items():
            count = sum(n for mask, n in self._missed.items() if mask & bit)
            if count:
                by_feature[feature.value] = count
        costs = self.tables.roofline.costs
        facts.update(
            {
                "fallback_by_feature": by_feature,
                # absolute, as config.toml stores it: a rerun of that file
                # from elsewhere gives the same summary
                "profile_dir": os.path.abspath(self.config.profile_dir),
                "learner": self.config.learner_name(),
                # Whether the tables came from the cache, and how long training
                # took, depend on earlier runs and on the wall clock: they stay
                # out of system_metrics.json, which a config and seed fix.
                "cache_file": self.cache_file,
                "roofline_operators": sorted(
                    n
                    for n in OPERATORS
                    if costs.applies(n)
                    and n not in self.trained.tables
                    and not OPERATORS[n].profiled_only
                ),
                "profiled_range": self.tables.ranges(),
            }
        )
        return facts
