"""Held-out validation: how far a predictor is from measurements it never saw.

A seeded fraction of each profile file's rows is held out; the predictor is
trained (or, for the roofline, calibrated) on the rest and answers the held-out
rows exactly as it answers batches in a run: from its tables, continued by the
roofline's growth beyond the profiled range. Two kinds of figure come out:

- per operator: MAPE, 90th-percentile absolute percentage error and mean signed
  percentage error (bias) over the held-out samples measured above zero;
- per iteration: a single-phase step (one prefill chunk of ``q`` tokens over ``c``
  cached ones, or ``n`` decodes with ``m`` cached tokens each) built from a
  held-out attention row and a held-out linear-operator row measured at the
  step's token count. Its time is the model's layers times the attention and MLP
  blocks (MoE blocks for MoE layers) plus the embedding, summed over the
  operators both rows measured, once from the measurements and once from the
  predictor. Operators the profile lacks (the LM head of older profiles) are
  left out of both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from frontier.errors import ConfigError
from frontier.plugins import ExecutionContext

from frontier_predictors.cache import TrainedTables
from frontier_predictors.calibration import calibrate
from frontier_predictors.operators import (
    ATTENTION_BLOCK,
    EMBEDDING_BLOCK,
    MLP_BLOCK,
    MOE_BLOCK,
    OPERATORS,
    Feature,
)
from frontier_predictors.profiles import OperatorSamples, Profile
from frontier_predictors.roofline import OperatorFactors, default_factors, roofline_for
from frontier_predictors.tables import StepTables
from frontier_predictors.training import bias_percent, mape_percent, p90_percent

__all__ = ["check_training_rows", "held_out_rows", "split_samples", "validate"]


def held_out_rows(profile: Profile, fraction: float, seed: int) -> dict[Path, set[int]]:
    """For each file, the line numbers held out (a seeded random ``fraction``)."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    result = {}
    for path in profile.files:
        rows = sorted(
            {
                int(r)
                for s in profile.samples.values()
                if s.source == path
                for r in s.rows
            }
        )
        count = max(1, round(fraction * len(rows))) if rows else 0
        chosen = rng.choice(len(rows), size=count, replace=False) if count else []
        result[path] = {rows[i] for i in chosen}
    return result


def split_samples(
    profile: Profile, held: dict[Path, set[int]]
) -> tuple[dict[str, OperatorSamples], dict[str, OperatorSamples]]:
    """``(training, held_out)`` samples of every operator."""
    train, test = {}, {}
    for name, samples in profile.samples.items():
        mask = np.isin(samples.rows, sorted(held.get(samples.source, set())))
        if (~mask).any():
            train[name] = samples.subset(~mask)
        if mask.any():
            test[name] = samples.subset(mask)
    return train, test


def _predict(steps: StepTables, samples: OperatorSamples) -> np.ndarray:
    x = samples.x
    if x.ndim == 2:
        return steps.operator_times(samples.name, x[:, 0], x[:, 1])
    return steps.operator_times(samples.name, x)


def _iteration_samples(
    test: dict[str, OperatorSamples], context: ExecutionContext
) -> list[dict[str, tuple[Any, float]]]:
    """Held-out single-phase steps: operator -> (feature, measured seconds)."""
    by_row: dict[tuple[Path, int], dict[str, tuple[Any, float]]] = {}
    for name, samples in test.items():
        for x, t, row in zip(samples.x, samples.time_ms, samples.rows, strict=True):
            key = (samples.source, int(row))
            by_row.setdefault(key, {})[name] = (x, float(t) / 1e3)
    # Token-count operators, by token count, from the first held-out row of each.
    by_tokens: dict[float, dict[str, tuple[Any, float]]] = {}
    attention_rows = []
    for _key, ops in sorted(
        by_row.items(), key=lambda item: (str(item[0][0]), item[0][1])
    ):
        if "attention_prefill" in ops or "attention_decode" in ops:
            attention_rows.append(ops)
            continue
        for name, (x, t) in ops.items():
            if OPERATORS[name].feature is Feature.TOKENS:
                by_tokens.setdefault(float(x), {}).setdefault(name, (x, t))
    steps = []
    for ops in attention_rows:
        has_prefill = "attention_prefill" in ops
        has_decode = "attention_decode" in ops
        if has_prefill == has_decode:
            continue  # a mixed batch: no single linear row matches it
        if has_prefill:
            q, _ = ops["attention_prefill"][0]
            if abs(q - round(q)) > 1e-9:
                continue  # pooled from several chunks: not a single-sequence step
            tokens = float(round(q))
        else:
            tokens = float(ops["attention_decode"][0][0])
        linear = by_tokens.get(tokens)
        if linear is None:
            continue
        steps.append({**ops, **linear})
    return steps


