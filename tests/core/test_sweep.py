"""``frontier sweep``: the grid, its points, running them, the table."""

from __future__ import annotations

import csv
import sys
import types

import pytest
from frontier.cli.app import app
from frontier.errors import ConfigError
from frontier.plugins import default_plugins
from frontier.sweep import (
    check_points,
    expand_sweep,
    parse_grid_option,
    run_sweep,
    split_sweep_table,
    write_table,
)
from typer.testing import CliRunner

# A small run: Llama-2-7B on an A100 (roofline), 20 synthetic requests.
_BASE = {
    "model": {"name": "llama-2-7b"},
    "device": {"name": "a100-80gb"},
    "workload": {"type": "synthetic", "num_requests": 20, "qps": 5.0},
    "metrics": {"progress": False},
}


def _classes():
    return default_plugins().registry.config_classes()


# ------------------------------------------------------------------ the table


def test_the_sweep_table_is_flattened_to_dotted_paths():
    """``[sweep.grid]`` with dotted keys (nested tables in TOML) or quoted ones
    gives the same paths; the rest of the file is the base config."""
    data = {
        "model": {"name": "x"},
        "sweep": {
            "grid": {"workload": {"qps": [1, 2]}, "seed": [0, 1, 2]},
            "zip": {"parallel.tensor_parallel_size": [1, 2]},
        },
    }
    base, grid, zipped = split_sweep_table(data, "f.toml")
    assert base == {"model": {"name": "x"}}
    assert grid == {"workload.qps": [1, 2], "seed": [0, 1, 2]}
    assert zipped == {"parallel.tensor_parallel_size": [1, 2]}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"grid": {"seed": 3}}, "seed must be a non-empty list"),
        ({"grid": {"seed": []}}, "seed must be a non-empty list"),
        ({"grids": {"seed": [1]}}, "unknown key\\(s\\) grids"),
        ({"zip": {"a.b": [1, 2], "c.d": [1]}}, "every list needs as many values"),
        ("qps", "must be a table with grid and zip"),
    ],
)
def test_a_malformed_sweep_table_is_refused_naming_the_file(table, message):
    with pytest.raises(ConfigError, match=f"f.toml: \\[sweep\\].*{message}"):
        split_sweep_table({"sweep": table}, "f.toml")


@pytest.mark.parametrize(
    ("text", "path", "values"),
    [
        ("workload.qps=1,2.5,4", "workload.qps", [1, 2.5, 4]),
        ("workload.qps=[1, 2]", "workload.qps", [1, 2]),
        (
            "replica_scheduler.type=vllm_v1, sglang",
            "replica_scheduler.type",
            ["vllm_v1", "sglang"],
        ),
        (
            "cache.enable_prefix_caching=true,false",
            "cache.enable_prefix_caching",
            [True, False],
        ),
    ],
)
def test_grid_options_read_each_value_as_toml_or_text(text, path, values):
    assert parse_grid_option(text) == (path, values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workload.qps", "expected dotted.path=value1"),
        ("workload..qps=1", "empty part"),
        ("workload.qps=", "one or more values"),
        ("workload.qps=1,,2", "one or more values"),
        ("workload.qps=[1, 2", "not a TOML list"),
    ],
)
def test_malformed_grid_options_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid_option(text)


# ------------------------------------------------------------------ the points


def test_the_grid_takes_every_combination_first_field_slowest():
    """2 rates x 2 seeds, and a zip of 2 pairs as one more axis: 8 points."""
    points = expand_sweep(
        _BASE,
        {"workload.qps": [1.0, 2.0], "seed": [0, 1]},
        {"parallel.tensor_parallel_size": [1, 2], "parallel.num_replicas": [2, 1]},
    )
    assert len(points) == 2 * 2 * 2
    assert [p.index for p in points] == list(range(8))
    assert points[0].values == {
        "workload.qps": 1.0,
        "seed": 0,
        "parallel.tensor_parallel_size": 1,
        "parallel.num_replicas": 2,
    }
    # the zip varies fastest, then seed, then qps
    assert points[1].values["parallel.tensor_parallel_size"] == 2
    assert points[1].values["parallel.num_replicas"] == 1
    assert points[2].values["seed"] == 1
    assert points[4].values["workload.qps"] == 2.0
    assert points[5].data["workload"] == {
        "type": "synthetic",
        "num_requests": 20,
        "qps": 2.0,
    }
    assert points[5].data["parallel"] == {
        "tensor_parallel_size": 2,
        "num_replicas": 1,
    }
    assert _BASE["workload"]["qps"] == 5.0  # the base is not changed


