"""``frontier profile``: measure operators on this machine and write a profile.

``frontier profile linear | attention | moe | all`` measures a model's operators
over a grid of shapes and appends them to ``<out>/compute/<device>/<model>/``;
``--dry-run`` prints the plan and an estimate of its duration without importing
torch or touching a device; ``frontier profile validate DIR`` checks a profile.

Grid options take comma-separated lists (``--num-tokens 1,2,4,8``); an option
left out keeps the default grid (see :func:`frontier_profiling.plan.default_grid`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import attrs
import typer
from frontier.errors import ConfigError
from frontier.models import ModelSpec, load_model
from rich.console import Console
from rich.table import Table

from frontier_profiling.backend import (
    PRECISIONS,
    available_attention_backends,
    open_backend,
    resolve_backend_name,
)
from frontier_profiling.estimate import estimate_row_s, throughput_for
from frontier_profiling.naming import (
    check_device_label,
    config_file,
    device_folder,
    model_folder,
)
from frontier_profiling.plan import FAMILIES, Grid, default_grid, plan
from frontier_profiling.runner import (
    RunSettings,
    planned_row,
    profile_directory,
    run_profile,
)
from frontier_profiling.schema import FILES
from frontier_profiling.writer import ProfileFile

__all__ = ["profile_app"]

profile_app = typer.Typer(
    help="Measure operators on this machine (GPU, or CPU) and write a profile.",
    no_args_is_help=True,
)
stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="Catalogue model name, or a config.json path."),
]
ModelNameOpt = Annotated[
    str | None,
    typer.Option(help="Folder name of the model (default: hub id or config's folder)."),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        "-d",
        help="Device folder name and the catalogue device of --dry-run's estimate "
        "(default: detected: the GPU's catalogue name, or 'cpu').",
    ),
]
OutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="Root of the profile layout.")
]
DtypeOpt = Annotated[
    str | None, typer.Option(help="dtype to measure (default: the model's).")
]
ListOpt = Annotated[str | None, typer.Option(help="Comma-separated values.")]
TpOpt = Annotated[str, typer.Option("--tp", help="Tensor-parallel sizes, e.g. 1,2,4.")]
EpOpt = Annotated[str, typer.Option("--ep", help="Expert-parallel sizes (MoE).")]
RoutingOpt = Annotated[
    str, typer.Option(help="MoE routing distributions: uniform, zipf or both.")
]
AttnOpt = Annotated[
    str,
    typer.Option(
        help="Attention kernels: auto (every one installed) or a list of "
        "TORCH_SDPA, FLASH_ATTN, FLASHINFER, NUMPY."
    ),
]
BackendOpt = Annotated[
    str, typer.Option(help="Timing backend: auto (torch if installed), torch, numpy.")
]
TorchDeviceOpt = Annotated[
    str, typer.Option(help="torch device: auto (CUDA when present), cuda, cpu.")
]


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    values = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise ConfigError(f"{option}: {part!r} is not a positive whole number")
        values.add(int(part))
    if not values:
        raise ConfigError(f"{option}: give at least one value, e.g. {option} 1,2,4")
    return tuple(sorted(values))


def _words(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))


def _load(model: str, name: str | None) -> ModelSpec:
    path = config_file(model)
    if path is not None:
        return load_model(model_folder(model, "", name), config_path=path)
    return load_model(model)


def _families(name: str, model: ModelSpec) -> tuple[str, ...]:
    if name == "all":
        return FAMILIES if model.is_moe else ("linear", "attention")
    return (name,)


def _attention_backends(text: str, available: tuple[str, ...]) -> tuple[str, ...]:
    if text.lower() == "auto":
        return available
    wanted = tuple(w.upper() for w in _words(text))
    for name in wanted:
        if name not in available:
            raise ConfigError(
                f"--attention-backend: {name} cannot be timed here; available: "
                f"{', '.join(available)}"
            )
    return wanted


def _grid(model: ModelSpec, attention: tuple[str, ...], o: Any) -> Grid:
    grid = default_grid(model, attention)
    changes = {
        "tp_sizes": _ints(o.tp, "--tp"),
        "num_tokens": _ints(o.num_tokens, "--num-tokens"),
        "decode_batch_sizes": _ints(o.batch_sizes, "--batch-sizes"),
        "decode_context_lengths": _ints(o.context_lengths, "--context-lengths"),
        "prefill_lengths": _ints(o.prefill_lengths, "--prefill-lengths"),
        "prefill_batch_sizes": _ints(o.prefill_batch_sizes, "--prefill-batch-sizes"),
        "chunk_sizes": _ints(o.chunk_sizes, "--chunk-sizes"),
        "chunk_context_lengths": _ints(o.chunk_contexts, "--chunk-contexts"),
        "ep_sizes": _ints(o.ep, "--ep"),
        "routings": _words(o.routing),
        "zipf_exponent": o.zipf_exponent,
    }
    if o.zipf_exponent <= 0:
        raise ConfigError("--zipf-exponent: must be positive")
    return attrs.evolve(grid, **{k: v for k, v in changes.items() if v is not None})


def _command_line(name: str, options: dict[str, Any]) -> str:
    if Path(sys.argv[0]).name == "frontier":
        return shlex.join(["frontier", *sys.argv[1:]])
    words = ["frontier", "profile", name]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return shlex.join(words)


class _Bars:
    """One rich progress bar per operator family, on stderr."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def start(self, family: str, total: int, completed: int) -> None:
        self.tasks[family] = self.progress.add_task(
            f"{family:<9}", total=total, completed=completed
        )

    def advance(self, family: str) -> None:
        self.progress.advance(self.tasks[family])


