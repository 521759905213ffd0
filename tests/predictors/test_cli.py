"""The predictors' commands, on a typer app of their own."""

from __future__ import annotations

import json

import typer
from frontier_predictors.plugin import frontier_add_commands
from typer.testing import CliRunner

from .conftest import TINY_MODEL_CONFIG


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def noop() -> None:  # typer needs a second command to keep sub-command names
        """Nothing."""

    frontier_add_commands(app=app)
    return app


def _model_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_MODEL_CONFIG))
    return str(path)


def test_train_prints_each_operators_error(older_profile, tmp_path):
    """`train` lists every profiled operator and where the tables went."""
    result = CliRunner().invoke(
        _app(),
        [
            "train",
            "--profiles",
            str(older_profile),
            "--predictor",
            "sklearn",
            "--model",
            _model_file(tmp_path),
            "--device",
            "a800",
            "--set",
            "model=linear",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "qkv_proj" in result.output
    assert "trained in" in result.output


def test_train_roofline_writes_a_calibration(older_profile, tmp_path):
    """`train --predictor roofline` writes the JSON that calibration_path loads."""
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(
        _app(),
        [
            "train",
            "--profiles",
            str(older_profile),
            "--predictor",
            "roofline",
            "--model",
            _model_file(tmp_path),
            "--device",
            "a800",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["format"] == "frontier-roofline-calibration/1"
    assert "mlp_up_gate" in data["operators"]


def test_validate_writes_its_figures(older_profile, tmp_path):
    """`predictors validate` prints the iteration error and writes JSON."""
    out = tmp_path / "v.json"
    result = CliRunner().invoke(
        _app(),
        [
            "predictors",
            "validate",
            "--profiles",
            str(older_profile),
            "--predictor",
            "sklearn",
            "--model",
            _model_file(tmp_path),
            "--device",
            "a800",
            "--set",
            "model=linear",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "iteration" in result.output
    assert json.loads(out.read_text())["predictor"] == "sklearn"


def test_an_unknown_device_in_the_path_asks_for_one(older_profile, tmp_path):
    """Without --device and no device folder in the path, the error says so."""
    result = CliRunner().invoke(
        _app(),
        ["train", "--profiles", str(older_profile), "--model", _model_file(tmp_path)],
    )
    assert result.exit_code != 0
    assert "--device" in str(result.exception)


def _run(tmp_path, *args):
    return CliRunner().invoke(_app(), [*args, "--model", _model_file(tmp_path)])


def test_validate_writes_no_json_unless_asked(older_profile, tmp_path, monkeypatch):
    """Without --json, `predictors validate` prints its tables and writes nothing."""
    monkeypatch.chdir(tmp_path)
    result = _run(
        tmp_path,
        "predictors",
        "validate",
        "--profiles",
        str(older_profile),
        "--device",
        "a800",
        "--set",
        "model=linear",
    )
    assert result.exit_code == 0, result.output
    assert "iteration" in result.output
    assert not (tmp_path / "outputs").exists()


def test_a_holdout_that_leaves_no_training_rows_is_refused(older_profile, tmp_path):
    """--holdout 0.99 holds out all 5 token rows: refused, with a holdout that
    works."""
    result = _run(
        tmp_path,
        "predictors",
        "validate",
        "--profiles",
        str(older_profile),
        "--device",
        "a800",
        "--holdout",
        "0.99",
    )
    assert result.exit_code != 0
    message = str(result.exception)
    # mlp.csv has 5 rows: round(0.99 * 5) = 5 held out, none left to train on.
    # 0.9 holds out round(0.9 * 24) = 22 of attention.csv's 24 rows, with seed 0
    # all 12 decode rows; 0.8 holds out 4 of 5 and 19 of 24 and leaves every
    # operator a training row, so 0.8 is the largest tenth that works.
    assert "qkv_proj (5 rows in mlp.csv)" in message
    assert "--holdout 0.8 or less" in message


def test_train_checks_the_output_before_fitting(older_profile, tmp_path):
    """A folder or a file in a missing folder as -o is refused with a message."""
    common = ["train", "--profiles", str(older_profile), "-p", "roofline"]
    folder = _run(tmp_path, *common, "--device", "a800", "-o", str(tmp_path))
    assert "is a folder" in str(folder.exception)
    missing = tmp_path / "no" / "such" / "x.json"
    result = _run(tmp_path, *common, "--device", "a800", "-o", str(missing))
    assert "does not exist" in str(result.exception)
    assert not missing.parent.exists()


def test_roofline_options_are_refused_for_other_predictors(older_profile, tmp_path):
    """-o and --combine only mean something to the roofline calibration."""
    common = ["train", "--profiles", str(older_profile), "--device", "a800"]
    output = _run(tmp_path, *common, "-p", "sklearn", "-o", "x.json")
    assert "--output: only the roofline" in str(output.exception)
    combine = _run(tmp_path, *common, "-p", "sklearn", "--combine", "best")
    assert "--combine: only the roofline" in str(combine.exception)
    validated = _run(
        tmp_path,
        "predictors",
        "validate",
        "--profiles",
        str(older_profile),
        "--device",
        "a800",
        "--combine",
        "best",
    )
    assert "--combine: only the roofline" in str(validated.exception)


def test_a_profile_file_is_not_taken_for_a_missing_folder(older_profile, tmp_path):
    """--profiles mlp.csv says it is a file and names the folder to pass."""
    result = _run(
        tmp_path, "train", "--profiles", str(older_profile / "mlp.csv"), "-d", "a800"
    )
    message = str(result.exception)
    assert "is a file, not a folder" in message
    assert str(older_profile) in message


def test_vllm_profile_needs_no_training(older_profile, tmp_path):
    """`train -p vllm_profile` says it reads its profile directly."""
    result = _run(
        tmp_path, "train", "--profiles", str(older_profile), "-p", "vllm_profile"
    )
    assert "needs no training" in str(result.exception)
    assert "reads its per-layer vLLM profile directly" in str(result.exception)


def test_a_cpu_profile_says_how_to_train_on_it(older_profile, tmp_path):
    """A profile measured on the CPU said only that the device was unknown."""
    (older_profile / "metadata.json").write_text(
        json.dumps({"model": "tiny", "device": "cpu"})
    )
    result = CliRunner().invoke(
        _app(),
        ["train", "--profiles", str(older_profile), "--model", _model_file(tmp_path)],
    )
    assert result.exit_code != 0
    message = str(result.exception)
    assert "was measured on the CPU" in message
    assert "--set check_device=false" in message
