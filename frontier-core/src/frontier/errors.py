"""Errors Frontier reports to its users.

Every error a user can cause by input (config, trace, profile, model file) is a
:class:`FrontierError` whose message names the file, row or field and says what to
change. The CLI prints the message, without a traceback, and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FrontierError",
    "InputError",
    "PluginError",
    "SimulationError",
]


class FrontierError(Exception):
    """Base of all errors caused by what the user asked for."""


class ConfigError(FrontierError):
    """A configuration value is missing, unknown or out of range."""


class InputError(FrontierError):
    """An input file (trace, profile, model config) is missing or malformed."""


class PluginError(FrontierError):
    """A plugin is missing, registered twice, or failed to load."""


class SimulationError(FrontierError):
    """The simulated system cannot make progress (e.g. it can only thrash)."""
