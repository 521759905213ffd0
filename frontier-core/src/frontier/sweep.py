"""Parameter sweeps: one base config, many points, run in parallel.

A sweep varies config fields over lists of values. ``grid`` takes every
combination of its fields (the first field varies slowest); ``zip`` varies its
fields together, the i-th value of each in the i-th point, and counts as one
more axis of the grid. Both come from the ``[sweep]`` table of the config file
or from ``--grid path=v1,v2`` on the command line::

    [sweep.grid]
    "workload.qps" = [2.0, 4.0, 8.0]
    "replica_scheduler.type" = ["vllm_v1", "sglang"]
    seed = [0, 1]

Every point's config is built and checked before any point runs, so a mistyped
path or value stops the sweep at once, naming the point. A point that the
simulator refuses at start-up (a model that does not fit) or that fails while
running is recorded with its message and the others go on. Points run in worker
processes on this machine (``local``) or as Ray tasks (``ray``); either way the
table of results, ``sweep.csv``, lists the points in their order and holds no
wall-clock figure, so the same sweep gives the same file.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import os
import shutil
import signal
import tomllib
from collections.abc import Callable, Iterable
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import attrs

from frontier.config import SLOTS
from frontier.config_build import apply_overrides, build_config, config_to_toml
from frontier.errors import ConfigError, FrontierError

__all__ = [
    "BACKENDS",
    "SweepPoint",
    "SweepResult",
    "check_points",
    "clear_stale_points",
    "expand_sweep",
    "parse_grid_option",
    "result_row",
    "run_point",
    "run_sweep",
    "split_sweep_table",
    "write_table",
]

BACKENDS = ("local", "ray")

# The metrics copied from each point's system_metrics.json into sweep.csv:
# (column, section, key).
_METRICS = [
    ("completed", "requests", "completed"),
    ("truncated", "requests", "truncated"),
    ("rejected", "requests", None),  # rejected_too_long + rejected_no_fit
    ("aborted", "requests", "aborted"),
    ("request_throughput_per_s", "throughput", "request_throughput_per_s"),
    ("output_token_throughput_per_s", "throughput", "output_token_throughput_per_s"),
    ("total_token_throughput_per_s", "throughput", "total_token_throughput_per_s"),
    *(
        (f"{metric}_{stat}", f"{metric}_ms", stat)
        for metric in ("ttft", "tpot", "itl", "e2e", "answer_ttft")
        for stat in ("mean", "p50", "p90", "p99")
    ),
    ("preemptions", "preemption", "total"),
    ("num_gpu_blocks", "memory", "num_gpu_blocks"),
    ("makespan_s", "throughput", "makespan_s"),
]


@attrs.frozen
class SweepPoint:
    """One point of a sweep.

    Attributes:
        index: Position in the sweep, from 0.
        values: The swept fields' values, by dotted path, in axis order.
        data: The point's raw config mapping (before defaults are filled in).
    """

    index: int
    values: dict[str, Any]
    data: dict[str, Any]

    @property
    def label(self) -> str:
        """``path=value, ...`` of the swept fields."""
        return ", ".join(f"{path}={value!r}" for path, value in self.values.items())

    @property
    def folder(self) -> str:
        """Name of the point's output folder: its index, zero-padded."""
        return f"{self.index:04d}"


@attrs.frozen
class SweepResult:
    """What one point produced: its summary, or why it has none.

    Attributes:
        index: The point's index.
        status: ``ok``, ``refused`` (an input error at start-up or a run the
            simulator stopped with a message) or ``crashed`` (a bug).
        summary: The point's ``system_metrics.json`` content (``None`` unless ok).
        error: The message when not ok, else ``""``.
        reused: Whether ``--resume`` took it from an earlier run of the sweep.
    """

    index: int
    status: str
    summary: dict[str, Any] | None = None
    error: str = ""
    reused: bool = False


def _flatten(table: Any, where: str, prefix: str = "") -> dict[str, list[Any]]:
    """``{"workload": {"qps": [1, 2]}}`` -> ``{"workload.qps": [1, 2]}``."""
    if not isinstance(table, dict):
        raise ConfigError(
            f"{where} must be a table of dotted.path = [values], got {table!r}"
        )
    flat: dict[str, list[Any]] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, where, f"{path}."))
        elif isinstance(value, list) and value:
            flat[path] = value
        else:
            raise ConfigError(
                f"{where}: {path} must be a non-empty list of values, e.g. "
                f'"{path}" = [1, 2], got {value!r}'
            )
    return flat