def _print_plan(
    families: tuple[str, ...],
    model: ModelSpec,
    o: Any,
    grid: Grid,
    dtype: str,
    backend_name: str,
    directory: Path | None,
) -> None:
    device = throughput_for(o.device, dtype)
    calls = o.warmup + o.repeats
    stub = SimpleNamespace(
        name=backend_name, measurement_type="", precision="", grouped_gemm=""
    )
    table = Table(
        title=f"Profiling plan: {model.name}, {dtype}, backend {backend_name}"
    )
    for column in ("family", "file", "rows", "measured", "to measure", "estimate"):
        table.add_column(column, no_wrap=True)
    total_s = 0.0
    total_rows = 0
    settings = SimpleNamespace(model=model, grid=grid, seed=o.seed)
    for family in families:
        shapes = plan(family, model, grid)
        name, columns, key, _ = FILES[family]
        done = 0
        if directory is not None and (directory / name).is_file():
            existing = ProfileFile(directory / name, columns, key, repair=False)
            done = sum(
                existing.has(planned_row(family, settings, s, stub)[0]) for s in shapes
            )
        seconds = 0.0
        for shape in shapes:
            seconds += estimate_row_s(model, shape, dtype, device, calls)
        seconds *= (len(shapes) - done) / max(1, len(shapes))
        total_s += seconds
        total_rows += len(shapes)
        table.add_row(
            family,
            name,
            str(len(shapes)),
            str(done),
            str(len(shapes) - done),
            f"{seconds:.0f} s",
        )
    stdout.print(table)
    stdout.print(f"tensor-parallel sizes: {', '.join(map(str, grid.tp_sizes))}")
    if "linear" in families or "moe" in families:
        stdout.print(f"tokens: {', '.join(map(str, grid.num_tokens))}")
    if "attention" in families:
        stdout.print(
            f"attention kernels: {', '.join(grid.attention_backends)}\n"
            f"decode: batch sizes {', '.join(map(str, grid.decode_batch_sizes))} x "
            f"contexts {', '.join(map(str, grid.decode_context_lengths))}\n"
            f"prefill: lengths {', '.join(map(str, grid.prefill_lengths))} x "
            f"batch sizes {', '.join(map(str, grid.prefill_batch_sizes))}\n"
            f"chunked prefill: chunks {', '.join(map(str, grid.chunk_sizes))} x "
            f"contexts {', '.join(map(str, grid.chunk_context_lengths))}"
        )
    if "moe" in families:
        stdout.print(
            f"MoE: {model.num_experts} experts, top {model.num_experts_per_token}; "
            f"EP sizes {', '.join(map(str, grid.ep_sizes))}; routing "
            f"{', '.join(grid.routings)} (zipf exponent {grid.zipf_exponent:g})"
        )
    folder = model_folder(o.model, model.name, o.model_name)
    where = str(directory) if directory else f"{o.out}/compute/<device>/{folder}"
    stdout.print(f"output: {where}")
    total_s += device.startup_s
    duration = f"{total_s:.0f} s" if total_s < 120 else f"{total_s / 60:.1f} min"
    stdout.print(
        f"{total_rows} rows; estimate {duration} on {device.label}, "
        f"{o.warmup} warm-up + {o.repeats} timed calls per operator"
    )


