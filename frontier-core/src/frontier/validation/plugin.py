"""Registers ``frontier validate`` with the ``frontier`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frontier.hookspecs import hookimpl

__all__ = ["validate"]


def validate(
    run_dir: Annotated[
        Path, typer.Argument(help="Folder of a real run (meta.json, requests.jsonl).")
    ],
    profiles: Annotated[
        Path | None,
        typer.Option(
            help="Operator profiles: the model's folder, one GPU's folder, or the "
            "root of all profiles (default: <data>/profiles)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: outputs/validation/<run>)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config field: dotted.path=value."),
    ] = None,
) -> None:
    """Replay a real vLLM run and compare TTFT, TPOT and latency with it."""
    from rich.console import Console

    from frontier.validation.replay import validate_run
    from frontier.validation.report import print_comparison, write_outputs

    folder = out or Path("outputs") / "validation" / run_dir.resolve().name
    result = validate_run(
        run_dir, profiles, sets=set_ or [], simulation_dir=folder / "simulation"
    )
    console = Console(soft_wrap=True)
    print_comparison(console, result)
    written = write_outputs(folder, result)
    Console(stderr=True).print(
        "wrote " + ", ".join(str(p) for p in written), highlight=False
    )


@hookimpl
def frontier_add_commands(app):
    """Add ``frontier validate``."""
    app.command("validate")(validate)
