"""Accelerators: peak throughput, memory, and the links between them.

The built-in catalogue is ``frontier/data/devices.toml`` (units are in its header).
Users add devices with a TOML file of the same format (``device.catalogue_path``)
or change single fields of a built-in one (``device.memory_gib = 40``).
"""

from __future__ import annotations

import difflib
import math
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from frontier.errors import ConfigError

__all__ = ["DeviceSpec", "device_catalogue", "load_device"]

GIB = 1 << 30


@attrs.frozen(kw_only=True)
class DeviceSpec:
    """One accelerator's peaks; every figure is dense and per device.

    Attributes:
        name: Catalogue name.
        vendor: Maker, for display.
        architecture: GPU generation (``ampere``, ``ada``, ``hopper``,
            ``blackwell``, ``cdna3``...), where a kernel exists for some only;
            empty when unknown.
        bf16_tflops: Peak dense BF16 tensor throughput, 1e12 FLOP/s.
        fp16_tflops: Peak dense FP16 tensor throughput, 1e12 FLOP/s.
        fp8_tflops: Peak dense FP8 tensor throughput, 1e12 FLOP/s.
        fp32_tflops: Peak FP32 (non-tensor) throughput, 1e12 FLOP/s.
        int8_tops: Peak dense INT8 tensor throughput, 1e12 OP/s, where it differs
            from the FP8 figure (Ampere: INT8 tensor cores, no FP8 ones);
            ``None`` for the FP8 figure.
        fp4_tflops: Peak dense FP4 tensor throughput, 1e12 FLOP/s, on GPUs with
            FP4 tensor cores (Blackwell); ``None`` elsewhere, where FP4 (NVFP4)
            weights run through weight-only kernels at the BF16 peak.
        memory_gib: Device memory, GiB.
        memory_bandwidth_gbps: Memory bandwidth, 1e9 B/s.
        intra_node_bandwidth_gbps: Per-GPU one-direction link bandwidth inside a
            node, 1e9 B/s.
        inter_node_bandwidth_gbps: Per-GPU one-direction network bandwidth
            between nodes, 1e9 B/s.
        intra_node_latency_us: Per-message latency inside a node, microseconds.
        inter_node_latency_us: Per-message latency between nodes, microseconds.
        gpus_per_node: Devices that share the intra-node links.
        collective_bandwidth_gbps: Bus bandwidth a default NCCL all-reduce reaches
            between GPUs of one node, 1e9 B/s, where it is known to fall well short
            of the link (PCIe systems); ``None`` when collectives run at the link
            bandwidth times the CC backend's efficiency.
    """

    name: str
    vendor: str = ""
    architecture: str = ""
    bf16_tflops: float
    fp16_tflops: float
    fp8_tflops: float
    fp32_tflops: float
    int8_tops: float | None = None
    fp4_tflops: float | None = None
    memory_gib: float
    memory_bandwidth_gbps: float
    intra_node_bandwidth_gbps: float
    inter_node_bandwidth_gbps: float
    intra_node_latency_us: float = 5.0
    inter_node_latency_us: float = 10.0
    gpus_per_node: int = 8
    collective_bandwidth_gbps: float | None = None

    @property
    def memory_bytes(self) -> int:
        """Device memory in bytes."""
        return int(self.memory_gib * GIB)

    def peak_flops(self, dtype: str) -> float:
        """Peak dense throughput for ``dtype`` in FLOP/s (FP32 for unknown names)."""
        key = dtype.lower()
        if key in ("bfloat16", "bf16"):
            return self.bf16_tflops * 1e12
        if key in ("float16", "fp16", "half"):
            return self.fp16_tflops * 1e12
        if key == "int8" and self.int8_tops is not None:
            return self.int8_tops * 1e12
        if key == "fp4":
            if self.fp4_tflops is not None:
                return self.fp4_tflops * 1e12
            return self.bf16_tflops * 1e12
        if key.startswith(("fp8", "float8", "int8")):
            return self.fp8_tflops * 1e12
        return self.fp32_tflops * 1e12

    @property
    def memory_bandwidth(self) -> float:
        """Memory bandwidth in bytes per second."""
        return self.memory_bandwidth_gbps * 1e9


# The table name of an entry is the device's name; every other field is a key.
_SPEC_FIELDS = [f for f in attrs.fields(DeviceSpec) if f.name != "name"]
_KEYS = [f.name for f in _SPEC_FIELDS]
_ALLOWED_KEYS = ["aliases", *_KEYS]
_REQUIRED = [f.name for f in _SPEC_FIELDS if f.default is attrs.NOTHING]
_TEXTS = ("vendor", "architecture")
_NUMBERS = [field for field in _KEYS if field not in _TEXTS]
_INTEGERS = {"gpus_per_node"}


_SMALLEST, _LARGEST = 1e-3, 1e9
"""Bounds of a device figure in its unit: below 0.001 (1 MB/s, 1 GFLOP/s, 1 MiB)
or above 1e9 (an exaflop-scale TFLOP/s figure, a 1e9 GiB memory) no device
exists, and the arithmetic leaves floating point (1e300 GiB overflowed the
memory planner; 1e-300 GB/s gave steps of 1e295 s)."""


