"""``frontier profile validate``: a profile's schema and ranges, problem by problem."""

from __future__ import annotations

import json

import pytest
from conftest import require_shared_data
from frontier.errors import InputError
from frontier_profiling.numpy_backend import NumpyBackend
from frontier_profiling.runner import RunSettings, run_profile
from frontier_profiling.schema import LINEAR_COLUMNS
from frontier_profiling.validate import validate_directory
from typer.testing import CliRunner

from .conftest import profile_cli, small_grid

_OP = "time_stats.attn_pre_proj"


def _profile(model, tmp_path):
    settings = RunSettings(
        model=model,
        model_dir="tiny",
        device_dir="cpu",
        out=tmp_path,
        dtype="bfloat16",
        grid=small_grid(),
        warmup=0,
        repeats=2,
    )
    run_profile(settings, ("linear", "attention"), NumpyBackend(0))
    return tmp_path / "compute" / "cpu" / "tiny"


def _row(**cells) -> list[str]:
    """A linear_op.csv row of plausible values, with ``cells`` replaced."""
    values = {c: "" for c in LINEAR_COLUMNS}
    values.update(
        {
            f"{_OP}.{s}": v
            for s, v in zip(
                ("min", "max", "mean", "median", "std", "count"),
                ("1.0", "3.0", "2.0", "2.0", "0.5", "4"),
                strict=True,
            )
        }
    )
    values.update(
        n_head="4",
        n_kv_head="2",
        n_embd="128",
        n_expanded_embd="256",
        num_tokens="8",
        num_tensor_parallel_workers="1",
    )
    values.update(cells)
    return [values[c] for c in LINEAR_COLUMNS]


def _write(folder, rows, header=LINEAR_COLUMNS):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(r) for r in rows]
    (folder / "linear_op.csv").write_text("\n".join(lines) + "\n")


def _errors(folder):
    problems, _ = validate_directory(folder)
    return [p for p in problems if p.severity == "error"]


def test_a_measured_profile_is_valid_without_warnings(dense_model, tmp_path):
    """What the profiler writes passes every check."""
    problems, rows = validate_directory(_profile(dense_model, tmp_path))
    assert problems == []
    assert sorted(rows.values()) == [4, 7]


def test_a_root_folder_validates_every_profile_below_it(dense_model, tmp_path):
    """Validating ``<out>`` finds ``<out>/compute/cpu/tiny``."""
    _profile(dense_model, tmp_path)
    problems, rows = validate_directory(tmp_path)
    assert problems == [] and len(rows) == 2


@pytest.mark.parametrize(
    ("cells", "column", "message"),
    [
        ({f"{_OP}.median": "5.0"}, f"{_OP}.median", "outside [min, max]"),
        ({f"{_OP}.min": "-1.0"}, f"{_OP}.min", "negative time"),
        ({f"{_OP}.mean": "fast"}, f"{_OP}.mean", "not a finite number"),
        ({f"{_OP}.std": "9.0"}, f"{_OP}.std", "exceeds max - min"),
        ({f"{_OP}.count": "2.5"}, f"{_OP}.count", "not a whole number >= 1"),
        ({f"{_OP}.max": ""}, f"{_OP}.max", "give all five or none"),
        ({"num_tokens": "0"}, "num_tokens", "not a whole number >= 1"),
    ],
)
def test_a_bad_cell_is_named_by_file_row_and_column(tmp_path, cells, column, message):
    """The second data row (line 3) holds the fault; the message says where."""
    folder = tmp_path / "profile"
    _write(folder, [_row(), _row(**cells)])
    errors = _errors(folder)
    assert len(errors) == 1
    assert (errors[0].row, errors[0].column) == (3, column)
    assert message in errors[0].message
    assert str(errors[0]).startswith(f"error: {folder / 'linear_op.csv'}, row 3")


def test_a_file_of_zero_times_is_reported(tmp_path):
    """Zeros are valid times one by one (a reshape that is a view), but a file
    whose every time is 0 was not measured."""
    folder = tmp_path / "profile"
    zeros = {f"{_OP}.{s}": "0.0" for s in ("min", "max", "mean", "median", "std")}
    _write(folder, [_row(**zeros), _row(**zeros)])
    errors = _errors(folder)
    assert [(e.row, e.column) for e in errors] == [(None, None)]
    assert "every time in the file is 0 ms" in errors[0].message
    _write(folder, [_row(**zeros), _row()])  # one measured row: valid
    assert _errors(folder) == []


def test_a_short_row_is_reported(tmp_path):
    """A row with fewer fields than the header is an error of that row."""
    folder = tmp_path / "profile"
    _write(folder, [_row(), _row()[:10]])
    errors = _errors(folder)
    assert [(e.row, e.column) for e in errors] == [(3, None)]
    assert "10 fields where the header has" in errors[0].message


def test_a_missing_shape_column_is_reported(tmp_path):
    """Without n_embd a reader cannot match the model."""
    header = tuple(c for c in LINEAR_COLUMNS if c != "n_embd")
    folder = tmp_path / "profile"
    row = dict(zip(LINEAR_COLUMNS, _row(), strict=True))
    _write(folder, [[row[c] for c in header]], header)
    errors = _errors(folder)
    assert [(e.row, e.column) for e in errors] == [(None, "n_embd")]


def test_a_decode_row_without_its_decode_time_is_reported(dense_model, tmp_path):
    """An attention row with is_prefill False must time attn_decode."""
    folder = _profile(dense_model, tmp_path)
    path = folder / "attention.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")  # the first row is a decode
    for stat in ("min", "max", "mean", "median", "std", "count"):
        cells[header.index(f"time_stats.attn_decode.{stat}")] = ""
    path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    errors = _errors(folder)
    assert [(e.row, e.column) for e in errors] == [(2, "time_stats.attn_decode.median")]


def test_a_folder_without_profile_files_is_an_input_error(tmp_path):
    """Nothing to validate is a clear error, not a silent pass."""
    with pytest.raises(InputError, match="holds no profile"):
        validate_directory(tmp_path)


def test_the_shared_newer_profiles_have_no_errors():
    """The real H800 and A800 profiles pass (warnings only: no metadata.json)."""
    data = require_shared_data() / "profiling" / "compute"
    for folder in (
        "h800/llama2_7b_dense_example",
        "h800/Phi-tiny-MoE-instruct",
        "a800/qwen3-a3b-30b-moe",
    ):
        assert _errors(data / folder) == []


def test_the_command_exits_1_and_prints_each_problem(tmp_path):
    """`frontier profile validate` lists problems and fails; a good profile passes."""
    folder = tmp_path / "profile"
    _write(folder, [_row(), _row(**{f"{_OP}.min": "-1.0"})])
    result = CliRunner().invoke(profile_cli(), ["profile", "validate", str(folder)])
    assert result.exit_code == 1
    assert f"row 3, column '{_OP}.min': negative time" in result.output
    assert "invalid: 1 errors" in result.output


def test_a_cpu_profile_filed_as_a_gpu_is_an_error(dense_model, tmp_path):
    """metadata.json with device_kind cpu and device h100-sxm is an error on the
    device_kind field."""
    folder = _profile(dense_model, tmp_path)
    path = folder / "metadata.json"
    data = json.loads(path.read_text())
    assert data["device_kind"] == "cpu"
    data["device"] = "h100-sxm"
    path.write_text(json.dumps(data))
    problems, _ = validate_directory(folder)
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1
    assert errors[0].column == "device_kind"
    assert "measured on the CPU" in errors[0].message
