"""``frontier train`` and ``frontier predictors validate``.

``frontier train --predictor sklearn --profiles DIR`` trains every operator of the
model (or finds them in the cache) and prints each operator's training error;
``--predictor roofline`` fits the roofline's per-operator factors and writes the
calibration JSON that ``predictor.calibration_path`` loads.

``frontier predictors validate --profiles DIR --predictor NAME`` holds out a seeded
fraction of the profile's rows, trains on the rest and prints per-operator and
whole-iteration MAPE and p90 error; ``--json FILE`` also writes them as JSON.

The model and device default to what the profile's path names
(``.../<device>/<org>/<model>``); ``--model`` and ``--device`` override them.
Tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from frontier.errors import ConfigError, FrontierError
from rich.console import Console
from rich.table import Table

__all__ = ["add_commands"]

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

ProfilesOpt = Annotated[
    Path, typer.Option("--profiles", help="Operator profile directory.")
]
PredictorOpt = Annotated[
    str,
    typer.Option("--predictor", "-p", help="Predictor: sklearn, lightgbm, roofline."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model name; by default from the profile path."),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device", "-d", help="Device name; by default from the profile path."
    ),
]
TpOpt = Annotated[int, typer.Option("--tp", help="Tensor-parallel size.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Predictor setting: key=value, e.g. model=linear (repeatable)."
    ),
]
CombineOpt = Annotated[
    str | None,
    typer.Option(
        "--combine",
        help="Roofline calibration: max (the roofline, default) or best (max or "
        "sum per op).",
    ),
]
CacheOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="Cache of trained tables.")
]


# --------------------------------------------------------------------------- setup


def _guess_model(profiles: Path) -> str:
    from frontier.models import load_model

    parts = profiles.resolve().parts
    for candidate in ("/".join(parts[-2:]), parts[-1]):
        try:
            load_model(candidate)
        except ConfigError:
            continue
        return candidate
    named = _metadata_field(profiles, "model")
    hint = f" (its metadata.json names {named!r})" if isinstance(named, str) else ""
    raise ConfigError(
        f"--model: cannot tell the model from the profile path {profiles}{hint}; "
        "pass --model (a catalogue name, see `frontier models list`, or the "
        "config.json it was profiled from)"
    )


def _guess_device(profiles: Path) -> str:
    from frontier.devices import load_device

    for part in reversed(profiles.resolve().parts[:-1]):
        try:
            load_device(part)
        except ConfigError:
            continue
        return part
    measured_on = _metadata_field(profiles, "device")
    if isinstance(measured_on, str) and measured_on.lower() == "cpu":
        raise ConfigError(
            f"--device: {profiles} was measured on the CPU (its metadata.json), "
            "and a predictor answers for a catalogue device. To try the pipeline "
            "on it anyway, pass --device with a catalogue name (`frontier devices "
            "list`) and --set check_device=false"
        )
    raise ConfigError(
        f"--device: cannot tell the device from the profile path {profiles}; pass "
        "--device (see `frontier devices list`)"
    )


def _metadata_field(profiles: Path, key: str) -> Any:
    """``key`` of the profile's ``metadata.json`` (written by `frontier
    profile`), or ``None`` where there is none."""
    import json

    try:
        data = json.loads((profiles / "metadata.json").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def _check_profiles(profiles: Path) -> None:
    """Refuse a ``--profiles`` that is not an existing folder."""
    if profiles.is_file():
        raise ConfigError(
            f"--profiles: {profiles} is a file, not a folder; pass the folder that "
            f"holds the profile's CSV files (here {profiles.parent})"
        )
    if not profiles.is_dir():
        raise ConfigError(f"--profiles: folder {profiles} does not exist")


_UNTRAINED = {
    "dummy": "charges a fixed cost per token",
    "vllm_profile": "reads its per-layer vLLM profile directly "
    "(predictor.path) at run time",
}
"""Predictors ``train`` and ``validate`` refuse, and why they need no training."""


def _check_trainable(predictor: str) -> None:
    """Refuse a predictor that learns nothing from an operator profile."""
    if predictor in _UNTRAINED:
        raise ConfigError(
            f"--predictor {predictor}: nothing to train; {predictor} "
            f"{_UNTRAINED[predictor]} and needs no training. `frontier train` "
            "trains sklearn and lightgbm and calibrates roofline"
        )


def _roofline_only(predictor: str, options: dict[str, Any]) -> str:
    """Refuse roofline-only options given with another predictor; the
    ``--combine`` to use (``max`` unless given)."""
    given = [name for name, value in options.items() if value is not None]
    if predictor != "roofline" and given:
        raise ConfigError(
            f"{' and '.join(given)}: only the roofline calibration (--predictor "
            f"roofline) takes {'these' if len(given) > 1 else 'this'}; "
            f"--predictor {predictor} keeps its trained tables in the cache "
            "(--cache-dir) and has no calibration to write or combine"
        )
    combine = options.get("--combine") or "max"
    _check_combine(combine)
    return combine


def _check_output(output: Path) -> None:
    """Refuse an ``--output`` that cannot be written, before any fitting."""
    if output.is_dir():
        raise ConfigError(
            f"--output: {output} is a folder; give a file name, e.g. "
            f"{output / 'calibration.json'}"
        )
    if not output.parent.is_dir():
        raise ConfigError(
            f"--output: folder {output.parent} does not exist; create it or write "
            "elsewhere"
        )


def _settings(sets: list[str] | None) -> dict[str, Any]:
    from frontier.config_build import parse_override

    result: dict[str, Any] = {}
    for text in sets or []:
        keys, value = parse_override(text)
        result[".".join(keys)] = value
    return result


def _deployment(
    profiles: Path,
    predictor: str,
    model: str | None,
    device: str | None,
    tp: int,
    sets: list[str] | None,
    cache_dir: Path | None,
) -> tuple[Any, Any]:
    """The predictor config and execution context the command works on."""
    from frontier.config_build import build_config
    from frontier.devices import load_device
    from frontier.models import load_model
    from frontier.plugins import ExecutionContext, default_plugins
    from frontier.simulation import resolve_dtypes

    _check_profiles(profiles)
    model_name = model or _guess_model(profiles)
    device_name = device or _guess_device(profiles)
    section: dict[str, Any] = {"type": predictor, **_settings(sets)}
    if predictor not in ("roofline", "dummy"):
        section["profile_dir"] = str(profiles)
        if cache_dir is not None:
            section["cache_dir"] = str(cache_dir)
    if model_name.endswith(".json"):
        model_section = {"name": Path(model_name).stem, "config_path": model_name}
    else:
        model_section = {"name": model_name}
    data = {
        "model": model_section,
        "device": {"name": device_name},
        "parallel": {"tensor_parallel_size": tp},
        "predictor": section,
    }
    config = build_config(
        data, default_plugins().registry.config_classes(), "command line"
    )
    spec = load_model(config.model.name, config.model.config_path)
    dtype, kv_dtype = resolve_dtypes(config, spec)
    context = ExecutionContext(
        model=spec,
        device=load_device(config.device.name),
        parallel=config.parallel,
        dtype=dtype,
        kv_cache_dtype=kv_dtype,
    )
    return config.predictor, context


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


_HEADERS = {
    "samples": "samples",
    "train_samples": "train",
    "test_samples": "test",
    "mape_percent": "MAPE %",
    "p90_percent": "p90 %",
    "bias_percent": "bias %",
}


def _error_table(
    title: str, rows: dict[str, dict[str, Any]], columns: list[str]
) -> Table:
    table = Table(title=title)
    table.add_column("operator", no_wrap=True, min_width=24)
    for column in columns:
        table.add_column(_HEADERS[column], justify="right")
    for name, figures in sorted(rows.items()):
        cells = []
        for column in columns:
            value = figures.get(column)
            cells.append(_percent(value) if "percent" in column else str(value))
        table.add_row(name, *cells)
    return table


# --------------------------------------------------------------------------- train


def train(
    profiles: ProfilesOpt,
    predictor: PredictorOpt = "sklearn",
    model: ModelOpt = None,
    device: DeviceOpt = None,
    tp: TpOpt = 1,
    set_: SetOpt = None,
    cache_dir: CacheOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Roofline calibration JSON to write (roofline only)."
        ),
    ] = None,
    combine: CombineOpt = None,
) -> None:
    """Train a predictor on a profile (pre-warming its cache), or calibrate the
    roofline; print each operator's training error."""
    from frontier_predictors.learned import LearnedConfig, LearnedPredictor

    _check_trainable(predictor)
    combine = _roofline_only(predictor, {"--output": output, "--combine": combine})
    if output is not None:
        _check_output(output)
    config, context = _deployment(
        profiles, predictor, model, device, tp, set_, cache_dir
    )
    if predictor == "roofline":
        _calibrate(profiles, config, context, output, combine)
        return
    if not isinstance(config, LearnedConfig):
        raise ConfigError(
            f"--predictor {predictor}: nothing to train; `frontier train` trains "
            "sklearn and lightgbm and calibrates roofline"
        )
    from frontier.plugins import default_plugins

    factory = default_plugins().registry.get("predictor", predictor).factory
    with stderr.status(f"training {predictor} on {profiles}") as status:

        def progress(name: str) -> None:
            status.update(f"training {predictor}: {name}")

        trained: LearnedPredictor = factory(config, context, progress=progress)
    report = trained.trained.report
    stdout.print(
        _error_table(
            f"{predictor} training error on {profiles}",
            report,
            ["samples", "mape_percent", "p90_percent"],
        )
    )
    seconds = trained.trained.meta.get("training_s")
    state = "read from cache" if trained.cache_hit else f"trained in {seconds:.1f} s"
    stdout.print(f"{state}: {trained.cache_file}")


def _check_combine(combine: str) -> None:
    from frontier_predictors.calibration import COMBINE

    if combine not in COMBINE:
        raise ConfigError(
            f"--combine must be one of {', '.join(COMBINE)}, got {combine!r}"
        )


def _calibrate(
    profiles: Path, config: Any, context: Any, output: Path | None, combine: str
) -> None:
    from frontier_predictors.calibration import calibrate, write_calibration
    from frontier_predictors.profiles import read_profile
    from frontier_predictors.roofline import default_factors, roofline_for

    with stderr.status(f"calibrating the roofline on {profiles}"):
        profile = read_profile(
            profiles, context.model, context.parallel.tensor_parallel_size
        )
        factors, report = calibrate(
            profile.samples, roofline_for(context, default_factors(config)), combine
        )
    tp = context.parallel.tensor_parallel_size
    slug = context.model.name.split("/")[-1]
    path = output or Path(f"roofline-{context.device.name}-{slug}-tp{tp}.json")
    source = {
        "profile_dir": str(profiles),
        "model": context.model.name,
        "device": context.device.name,
        "tensor_parallel_size": tp,
        "combine": combine,
    }
    write_calibration(path, factors, report, source)
    rows = {name: {**factors[name].as_dict(), **report[name]} for name in factors}
    table = Table(title=f"roofline calibration on {profiles}")
    table.add_column("operator", no_wrap=True, min_width=24)
    for column in ("samples", "compute eff.", "memory eff.", "overhead us"):
        table.add_column(column, justify="right")
    table.add_column("form", justify="right")
    table.add_column("MAPE %", justify="right")
    for name, row in sorted(rows.items()):
        table.add_row(
            name,
            str(row["samples"]),
            f"{row['compute_efficiency']:.3f}",
            f"{row['memory_efficiency']:.3f}",
            f"{row['overhead_us']:.1f}",
            row["combine"],
            _percent(row["mape_percent"]),
        )
    stdout.print(table)
    stdout.print(f"wrote {path}; use it with predictor.calibration_path")


# --------------------------------------------------------------------------- validate


def validate(
    profiles: ProfilesOpt,
    predictor: PredictorOpt = "sklearn",
    model: ModelOpt = None,
    device: DeviceOpt = None,
    tp: TpOpt = 1,
    set_: SetOpt = None,
    holdout: Annotated[
        float, typer.Option("--holdout", help="Fraction of rows held out.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out rows.")] = 0,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the figures as JSON to this file."),
    ] = None,
    combine: CombineOpt = None,
) -> None:
    """Hold out profile rows, train on the rest, print per-operator and iteration
    MAPE and p90 error on the held-out rows (and write them as JSON with --json).

    A roofline given a calibration (``--set calibration_path=FILE``) is not fitted
    again: it is tested on every row, e.g. a calibration of one device against
    another device's profile."""
    from frontier_predictors.learned import LearnedConfig, train_from_samples
    from frontier_predictors.profiles import read_profile
    from frontier_predictors.roofline import default_factors, load_calibration
    from frontier_predictors.validation import validate as run_validation

    if not 0 < holdout < 1:
        raise ConfigError(f"--holdout must be between 0 and 1, got {holdout}")
    _check_trainable(predictor)
    combine = _roofline_only(predictor, {"--combine": combine})
    config, context = _deployment(profiles, predictor, model, device, tp, set_, None)
    if predictor != "roofline" and not isinstance(config, LearnedConfig):
        raise ConfigError(
            f"--predictor {predictor}: only sklearn, lightgbm and roofline learn from "
            "a profile"
        )
    profile = read_profile(profiles, context.model, tp)
    train_fn = None
    factors = None
    if isinstance(config, LearnedConfig):

        def train_fn(samples):
            return train_from_samples(samples, config, context)

    elif config.calibration_path:
        # A calibration of another profile: test it on every row of this one.
        factors = default_factors(config)
        factors.update(load_calibration(config.calibration_path))
    with stderr.status(f"validating {predictor} on {profiles}"):
        result = run_validation(
            profile, context, train_fn, holdout, seed, factors, combine
        )
    result["predictor"] = predictor
    result["settings"] = _settings(set_)
    rows = "all rows" if factors is not None else f"{holdout:.0%} of rows, seed {seed}"
    stdout.print(
        _error_table(
            f"{predictor}: held-out error ({rows})",
            result["operators"],
            [
                "train_samples",
                "test_samples",
                "mape_percent",
                "p90_percent",
                "bias_percent",
            ],
        )
    )
    iteration = result["iteration"]
    stdout.print(
        f"iteration ({iteration['samples']} held-out steps): MAPE "
        f"{_percent(iteration['mape_percent'])} %, p90 "
        f"{_percent(iteration['p90_percent'])} %, bias "
        f"{_percent(iteration['bias_percent'])} %"
    )
    if json_path is None:
        return
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    except OSError as error:
        raise FrontierError(f"--json: cannot write {json_path}: {error}") from None
    stdout.print(f"wrote {json_path}")


def add_commands(app: typer.Typer) -> None:
    """Add ``train`` and the ``predictors`` group (``validate``) to ``app``."""
    app.command("train")(train)
    group = typer.Typer(
        help="Execution-time predictors: accuracy.", no_args_is_help=True
    )
    group.command("validate")(validate)
    app.add_typer(group, name="predictors")
