"""Replay a real vLLM serving run in the simulator and compare the latencies.

A run folder holds what a real engine served and measured: ``meta.json`` (the
engine settings), ``requests.jsonl`` (per-request timestamps) and, beside it in
the data set, the workload with prompt token ids, the model's ``config.json`` and
operator profiles of the same GPU. :func:`validate_run` maps the settings onto a
:class:`~frontier.config.Config`, simulates the same requests and compares TTFT,
TPOT and latency request by request (``frontier validate RUN_DIR``).
"""

from frontier.validation.compare import Comparison, MetricComparison, ks_statistic
from frontier.validation.inputs import RunInputs, check_workload, locate_inputs
from frontier.validation.mapping import build_config_data
from frontier.validation.replay import validate_run
from frontier.validation.runs import RealRun, load_run

__all__ = [
    "Comparison",
    "MetricComparison",
    "RealRun",
    "RunInputs",
    "build_config_data",
    "check_workload",
    "ks_statistic",
    "load_run",
    "locate_inputs",
    "validate_run",
]
