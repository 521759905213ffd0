"""Which device a profile was measured on, and refusing to use it for another.

A predictor trained on an A800's kernels answers with the A800's times: used for a
B200 it would report A800 latencies as the B200's. Profiles name their device in
their path (``.../compute/<device>/<model>/`` for the operator profiles,
``.../profiles/<GPU>/<org>/<model>/`` for per-layer vLLM profiles); when that name
is a catalogue device other than the run's, the predictor refuses, unless the user
says the difference is intended (``check_device = false``).
"""

from __future__ import annotations

from pathlib import Path

from frontier.devices import DeviceSpec, load_device
from frontier.errors import ConfigError

__all__ = ["check_profile_device", "profile_device"]

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


def check_profile_device(path: str | Path, device: DeviceSpec, field: str) -> None:
    """Refuse a profile measured on another catalogue device than ``device``.

    Raises:
        ConfigError: The path names a different device; the message says how to
            predict the run's device instead.
    """
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
