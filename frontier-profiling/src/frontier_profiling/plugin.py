"""Registers ``frontier profile`` with the ``frontier`` command line.

Importing this module imports neither torch nor numpy's heavy users: the
sub-commands load what they need when they run.
"""

from __future__ import annotations

from frontier.hookspecs import hookimpl


@hookimpl
def frontier_add_commands(app):
    """Add ``frontier profile`` (linear, attention, moe, all, validate)."""
    from frontier_profiling.cli import profile_app

    app.add_typer(profile_app, name="profile")