def test_switching_plugin_drops_the_old_plugins_options_not_the_swept_ones():
    """As ``--scheduler``: sglang would refuse vllm_v1's options; an option swept
    alongside the switch lands in the new plugin's section."""
    base = {**_BASE, "replica_scheduler": {"type": "vllm_v1", "async_scheduling": True}}
    points = expand_sweep(
        base,
        {
            "replica_scheduler.max_preemptions_per_request": [5],
            "replica_scheduler.type": ["vllm_v1", "sglang"],
        },
        {},
    )
    assert points[0].data["replica_scheduler"] == {
        "type": "vllm_v1",
        "async_scheduling": True,
        "max_preemptions_per_request": 5,
    }
    assert points[1].data["replica_scheduler"] == {
        "type": "sglang",
        "max_preemptions_per_request": 5,
    }
    check_points(points, _classes())


def test_nothing_to_vary_or_a_field_swept_twice_is_refused():
    with pytest.raises(ConfigError, match="nothing to vary"):
        expand_sweep(_BASE, {}, {})
    with pytest.raises(ConfigError, match="seed is in both grid and zip"):
        expand_sweep(_BASE, {"seed": [1]}, {"seed": [2]})


def test_a_bad_point_stops_the_sweep_before_anything_runs():
    """The second point's rate is negative: named with its values."""
    points = expand_sweep(_BASE, {"workload.qps": [1.0, -1.0]}, {})
    with pytest.raises(
        ConfigError,
        match=r"(?s)sweep point 1 \(workload.qps=-1.0\): .*"
        r"workload.qps: must be positive",
    ):
        check_points(points, _classes())


# ------------------------------------------------------------------ running


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_points_run_and_the_table_holds_their_metrics(tmp_path):
    """Two rates in this process; each point writes its own run folder."""
    points = expand_sweep(_BASE, {"workload.qps": [1.0, 50.0]}, {})
    results = run_sweep(points, tmp_path, jobs=1)
    assert [r.status for r in results] == ["ok", "ok"]
    for point in points:
        folder = tmp_path / "points" / point.folder
        assert (folder / "system_metrics.json").is_file()
        assert (folder / "request_metrics.csv").is_file()
    write_table(tmp_path / "sweep.csv", points, results)
    rows = _rows(tmp_path / "sweep.csv")
    assert [row["workload.qps"] for row in rows] == ["1.0", "50.0"]
    assert [row["completed"] for row in rows] == ["20", "20"]
    for row, result in zip(rows, results, strict=True):
        assert float(row["ttft_mean"]) == pytest.approx(
            result.summary["ttft_ms"]["mean"]
        )
    # 50 requests/s queue more than 1 request/s: a longer mean TTFT
    assert float(rows[1]["ttft_mean"]) > float(rows[0]["ttft_mean"])


def test_a_point_the_simulator_refuses_is_recorded_and_the_others_run(tmp_path):
    """Llama-3-70B's 131 GiB of weights do not fit one 80 GiB A100; two do not
    hold one 8,192-token sequence beside 65.7 GiB each either: both refused,
    with the planner's message; four GPUs run."""
    base = {**_BASE, "model": {"name": "llama-3.1-70b", "max_model_len": 131072}}
    points = expand_sweep(base, {"parallel.tensor_parallel_size": [1, 4]}, {})
    results = run_sweep(points, None, jobs=1)
    assert results[0].status == "refused"
    assert "the model does not fit at all" in results[0].error
    assert results[1].status == "ok"
    assert results[1].summary["requests"]["completed"] == 20


def test_worker_processes_give_the_same_table_as_one_process(tmp_path):
    """Determinism: the rows come in point order whatever order points end in."""
    points = expand_sweep(_BASE, {"workload.qps": [2.0, 20.0], "seed": [0, 1]}, {})
    one = tmp_path / "one"
    many = tmp_path / "many"
    write_table(_mkdir(one) / "sweep.csv", points, run_sweep(points, one, jobs=1))
    write_table(_mkdir(many) / "sweep.csv", points, run_sweep(points, many, jobs=2))
    assert (one / "sweep.csv").read_bytes() == (many / "sweep.csv").read_bytes()


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_resume_reuses_finished_points_whose_config_is_unchanged(tmp_path):
    """A point is reused only when its saved config is the point's own: after a
    rate is inserted, the shifted points run again."""
    classes = _classes()
    first = expand_sweep(_BASE, {"workload.qps": [1.0, 4.0]}, {})
    run_sweep(first, tmp_path, jobs=1)
    again = expand_sweep(_BASE, {"workload.qps": [1.0, 2.0, 4.0]}, {})
    results = run_sweep(again, tmp_path, jobs=1, resume=True, config_classes=classes)
    # point 0 (1.0) is reused; point 1 was 4.0 and is now 2.0: run again
    assert [r.reused for r in results] == [True, False, False]
    assert all(r.status == "ok" for r in results)


