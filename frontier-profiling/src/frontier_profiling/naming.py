"""Folder names of the profile layout ``compute/<device>/<model>``.

A device is named by its catalogue key when the name (``--device``, or the name
the CUDA driver reports) matches a catalogue entry or alias, so that ``frontier
run --device`` and the profile folder agree; otherwise by a lower-case slug of
the name. A catalogue model is named by its hub id (``meta-llama/Meta-Llama-3-8B``,
two folders, as in the shared profiles); a ``config.json`` by its folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from frontier.devices import device_catalogue
from frontier.errors import ConfigError

__all__ = [
    "check_device_label",
    "config_file",
    "device_folder",
    "is_catalogue_device",
    "model_folder",
    "slug",
]


def slug(name: str) -> str:
    """Lower case, runs of other characters replaced by one ``-``."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or "device"


def _catalogue_names() -> dict[str, str]:
    names = {}
    for key, entry in device_catalogue().items():
        for name in [key, *entry.get("aliases", [])]:
            names[name.lower()] = key
    return names


def device_folder(name: str) -> str:
    """The folder of device ``name``: its catalogue key when one matches.

    ``name`` may be a catalogue name or alias (``h100``) or a driver's name
    (``NVIDIA H100 80GB HBM3``): every run of consecutive words is tried, the
    longest match wins.
    """
    names = _catalogue_names()
    if name.lower() in names:
        return names[name.lower()]
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    best: tuple[int, str] | None = None
    for start in range(len(words)):
        for end in range(start + 1, len(words) + 1):
            for joined in ("-".join(words[start:end]), "".join(words[start:end])):
                if joined in names and (best is None or end - start > best[0]):
                    best = (end - start, names[joined])
    return best[1] if best else slug(name)


def is_catalogue_device(folder: str) -> bool:
    """Whether ``folder`` is a catalogue device: every catalogue entry is an
    accelerator (a GPU), so a CPU measurement must not be filed under one."""
    return folder in device_catalogue()


def check_device_label(
    label: str | None, measured_kind: str | None, measured_name: str | None
) -> None:
    """Refuse to file a measurement under a device of another kind.

    Args:
        label: What ``--device`` asked for (``None``: not given).
        measured_kind: ``cpu`` or ``cuda``: what the backend measures; ``None``
            when not known without opening the backend (nothing is checked).
        measured_name: The measured device's name (the CPU's model, the GPU's
            driver name), for the message; may be ``None``.

    Raises:
        ConfigError: A CPU measurement labelled with a catalogue GPU, a GPU
            measurement labelled ``cpu``, or a GPU labelled as another catalogue
            GPU than the one the driver reports.
    """
    if label is None or measured_kind is None:
        return
    folder = device_folder(label)
    what = f" ({measured_name})" if measured_name else ""
    if measured_kind == "cpu" and is_catalogue_device(folder):
        raise ConfigError(
            f"--device {label}: this run measures the CPU{what}, not the GPU {folder}; "
            f"its times would be filed as {folder}'s and used as a GPU's. Leave out "
            "--device to file it under compute/cpu/, or give a name that is not a "
            "catalogue GPU (e.g. --device cpu); to measure a GPU, run on a machine "
            "with one and the torch backend (--backend torch)"
        )
    if measured_kind == "cuda":
        if folder == "cpu":
            raise ConfigError(
                f"--device {label}: this run measures a GPU{what}, not the CPU; leave "
                "out --device to name the GPU, or use --torch-device cpu to measure "
                "the CPU"
            )
        detected = device_folder(measured_name) if measured_name else None
        if (
            detected is not None
            and is_catalogue_device(detected)
            and is_catalogue_device(folder)
            and detected != folder
        ):
            raise ConfigError(
                f"--device {label}: this run measures {detected}{what}, not "
                f"{folder}; leave out --device to file it as {detected}"
            )


def config_file(model: str) -> Path | None:
    """The ``config.json`` that ``--model`` names, or ``None`` for a catalogue name.

    ``--model`` may be a ``.json`` file or a folder holding ``config.json`` (a
    downloaded Hugging Face snapshot).
    """
    path = Path(model)
    if path.is_dir() and (path / "config.json").is_file():
        return path / "config.json"
    if model.endswith(".json") or path.is_file():
        return path
    return None


def model_folder(model: str, hub_id: str, name: str | None = None) -> str:
    """The folder of a model: ``name`` if given, the hub id of a catalogue model,
    the parent folder of a ``config.json`` (its stem for other file names)."""
    if name:
        return name
    path = config_file(model)
    if path is None:
        return hub_id
    path = path.resolve()
    return path.parent.name if path.stem == "config" else path.stem
