"""``frontier run --profile-sim``: where the simulator spends its wall time."""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console

__all__ = ["profiled"]

T = TypeVar("T")


def profiled(work: Callable[[], T], console: Console, top: int = 25) -> T:
    """Run ``work`` under cProfile and print its ``top`` functions by own time.

    Two tables: by time spent in the function itself (the hot spots), and by
    cumulative time (which phase of a step they belong to). Profiling slows the
    run down about threefold; the proportions are what to read.
    """
    profiler = cProfile.Profile()
    result = profiler.runcall(work)
    for order, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer)
        stats.strip_dirs().sort_stats(order).print_stats(top)
        console.print(f"[bold]simulator profile by {title}[/]")
        console.print(buffer.getvalue(), markup=False, highlight=False)
    return result
