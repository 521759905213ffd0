"""Errors Frontier reports to its users.

Every error a user can cause by input (config, trace, profile, model file) is a
:class:`FrontierError` whose message names the file, row or field and says what to
change. The CLI prints the message, without a traceback, and exits with status 2.
An input Frontier can use but that is probably not what was meant (a model config
without a context length) is a :class:`FrontierWarning`, which the CLI prints as
one ``warning:`` line.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FrontierError",
    "FrontierWarning",
    "InputError",
    "PluginError",
    "SimulationError",
]


class FrontierError(Exception):
    """Base of all errors caused by what the user asked for."""


class FrontierWarning(UserWarning):
    """An input that is used as given, or completed by a stated default, but
    that a user probably wants to check."""


class ConfigError(FrontierError):
    """A configuration value is missing, unknown or out of range."""


class InputError(FrontierError):
    """An input file (trace, profile, model config) is missing or malformed."""


class PluginError(FrontierError):
    """A plugin is missing, registered twice, or failed to load."""


class SimulationError(FrontierError):
    """The simulated system cannot make progress (e.g. it can only thrash)."""