def split_sweep_table(
    data: dict[str, Any], source: str
) -> tuple[dict[str, Any], dict[str, list[Any]], dict[str, list[Any]]]:
    """Take the ``[sweep]`` table out of a config mapping.

    Returns:
        ``(config data, grid, zip)``, the last two by dotted path.

    Raises:
        ConfigError: The table has other keys than ``grid`` and ``zip``, a field
            that is not a non-empty list, or ``zip`` lists of different lengths.
    """
    data = dict(data)
    table = data.pop("sweep", None)
    if table is None:
        return data, {}, {}
    where = f"{source}: [sweep]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table with grid and zip, got {table!r}")
    unknown = sorted(set(table) - {"grid", "zip"})
    if unknown:
        raise ConfigError(
            f"{where} has unknown key(s) {', '.join(unknown)}; it takes grid "
            "(every combination) and zip (fields varied together)"
        )
    grid = _flatten(table.get("grid", {}), f"{where} grid")
    zipped = _flatten(table.get("zip", {}), f"{where} zip")
    lengths = {len(values) for values in zipped.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{path} {len(v)}" for path, v in zipped.items())
        raise ConfigError(
            f"{where} zip: every list needs as many values ({sizes}); the i-th "
            "values of all of them make one point"
        )
    return data, grid, zipped


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """``--grid workload.qps=1,2,4`` (or ``=[1, 2, 4]``) -> ``("workload.qps",
    [1, 2, 4])``; each value is read as a TOML value, or else as text."""
    if "=" not in text:
        raise ConfigError(f"--grid {text!r}: expected dotted.path=value1,value2,...")
    path, raw = (part.strip() for part in text.split("=", 1))
    if not path or not all(key.strip() for key in path.split(".")):
        raise ConfigError(f"--grid {text!r}: the path has an empty part")
    if raw.startswith("["):
        try:
            values = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"--grid {text!r}: not a TOML list: {error}") from None
    else:
        try:  # "a,b", 2 keeps the quoted comma
            values = tomllib.loads(f"v = [{raw}]")["v"]
        except tomllib.TOMLDecodeError:  # bare words: vllm_v1,sglang
            values = [_value(part.strip()) for part in raw.split(",")]
    if not values or any(value == "" for value in values):
        raise ConfigError(f"--grid {text!r}: give one or more values, e.g. {path}=1,2")
    return path, values


