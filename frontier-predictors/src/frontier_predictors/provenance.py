"""Which device a profile was measured on, and refusing to use it for another.

A predictor trained on an A800's kernels answers with the A800's times: used for a
B200 it would report A800 latencies as the B200's. Profiles name their device in
their path (``.../compute/<device>/<model>/`` for the operator profiles,
``.../profiles/<GPU>/<org>/<model>/`` for per-layer vLLM profiles); when that name
is a catalogue device other than the run's, the predictor refuses, unless the user
says the difference is intended (``check_device = false``).

A profile written by ``frontier profile`` also has a ``metadata.json`` beside its
CSV files; its ``device_kind`` says what was measured (``cpu`` or ``cuda``) and
its ``device`` the catalogue name it was filed under. Every catalogue device is
an accelerator, so a CPU-measured profile is refused for a catalogue device
whatever its path says, a GPU-measured one for a run on a device named ``cpu``,
and a GPU profile filed as another catalogue device than the run's too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frontier.devices import DeviceSpec, load_device
from frontier.errors import ConfigError

__all__ = ["check_profile_device", "profile_device", "profile_metadata"]

_MARKERS = ("compute", "profiles")


def profile_device(path: str | Path) -> str | None:
    """Catalogue name of the device a profile's path names, or ``None``."""
    parts = Path(path).parts
    for marker in _MARKERS:
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            if index + 1 < len(parts):
                try:
                    return load_device(parts[index + 1]).name
                except ConfigError:
                    return None
    return None


def profile_metadata(path: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The ``metadata.json`` beside a profile (in ``path`` when it is a folder,
    beside it when it is a file) and its contents, or ``None`` when there is none.

    Raises:
        ConfigError: The file exists but is not a JSON object.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    metadata = folder / "metadata.json"
    if not metadata.is_file():
        return None
    try:
        data = json.loads(metadata.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{metadata}: cannot be read as JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{metadata}: must hold a JSON object")
    return metadata, data


def _is_cpu(device: DeviceSpec) -> bool:
    """Whether the run's device is a CPU (a user's catalogue entry named so)."""
    name = device.name.lower()
    return name == "cpu" or name.startswith("cpu-")


def _check_metadata(path: str | Path, device: DeviceSpec, field: str) -> None:
    found = profile_metadata(path)
    if found is None:
        return
    metadata, data = found
    kind = data.get("device_kind")
    name = data.get("device_name")
    what = f" ({name})" if name else ""
    advice = (
        f"Profile {device.name} itself, or set predictor.check_device = false to "
        "use these times anyway (e.g. to exercise the pipeline)."
    )
    if kind == "cpu" and not _is_cpu(device):
        raise ConfigError(
            f"predictor.{field}: {metadata} says the profile was measured on the "
            f"CPU{what} (device_kind cpu), but the run's device is {device.name}, "
            f"a GPU; its times would be the CPU's. {advice}"
        )
    if kind not in (None, "cpu") and _is_cpu(device):
        raise ConfigError(
            f"predictor.{field}: {metadata} says the profile was measured on a "
            f"GPU{what} (device_kind {kind}), but the run's device is "
            f"{device.name}, a CPU. {advice}"
        )
    label = data.get("device")
    if kind not in (None, "cpu") and isinstance(label, str):
        try:
            measured = load_device(label).name
        except ConfigError:
            return
        if measured != device.name:
            raise ConfigError(
                f"predictor.{field}: {metadata} says the profile was measured on "
                f"{measured}{what}, but the run's device is {device.name}. {advice}"
            )


def check_profile_device(path: str | Path, device: DeviceSpec, field: str) -> None:
    """Refuse a profile measured on another device than ``device``: another
    catalogue device named by its path, or (``metadata.json``) a CPU for a GPU, a
    GPU for a CPU, another catalogue GPU.

    Raises:
        ConfigError: The path or the metadata names a different device; the
            message names the file and says how to predict the run's device.
    """
    _check_metadata(path, device, field)
    measured = profile_device(path)
    if measured is not None and measured != device.name:
        raise ConfigError(
            f"predictor.{field}: {path} was measured on {measured}, but the run's "
            f"device is {device.name}; its times would be {measured}'s. Profile "
            f"{device.name}, use the roofline predictor (calibrated on this profile "
            "with `frontier train --predictor roofline` to carry it to another "
            "device), or set predictor.check_device = false if the two are the "
            "same hardware."
        )