def _planned_kind(backend_name: str, torch_device: str) -> str | None:
    """``cpu`` or ``cuda``: what a run would measure, when known without opening
    the backend (``None`` for torch on ``auto``, which needs torch to tell)."""
    if backend_name == "numpy" or torch_device == "cpu":
        return "cpu"
    if torch_device == "cuda":
        return "cuda"
    return None


def _profile(command: str, o: Any) -> None:
    model = _load(o.model, o.model_name)
    families = _families(command, model)
    dtype = (o.dtype or model.dtype).lower()
    backend_name = resolve_backend_name(o.backend)
    if o.warmup < 0 or o.repeats < 1:
        raise ConfigError("--warmup must be >= 0 and --repeats >= 1")
    if o.time_budget_s is not None and not o.time_budget_s > 0:
        raise ConfigError(f"--time-budget-s must be positive, got {o.time_budget_s}")
    if o.max_rows is not None and o.max_rows < 1:
        raise ConfigError(f"--max-rows must be 1 or more, got {o.max_rows}")
    if dtype not in PRECISIONS:
        # Checked here too so a dry run refuses what a real run would.
        raise ConfigError(
            f"--dtype: {dtype!r} cannot be profiled; choose from "
            f"{', '.join(sorted(PRECISIONS))}"
        )
    model_dir = model_folder(o.model, model.name, o.model_name)
    for family in families:  # fail on a bad grid before planning or measuring
        plan(family, model, _grid(model, ("NUMPY",), o))
    if o.dry_run:
        attention = _attention_backends(
            o.attention_backend, available_attention_backends(backend_name)
        )
        grid = _grid(model, attention, o)
        directory = None
        kind = _planned_kind(backend_name, o.torch_device)
        if o.device:
            directory = profile_directory(o.out, device_folder(o.device), model_dir)
        elif kind == "cpu":  # where a run here files it: rows there are counted
            directory = profile_directory(o.out, "cpu", model_dir)
        _print_plan(families, model, o, grid, dtype, backend_name, directory)
        try:
            check_device_label(o.device, kind, f"{backend_name} backend")
        except ConfigError as error:
            # The plan is still useful (an estimate for the named device), but
            # this machine could not make that profile: say so.
            stderr.print(
                f"warning: run here, this command would be refused: {error}",
                highlight=False,
                markup=False,
            )
        return
    backend = open_backend(backend_name, dtype, o.seed, o.torch_device)
    grid = _grid(
        model, _attention_backends(o.attention_backend, backend.attention_backends()), o
    )
    facts = backend.describe()
    check_device_label(o.device, facts.get("device_kind"), facts.get("device_name"))
    if o.device:
        device_dir = device_folder(o.device)
    elif facts.get("device_kind") == "cuda":
        device_dir = device_folder(facts["device_name"])
    else:
        device_dir = "cpu"
    settings = RunSettings(
        model=model,
        model_dir=model_dir,
        device_dir=device_dir,
        out=o.out,
        dtype=dtype,
        grid=grid,
        warmup=o.warmup,
        repeats=o.repeats,
        seed=o.seed,
        max_rows=o.max_rows,
        time_budget_s=o.time_budget_s,
        command=_command_line(command, vars(o)),
    )
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    directory = profile_directory(o.out, device_dir, model_dir)
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=o.quiet,
    )
    try:
        with bars:
            report = run_profile(settings, families, backend, _Bars(bars))
    except KeyboardInterrupt:
        stderr.print(
            f"interrupted: the rows measured so far are kept in {directory}; run the "
            "same command again to resume"
        )
        raise typer.Exit(130) from None
    table = Table(
        title=f"Profile of {model.name} on {device_dir} ({backend.precision}, "
        f"{backend.measurement_type})"
    )
    for column in ("family", "file", "planned", "in file", "measured now"):
        table.add_column(column)
    for family in families:
        table.add_row(
            family,
            FILES[family][0],
            str(report.planned[family]),
            str(report.present[family]),
            str(report.measured.get(family, 0)),
        )
    stdout.print(table)
    for family, key, reason in report.skipped:
        stderr.print(f"skipped {family} row {key}: {reason.splitlines()[0]}")
    stdout.print(f"profile: {directory} ({report.elapsed_s:.1f} s)")
    if report.stopped is not None:
        stdout.print(f"stopped: {report.stopped}; run the same command again to resume")