# ------------------------------------------------------------------ Ray


class _FakeRef:
    def __init__(self, value):
        self.value = value


def _fake_ray(calls):
    """A stand-in for the ``ray`` module: tasks run when submitted, and the
    driver's folder is passed to them."""
    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: False
    ray.init = lambda **kw: calls.append(("init", kw))
    ray.shutdown = lambda: calls.append(("shutdown",))

    def remote(function):
        task = types.SimpleNamespace()

        def submit(*args):
            calls.append(("task", args[1:]))
            return _FakeRef(function(*args))

        task.remote = submit
        return task

    ray.remote = remote
    # finish the last submitted first, as a cluster may
    ray.wait = lambda refs, num_returns: ([refs[-1]], refs[:-1])
    ray.get = lambda ref: ref.value
    return ray


def test_the_ray_backend_submits_every_point_and_keeps_their_order(
    tmp_path, monkeypatch
):
    calls = []
    monkeypatch.setitem(sys.modules, "ray", _fake_ray(calls))
    monkeypatch.chdir(tmp_path)
    points = expand_sweep(_BASE, {"workload.qps": [1.0, 50.0]}, {})
    results = run_sweep(points, None, backend="ray", ray_address="ray://head:10001")
    assert calls[0] == ("init", {"address": "ray://head:10001", "log_to_driver": False})
    assert calls[-1] == ("shutdown",)
    # each task gets no output folder and the driver's working folder
    assert [c for c in calls if c[0] == "task"] == [("task", (None, str(tmp_path)))] * 2
    assert [r.index for r in results] == [0, 1]
    local = run_sweep(points, None, jobs=1)
    assert [r.summary for r in results] == [r.summary for r in local]


def test_the_ray_backend_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    points = expand_sweep(_BASE, {"seed": [1]}, {})
    with pytest.raises(ConfigError, match=r"pip install 'frontier-core\[ray\]'"):
        run_sweep(points, None, backend="ray")


def test_an_unknown_backend_is_refused():
    points = expand_sweep(_BASE, {"seed": [1]}, {})
    with pytest.raises(ConfigError, match="choose one of local, ray"):
        run_sweep(points, None, backend="dask")


# ------------------------------------------------------------------ the command


def test_the_sweep_command_writes_the_table_and_exits_1_when_a_point_fails(
    tmp_path, monkeypatch
):
    """A config with a [sweep] table and a --grid on top: 2 x 2 points, the
    two TP-1 points refused (70B on one A100), exit status 1."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("FRONTIER_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sweep.toml"
    config.write_text(
        '[model]\nname = "llama-3.1-70b"\n[device]\nname = "a100-80gb"\n'
        "[workload]\nnum_requests = 10\n"
        '[sweep.grid]\n"parallel.tensor_parallel_size" = [1, 4]\n'
    )
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            str(config),
            "--grid",
            "workload.qps=2,4",
            "--sweep-id",
            "s",
            "-j",
            "1",
        ],
    )
    assert result.exit_code == 1, result.output
    rows = _rows(tmp_path / "outputs" / "sweeps" / "s" / "sweep.csv")
    assert [(r["parallel.tensor_parallel_size"], r["workload.qps"]) for r in rows] == [
        ("1", "2"),
        ("1", "4"),
        ("4", "2"),
        ("4", "4"),
    ]
    assert [r["status"] for r in rows] == ["refused", "refused", "ok", "ok"]
    assert "does not fit" in rows[0]["error"]
    assert "2 of 4 points did not run to the end" in result.output


def test_resume_needs_a_named_sweep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "--grid", "seed=1,2", "--resume"])
    assert result.exit_code != 0
    assert "--sweep-id" in str(result.exception) + result.output


def test_frontier_run_on_a_sweep_file_points_to_frontier_sweep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "s.toml"
    config.write_text("[sweep.grid]\nseed = [1, 2]\n")
    result = CliRunner().invoke(app, ["run", str(config), "--no-output"])
    assert result.exit_code != 0
    assert "run the sweep with `frontier sweep" in str(result.exception)


def test_a_grid_of_more_points_than_the_limit_is_refused_before_building_it():
    """200 x 200 x 100 = 4,000,000 points took 4 GB and never started."""
    grid = {"seed": list(range(200)), "workload.qps": [1.0] * 200, "a.b": [0] * 100}
    with pytest.raises(ConfigError, match=r"200 x 200 x 100 = 4,000,000 points"):
        expand_sweep(_BASE, grid, {})
    assert len(expand_sweep(_BASE, {"seed": [1, 2, 3]}, {}, max_points=3)) == 3
    with pytest.raises(ConfigError, match="more than 2; each"):
        expand_sweep(_BASE, {"seed": [1, 2, 3]}, {}, max_points=2)


def test_a_reused_sweep_folder_keeps_no_point_of_the_earlier_sweep(
    tmp_path, monkeypatch
):
    """Points 4 and 5 of a 6-point sweep stayed beside the 4 rows of the next
    sweep under the same name."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def sweep(*args):
        result = runner.invoke(
            app, ["sweep", "-n", "5", "--sweep-id", "s", "-j", "1", "-q", *args]
        )
        assert result.exit_code == 0, result.output
        return sorted(p.name for p in (tmp_path / "outputs/sweeps/s/points").iterdir())

    assert sweep("--grid", "seed=1,2,3") == ["0000", "0001", "0002"]
    assert sweep("--grid", "seed=1,2") == ["0000", "0001"]
    assert sweep("--grid", "seed=1", "--resume") == ["0000"]