def _iteration_figures(
    steps: StepTables,
    samples: list[dict[str, tuple[Any, float]]],
    context: ExecutionContext,
) -> dict[str, Any]:
    model = context.model
    layers = model.num_layers
    moe_layers = model.num_moe_layers
    weights: dict[str, float] = {}
    for name in ATTENTION_BLOCK:
        weights[name] = weights.get(name, 0) + layers
    for name in MLP_BLOCK:
        weights[name] = weights.get(name, 0) + layers - moe_layers
    for name in MOE_BLOCK:
        weights[name] = weights.get(name, 0) + moe_layers
    for name in EMBEDDING_BLOCK:
        weights[name] = weights.get(name, 0) + 1
    measured = np.zeros(len(samples))
    predicted = np.zeros(len(samples))
    for name, weight in weights.items():
        if not weight:
            continue
        index = [i for i, s in enumerate(samples) if name in s]
        if not index:
            continue
        xs = np.array([samples[i][name][0] for i in index], dtype=float)
        ts = np.array([samples[i][name][1] for i in index])
        if xs.ndim == 2:
            guess = steps.operator_times(name, xs[:, 0], xs[:, 1])
        else:
            guess = steps.operator_times(name, xs)
        measured[index] += weight * ts
        predicted[index] += weight * guess
    return {
        "samples": len(samples),
        "mape_percent": mape_percent(predicted, measured),
        "p90_percent": p90_percent(predicted, measured),
        "bias_percent": bias_percent(predicted, measured),
        "measured_ms_mean": float(measured.mean() * 1e3) if len(samples) else None,
    }


def _untrained(profile: Profile, train: dict[str, OperatorSamples]) -> list[str]:
    """Operators of ``profile`` left without a single training row."""
    return sorted(n for n in profile.samples if len(train.get(n, ())) == 0)


def check_training_rows(profile: Profile, fraction: float, seed: int) -> None:
    """Refuse a held-out fraction that leaves an operator nothing to train on.

    Raises:
        ConfigError: Some operator has all its rows held out; the message names
            them and the largest of 0.9, 0.8, ..., 0.1 that leaves each at least
            one training row with the same seed.
    """
    train, _ = split_samples(profile, held_out_rows(profile, fraction, seed))
    empty = _untrained(profile, train)
    if not empty:
        return
    usable = None
    for tenths in range(9, 0, -1):
        candidate = tenths / 10
        if candidate >= fraction:
            continue
        trial, _ = split_samples(profile, held_out_rows(profile, candidate, seed))
        if not _untrained(profile, trial):
            usable = candidate
            break
    counts = ", ".join(
        f"{n} ({len(profile.samples[n])} rows in {profile.samples[n].source.name})"
        for n in empty
    )
    hint = (
        f"--holdout {usable:g} or less keeps a training row for each"
        if usable is not None
        else "no holdout of 0.1 or more does; the profile has too few rows"
    )
    raise ConfigError(
        f"--holdout {fraction:g} holds out every row of {counts}: nothing is left "
        f"to train on; {hint}"
    )


def validate(
    profile: Profile,
    context: ExecutionContext,
    train: Callable[[dict[str, OperatorSamples]], TrainedTables] | None,
    fraction: float = 0.2,
    seed: int = 0,
    factors: dict[str, OperatorFactors] | None = None,
    combine: str = "max",
) -> dict[str, Any]:
    """Hold out rows, train on the rest, and measure the errors on the held-out.

    Args:
        profile: The profile read for the deployment's model and TP size.
        context: Model, device, TP size and dtypes.
        train: Trains tables on samples; ``None`` validates the roofline
            calibrated on the training rows.
        fraction: Fraction of each file's rows held out.
        seed: Seed of the choice of rows.
        factors: Roofline factors fixed in advance (a calibration of another
            profile, or the defaults): nothing is fitted and every row is tested.
        combine: How the roofline calibration combines compute and memory time
            (see :func:`~frontier_predictors.calibration.fit_factors`).

    Returns:
        A JSON-ready mapping: ``operators`` (per-operator figures),
        ``iteration`` (whole-step figures) and the settings.

    Raises:
        ConfigError: ``fraction`` holds out every row of some operator.
    """
    if factors is not None:
        held = {
            path: {
                int(r)
                for s in profile.samples.values()
                if s.source == path
                for r in s.rows
            }
            for path in profile.files
        }
        fraction = 1.0
    else:
        check_training_rows(profile, fraction, seed)
        held = held_out_rows(profile, fraction, seed)
    train_samples, test_samples = split_samples(profile, held)
    training_s = None
    if factors is not None:
        steps = StepTables(roofline_for(context, factors), {})
    elif train is None:
        factors = default_factors()
        fitted, _ = calibrate(train_samples, roofline_for(context, factors), combine)
        factors.update(fitted)
        steps = StepTables(roofline_for(context, factors), {})
    else:
        factors = default_factors()
        trained = train(train_samples)
        factors.update(trained.factors)
        steps = StepTables(roofline_for(context, factors), trained.tables)
        training_s = trained.meta.get("training_s")
    operators = {}
    for name in sorted(test_samples):
        samples = test_samples[name]
        if not steps.roofline.costs.applies(name):
            continue
        guess = _predict(steps, samples)
        truth = samples.time_ms / 1e3
        operators[name] = {
            "train_samples": len(train_samples.get(name, ())),
            "test_samples": len(samples),
            "mape_percent": mape_percent(guess, truth),
            "p90_percent": p90_percent(guess, truth),
            "bias_percent": bias_percent(guess, truth),
        }
    iteration = _iteration_figures(
        steps, _iteration_samples(test_samples, context), context
    )
    return {
        "profile_dir": str(profile.directory),
        "model": context.model.name,
        "device": context.device.name,
        "tensor_parallel_size": context.parallel.tensor_parallel_size,
        "held_out_fraction": fraction,
        "seed": seed,
        "training_s": training_s,
        "operators": operators,
        "iteration": iteration,
    }
