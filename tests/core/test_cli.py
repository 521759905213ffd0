"""The ``frontier`` command line: runs, config show, catalogues and clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from frontier.cli.app import app
from frontier.config_build import build_config
from frontier.devices import load_device
from frontier.models import load_model
from frontier.plugins import default_plugins
from typer.testing import CliRunner

REQUIRED_MODELS = (
    "Llama-2-7B",
    "Llama-3-8B",
    "Llama-3-70B",
    "Qwen3-30B-A3B",
    "Mixtral-8x7B",
    "DeepSeek-V3",
)
REQUIRED_DEVICES = (
    "A100-80GB",
    "A800",
    "H100-SXM",
    "H800",
    "H200",
    "H20",
    "B200",
    "L40S",
    "MI300X",
)
BUILT_IN_PLUGINS = {
    "vllm_v1": "frontier-schedulers",
    "round_robin": "frontier-schedulers",
    "roofline": "frontier-predictors",
    "analytical": "frontier-backends",
    "synthetic": "frontier-core",
    "trace": "frontier-core",
}


@pytest.fixture
def cli(monkeypatch):
    """Invoke the typer app in-process, 80 columns wide like a plain terminal."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("FRONTIER_PLUGINS", raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def _frontier(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the real ``frontier`` entry point in a fresh process."""
    script = Path(sys.executable).with_name("frontier")
    command = (
        [str(script)]
        if script.exists()
        else [
            sys.executable,
            "-c",
            "from frontier.cli.app import main; main()",
        ]
    )
    env = {k: v for k, v in os.environ.items() if k != "FRONTIER_PLUGINS"}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_run_without_output_prints_the_summary(cli, tmp_path, monkeypatch):
    """``frontier run --no-output -q`` exits 0, prints the table, writes nothing."""
    monkeypatch.chdir(tmp_path)
    result = cli("run", "--no-output", "-q", "-n", "10")
    assert result.exit_code == 0, result.output
    for text in ("TTFT", "TPOT", "E2E latency", "requests: 10 completed", "throughput"):
        assert text in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_run_json_prints_system_metrics(cli, tmp_path, monkeypatch):
    """``--json`` prints the summary as JSON on stdout."""
    monkeypatch.chdir(tmp_path)
    result = cli("run", "--no-output", "-q", "--json", "-n", "5", "--seed", "3")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["requests"]["completed"] == 5
    assert summary["metadata"]["seed"] == 3


def test_run_writes_outputs_under_model_workload_run_id(cli, tmp_path):
    """A run writes config.toml, request_metrics.csv and system_metrics.json to
    <output_dir>/<model>/<workload>/<run_id>/."""
    out = tmp_path / "outputs"
    args = (
        "run",
        "-q",
        "-m",
        "llama-2-7b",
        "-n",
        "4",
        "-o",
        str(out),
        "--run-id",
        "r1",
    )
    result = cli(*args)
    assert result.exit_code == 0, result.output
    run_dir = out / "Llama-2-7b-hf" / "synthetic_poisson" / "r1"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.toml",
        "request_metrics.csv",
        "system_metrics.json",
    ]
    rows = (run_dir / "request_metrics.csv").read_text("utf-8").splitlines()
    assert len(rows) == 1 + 4  # header and one row per request
    written = tomllib.loads((run_dir / "config.toml").read_text("utf-8"))
    classes = default_plugins().registry.config_classes()
    config = build_config(written, classes)
    assert config.model.name == "llama-2-7b"
    assert config.metrics.run_id == "r1"


def test_config_show_prints_toml_that_round_trips(cli):
    """``frontier config show`` prints the resolved config as TOML that builds the
    same config again."""
    result = cli("config", "show", "-m", "llama-2-7b", "--set", "cache.block_size=32")
    assert result.exit_code == 0
    data = tomllib.loads(result.stdout)
    assert data["model"]["name"] == "llama-2-7b"
    assert data["cache"]["block_size"] == 32
    classes = default_plugins().registry.config_classes()
    expected = build_config(
        {"model": {"name": "llama-2-7b"}, "cache": {"block_size": 32}}, classes
    )
    assert build_config(data, classes) == expected