def test_a_run_without_request_rows_leaves_no_earlier_rows_in_its_folder(tmp_path):
    """A run reusing a folder without writing request_metrics.csv left the
    earlier run's file beside its own summary."""
    from conftest import simulate, tiny_config

    simulate(tiny_config([(0.0, 8, 2)]), tmp_path)
    assert (tmp_path / "request_metrics.csv").is_file()
    simulate(
        tiny_config([(0.0, 8, 2)], metrics={"write_request_metrics": False}), tmp_path
    )
    assert not (tmp_path / "request_metrics.csv").exists()
    assert (tmp_path / "system_metrics.json").is_file()


def test_a_plugin_switch_keeps_the_options_the_new_plugin_takes_too():
    """-n 30 and a shared max_num_seqs vanished when a grid switched plugin;
    with the plugins' config classes only options the new one refuses go."""
    base = {
        **_BASE,
        "replica_scheduler": {
            "type": "vllm_v1",
            "max_num_seqs": 8,
            "async_scheduling": True,
        },
    }
    points = expand_sweep(
        base, {"replica_scheduler.type": ["sarathi"]}, {}, config_classes=_classes()
    )
    section = points[0].data["replica_scheduler"]
    assert section == {"type": "sarathi", "max_num_seqs": 8}  # async is vLLM's
    check_points(points, _classes())


def test_a_quoted_grid_value_keeps_its_comma():
    assert parse_grid_option('workload.path="a,b.csv", "c.csv"') == (
        "workload.path",
        ["a,b.csv", "c.csv"],
    )


def test_resume_runs_again_a_point_whose_summary_is_broken(tmp_path):
    """An empty or partial system_metrics.json was 'reused' and then crashed."""
    classes = _classes()
    points = expand_sweep(_BASE, {"workload.qps": [1.0, 2.0]}, {})
    run_sweep(points, tmp_path, jobs=1)
    (tmp_path / "points" / "0000" / "system_metrics.json").write_text("")
    (tmp_path / "points" / "0001" / "system_metrics.json").write_text('{"x": 1}')
    results = run_sweep(points, tmp_path, jobs=1, resume=True, config_classes=classes)
    assert [r.reused for r in results] == [False, False]
    assert [r.status for r in results] == ["ok", "ok"]


def test_ray_that_cannot_start_is_an_input_error(monkeypatch):
    """Ray's ConnectionError (no cluster at the address) read as a Frontier bug."""
    ray = _fake_ray([])

    def refuse(**kw):
        raise ConnectionError("Could not find any running Ray instance")

    ray.init = refuse
    monkeypatch.setitem(sys.modules, "ray", ray)
    points = expand_sweep(_BASE, {"seed": [1]}, {})
    with pytest.raises(ConfigError, match="could not start or join the Ray cluster"):
        run_sweep(points, None, backend="ray", ray_address="auto")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "seed=1,2", "--grid", "seed=3"], "--grid seed is given twice"),
        (["--grid", "seed=1", "--ray-address", "auto"], "add --backend ray"),
    ],
)
def test_sweep_options_that_contradict_are_refused(
    tmp_path, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "--no-output", *args])
    assert result.exit_code != 0
    assert message in str(result.exception)
