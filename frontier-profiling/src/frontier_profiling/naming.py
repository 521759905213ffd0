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

__all__ = ["config_file", "device_folder", "model_folder", "slug"]


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
