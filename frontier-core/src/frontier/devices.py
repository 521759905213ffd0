"""Accelerators: peak throughput, memory, and the links between them.

The built-in catalogue is ``frontier/data/devices.toml`` (units are in its header).
Users add devices with a TOML file of the same format (``device.catalogue_path``)
or change single fields of a built-in one (``device.memory_gib = 40``).
"""

from __future__ import annotations

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
        bf16_tflops: Peak dense BF16 tensor throughput, 1e12 FLOP/s.
        fp16_tflops: Peak dense FP16 tensor throughput, 1e12 FLOP/s.
        fp8_tflops: Peak dense FP8 tensor throughput, 1e12 FLOP/s.
        fp32_tflops: Peak FP32 (non-tensor) throughput, 1e12 FLOP/s.
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
    bf16_tflops: float
    fp16_tflops: float
    fp8_tflops: float
    fp32_tflops: float
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
        if key.startswith(("fp8", "float8", "int8")):
            return self.fp8_tflops * 1e12
        return self.fp32_tflops * 1e12

    @property
    def memory_bandwidth(self) -> float:
        """Memory bandwidth in bytes per second."""
        return self.memory_bandwidth_gbps * 1e9


_FIELDS = {field.name for field in attrs.fields(DeviceSpec)}
_NUMBERS = [
    f.name for f in attrs.fields(DeviceSpec) if f.name not in ("name", "vendor")
]
_OPTIONAL = {"collective_bandwidth_gbps"}


@cache
def device_catalogue() -> dict[str, dict[str, Any]]:
    """The built-in devices: name -> fields (with their ``aliases``)."""
    text = resources.files("frontier.data").joinpath("devices.toml").read_text("utf-8")
    return tomllib.loads(text)


def _read_user_catalogue(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"device.catalogue_path: file {path} does not exist"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(
            f"device.catalogue_path: {path} is not valid TOML: {error}"
        ) from None


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
        ConfigError: Unknown device (the message lists the known ones) or a field
            that is missing or of the wrong type.
    """
    catalogue = dict(device_catalogue())
    source = "built-in device catalogue"
    found = None
    if catalogue_path is not None:
        path = Path(catalogue_path)
        user = _read_user_catalogue(path)
        found = _find(name, user)  # the user's names and aliases win
        if found is not None:
            source = str(path)
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
    fields = {k: v for k, v in entry.items() if k in _FIELDS}
    fields.update({k: v for k, v in (overrides or {}).items() if v is not None})
    fields["name"] = key
    for field, value in fields.items():
        if field in _NUMBERS and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise ConfigError(
                f"device.{field} of {key!r} ({source}) must be a number, got {value!r}"
            )
    try:
        spec = DeviceSpec(**fields)
    except TypeError as error:
        raise ConfigError(f"device {key!r} from {source}: {error}") from None
    for field in _NUMBERS:
        value = getattr(spec, field)
        if value is None and field in _OPTIONAL:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(
                f"device.{field} of {key!r} ({source}) must be a positive number, "
                f"got {value!r}"
            )
    return spec
