"""The ``frontier`` command line.

``frontier run`` simulates a config (the embedded default when none is given);
``frontier config show`` prints the resolved config; ``frontier plugins list``,
``frontier models list`` and ``frontier devices list`` show what is installed.
Plugins add sub-commands through the ``frontier_add_commands`` hook.

Progress goes to stderr; stdout carries the summary (or JSON with ``--json``). A
mistake in the input ends with a one-paragraph message and exit status 2.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from frontier.cli.overrides import collect_overrides
from frontier.config_build import build_config, config_to_toml, read_config_file
from frontier.errors import ConfigError, FrontierError, FrontierWarning

__all__ = ["app", "main"]

app = typer.Typer(
    name="frontier",
    help="Frontier: simulate LLM inference serving (TTFT, TPOT, throughput).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect configurations.", no_args_is_help=True)
plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
models_app = typer.Typer(help="The built-in model catalogue.", no_args_is_help=True)
devices_app = typer.Typer(help="The built-in device catalogue.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(plugins_app, name="plugins")
app.add_typer(models_app, name="models")
app.add_typer(devices_app, name="devices")

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)
# Tables piped to a file or another program get a wide page, not rich's 80
# columns, so that no cell is cut short.
tables = stdout if stdout.is_terminal else Console(soft_wrap=True, width=240)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        stdout.print(f"frontier {version('frontier-core')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version of frontier-core and exit.",
        ),
    ] = False,
) -> None:
    """Frontier: simulate LLM inference serving (TTFT, TPOT, throughput)."""


ConfigArg = Annotated[
    Path | None,
    typer.Argument(
        help="TOML (or JSON) config file; the embedded default when omitted."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field: dotted.path=value (repeatable)."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Catalogue model name, or a config.json path."),
]
DeviceOpt = Annotated[str | None, typer.Option("--device", "-d", help="Device name.")]
TpOpt = Annotated[int | None, typer.Option("--tp", help="Tensor-parallel size.")]
PpOpt = Annotated[int | None, typer.Option("--pp", help="Pipeline-parallel size.")]
ReplicasOpt = Annotated[int | None, typer.Option("--replicas", "-r", help="Replicas.")]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", "-s", help="Replica scheduler plugin.")
]
PredictorOpt = Annotated[
    str | None, typer.Option("--predictor", "-p", help="Predictor.")
]
QpsOpt = Annotated[
    float | None, typer.Option("--qps", help="Arrival rate, requests/s.")
]
NumOpt = Annotated[
    int | None, typer.Option("--num-requests", "-n", help="Number of requests.")
]
TraceOpt = Annotated[
    Path | None,
    typer.Option(
        "--trace", "-t", help="Replay this CSV trace (or .jsonl request file)."
    ),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed of the run.")]
OutOpt = Annotated[
    Path | None, typer.Option("--output-dir", "-o", help="Root folder of the outputs.")
]


_SHORT_FLAGS = (
    "model",
    "device",
    "tp",
    "pp",
    "replicas",
    "scheduler",
    "predictor",
    "qps",
    "num_requests",
    "trace",
    "seed",
)
"""The short flags ``run``, ``sweep`` and ``config show`` share."""


def _short_flags(arguments: dict[str, Any]) -> dict[str, Any]:
    """The shared short flags among a command's ``arguments`` (its locals)."""
    return {name: arguments[name] for name in _SHORT_FLAGS}


def _plugins() -> Any:
    from frontier.plugins import default_plugins

    return default_plugins()


def _resolve(config_path: Path | None, sets: list[str] | None, **flags: Any) -> Any:
    data: dict[str, Any] = read_config_file(config_path) if config_path else {}
    if "sweep" in data:
        raise ConfigError(
            f"{config_path} has a [sweep] table: run the sweep with `frontier sweep "
            f"{config_path}`; this command runs one config (remove the table, and "
            "choose the point with --set)"
        )
    data = collect_overrides(data, sets or [], **flags)
    source = str(config_path) if config_path else "embedded default"
    if sets or any(value is not None for value in flags.values()):
        source += " with command-line overrides"
    return build_config(data, _plugins().registry.config_classes(), source)


