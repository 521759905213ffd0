"""A profile measured on one device is not used to predict another."""

from __future__ import annotations

import json
import shutil

import attrs
import pytest
from conftest import require_shared_data
from frontier.devices import load_device
from frontier.errors import ConfigError, InputError
from frontier_predictors.csv_table import CsvTable
from frontier_predictors.provenance import check_profile_device, profile_device
from frontier_predictors.sklearn_predictor import SklearnConfig, SklearnPredictor

from .conftest import write_profile


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


def _profile_with_metadata(folder, **metadata):
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def test_a_cpu_measured_profile_is_refused_for_a_gpu(tmp_path):
    """metadata.json's device_kind cpu wins over a GPU folder name: the error
    names the metadata file and the CPU."""
    folder = _profile_with_metadata(
        tmp_path / "compute/h100-sxm/tiny",
        device="h100-sxm",
        device_kind="cpu",
        device_name="AMD EPYC",
    )
    with pytest.raises(ConfigError, match=r"metadata.json says .* CPU \(AMD EPYC\)"):
        check_profile_device(folder, load_device("h100"), "profile_dir")


def test_a_gpu_measured_profile_is_refused_for_a_cpu(tmp_path):
    """A CUDA profile used for a run on a device named cpu is refused."""
    folder = _profile_with_metadata(
        tmp_path / "p", device="a800", device_kind="cuda", device_name="NVIDIA A800"
    )
    cpu = attrs.evolve(load_device("a800"), name="cpu")
    with pytest.raises(ConfigError, match="measured on a GPU"):
        check_profile_device(folder, cpu, "profile_dir")


def test_a_gpu_profile_filed_as_another_gpu_is_refused(tmp_path):
    """metadata.json's device names the GPU even when the path does not."""
    folder = _profile_with_metadata(
        tmp_path / "anywhere", device="h100-sxm", device_kind="cuda"
    )
    with pytest.raises(ConfigError, match="measured on h100-sxm"):
        check_profile_device(folder, load_device("a800"), "profile_dir")
    check_profile_device(folder, load_device("h100"), "profile_dir")


def test_the_metadata_of_a_profile_file_is_read_beside_it(tmp_path):
    """A profile given as a file is checked against the metadata.json beside it."""
    folder = _profile_with_metadata(tmp_path / "p", device="cpu", device_kind="cpu")
    (folder / "attention.csv").write_text("x\n")
    with pytest.raises(ConfigError, match="device_kind cpu"):
        check_profile_device(folder / "attention.csv", load_device("a800"), "path")


def test_learned_predictor_refuses_a_cpu_profile_unless_told(tmp_path, tiny_context):
    """check_device = false lets a CPU profile stand in for the A800."""
    folder = write_profile(tmp_path / "cpu-profile")
    (folder / "metadata.json").write_text('{"device": "cpu", "device_kind": "cpu"}')
    config = SklearnConfig(
        profile_dir=str(folder), cache_dir=str(tmp_path / "c"), model="linear"
    )
    with pytest.raises(ConfigError, match=r"metadata\.json"):
        SklearnPredictor(config, tiny_context)
    SklearnPredictor(attrs.evolve(config, check_device=False), tiny_context)
