"""Device specs: the built-in catalogue, aliases, overrides and user catalogues."""

from __future__ import annotations

import pytest
from frontier.devices import GIB, device_catalogue, load_device
from frontier.errors import ConfigError

REQUIRED = (
    "a100-80gb",
    "a800",
    "h100-sxm",
    "h800",
    "h200",
    "h20",
    "b200",
    "l40s",
    "mi300x",
)

_NUMBERS = (
    "bf16_tflops",
    "fp16_tflops",
    "fp8_tflops",
    "fp32_tflops",
    "memory_gib",
    "memory_bandwidth_gbps",
    "intra_node_bandwidth_gbps",
    "inter_node_bandwidth_gbps",
    "intra_node_latency_us",
    "inter_node_latency_us",
    "gpus_per_node",
)


def test_required_devices_are_in_the_catalogue():
    """The catalogue holds the nine devices the project promises."""
    assert set(REQUIRED) <= set(device_catalogue())


@pytest.mark.parametrize("name", sorted(device_catalogue()))
def test_every_catalogue_device_loads_with_positive_figures(name):
    """Each built-in device loads, and every peak, size and link figure is > 0."""
    device = load_device(name)
    assert device.name == name
    for field in _NUMBERS:
        assert getattr(device, field) > 0, field
    assert device.memory_bytes == int(device.memory_gib * GIB)


def test_sparse_peak_is_not_used_for_h200():
    """The H200's dense BF16 peak is 989.5 TFLOP/s, half the sparse 1979."""
    assert load_device("h200").peak_flops("bfloat16") == pytest.approx(989.5e12)


def test_peak_flops_by_dtype():
    """BF16/FP16 use the tensor peaks, FP8 its own, anything else FP32."""
    h100 = load_device("h100-sxm")
    assert h100.peak_flops("bf16") == pytest.approx(989.5e12)
    assert h100.peak_flops("float16") == pytest.approx(989.5e12)
    assert h100.peak_flops("fp8") == pytest.approx(1979e12)
    assert h100.peak_flops("float32") == pytest.approx(67e12)
    assert h100.memory_bandwidth == pytest.approx(3350e9)


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("A100", "a100-80gb"),
        ("h100", "h100-sxm"),
        ("H800-SXM", "h800"),
        ("MI300X", "mi300x"),
    ],
)
def test_aliases_and_case_resolve_to_the_catalogue_name(alias, name):
    """Aliases and any letter case find the catalogue entry."""
    assert load_device(alias).name == name


def test_overrides_replace_single_fields():
    """An override changes that field only; ``None`` overrides are ignored."""
    device = load_device("a100-80gb", {"memory_gib": 40, "bf16_tflops": None})
    assert device.memory_gib == 40
    assert device.bf16_tflops == 312.0
    assert device.memory_bandwidth_gbps == 2039.0


def test_non_positive_override_is_refused():
    """A memory of 0 GiB names the field."""
    with pytest.raises(ConfigError, match="memory_gib"):
        load_device("a100-80gb", {"memory_gib": 0})


_USER_CATALOGUE = """
[my-gpu]
aliases = ["mine"]
vendor = "Acme"
bf16_tflops = 100.0
fp16_tflops = 100.0
fp8_tflops = 200.0
fp32_tflops = 10.0
memory_gib = 24.0
memory_bandwidth_gbps = 1000.0
intra_node_bandwidth_gbps = 50.0
inter_node_bandwidth_gbps = 12.5

[a100-80gb]
bf16_tflops = 312.0
fp16_tflops = 312.0
fp8_tflops = 312.0
fp32_tflops = 19.5
memory_gib = 40.0
memory_bandwidth_gbps = 1555.0
intra_node_bandwidth_gbps = 300.0
inter_node_bandwidth_gbps = 25.0
"""


@pytest.fixture
def user_catalogue(tmp_path):
    path = tmp_path / "devices.toml"
    path.write_text(_USER_CATALOGUE, "utf-8")
    return path


def test_user_catalogue_adds_devices(user_catalogue):
    """A device from the user's file loads by name and by alias."""
    device = load_device("mine", catalogue_path=user_catalogue)
    assert device.name == "my-gpu"
    assert device.memory_gib == 24.0
    assert device.gpus_per_node == 8  # the default


def test_user_catalogue_entry_overrides_a_built_in_one(user_catalogue):
    """A user entry with a built-in name replaces the built-in figures."""
    device = load_device("a100-80gb", catalogue_path=user_catalogue)
    assert device.memory_gib == 40.0
    assert device.memory_bandwidth_gbps == 1555.0


def test_user_catalogue_alias_wins_over_a_built_in_alias(tmp_path):
    """A user device that claims the alias ``h100`` is found before the built-in."""
    path = tmp_path / "devices.toml"
    text = _USER_CATALOGUE.replace('aliases = ["mine"]', 'aliases = ["h100"]')
    path.write_text(text, "utf-8")
    assert load_device("h100", catalogue_path=path).name == "my-gpu"


def test_built_in_devices_remain_with_a_user_catalogue(user_catalogue):
    """Devices absent from the user's file still come from the built-in one."""
    assert load_device("h200", catalogue_path=user_catalogue).memory_gib == 140.4


def test_unknown_device_lists_the_known_ones(user_catalogue):
    """An unknown name lists every known device, the user's included."""
    with pytest.raises(ConfigError) as error:
        load_device("tpu-v9", catalogue_path=user_catalogue)
    message = str(error.value)
    assert "'tpu-v9'" in message
    for name in (*REQUIRED, "my-gpu"):
        assert name in message
    assert "catalogue_path" in message


def test_missing_user_catalogue_is_named(tmp_path):
    """A catalogue path that does not exist is named in the error."""
    path = tmp_path / "none.toml"
    with pytest.raises(ConfigError, match="does not exist") as error:
        load_device("a100", catalogue_path=path)
    assert str(path) in str(error.value)


def test_invalid_user_catalogue_is_named(tmp_path):
    """A catalogue file that is not TOML is named, with the parser's complaint."""
    path = tmp_path / "devices.toml"
    path.write_text("[my-gpu\nmemory_gib = 1", "utf-8")
    with pytest.raises(ConfigError, match="not valid TOML") as error:
        load_device("my-gpu", catalogue_path=path)
    assert str(path) in str(error.value)


def test_user_device_missing_a_field_names_the_file(tmp_path):
    """A user device without ``bf16_tflops`` names the device, file and field."""
    path = tmp_path / "devices.toml"
    path.write_text(_USER_CATALOGUE.replace("bf16_tflops = 100.0\n", "", 1), "utf-8")
    with pytest.raises(ConfigError, match="bf16_tflops") as error:
        load_device("my-gpu", catalogue_path=path)
    assert str(path) in str(error.value)
    assert "my-gpu" in str(error.value)


def test_user_device_with_a_non_number_names_the_field_and_file(tmp_path):
    """``fp16_tflops = "fast"`` is refused, naming the field and the file."""
    path = tmp_path / "devices.toml"
    path.write_text(
        _USER_CATALOGUE.replace("fp16_tflops = 100.0", 'fp16_tflops = "fast"', 1),
        "utf-8",
    )
    with pytest.raises(ConfigError, match="fp16_tflops") as error:
        load_device("my-gpu", catalogue_path=path)
    assert str(path) in str(error.value)
