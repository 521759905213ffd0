"""Device specs: the built-in catalogue, aliases, overrides and user catalogues."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from frontier import devices
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
    with pytest.raises(ConfigError, match="field bf16_tflops is missing") as error:
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


def _write_catalogue(tmp_path, old: str, new: str):
    """The user catalogue with the first ``old`` replaced by ``new``."""
    assert old in _USER_CATALOGUE
    path = tmp_path / "devices.toml"
    path.write_text(_USER_CATALOGUE.replace(old, new, 1), "utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("memory_gib = 24.0", "memory_gib = inf"),
        ("memory_gib = 24.0", "memory_gib = nan"),
        ("memory_gib = 24.0", "memory_gib = -inf"),
        ("bf16_tflops = 100.0", "bf16_tflops = nan"),
        ("memory_bandwidth_gbps = 1000.0", "memory_bandwidth_gbps = nan"),
        ("inter_node_bandwidth_gbps = 12.5", "inter_node_bandwidth_gbps = inf"),
        ("memory_gib = 24.0", "memory_gib = true"),
        # finite but beyond any device: 1e300 GiB overflowed the memory planner
        # (blamed on Frontier), 1e-300 GB/s gave 1e295-second steps
        ("memory_gib = 24.0", "memory_gib = 1e300"),
        ("inter_node_bandwidth_gbps = 12.5", "inter_node_bandwidth_gbps = 1e-300"),
        ("bf16_tflops = 100.0", "bf16_tflops = 2e9"),
    ],
)
def test_non_finite_figures_are_refused(tmp_path, old, new):
    """inf, nan, booleans and figures no device has are refused: the file,
    device and field are named."""
    path = _write_catalogue(tmp_path, old, new)
    field = new.split(" = ")[0]
    with pytest.raises(ConfigError) as error:
        load_device("my-gpu", catalogue_path=path)
    message = str(error.value)
    assert f"device.{field} of 'my-gpu' ({path})" in message
    assert "a number from 0.001 to 1e9" in message


def test_gpus_per_node_must_be_a_whole_number(tmp_path):
    """``gpus_per_node = 7.5`` is refused: devices come in whole numbers."""
    path = _write_catalogue(tmp_path, 'vendor = "Acme"', "gpus_per_node = 7.5")
    with pytest.raises(ConfigError, match=r"gpus_per_node .* positive integer"):
        load_device("my-gpu", catalogue_path=path)


def test_optional_collective_bandwidth_is_checked_when_given(tmp_path):
    """``collective_bandwidth_gbps`` may be left out, but not be 0."""
    path = _write_catalogue(
        tmp_path, 'vendor = "Acme"', "collective_bandwidth_gbps = 0"
    )
    with pytest.raises(ConfigError, match="collective_bandwidth_gbps"):
        load_device("my-gpu", catalogue_path=path)


def test_top_level_field_outside_a_table_is_refused(tmp_path):
    """``memory_gib = 3`` above every ``[name]`` line is not a device."""
    path = tmp_path / "devices.toml"
    path.write_text("memory_gib = 3\n", "utf-8")
    with pytest.raises(ConfigError, match="'memory_gib' = 3 is not a device") as error:
        load_device("h100", catalogue_path=path)
    assert str(path) in str(error.value)
    assert "[name]" in str(error.value)


@pytest.mark.parametrize("aliases", ['"h100"', '["ok", 3]', '[""]', "{}"])
def test_aliases_must_be_a_list_of_names(tmp_path, aliases):
    """``aliases = "h100"`` would be read letter by letter; it is refused."""
    path = _write_catalogue(tmp_path, 'aliases = ["mine"]', f"aliases = {aliases}")
    with pytest.raises(ConfigError, match=r"device\.aliases of 'my-gpu'") as error:
        load_device("my-gpu", catalogue_path=path)
    assert "list of names" in str(error.value)


def test_unknown_key_is_refused_with_the_allowed_keys(tmp_path):
    """``color = "red"`` is refused, and the message lists every allowed key."""
    path = _write_catalogue(tmp_path, 'vendor = "Acme"', 'color = "red"')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) color;") as error:
        load_device("my-gpu", catalogue_path=path)
    message = str(error.value)
    assert str(path) in message
    for key in ("aliases", "vendor", "memory_gib", "gpus_per_node"):
        assert key in message


def test_misspelt_key_suggests_the_field(tmp_path):
    """``memroy_gib`` is refused with the field it resembles."""
    path = _write_catalogue(tmp_path, "memory_gib = 24.0", "memroy_gib = 24.0")
    with pytest.raises(ConfigError, match=r"memroy_gib \(did you mean memory_gib\?\)"):
        load_device("my-gpu", catalogue_path=path)


def test_an_entry_s_name_key_is_refused(tmp_path):
    """The table name is the device's name; a ``name`` key inside it is unknown."""
    path = _write_catalogue(tmp_path, 'vendor = "Acme"', 'name = "other"')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) name"):
        load_device("my-gpu", catalogue_path=path)


def test_every_missing_field_is_named(tmp_path):
    """A device with one figure lists all the figures it lacks."""
    path = tmp_path / "devices.toml"
    path.write_text("[g]\nmemory_gib = 3\n", "utf-8")
    with pytest.raises(ConfigError, match=r"fields bf16_tflops, .* are missing"):
        load_device("g", catalogue_path=path)


def test_a_bad_entry_is_refused_whichever_device_is_asked_for(tmp_path):
    """The whole file is checked: a broken entry is reported for any name."""
    path = _write_catalogue(tmp_path, "memory_gib = 24.0", "memory_gib = nan")
    with pytest.raises(ConfigError, match="'my-gpu'"):
        load_device("h200", catalogue_path=path)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, True, "80"])
def test_overrides_must_be_finite_positive_numbers(value):
    """An override is held to the catalogue's rule and names the field."""
    with pytest.raises(
        ConfigError, match=r"device\.memory_gib of 'a100-80gb' \(override"
    ):
        load_device("a100-80gb", {"memory_gib": value})


def test_built_in_catalogue_goes_through_the_same_checks(monkeypatch):
    """A broken built-in entry is refused like a user's, naming the catalogue."""

    class _Files:
        def joinpath(self, name):
            return self

        def read_text(self, encoding):
            return "[g]\nvendor = 1\n"

    fake = SimpleNamespace(files=lambda package: _Files())
    monkeypatch.setattr(devices, "resources", fake)
    device_catalogue.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"'g' \(built-in device catalogue\)"):
            device_catalogue()
    finally:
        monkeypatch.undo()
        device_catalogue.cache_clear()
    assert "h100-sxm" in device_catalogue()
