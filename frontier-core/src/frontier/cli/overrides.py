"""Short flags and ``--set`` overrides, applied to the raw config mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from frontier.config import SLOTS
from frontier.config_build import apply_overrides, parse_override
from frontier.errors import ConfigError

__all__ = ["collect_overrides"]

_FLAG_PATHS = {
    "device": ("device", "name"),
    "tp": ("parallel", "tensor_parallel_size"),
    "pp": ("parallel", "pipeline_parallel_size"),
    "replicas": ("parallel", "num_replicas"),
    "qps": ("workload", "qps"),
    "num_requests": ("workload", "num_requests"),
    "seed": ("seed",),
    "output_dir": ("metrics", "output_dir"),
    "run_id": ("metrics", "run_id"),
}

_SLOT_FLAGS = {"scheduler": "replica_scheduler", "predictor": "predictor"}


def _switch_slot(data: dict[str, Any], slot: str, name: str) -> None:
    # Choosing another plugin drops the old plugin's options, which the new one
    # would not accept; choosing the same one keeps them.
    # A section without `type` configures the slot's default plugin.
    default = attrs.fields_dict(SLOTS[slot][1])["type"].default
    section = data.get(slot)
    if isinstance(section, dict) and section.get("type", default) == name:
        section["type"] = name
    else:
        data[slot] = {"type": name}


def collect_overrides(
    data: dict[str, Any], sets: list[str], **flags: Any
) -> dict[str, Any]:
    """Apply the short flags, then every ``--set`` (which win), to ``data``.

    ``--model`` takes a catalogue name, or a path to a ``config.json``; ``--trace``
    switches the workload to replay of that file, a CSV trace (``trace``) or a
    request JSONL file (``vllm_jsonl``, by its ``.jsonl`` suffix), keeping the
    options of a config that already replays one of that kind; ``--scheduler`` and
    ``--predictor`` pick a plugin (keeping its options when it is already the one
    configured).
    """
    data = apply_overrides(data, [])
    model = flags.pop("model", None)
    if model is not None:
        section = data.setdefault("model", {})
        if model.endswith(".json") or Path(model).is_file():
            section["config_path"] = model
            section["name"] = Path(model).stem  # not the file's old label
        else:
            section["name"] = model
            section.pop("config_path", None)
    trace = flags.pop("trace", None)
    if trace is not None:
        kind = "vllm_jsonl" if Path(trace).suffix.lower() == ".jsonl" else "trace"
        _switch_slot(data, "workload", kind)
        data["workload"]["path"] = str(trace)
    workload = data.get("workload")
    if (
        flags.get("qps") is not None
        and isinstance(workload, dict)
        and workload.get("type") == "vllm_jsonl"
    ):
        raise ConfigError(
            "--qps: a request JSONL file is replayed at its own arrival times; "
            "scale them with --set workload.time_scale=F (0.5 replays twice as fast)"
        )
    for flag, slot in _SLOT_FLAGS.items():
        name = flags.pop(flag, None)
        if name is not None:
            _switch_slot(data, slot, name)
    pairs = []
    for flag, value in flags.items():
        if value is None:
            continue
        pairs.append(
            (list(_FLAG_PATHS[flag]), str(value) if isinstance(value, Path) else value)
        )
    pairs += [parse_override(text) for text in sets]
    return apply_overrides(data, pairs)
