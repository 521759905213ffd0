"""Folder names of the profile layout: catalogue devices, hub ids, config folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontier.errors import ConfigError
from frontier_profiling.naming import (
    check_device_label,
    config_file,
    device_folder,
    model_folder,
)


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("h100", "h100-sxm"),  # a catalogue alias
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),  # the CUDA driver's name
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000"),
        ("Foo Accelerator 9000", "foo-accelerator-9000"),  # unknown: a slug
    ],
)
def test_device_folder_prefers_the_catalogue_name(name, folder):
    """A device is filed under its catalogue key when any run of words matches."""
    assert device_folder(name) == folder


def test_catalogue_model_folder_is_its_hub_id():
    """Llama-3-8B goes to meta-llama/Meta-Llama-3-8B, as in the shared profiles."""
    assert model_folder("llama-3-8b", "meta-llama/Meta-Llama-3-8B") == (
        "meta-llama/Meta-Llama-3-8B"
    )


def test_config_json_model_folder_is_its_folder(dense_path):
    """``.../tiny-llama/config.json`` is filed as ``tiny-llama``; --model-name wins."""
    assert model_folder(dense_path, "config") == "tiny-llama"
    assert model_folder(dense_path, "config", "mine") == "mine"


def test_a_snapshot_folder_is_read_through_its_config_json(dense_path):
    """``--model .../tiny-llama`` (a folder with config.json) is that config."""
    folder = str(Path(dense_path).parent)
    assert config_file(folder) == Path(dense_path)
    assert model_folder(folder, "config") == "tiny-llama"
    assert config_file("llama-3-8b") is None  # a catalogue name


def test_a_cpu_measurement_is_not_labelled_with_a_gpu():
    """--device h100 on a CPU measurement is refused and says what was measured
    and how to name it."""
    with pytest.raises(
        ConfigError, match=r"measures the CPU \(AMD EPYC\), not the GPU"
    ):
        check_device_label("h100", "cpu", "AMD EPYC")
    # a name outside the catalogue (or none) files the CPU under that name
    check_device_label("cpu", "cpu", "AMD EPYC")
    check_device_label("my-xeon", "cpu", None)
    check_device_label(None, "cpu", None)


def test_a_gpu_measurement_keeps_its_own_catalogue_name():
    """A CUDA measurement may not be filed as the CPU or as another catalogue GPU."""
    with pytest.raises(ConfigError, match="measures a GPU"):
        check_device_label("cpu", "cuda", "NVIDIA H200")
    with pytest.raises(ConfigError, match="measures h200"):
        check_device_label("h100", "cuda", "NVIDIA H200")
    check_device_label("h200", "cuda", "NVIDIA H200")
    # a GPU the catalogue lacks may be filed under any name
    check_device_label("h100", "cuda", "Foo Accelerator 9000")
    # unknown kind (torch on auto in a dry run): nothing to check
    check_device_label("h100", None, None)