@app.command()
def run(
    config_path: ConfigArg = None,
    set_: SetOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    tp: TpOpt = None,
    pp: PpOpt = None,
    replicas: ReplicasOpt = None,
    scheduler: SchedulerOpt = None,
    predictor: PredictorOpt = None,
    qps: QpsOpt = None,
    num_requests: NumOpt = None,
    trace: TraceOpt = None,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    run_id: Annotated[
        str | None, typer.Option(help="Name of the run's folder.")
    ] = None,
    no_output: Annotated[
        bool, typer.Option("--no-output", help="Write no files.")
    ] = False,
    json_: Annotated[
        bool, typer.Option("--json", help="Print system_metrics as JSON on stdout.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar.")
    ] = False,
    profile_sim: Annotated[
        bool,
        typer.Option(
            "--profile-sim", help="Print where the simulator spends its time (stderr)."
        ),
    ] = False,
) -> None:
    """Simulate a deployment and workload; write metrics and print a summary."""
    from frontier.cli.progress import progress_bar
    from frontier.cli.summary import print_summary
    from frontier.simulation import Simulation, run_directory

    config = _resolve(
        config_path,
        set_,
        **_short_flags(locals()),
        output_dir=output_dir,
        run_id=run_id,
    )
    simulation = Simulation(config, _plugins())
    out = None
    if not no_output:
        out = run_directory(config, simulation.model.name, simulation.generator.label)
        if (out / "system_metrics.json").exists():
            stderr.print(f"note: replacing the earlier run in {out}", highlight=False)
    show = config.metrics.progress and not quiet
    try:
        with progress_bar(simulation.generator.num_requests, enabled=show) as advance:
            if profile_sim:
                from frontier.cli.profiling import profiled

                result = profiled(lambda: simulation.run(out, progress=advance), stderr)
            else:
                result = simulation.run(out, progress=advance)
    except KeyboardInterrupt:
        where = (
            f"; {out / 'request_metrics.csv'} holds the requests finished so far "
            "and system_metrics.json was not written"
            if out is not None
            else ""
        )
        stderr.print(f"interrupted{where}", highlight=False)
        raise typer.Exit(130) from None
    if json_:
        sys.stdout.write(json.dumps(result.summary, indent=2) + "\n")
    else:
        print_summary(stdout, result)
    _warn_if_nothing_completed(result.summary)


