"""``frontier profile``: dry runs that import no torch, runs, resumption, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.util import find_spec

import pytest
from frontier.errors import ConfigError
from typer.testing import CliRunner

from .conftest import SMALL_GRID, profile_cli

_DRY_RUN = """
import sys
sys.argv = ["frontier", "profile", "all", "--model", "llama-3-8b", "--device", "h100",
            "--out", sys.argv[1], "--dry-run"]
from frontier.cli.app import main
try:
    main()
except SystemExit as done:
    print("exit", done.code)
print("torch imported" if "torch" in sys.modules else "torch not imported")
"""


def _invoke(*args: str):
    result = CliRunner().invoke(profile_cli(), ["profile", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_dry_run_of_llama3_8b_on_h100_imports_no_torch(tmp_path):
    """The plan of Llama-3-8B on an H100 prints through the real entry point
    without importing torch, and creates nothing."""
    out = tmp_path / "profiles"
    done = subprocess.run(
        [sys.executable, "-c", _DRY_RUN, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "exit 0" in done.stdout, done.stderr
    assert "torch not imported" in done.stdout
    # default grid: 21 token counts; decodes 9 batch sizes x 7 contexts = 63,
    # prefills 10, chunks 5 x 4 = 20 -> 21 + 63 + 10 + 20 = 114 rows
    assert "114 rows; estimate" in done.stdout
    assert "h100-sxm (catalogue peaks)" in done.stdout
    assert "compute/h100-sxm/meta-llama/Meta-Llama-3-8B" in done.stdout
    assert not out.exists()


def test_dry_run_counts_rows_already_measured(dense_path, tmp_path):
    """After measuring 3 rows, the plan shows them as measured."""
    out = str(tmp_path / "p")
    _invoke(
        "linear",
        "-m",
        dense_path,
        "-o",
        out,
        "--backend",
        "numpy",
        "--max-rows",
        "3",
        *SMALL_GRID,
    )
    result = _invoke(
        "linear",
        "-m",
        dense_path,
        "-o",
        out,
        "--backend",
        "numpy",
        "--device",
        "cpu",
        "--dry-run",
        *SMALL_GRID,
    )
    # columns: family, file, rows, measured, to measure
    measured = r"linear\s*│\s*linear_op.csv\s*│\s*4\s*│\s*3\s*│\s*1\s"
    assert re.search(measured, result.output)
    # without --device the plan reads the folder a run here writes (compute/cpu/)
    bare = _invoke(
        "linear",
        "-m",
        dense_path,
        "-o",
        out,
        "--backend",
        "numpy",
        "--dry-run",
        *SMALL_GRID,
    )
    assert re.search(measured, bare.output)


def test_all_on_a_moe_model_writes_three_files_and_metadata(moe_path, tmp_path):
    """`all` measures linear, attention and moe into compute/cpu/tiny-moe."""
    result = _invoke(
        "all", "-m", moe_path, "-o", str(tmp_path), "--backend", "numpy", *SMALL_GRID
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "compute" / "cpu" / "tiny-moe"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["attention.csv", "linear_op.csv", "metadata.json", "moe.csv"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["rows"] == {"linear_op.csv": 4, "attention.csv": 7, "moe.csv": 8}
    assert meta["families"] == ["linear", "attention", "moe"]
    assert meta["command"].startswith("frontier profile all --model ")


def test_a_row_limit_is_reported_and_the_rerun_completes(dense_path, tmp_path):
    """--max-rows stops with a resume hint; the same command then finishes."""
    args = [
        "linear",
        "-m",
        dense_path,
        "-o",
        str(tmp_path),
        "--backend",
        "numpy",
        *SMALL_GRID,
    ]
    first = _invoke(*args, "--max-rows", "2")
    assert "stopped: max_rows (2) reached; run the same command again" in first.output
    second = _invoke(*args)
    assert second.exit_code == 0
    assert "stopped" not in second.output
    lines = (tmp_path / "compute/cpu/tiny-llama/linear_op.csv").read_text()
    assert len(lines.splitlines()) == 5  # header + 4 token counts, none twice


def test_moe_of_a_dense_model_is_a_config_error(dense_path, tmp_path):
    """The error says why, before any device is opened."""
    with pytest.raises(ConfigError, match="dense model"):
        _invoke("moe", "-m", dense_path, "-o", str(tmp_path), "--backend", "numpy")


def test_a_bad_grid_value_names_the_option(dense_path, tmp_path):
    """--num-tokens 0 is refused with the option's name."""
    with pytest.raises(ConfigError, match="--num-tokens: '0' is not a positive"):
        _invoke("linear", "-m", dense_path, "--num-tokens", "0,4", "--dry-run")


