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