@app.command()
def sweep(
    config_path: ConfigArg = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="Vary a field: dotted.path=v1,v2,... (repeatable; every "
            "combination runs). Adds to the config's [sweep.grid].",
        ),
    ] = None,
    set_: SetOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    tp: TpOpt = None,
    pp: PpOpt = None,
    replicas: ReplicasOpt = None,
    scheduler: SchedulerOpt = None,
    predictor: PredictorOpt = None,
    qps: QpsOpt = None,
    num_requests: NumOpt = None,
    trace: TraceOpt = None,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Worker processes (local backend; default: CPUs).",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Where points run: local (processes) or ray.")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (ray backend); a local one when unset."),
    ] = None,
    sweep_id: Annotated[
        str | None,
        typer.Option(help="Name of the sweep's folder (needed by --resume)."),
    ] = None,
    max_points: Annotated[
        int,
        typer.Option(min=1, help="Refuse a grid of more points than this."),
    ] = 10_000,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Reuse the points an earlier run of this sweep finished."
        ),
    ] = False,
    no_output: Annotated[
        bool, typer.Option("--no-output", help="Write no files; print the table.")
    ] = False,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the table's rows as JSON on stdout.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress line.")
    ] = False,
) -> None:
    """Run a config over a grid of values (in parallel, locally or on Ray) and
    tabulate TTFT, TPOT, throughput... per point in sweep.csv."""
    from frontier.cli.summary import print_sweep
    from frontier.sweep import (
        check_points,
        clear_stale_points,
        expand_sweep,
        parse_grid_option,
        run_sweep,
        split_sweep_table,
        write_table,
    )

    source = str(config_path) if config_path else "embedded default"
    data: dict[str, Any] = read_config_file(config_path) if config_path else {}
    data, grid_values, zip_values = split_sweep_table(data, source)
    data = collect_overrides(
        data, set_ or [], **_short_flags(locals()), output_dir=output_dir
    )
    given: set[str] = set()
    for text in grid or []:
        path, values = parse_grid_option(text)
        if path in given:
            raise ConfigError(
                f"--grid {path} is given twice; give all its values in one: "
                f"--grid {path}=v1,v2,..."
            )
        given.add(path)
        grid_values[path] = values
    if ray_address is not None and backend != "ray":
        raise ConfigError("--ray-address joins a Ray cluster: add --backend ray")
    if resume and (sweep_id is None or no_output):
        raise ConfigError(
            "--resume reuses the folder of an earlier sweep: name it with --sweep-id "
            "(and do not pass --no-output)"
        )
    classes = _plugins().registry.config_classes()
    base = build_config(data, classes, source)
    points = expand_sweep(data, grid_values, zip_values, max_points, classes)
    check_points(points, classes, source)
    sweep_dir = None
    if not no_output:
        sweep_dir = _sweep_directory(Path(base.metrics.output_dir), sweep_id)
        if (sweep_dir / "sweep.csv").exists() and not resume:
            stderr.print(f"note: replacing the earlier sweep in {sweep_dir}")
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"metrics.output_dir: cannot create the sweep folder {sweep_dir}: "
                f"{error.strerror or error}; choose a folder you can write (-o)"
            ) from None
        # Without --resume every point runs again; with it, only the points
        # past this grid's end are an earlier sweep's leftovers.
        clear_stale_points(sweep_dir, len(points) if resume else 0)
    count = len(points)
    finished = 0

    def progress(result: Any) -> None:
        nonlocal finished
        finished += 1
        if not quiet:
            stderr.print(
                f"sweep: {finished}/{count} points done (point {result.index}: "
                f"{'reused' if result.reused else result.status})",
                highlight=False,
            )

    try:
        results = run_sweep(
            points,
            sweep_dir,
            backend=backend,
            jobs=jobs,
            ray_address=ray_address,
            resume=resume,
            config_classes=classes,
            on_result=progress,
        )
    except KeyboardInterrupt:
        where = ""
        if sweep_dir is not None:
            where = (
                f"; the {finished} points finished stay in {sweep_dir / 'points'}: "
                "run the same command with --resume --sweep-id "
                f"{sweep_dir.name} to finish the sweep"
            )
        stderr.print(f"interrupted{where}", highlight=False)
        raise typer.Exit(130) from None
    if sweep_dir is not None:
        write_table(sweep_dir / "sweep.csv", points, results)
    if json_:
        from frontier.sweep import result_row

        rows = [
            {key: None if value == "" else value for key, value in row.items()}
            for row in (result_row(p, r) for p, r in zip(points, results, strict=True))
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        print_sweep(tables, points, results, sweep_dir)
    failed = [r for r in results if r.status != "ok"]
    if failed:
        stderr.print(
            f"{len(failed)} of {count} points did not run to the end (their error "
            "column says why)",
            highlight=False,
        )
        raise typer.Exit(1)


def _sweep_directory(root: Path, sweep_id: str | None) -> Path:
    """``<output_dir>/sweeps/<sweep_id>``, a fresh timestamp when unnamed."""
    import time

    from frontier.simulation import slug

    base = root / "sweeps"
    if sweep_id:
        return base / slug(sweep_id)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate, suffix = base / stamp, 2
    while candidate.exists():
        candidate, suffix = base / f"{stamp}-{suffix}", suffix + 1
    return candidate


def _warn_if_nothing_completed(summary: dict[str, Any]) -> None:
    """A run in which no request completed is rarely what was meant: say why."""
    requests = summary["requests"]
    if requests["completed"] + requests["truncated"] or not any(requests.values()):
        return
    reasons = [
        f"{requests[key]} {label}"
        for key, label in (
            (
                "rejected_too_long",
                "rejected: prompt (or prompt plus output, where clients send it "
                "as max_tokens) past max_model_len",
            ),
            ("rejected_no_fit", "rejected: can never fit the KV cache"),
            ("aborted", "aborted"),
        )
        if requests[key]
    ]
    limit = summary["metadata"]["max_model_len"]
    stderr.print(
        f"warning: no request completed ({', '.join(reasons)}); max_model_len is "
        f"{limit} and the KV cache holds {summary['memory']['num_gpu_blocks']} "
        "blocks per replica",
        highlight=False,
    )


@config_app.command("show")
def config_show(
    config_path: ConfigArg = None,
    set_: SetOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    tp: TpOpt = None,
    pp: PpOpt = None,
    replicas: ReplicasOpt = None,
    scheduler: SchedulerOpt = None,
    predictor: PredictorOpt = None,
    qps: QpsOpt = None,
    num_requests: NumOpt = None,
    trace: TraceOpt = None,
    seed: SeedOpt = None,
) -> None:
    """Print the resolved config (defaults filled in) as TOML."""
    config = _resolve(config_path, set_, **_short_flags(locals()))
    sys.stdout.write(config_to_toml(config))


@plugins_app.command("list")
def plugins_list(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Add each plugin's module.")
    ] = False,
) -> None:
    """Every registered plugin: kind, name, distribution, version, description."""
    from rich.table import Table

    table = Table(title="Frontier plugins")
    for column in ("kind", "name", "distribution", "version"):
        table.add_column(column, no_wrap=True)
    if verbose:
        table.add_column("module", no_wrap=True)
    # The description only where there is room for it (or when asked).
    describe = verbose or stdout.width >= 110
    if describe:
        table.add_column("description", ratio=1)
    for entry in _plugins().registry.entries():
        cells = [entry.kind, entry.name, entry.distribution, entry.version]
        if verbose:
            cells.append(entry.module)
        if describe:
            cells.append(entry.description)
        table.add_row(*cells)
    tables.print(table)