@pytest.mark.parametrize(
    ("option", "value"), [("--time-budget-s", "-5"), ("--max-rows", "0")]
)
def test_a_limit_that_stops_everything_is_refused(dense_path, option, value):
    """A budget of -5 s used to be accepted and reported as spent."""
    with pytest.raises(ConfigError, match=f"{option} must be"):
        _invoke("linear", "-m", dense_path, option, value, "--dry-run")


def test_an_unavailable_attention_backend_is_refused(dense_path):
    """numpy cannot time FlashAttention; the error lists what it can."""
    with pytest.raises(ConfigError, match=r"FLASH_ATTN cannot be timed here.*NUMPY"):
        _invoke(
            "attention",
            "-m",
            dense_path,
            "--backend",
            "numpy",
            "--attention-backend",
            "flash_attn",
            "--dry-run",
        )


def test_input_errors_end_with_a_message_and_status_2(tmp_path):
    """Through the real entry point a bad --tp is one line on stderr, exit 2."""
    code = (
        "import sys; sys.argv = ['frontier', 'profile', 'linear', '-m', "
        "'llama-3-8b', '--tp', '3', '--dry-run']\n"
        "from frontier.cli.app import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "error: --tp 3: meta-llama/Meta-Llama-3-8B has num_attention_heads" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(find_spec("torch") is None, reason="torch is not installed")
def test_torch_backend_on_the_cpu_records_bf16_and_the_clock(moe_path, tmp_path):
    """With torch, the CPU is timed in bfloat16 by the monotonic clock."""
    result = _invoke(
        "all", "-m", moe_path, "-o", str(tmp_path), "--backend", "torch", *SMALL_GRID
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "compute" / "cpu" / "tiny-moe"
    meta = json.loads((folder / "metadata.json").read_text())
    assert (meta["backend"], meta["profiling_precision"]) == ("torch", "BF16")
    assert meta["measurement_type"] == "MONOTONIC_CLOCK"
    assert meta["torch_version"].startswith("2.")
    assert "TORCH_SDPA" in (folder / "attention.csv").read_text()


def test_a_cpu_run_is_not_filed_as_a_gpu(dense_path, tmp_path):
    """`-d h100` with the numpy backend measures the CPU: refused before any row is
    measured, and nothing is written."""
    out = tmp_path / "p"
    with pytest.raises(ConfigError, match=r"--device h100: this run measures the CPU"):
        _invoke(
            "linear", "-m", dense_path, "-o", str(out), "-d", "h100",
            "--backend", "numpy", *SMALL_GRID,
        )  # fmt: skip
    assert not out.exists()


def test_a_dry_run_warns_that_this_machine_would_measure_the_cpu(dense_path, tmp_path):
    """The plan for an H100 still prints (its estimate is the H100's), followed by
    the refusal a real run on this machine would meet."""
    result = _invoke(
        "linear", "-m", dense_path, "-o", str(tmp_path / "p"), "-d", "h100",
        "--backend", "numpy", "--dry-run", *SMALL_GRID,
    )  # fmt: skip
    assert result.exit_code == 0
    assert "h100-sxm (catalogue peaks)" in result.output
    assert "would be refused" in result.output
    assert "measures the CPU (numpy backend)" in result.output


def test_an_output_folder_that_cannot_be_made_is_an_input_error(dense_path, tmp_path):
    """A plain file where the folder should go raised NotADirectoryError, blamed
    on Frontier."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"--out .*cannot create the profile folder"):
        _invoke(
            "linear",
            "-m",
            dense_path,
            "-o",
            str(blocker),
            "--backend",
            "numpy",
            *SMALL_GRID,
        )
