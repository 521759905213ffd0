"""Frontier: a discrete-event simulator of LLM inference serving.

The core offers the event engine, requests and batches, the KV block manager, the
memory planner, model and device catalogues, the config, metrics, the CLI and the
plugin contract. Schedulers, predictors, CC backends and profiling are plugins found
through the ``frontier`` entry-point group.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("frontier-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