def test_config_show_of_a_file_applies_flags_over_it(cli, tmp_path):
    """Flags and --set win over the file's values."""
    path = tmp_path / "run.toml"
    path.write_text("seed = 1\n[parallel]\ntensor_parallel_size = 2\n", "utf-8")
    result = cli("config", "show", str(path), "--tp", "4", "--set", "seed=9")
    data = tomllib.loads(result.stdout)
    assert data["parallel"]["tensor_parallel_size"] == 4
    assert data["seed"] == 9


def test_plugins_list_names_every_built_in_with_its_distribution(cli):
    """Each built-in plugin's row shows its name and distribution whole."""
    result = cli("plugins", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    for name, distribution in BUILT_IN_PLUGINS.items():
        cells = [line.split("│") for line in lines]
        rows = [[c.strip() for c in row] for row in cells]
        assert any(name in row and distribution in row for row in rows), name


def test_models_list_shows_the_required_models_whole(cli):
    """Every required model's catalogue name appears unabridged."""
    result = cli("models", "list")
    assert result.exit_code == 0
    for name in REQUIRED_MODELS:
        assert load_model(name).name in result.stdout, name


def test_devices_list_shows_the_required_devices(cli):
    """Every required device's catalogue name appears."""
    result = cli("devices", "list")
    assert result.exit_code == 0
    for name in REQUIRED_DEVICES:
        assert f"│ {load_device(name).name} " in result.stdout, name


def test_piped_catalogues_keep_every_alias_whole(tmp_path):
    """Piped, rich would fit a table into 80 columns and cut the aliases; the
    catalogues print on a wide page instead."""
    result = _frontier("models", "list", cwd=tmp_path)
    assert result.returncode == 0
    assert "…" not in result.stdout
    assert "llama-3-8b" in result.stdout  # an alias of meta-llama/Meta-Llama-3-8B


def test_version_prints_the_core_version(tmp_path):
    """``frontier --version`` prints frontier-core's installed version."""
    from importlib.metadata import version

    result = _frontier("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"frontier {version('frontier-core')}"


def test_invalid_set_key_exits_2_with_the_path_and_no_traceback(tmp_path):
    """A misspelt --set key ends with status 2, a message naming it, no traceback."""
    result = _frontier(
        "run", "--no-output", "-q", "--set", "cache.blok_size=8", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "cache: unknown key(s) blok_size" in result.stderr
    assert "block_size" in result.stderr  # the allowed keys
    assert "Traceback" not in result.stderr + result.stdout


def test_unbuilt_architecture_exits_2_before_writing_anything(tmp_path):
    """``architecture=pd-disaggregation`` says it is not available yet and writes
    no output folder."""
    out = tmp_path / "outputs"
    result = _frontier(
        "run",
        "-q",
        "-n",
        "2",
        "-o",
        str(out),
        "--set",
        "architecture=pd-disaggregation",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "not available yet" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_trace_exits_2_naming_the_file(tmp_path):
    """``--trace`` of a file that does not exist ends with status 2 and its name."""
    missing = tmp_path / "absent.csv"
    result = _frontier(
        "run", "--no-output", "-q", "--trace", str(missing), cwd=tmp_path
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_where_nothing_completes_warns(cli, tmp_path, monkeypatch):
    """Every prompt at least max_model_len long: the run succeeds (exit 0) but
    says on stderr that no request completed, and why."""
    monkeypatch.chdir(tmp_path)
    result = cli(
        "run", "--no-output", "-q", "-n", "3", "--set", "model.max_model_len=1"
    )
    assert result.exit_code == 0
    assert "warning: no request completed (3 rejected: prompt (or prompt plus" in (
        result.stderr
    )
    quiet = cli("run", "--no-output", "-q", "-n", "3")
    assert "warning" not in quiet.stderr


def test_a_config_without_a_context_length_warns_in_one_line(tmp_path):
    """vLLM assumes 2048 tokens for a config.json without a context length and
    warns; the CLI prints Frontier's warning as one ``warning:`` line."""
    config = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "intermediate_size": 512,
        "vocab_size": 1000,
    }
    (tmp_path / "m.json").write_text(json.dumps(config), "utf-8")
    result = _frontier(
        "run", "--no-output", "-q", "-n", "2", "-m", "m.json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "2048" in line]
    assert len(warned) == 1
    assert warned[0].startswith("warning: m.json: the config sets none of")
    assert "UserWarning" not in result.stderr