def _check_number(field: str, value: Any, where: str) -> None:
    """Refuse a figure that is not a number from 0.001 to 1e9 (a positive
    integer for ``gpus_per_node``); ``where`` names the device and its file."""
    if field in _INTEGERS:
        wanted = "a positive integer"
        valid = (
            isinstance(value, int)
            and not isinstance(value, bool)
            and 0 < value <= _LARGEST
        )
    else:
        wanted = "a number from 0.001 to 1e9 (in the catalogue's units)"
        valid = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and _SMALLEST <= value <= _LARGEST
        )
    if not valid:
        raise ConfigError(f"device.{field} of {where} must be {wanted}, got {value!r}")


def _check_entry(key: str, entry: Any, source: str) -> None:
    """Refuse a catalogue entry that would not build a valid :class:`DeviceSpec`.

    The same checks run on the built-in catalogue and on a user's file: the entry
    is a table, its keys are known, every required figure is present, every
    figure is a finite number above 0, and ``aliases`` is a list of names.
    """
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{source}: top-level key {key!r} = {entry!r} is not a device; each "
            "device is a table: a [name] line, then its fields on the lines below"
        )
    where = f"{key!r} ({source})"
    unknown = sorted(set(entry) - set(_ALLOWED_KEYS))
    if unknown:
        named = []
        for name in unknown:
            close = difflib.get_close_matches(name, _ALLOWED_KEYS, n=1)
            named.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise ConfigError(
            f"device {where}: unknown key(s) {', '.join(named)}; allowed keys: "
            f"{', '.join(_ALLOWED_KEYS)}"
        )
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(
        isinstance(alias, str) and alias for alias in aliases
    ):
        raise ConfigError(
            f"device.aliases of {where} must be a list of names, e.g. "
            f'aliases = ["{key}-sxm"], got {aliases!r}'
        )
    for text in _TEXTS:
        if not isinstance(entry.get(text, ""), str):
            raise ConfigError(
                f"device.{text} of {where} must be a string, got {entry[text]!r}"
            )
    for field in _NUMBERS:
        if field in entry:
            _check_number(field, entry[field], where)
    missing = [field for field in _REQUIRED if field not in entry]
    if missing:
        fields = "field " if len(missing) == 1 else "fields "
        verb = " is" if len(missing) == 1 else " are"
        raise ConfigError(
            f"device {where}: {fields}{', '.join(missing)}{verb} missing; every "
            f"device needs {', '.join(_REQUIRED)}"
        )


def _check_catalogue(catalogue: dict[str, Any], source: str) -> None:
    for key, entry in catalogue.items():
        _check_entry(key, entry, source)


@cache
def device_catalogue() -> dict[str, dict[str, Any]]:
    """The built-in devices: name -> fields (with their ``aliases``).

    Raises:
        ConfigError: An entry breaks the catalogue format (the same checks as a
            user's ``device.catalogue_path`` file).
    """
    text = resources.files("frontier.data").joinpath("devices.toml").read_text("utf-8")
    catalogue = tomllib.loads(text)
    _check_catalogue(catalogue, "built-in device catalogue")
    return catalogue


def _read_user_catalogue(path: Path) -> dict[str, dict[str, Any]]:
    try:
        catalogue = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"device.catalogue_path: file {path} does not exist"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(
            f"device.catalogue_path: {path} is not valid TOML: {error}"
        ) from None
    _check_catalogue(catalogue, str(path))
    return catalogue


def _find(
    name: str, catalogue: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, Any]] | None:
    wanted = name.lower()
    for key, entry in catalogue.items():
        names = [key.lower()] + [alias.lower() for alias in entry.get("aliases", [])]
        if wanted in names:
            return key, entry
    return None


def load_device(
    name: str,
    overrides: dict[str, Any] | None = None,
    catalogue_path: str | Path | None = None,
) -> DeviceSpec:
    """Resolve ``name`` in the user's catalogue, then the built-in one.

    Args:
        name: Device name or alias, case-insensitive.
        overrides: Fields to replace (``memory_gib`` and so on).
        catalogue_path: Optional TOML file of extra devices, same format as the
            built-in catalogue; its entries win over built-in ones.

    Raises:
        ConfigError: Unknown device (the message lists the known ones), a
            catalogue entry that breaks the format (not a table, an unknown key,
            a missing field, a figure that is not a finite number above 0,
            ``aliases`` not a list of names), or an override out of range.
    """
    catalogue = dict(device_catalogue())
    found = None
    if catalogue_path is not None:
        user = _read_user_catalogue(Path(catalogue_path))
        found = _find(name, user)  # the user's names and aliases win
        catalogue = {**catalogue, **user}
    if found is None:
        found = _find(name, catalogue)
    if found is None:
        known = ", ".join(catalogue)
        raise ConfigError(
            f"device.name: unknown device {name!r}; known devices are: {known}. "
            "Add one with device.catalogue_path (a TOML file like the built-in one)."
        )
    key, entry = found
    fields = {k: v for k, v in entry.items() if k != "aliases"}
    for field, value in (overrides or {}).items():
        if value is None:
            continue
        if field not in _NUMBERS:
            raise ConfigError(
                f"device.{field}: not a device figure that can be overridden; "
                f"allowed: {', '.join(_NUMBERS)}"
            )
        _check_number(field, value, f"{key!r} (override)")
        fields[field] = value
    return DeviceSpec(name=key, **fields)