def _make_command(command: str, doc: str) -> Any:
    def profile_family(
        model: ModelOpt,
        model_name: ModelNameOpt = None,
        device: DeviceOpt = None,
        out: OutOpt = Path("profiles"),
        dtype: DtypeOpt = None,
        tp: TpOpt = "1",
        num_tokens: ListOpt = None,
        batch_sizes: ListOpt = None,
        context_lengths: ListOpt = None,
        prefill_lengths: ListOpt = None,
        prefill_batch_sizes: ListOpt = None,
        chunk_sizes: ListOpt = None,
        chunk_contexts: ListOpt = None,
        ep: EpOpt = "1",
        routing: RoutingOpt = "uniform,zipf",
        zipf_exponent: Annotated[
            float, typer.Option(help="Skew of zipf routing.")
        ] = 1.2,
        attention_backend: AttnOpt = "auto",
        backend: BackendOpt = "auto",
        torch_device: TorchDeviceOpt = "auto",
        warmup: Annotated[int, typer.Option(help="Untimed calls per operator.")] = 3,
        repeats: Annotated[int, typer.Option(help="Timed calls per operator.")] = 10,
        seed: Annotated[int, typer.Option(help="Seed of tensors and routing.")] = 0,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print the plan; touch no device.")
        ] = False,
        max_rows: Annotated[
            int | None, typer.Option(help="Stop after this many new rows.")
        ] = None,
        time_budget_s: Annotated[
            float | None, typer.Option(help="Start no new row after this many seconds.")
        ] = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress bars.")
        ] = False,
    ) -> None:
        options = SimpleNamespace(**{k: v for k, v in locals().items()})
        _profile(command, options)

    profile_family.__doc__ = doc
    profile_family.__name__ = f"profile_{command}"
    return profile_family


for _name, _doc in (
    ("linear", "Measure the per-token operators (projections, norms, MLP, LM head)."),
    (
        "attention",
        "Measure attention: decode batches, whole prefills, chunked prefills.",
    ),
    ("moe", "Measure MoE gating, top-k, shuffle, expert GEMMs and combine."),
    ("all", "Measure linear, attention and (MoE models) moe, in that order."),
):
    profile_app.command(_name)(_make_command(_name, _doc))


@profile_app.command("validate")
def validate(
    directory: Annotated[
        Path, typer.Argument(help="A profile folder, or a root above it.")
    ],
) -> None:
    """Check a profile's schema and ranges; name each problem's file, row, column."""
    from frontier_profiling.validate import validate_directory

    problems, rows = validate_directory(directory)
    for problem in problems:
        stdout.print(str(problem), highlight=False, markup=False)
    for path, count in rows.items():
        stdout.print(f"{path}: {count} rows", highlight=False)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if errors:
        stdout.print(f"invalid: {errors} errors, {warnings} warnings")
        raise typer.Exit(1)
    stdout.print(f"valid ({warnings} warnings)")