def _value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set(
    data: dict[str, Any],
    path: str,
    value: Any,
    config_classes: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    """``data`` with ``path`` set. A slot's ``type`` switches plugin: the base's
    options the new plugin takes too (``-n``, a shared ``max_num_seqs``) stay,
    the others (which it would refuse) are dropped; without the plugins'
    config classes, all of them are."""
    keys = path.split(".")
    if _is_switch(path):
        slot = keys[0]
        section = data.get(slot)
        default = attrs.fields_dict(SLOTS[slot][1])["type"].default
        same = isinstance(section, dict) and section.get("type", default) == value
        if not same:
            kept: dict[str, Any] = {}
            cls = (config_classes or {}).get(SLOTS[slot][0], {}).get(value)
            if cls is not None and isinstance(section, dict):
                accepted = {field.name for field in attrs.fields(cls)}
                kept = {k: v for k, v in section.items() if k in accepted}
            data = dict(data)
            data[slot] = kept
    return apply_overrides(data, [(keys, value)])


MAX_POINTS = 10_000
"""Most points a sweep runs unless told otherwise (``--max-points``): each is a
whole simulation, and every point's config is held and checked up front."""


def count_points(grid: dict[str, list[Any]], zipped: dict[str, list[Any]]) -> int:
    """How many points ``grid`` x ``zip`` has (without building them)."""
    count = math.prod(len(values) for values in grid.values())
    if zipped:
        count *= len(next(iter(zipped.values())))
    return count


def expand_sweep(
    data: dict[str, Any],
    grid: dict[str, list[Any]],
    zipped: dict[str, list[Any]],
    max_points: int = MAX_POINTS,
    config_classes: dict[str, dict[str, Any]] | None = None,
) -> list[SweepPoint]:
    """Every point of ``grid`` x ``zip`` applied to ``data``.

    Plugin switches (``replica_scheduler.type``...) apply first, so that a
    swept option of the new plugin lands in its section; with
    ``config_classes`` the base's options the new plugin also takes are kept.

    Raises:
        ConfigError: A path is swept twice, nothing is swept, or the grid has
            more than ``max_points`` points.
    """
    count = count_points(grid, zipped)
    if count > max_points:
        sizes = " x ".join(str(len(v)) for v in grid.values())
        if zipped:
            sizes += f" x {len(next(iter(zipped.values())))} (zip)"
        raise ConfigError(
            f"sweep: {sizes} = {count:,} points, more than {max_points:,}; each "
            "is a whole simulation. Sweep fewer values, or raise the limit with "
            "--max-points"
        )
    twice = sorted(set(grid) & set(zipped))
    if twice:
        raise ConfigError(f"sweep: {', '.join(twice)} is in both grid and zip")
    if not grid and not zipped:
        raise ConfigError(
            "sweep: nothing to vary; add a [sweep.grid] table to the config "
            "or --grid dotted.path=value1,value2"
        )
    axes: list[list[dict[str, Any]]] = [
        [{path: value} for value in values] for path, values in grid.items()
    ]
    if zipped:
        count = len(next(iter(zipped.values())))
        axes.append(
            [{path: values[i] for path, values in zipped.items()} for i in range(count)]
        )
    points = []
    for index, combination in enumerate(itertools.product(*axes)):
        values: dict[str, Any] = {}
        for part in combination:
            values.update(part)
        point_data = data
        ordered = sorted(values.items(), key=lambda item: not _is_switch(item[0]))
        for path, value in ordered:
            point_data = _set(point_data, path, value, config_classes)
        points.append(SweepPoint(index, values, point_data))
    return points


def _is_switch(path: str) -> bool:
    keys = path.split(".")
    return len(keys) == 2 and keys[1] == "type" and keys[0] in SLOTS


def check_points(
    points: list[SweepPoint], config_classes: dict[str, Any], source: str = "sweep"
) -> None:
    """Build every point's config; the first that fails stops the sweep.

    Raises:
        ConfigError: Naming the point (``source`` names the base config) and
            what is wrong with it.
    """
    for point in points:
        try:
            build_config(point.data, config_classes, source)
        except FrontierError as error:
            raise ConfigError(
                f"sweep point {point.index} ({point.label}): {error}"
            ) from None


def run_point(
    data: dict[str, Any], out: str | None, cwd: str | None = None
) -> tuple[str, dict[str, Any] | None, str]:
    """Run one point in this process: ``(status, summary, error)``.

    ``cwd`` is the folder relative paths of the config are read from (a Ray
    worker starts elsewhere). Runs with the installed plugins.
    """
    from frontier.plugins import default_plugins
    from frontier.simulation import Simulation

    if cwd is not None:
        os.chdir(cwd)
    try:
        plugins = default_plugins()
        config = build_config(data, plugins.registry.config_classes())
        simulation = Simulation(config, plugins)
        result = simulation.run(Path(out) if out is not None else None)
    except FrontierError as error:
        return "refused", None, str(error)
    except Exception as error:  # a bug: say whose, and go on with the others
        from frontier.cli.crash import describe_crash

        packages: dict[str, tuple[str, str]] = {}
        with contextlib.suppress(FrontierError):
            packages = default_plugins().packages
        return "crashed", None, describe_crash(error, packages)
    return "ok", result.summary, ""


def _reusable(point: SweepPoint, folder: Path, config_classes: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a finished run of exactly ``point``'s config."""
    metrics = folder / "system_metrics.json"
    saved = folder / "config.toml"
    if not (metrics.is_file() and saved.is_file()):
        return False
    config = build_config(point.data, config_classes, f"sweep point {point.index}")
    if saved.read_text("utf-8") != config_to_toml(config, absolute_paths=True):
        return False
    return _summary_of(folder) is not None


def _summary_of(folder: Path) -> dict[str, Any] | None:
    """The point's ``system_metrics.json`` when it is a whole summary (a run
    interrupted or a file edited since is not), else ``None``."""
    try:
        summary = json.loads((folder / "system_metrics.json").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    needed = ("requests", "throughput", "ttft_ms", "tpot_ms", "e2e_ms", "memory")
    if not isinstance(summary, dict) or not all(
        isinstance(summary.get(key), dict) for key in needed
    ):
        return None
    return summary


def clear_stale_points(sweep_dir: Path, keep: int) -> None:
    """Remove the point folders (``points/<digits>``) of an earlier sweep in
    ``sweep_dir`` from index ``keep`` on: they would pass for this sweep's."""
    points = sweep_dir / "points"
    if not points.is_dir():
        return
    for folder in points.iterdir():
        if folder.is_dir() and folder.name.isdigit() and int(folder.name) >= keep:
            shutil.rmtree(folder)


def run_sweep(
    points: list[SweepPoint],
    sweep_dir: Path | None,
    *,
    backend: str = "local",
    jobs: int | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    config_classes: dict[str, Any] | None = None,
    on_result: Callable[[SweepResult], None] | None = None,
) -> list[SweepResult]:
    """Run every point; results in point order.

    Args:
        points: From :func:`expand_sweep` (checked with :func:`check_points`).
        sweep_dir: Folder of the sweep; each point writes its run to
            ``points/<index>/`` there. ``None`` writes nothing.
        backend: ``local`` (worker processes) or ``ray`` (Ray tasks; the
            ``ray`` package must be installed).
        jobs: Worker processes for ``local`` (default: the CPUs available);
            1 runs the points one after the other in this process.
        ray_address: Cluster to join (``ray.init(address=...)``); a local Ray
            instance when ``None``.
        resume: Reuse a point's earlier run in ``sweep_dir`` when its saved
            config is the point's.
        config_classes: The plugins' config classes (for ``resume``).
        on_result: Called with each result as it arrives (progress).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    results: dict[int, SweepResult] = {}
    todo: list[tuple[SweepPoint, str | None]] = []
    for point in points:
        folder = sweep_dir / "points" / point.folder if sweep_dir else None
        if (
            resume
            and folder is not None
            and config_classes is not None
            and _reusable(point, folder, config_classes)
        ):
            summary = _summary_of(folder)
            results[point.index] = SweepResult(point.index, "ok", summary, reused=True)
            if on_result:
                on_result(results[point.index])
            continue
        todo.append((point, str(folder) if folder is not None else None))

    def done(index: int, outcome: tuple[str, dict[str, Any] | None, str]) -> None:
        results[index] = SweepResult(index, *outcome)
        if on_result:
            on_result(results[index])

    if backend == "ray":
        _run_on_ray(todo, ray_address, done)
    else:
        _run_locally(todo, jobs, done)
    return [results[point.index] for point in points]


def _run_locally(
    todo: list[tuple[SweepPoint, str | None]],
    jobs: int | None,
    done: Callable[[int, tuple[str, dict[str, Any] | None, str]], None],
) -> None:
    workers = jobs or _cpus()
    workers = max(1, min(workers, len(todo)))
    if workers == 1:
        for point, out in todo:
            done(point.index, run_point(point.data, out))
        return
    # Fresh interpreters (a forked worker would inherit the parent's threads)
    # that leave Ctrl-C to the parent, which then ends them: a worker hit by
    # the terminal's SIGINT in the middle of a point left the pool hanging.
    pool = get_context("spawn").Pool(workers, initializer=_ignore_interrupts)
    try:
        jobs = [(point.index, point.data, out) for point, out in todo]
        for index, outcome in pool.imap_unordered(_run_indexed, jobs):
            done(index, outcome)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_indexed(
    job: tuple[int, dict[str, Any], str | None],
) -> tuple[int, tuple[str, dict[str, Any] | None, str]]:
    index, data, out = job
    return index, run_point(data, out)


def _cpus() -> int:
    """CPUs this process may use (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _run_on_ray(
    todo: list[tuple[SweepPoint, str | None]],
    address: str | None,
    done: Callable[[int, tuple[str, dict[str, Any] | None, str]], None],
) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--backend ray needs Ray: pip install 'frontier-core[ray]' (or "
            "uv pip install ray), or use --backend local"
        ) from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as error:  # Ray's own: no cluster there, no client
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise ConfigError(
                f"--backend ray: could not start or join {where}: "
                f"{type(error).__name__}: {error}"
            ) from None
    try:
        task = ray.remote(run_point)
        cwd = os.getcwd()
        try:
            pending = {
                task.remote(point.data, out, cwd): point.index for point, out in todo
            }
        except Exception as error:  # e.g. Ray refusing the runtime environment
            raise ConfigError(
                f"--backend ray: Ray refused the tasks: {type(error).__name__}: {error}"
            ) from None
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()


def _metric(summary: dict[str, Any], section: str, key: str | None) -> Any:
    part = summary.get(section, {})
    if key is None:  # rejected: both kinds
        return part.get("rejected_too_long", 0) + part.get("rejected_no_fit", 0)
    value = part.get(key)
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return "" if value is None else value


def result_row(point: SweepPoint, result: SweepResult) -> dict[str, Any]:
    """One line of ``sweep.csv``: the point, its status, its metrics."""
    row: dict[str, Any] = {"point": point.index}
    for path, value in point.values.items():
        # as the value is written in the config (true, not Python's True)
        row[path] = (
            json.dumps(value) if isinstance(value, list | dict | bool) else value
        )
    row["status"] = result.status
    row["error"] = result.error
    for column, section, key in _METRICS:
        row[column] = _metric(result.summary, section, key) if result.summary else ""
    return row


def write_table(
    path: Path, points: Iterable[SweepPoint], results: Iterable[SweepResult]
) -> None:
    """Write ``sweep.csv``: one row per point, in point order."""
    rows = [result_row(p, r) for p, r in zip(points, results, strict=True)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
