"""The ``frontier`` command line (typer + rich)."""
