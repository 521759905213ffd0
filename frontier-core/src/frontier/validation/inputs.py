"""Where a real run's inputs are, and whether its workload is the one it served.

Beside a run folder the data set holds the workload (``dataset_path``), the
model's ``models/<org>/<name>.json`` and the operator profiles
``profiles/<GPU>/<org>/<name>/<variant>/``; :func:`locate_inputs` finds them and
:func:`check_workload` checks the workload against the run's requests.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import attrs

from frontier.devices import load_device
from frontier.errors import ConfigError, InputError
from frontier.validation.runs import RealRun

__all__ = ["RunInputs", "check_workload", "locate_inputs", "profile_variant"]

_DTYPE_SHORT = {
    "bfloat16": "bf16",
    "bf16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "fp16": "fp16",
    "float32": "fp32",
    "float": "fp32",
    "fp32": "fp32",
    "fp8": "fp8",
}


@attrs.frozen(kw_only=True)
class RunInputs:
    """Where the simulator's inputs for a run are.

    Attributes:
        data_root: Root of the data set.
        workload: The request JSONL with prompt token ids.
        model_config: The model's Hugging Face ``config.json``.
        profile: The operator profile folder (holding ``tp<N>/``).
        device: Device catalogue name of the run's GPU.
    """

    data_root: Path
    workload: Path
    model_config: Path
    profile: Path
    device: str


def profile_variant(dtype: str, kv_cache_dtype: str | None) -> str:
    """The profile folder of a dtype pair: ``bf16``, ``bf16-kvfp8``, ...

    The profiler names a variant by the short weight dtype, plus ``-kv<dtype>``
    when the KV cache has its own.
    """
    name = _DTYPE_SHORT.get(dtype, dtype)
    if kv_cache_dtype and kv_cache_dtype != "auto":
        name += f"-kv{_DTYPE_SHORT.get(kv_cache_dtype, kv_cache_dtype)}"
    return name


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def locate_inputs(run: RealRun, profiles: str | Path | None = None) -> RunInputs:
    """Find the workload, model config, profile and device of ``run``.

    A relative ``meta["dataset_path"]`` is read from the data set's root, the
    nearest folder above the run that holds it, and may not climb out of it
    (``..``); an absolute one names the workload itself, and the root is then
    the nearest folder above the run that holds the model's config
    (``models/<org>/<name>.json``). The GPU is the run's parent folder name (a device
    alias, e.g. ``rtxpro6000``). ``profiles`` may name the profile folder itself,
    the folder of one GPU's profiles, or the root of all profiles
    (``<data>/profiles`` by default).

    Raises:
        InputError: An input cannot be found; the message names where it looked.
    """
    workload, root = _locate_workload(run)
    model_config = root / "models" / f"{run.model}.json"
    if not model_config.is_file():
        raise InputError(f"the model config {model_config} does not exist")

    hardware = run.folder.parent.name
    try:
        device = load_device(hardware).name
    except ConfigError:
        raise InputError(
            f"{run.folder}: the GPU folder name {hardware!r} is not a device of the "
            "catalogue; add it (device.catalogue_path) under that name or alias"
        ) from None

    dtype = str(run.engine.get("dtype") or "bfloat16")
    variant = profile_variant(dtype, run.engine.get("kv_cache_dtype"))
    base = Path(profiles) if profiles is not None else root / "profiles"
    candidates = [base, base / run.model / variant]
    if base.is_dir():
        candidates += [
            child / run.model / variant
            for child in sorted(base.iterdir())
            if _normalised(child.name) == _normalised(hardware)
        ]
    profile = next(
        (c for c in candidates if c.is_dir() and any(c.glob("tp*/attention.csv"))),
        None,
    )
    if profile is None:
        looked = ", ".join(str(c) for c in candidates)
        raise InputError(
            f"no operator profile of {run.model} ({variant}) found; looked in "
            f"{looked}. Pass --profiles with the profile folder."
        )
    expected = run.meta.get("dataset_hash")
    if expected is not None and not (
        isinstance(expected, str) and re.fullmatch(r"[0-9a-fA-F]{64}", expected)
    ):
        raise InputError(
            f"{run.folder / 'meta.json'}, dataset_hash: {expected!r} is not a "
            "SHA-256 digest (64 hexadecimal digits); remove it to skip the check"
        )
    if expected is not None:
        expected = expected.lower()
        digest = hashlib.sha256(workload.read_bytes()).hexdigest()
        if digest != expected:
            raise InputError(
                f"{workload}: its SHA-256 is {digest[:12]}..., but the run "
                f"served a workload whose hash is {expected[:12]}... "
                "(meta.json dataset_hash); the file was changed since the run"
            )
    return RunInputs(
        data_root=root,
        workload=workload,
        model_config=model_config,
        profile=profile,
        device=device,
    )


def _locate_workload(run: RealRun) -> tuple[Path, Path]:
    """The workload file of ``run`` and the data set's root (see
    :func:`locate_inputs`)."""
    where = f"{run.folder / 'meta.json'}, dataset_path"
    dataset = run.meta.get("dataset_path")
    if not isinstance(dataset, str) or not dataset.strip():
        raise InputError(
            f"{where}: {dataset!r}; give the workload's path relative to the data "
            "set's root (such as workloads/sharegpt.jsonl) or an absolute one"
        )
    parents = run.folder.resolve().parents
    path = Path(dataset)
    if path.is_absolute():
        if not path.is_file():
            raise InputError(f"{where}: the workload {dataset} does not exist")
        config = Path("models") / f"{run.model}.json"
        root = next((p for p in parents if (p / config).is_file()), None)
        if root is None:
            raise InputError(
                f"{where} is absolute, so the data set's root is the nearest folder "
                f"above the run holding the model config {config}, and none does"
            )
        return path, root
    if ".." in path.parts:
        raise InputError(
            f"{where}: {dataset!r} climbs out of the data set's root; give the "
            "workload's path from that root (such as workloads/sharegpt.jsonl) "
            "or an absolute path"
        )
    root = next((p for p in parents if (p / path).is_file()), None)
    if root is None:
        raise InputError(
            f"{where}: no folder above the run {run.folder} holds the workload "
            f"{dataset}"
        )
    return root / path, root


def check_workload(run: RealRun, workload: Path) -> int:
    """Check that every request of ``run`` is a line of ``workload`` with its
    token counts; return the workload's number of lines.

    Raises:
        InputError: The workload has fewer lines than the run's client sent, a
            request names a line past the workload's end, or its
            ``input_toks`` or ``output_toks`` differ from that line's.
    """
    counts: list[tuple[Any, Any]] = []
    try:
        lines = workload.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{workload}: cannot be read: {error}") from None
    positions = []  # the file line (from 1) of each request
    for position, line in enumerate(lines, 1):
        if not line.strip():
            continue
        positions.append(position)
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            record = {}
        counts.append((record.get("input_toks"), record.get("output_toks")))
    if run.meta.get("num_requests") and run.workload_requests > len(counts):
        raise InputError(
            f"{run.folder / 'meta.json'}, num_requests: {run.workload_requests}, but "
            f"the workload {workload} has {len(counts)} requests; the run did not "
            "serve this workload"
        )
    requests = run.folder / "requests.jsonl"
    for number, line_number, inputs, outputs in zip(
        run.request_numbers,
        run.line_numbers,
        run.input_tokens,
        run.output_tokens,
        strict=True,
    ):
        where = f"{requests}, line {line_number}"
        if number >= len(counts):
            raise InputError(
                f"{where}: the request id names workload request {number} (from "
                f"0), but {workload} has {len(counts)} requests (0 to "
                f"{len(counts) - 1})"
            )
        for name, measured, planned in zip(
            ("input_toks", "output_toks"),
            (inputs, outputs),
            counts[number],
            strict=True,
        ):
            if planned != measured:
                raise InputError(
                    f"{where}, field {name}: {int(measured)}, but workload request "
                    f"{number} (line {positions[number]} of {workload}) has "
                    f"{planned!r}; the run did not serve this workload, or its "
                    "requests are paired with the wrong lines"
                )
    return len(counts)
