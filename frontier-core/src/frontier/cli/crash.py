"""What the CLI prints when code, not input, fails.

An exception that is not a :class:`~frontier.errors.FrontierError` is a bug:
in a plugin when the innermost frame of Frontier's or a plugin's code that raised
belongs to a plugin distribution, else in Frontier. Either way the user gets one
paragraph naming the exception, where it was raised, the simulated time (when
the simulation was running) and whom to tell; ``FRONTIER_TRACEBACK=1`` adds
Python's traceback for the plugin's author.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from types import TracebackType

__all__ = [
    "TRACEBACK_VARIABLE",
    "describe_crash",
    "format_traceback",
    "wants_traceback",
]

TRACEBACK_VARIABLE = "FRONTIER_TRACEBACK"

_CORE_PACKAGE = "frontier"


def wants_traceback() -> bool:
    """Whether the user asked for Python's traceback (``FRONTIER_TRACEBACK=1``)."""
    return os.environ.get(TRACEBACK_VARIABLE, "").strip() not in ("", "0")


def _frames(tb: TracebackType | None) -> list[tuple[str, str, int, str]]:
    """``(module, file, line, function)`` of each frame, outermost first."""
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        module = tb.tb_frame.f_globals.get("__name__", "?")
        frames.append((module, code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return frames


def _short(path: str) -> str:
    """The file's path from its package's parent (``frontier/replica.py``)."""
    parts = Path(path).parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("site-packages", "src"):
            return "/".join(parts[i + 1 :])
    return "/".join(parts[-2:])


def describe_crash(error: BaseException, packages: dict[str, tuple[str, str]]) -> str:
    """The message for ``error``, an exception no input check anticipated.

    Args:
        error: The exception.
        packages: Top-level package of each plugin distribution ->
            ``(distribution, version)`` (:attr:`frontier.registry.PluginHost.packages`).
    """
    frames = _frames(error.__traceback__)
    owner = None
    place = None
    for module, filename, line, function in reversed(frames):
        top = module.split(".")[0]
        if top in packages or top == _CORE_PACKAGE:
            owner = packages.get(top)
            place = f"{_short(filename)}, line {line}, in {function}"
            break
    if place is None and frames:
        _, filename, line, function = frames[-1]
        place = f"{_short(filename)}, line {line}, in {function}"
    what = f"{type(error).__name__}: {error}".rstrip(": ")
    if owner is not None:
        distribution, version = owner
        lines = [
            f"the plugin distribution {distribution} ({version}) failed: {what}",
            f"  raised at {place}",
        ]
        advice = (
            "This is a bug in that plugin, not in your input: report it to its "
            "authors, or leave it out with FRONTIER_PLUGINS."
        )
    else:
        lines = [f"Frontier failed: {what}"]
        if place is not None:
            lines.append(f"  raised at {place}")
        advice = (
            "This is a bug in Frontier, not in your input: please report it with "
            "the command and config that caused it."
        )
    lines.extend(f"  {note}" for note in getattr(error, "__notes__", ()))
    if not wants_traceback():
        advice += f" Set {TRACEBACK_VARIABLE}=1 to see Python's traceback."
    lines.append(advice)
    return "\n".join(lines)


def format_traceback(error: BaseException) -> str:
    """Python's traceback of ``error``, as the interpreter prints it."""
    return "".join(traceback.format_exception(error))
