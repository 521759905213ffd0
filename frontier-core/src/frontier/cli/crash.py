"""What the CLI prints when code, not input, fails.

An exception that is not a :class:`~frontier.errors.FrontierError` is a bug. Its
owner is found from the innermost frame of Frontier's or a plugin's code: the
distribution of the object the frame runs on (``self``; a plugin subclassing a
built-in scheduler owns the base class's code it runs), else of the frame's own
module. Frontier's distributions are Frontier's; any other is the plugin's. The
user gets one paragraph naming the exception, where it was raised, the simulated
time (when the simulation was running), what was written, and whom to tell;
``FRONTIER_TRACEBACK=1`` adds Python's traceback for the plugin's author.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from types import TracebackType

__all__ = [
    "OWN_DISTRIBUTIONS",
    "TRACEBACK_VARIABLE",
    "describe_crash",
    "find_owner",
    "format_traceback",
    "wants_traceback",
]

TRACEBACK_VARIABLE = "FRONTIER_TRACEBACK"

OWN_DISTRIBUTIONS = frozenset(
    {
        "frontier-core",
        "frontier-schedulers",
        "frontier-backends",
        "frontier-predictors",
        "frontier-profiling",
        "frontier-example-plugin",
    }
)
"""Distributions that ship with Frontier: a bug in them is Frontier's."""

_CORE_PACKAGE = "frontier"
_OFF = ("", "0", "false", "no", "off")


def wants_traceback() -> bool:
    """Whether the user asked for Python's traceback (``FRONTIER_TRACEBACK=1``;
    empty, ``0``, ``false``, ``no`` and ``off`` ask for none)."""
    return os.environ.get(TRACEBACK_VARIABLE, "").strip().lower() not in _OFF


def _frames(tb: TracebackType | None) -> list[tuple[str, str, str, int, str]]:
    """``(owner module, frame module, file, line, function)`` of each frame,
    outermost first; the owner module is that of ``self``'s class if any."""
    frames = []
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        module = frame.f_globals.get("__name__", "?")
        owner = module
        if "self" in code.co_varnames[: code.co_argcount]:
            owner = getattr(type(frame.f_locals.get("self")), "__module__", module)
        frames.append((owner, module, code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return frames


def _short(path: str) -> str:
    """The file's path from its package's parent (``frontier/replica.py``)."""
    parts = Path(path).parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("site-packages", "src"):
            return "/".join(parts[i + 1 :])
    return "/".join(parts[-2:])


def _text(error: BaseException) -> str:
    """``Type: message``, even when the exception's ``__str__`` fails."""
    try:
        message = str(error)
    except Exception:  # a plugin's exception may fail to print itself
        message = "<the exception's message could not be printed>"
    return f"{type(error).__name__}: {message}".rstrip(": ")


def find_owner(
    error: BaseException, packages: dict[str, tuple[str, str]]
) -> tuple[tuple[str, str] | None, str | None]:
    """``((distribution, version) or None, "file, line n, in function")`` of the
    innermost frame of Frontier's or a plugin's code in ``error``'s traceback
    (the last frame when there is none)."""
    frames = _frames(error.__traceback__)
    for owner_module, module, filename, line, function in reversed(frames):
        tops = (owner_module.split(".")[0], module.split(".")[0])
        if any(top in packages or top == _CORE_PACKAGE for top in tops):
            owner = packages.get(tops[0]) or packages.get(tops[1])
            return owner, f"{_short(filename)}, line {line}, in {function}"
    if frames:
        _, _, filename, line, function = frames[-1]
        return None, f"{_short(filename)}, line {line}, in {function}"
    return None, None


def describe_crash(error: BaseException, packages: dict[str, tuple[str, str]]) -> str:
    """The message for ``error``, an exception no input check anticipated.

    Args:
        error: The exception.
        packages: Top-level package of each plugin distribution ->
            ``(distribution, version)`` (:attr:`frontier.registry.PluginHost.packages`).
    """
    owner, place = find_owner(error, packages)
    what = _text(error)
    if owner is not None and owner[0] not in OWN_DISTRIBUTIONS:
        distribution, version = owner
        lines = [f"the plugin distribution {distribution} ({version}) failed: {what}"]
        advice = (
            "This is a bug in that plugin, not in your input: report it to its "
            "authors, or leave it out with FRONTIER_PLUGINS."
        )
    else:
        where = f" ({owner[0]} {owner[1]})" if owner is not None else ""
        lines = [f"Frontier{where} failed: {what}"]
        advice = (
            "This is a bug in Frontier, not in your input: please report it with "
            "the command and config that caused it."
        )
    if place is not None:
        lines.append(f"  raised at {place}")
    lines.extend(f"  {note}" for note in getattr(error, "__notes__", ()))
    if not wants_traceback():
        advice += f" Set {TRACEBACK_VARIABLE}=1 to see Python's traceback."
    lines.append(advice)
    return "\n".join(lines)


def format_traceback(error: BaseException) -> str:
    """Python's traceback of ``error``, as the interpreter prints it."""
    return "".join(traceback.format_exception(error))
