"""The on-disk cache of trained tables, shared safely by concurrent runs.

A trained predictor is stored as one ``.npz`` file (its operator tables, the
fallback roofline factors fitted to the same profile, and the training report)
named by a hash of everything that decides it: the profile files' contents, the
model's shapes, the TP size, the dtypes, the device and the predictor settings.
Changing any of them changes the key, so a stale entry is never read; identical
runs share one entry.

Runs that start together serialise on a file lock per key: the first trains and
writes (to a temporary file, renamed into place), the others wait and then read.
The cache lives in ``cache_dir`` when configured, else ``$FRONTIER_CACHE_DIR``,
else ``$XDG_CACHE_HOME/frontier/predictors``, else ``~/.cache/frontier/predictors``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from filelock import FileLock
from frontier.errors import ConfigError

from frontier_predictors.roofline import OperatorFactors
from frontier_predictors.tables import OperatorTable

__all__ = ["CACHE_FORMAT", "TrainedTables", "cache_key", "cache_root", "load_or_train"]

CACHE_FORMAT = 2
"""Bumped whenever the stored layout or the training procedure changes."""


@attrs.frozen
class TrainedTables:
    """What training produces and the cache stores.

    Attributes:
        tables: Operator name -> its table.
        factors: Roofline factors fitted to the same profile (the fallback).
        report: Per-operator training statistics.
        meta: Facts about the training (profile, settings, seconds taken).
    """

    tables: dict[str, OperatorTable]
    factors: dict[str, OperatorFactors]
    report: dict[str, dict[str, Any]]
    meta: dict[str, Any]


def cache_root(configured: str | None = None) -> Path:
    """The cache directory (see the module docstring for the order of choice)."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("FRONTIER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "frontier" / "predictors"


def cache_key(parts: dict[str, Any]) -> str:
    """A stable hash of ``parts`` (JSON-serialisable) and the cache format."""
    text = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def save(path: Path, trained: TrainedTables) -> None:
    """Write ``trained`` to ``path`` atomically (temporary file, then rename)."""
    arrays: dict[str, np.ndarray] = {}
    tables_meta = {}
    for name, table in trained.tables.items():
        for index, axis in enumerate(table.axes):
            arrays[f"{name}.axis{index}"] = axis
        arrays[f"{name}.values"] = table.values
        tables_meta[name] = {
            "axes": len(table.axes),
            "max_sum": table.max_sum if np.isfinite(table.max_sum) else None,
        }
    meta = {
        "format": CACHE_FORMAT,
        "tables": tables_meta,
        "factors": {n: f.as_dict() for n, f in trained.factors.items()},
        "report": trained.report,
        "meta": trained.meta,
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> TrainedTables | None:
    """Read a cache entry; ``None`` when it is absent, unreadable or of another
    format (the caller then trains again and overwrites it)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != CACHE_FORMAT:
                return None
            tables = {}
            for name, info in meta["tables"].items():
                axes = tuple(data[f"{name}.axis{i}"] for i in range(info["axes"]))
                max_sum = info["max_sum"] if info["max_sum"] is not None else np.inf
                tables[name] = OperatorTable(
                    name, axes, data[f"{name}.values"], max_sum
                )
        factors = {
            n: OperatorFactors(
                f["compute_efficiency"], f["memory_efficiency"], f["overhead_us"] * 1e-6
            )
            for n, f in meta["factors"].items()
        }
        report, trained_meta = meta["report"], meta["meta"]
    except (
        OSError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        zipfile.BadZipFile,
    ):
        # a truncated or foreign file: np.load raises BadZipFile or EOFError,
        # a damaged member ValueError, a hand-edited meta KeyError or TypeError
        return None
    return TrainedTables(tables, factors, report, trained_meta)


def load_or_train(
    root: Path, key: str, train: Callable[[], TrainedTables]
) -> tuple[TrainedTables, bool]:
    """The entry ``key`` from the cache, training and storing it when absent.

    Returns:
        ``(trained, hit)``: ``hit`` is true when it came from the cache.

    Raises:
        ConfigError: The cache directory cannot be created or written.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"predictor.cache_dir: cannot create {root}: {error}; set cache_dir to a "
            "writable folder"
        ) from None
    path = root / f"{key}.npz"
    with FileLock(str(root / f"{key}.lock")):
        if path.exists():
            found = load(path)
            if found is not None:
                return found, True
        trained = train()
        try:
            save(path, trained)
        except OSError as error:
            raise ConfigError(
                f"predictor.cache_dir: cannot write {path}: {error}; set cache_dir to "
                "a writable folder"
            ) from None
        return trained, False
