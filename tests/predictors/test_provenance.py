"""A profile measured on one device is not used to predict another."""

from __future__ import annotations

import shutil

import pytest
from conftest import require_shared_data
from frontier.devices import load_device
from frontier.errors import ConfigError, InputError
from frontier_predictors.csv_table import CsvTable
from frontier_predictors.provenance import check_profile_device, profile_device


def test_device_is_read_from_the_canonical_layout():
    """.../compute/<device>/<model>/ names the device, aliases resolved."""
    assert (
        profile_device("data/profiling/compute/a800/meta-llama/Llama-2-7b-hf") == "a800"
    )
    assert profile_device("validation/profiles/RTXPRO6000/Qwen/Qwen3-32B/bf16") == (
        "rtx-pro-6000"
    )
    assert profile_device("some/folder/without/a/device") is None
    assert profile_device("out/compute/cpu/tiny") is None  # not a catalogue device


def test_another_device_is_refused():
    """An A800 profile for a B200 run is an error naming both devices."""
    with pytest.raises(
        ConfigError, match="measured on a800, but the run's device is b200"
    ):
        check_profile_device("x/compute/a800/llama", load_device("b200"), "profile_dir")
    check_profile_device(
        "x/compute/a800/llama", load_device("a800-80gb"), "profile_dir"
    )


def test_implausible_and_non_numeric_times_are_refused(tmp_path):
    """'nan' written in a time cell, or a 1e30 ms time, names file, row and column."""
    data = require_shared_data()
    source = data / "profiling/compute/a800/meta-llama/Llama-2-7b-hf/mlp.csv"
    copy = tmp_path / "mlp.csv"
    shutil.copy(source, copy)
    lines = copy.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("time_stats.mlp_up_proj.median")
    row = lines[1].split(",")
    row[column] = "nan"
    lines[1] = ",".join(row)
    copy.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"row 2, column 'time_stats.mlp_up_proj"):
        CsvTable(copy).times("mlp_up_proj", "median")
    row[column] = "1e30"
    lines[1] = ",".join(row)
    copy.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="not a plausible operator time"):
        CsvTable(copy).times("mlp_up_proj", "median")