def _print_catalogue(
    title: str, columns: tuple[str, ...], rows: list[list[str]]
) -> None:
    """A table of a catalogue; the name (what the flags take) never wraps."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column == "name")
    for row in rows:
        table.add_row(*row)
    tables.print(table)


@models_app.command("list")
def models_list() -> None:
    """Built-in models with their size and shape."""
    from frontier.models import load_model, model_catalogue

    rows = []
    for hub_id, entry in model_catalogue().items():
        spec = load_model(hub_id)
        experts = "-"
        if spec.is_moe:
            experts = f"{spec.num_experts} (top {spec.num_experts_per_token})"
        rows.append(
            [
                hub_id,
                ", ".join(entry.get("aliases", [])),
                f"{spec.total_params() / 1e9:.1f}",
                str(spec.num_layers),
                str(spec.hidden_size),
                f"{spec.num_heads}/{spec.num_kv_heads}",
                experts,
            ]
        )
    columns = ("name", "aliases", "params (B)", "layers", "hidden", "heads/kv")
    _print_catalogue("Built-in models", (*columns, "experts"), rows)


@devices_app.command("list")
def devices_list() -> None:
    """Built-in devices with their peaks."""
    from frontier.devices import device_catalogue, load_device

    rows = []
    for name, entry in device_catalogue().items():
        spec = load_device(name)
        rows.append(
            [
                name,
                ", ".join(entry.get("aliases", [])),
                f"{spec.bf16_tflops:g}",
                f"{spec.fp8_tflops:g}",
                f"{spec.memory_gib:g}",
                f"{spec.memory_bandwidth_gbps:g}",
                f"{spec.intra_node_bandwidth_gbps:g}",
            ]
        )
    columns = ("name", "aliases", "BF16 TFLOP/s", "FP8 TFLOP/s", "GiB", "GB/s")
    _print_catalogue("Built-in devices", (*columns, "link GB/s"), rows)


def _add_plugin_commands() -> None:
    # When loading fails, `main` reports it as soon as a command needs the plugins.
    with contextlib.suppress(FrontierError):
        host = _plugins()
        try:
            host.hook.frontier_add_commands(app=app)
        except Exception as error:
            # Every other command still works; the failing plugin's are missing.
            from frontier.cli.crash import find_owner

            owner, place = find_owner(error, host.packages)
            who = f"{owner[0]} ({owner[1]})" if owner else "a plugin"
            stderr.print(
                f"warning: {who} failed to add its commands: "
                f"{type(error).__name__}: {error} (raised at {place}); they are "
                "missing from this run",
                highlight=False,
            )


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Frontier's own warnings as one ``warning:`` line; others as Python shows them."""
    if issubclass(category, FrontierWarning):
        stderr.print(f"warning: {message}", highlight=False)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main() -> None:
    """Entry point of the ``frontier`` script: clean messages for input errors."""
    warnings.showwarning = _show_warning
    try:
        _add_plugin_commands()
        app()
    except FrontierError as error:
        from rich.text import Text

        from frontier.cli.crash import format_traceback, wants_traceback

        if wants_traceback() and error.__cause__ is not None:
            print(format_traceback(error.__cause__), end="", file=sys.stderr)
        notes = "".join(f"\n  {note}" for note in getattr(error, "__notes__", ()))
        message = Text("error: ", style="bold red") + Text(str(error) + notes)
        stderr.print(message, highlight=False)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        stderr.print("interrupted")
        raise SystemExit(130) from None
    except Exception as error:
        _report_crash(error)
        raise SystemExit(1) from None


def _report_crash(error: Exception) -> None:
    """A bug, in a plugin or in Frontier: one paragraph saying whose and where."""
    from rich.text import Text

    from frontier.cli.crash import describe_crash, format_traceback, wants_traceback

    packages: dict[str, tuple[str, str]] = {}
    with contextlib.suppress(Exception):
        packages = _plugins().packages
    if wants_traceback():
        print(format_traceback(error), end="", file=sys.stderr)
    message = Text("error: ", style="bold red") + Text(describe_crash(error, packages))
    stderr.print(message, highlight=False)
