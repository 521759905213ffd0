"""A real serving run on disk: its engine settings, its measurements, its inputs.

A run folder (``<data>/vllm-<version>/<gpu>/<run>/``) holds:

- ``meta.json``: ``model``, ``dataset_path`` (relative to the data set's root) and
  ``engine_kwargs`` (``tensor_parallel_size``, ``data_parallel_size``,
  ``enable_expert_parallel``, ``max_num_seqs``, ``max_num_batched_tokens``,
  ``max_model_len``, ``dtype``, ``kv_cache_dtype``, ``seed``);
- ``requests.jsonl``: per request ``input_toks``, ``output_toks`` and, on the
  engine's monotonic clock in seconds, ``queued_ts``, ``first_token_ts`` and
  ``last_token_ts``.

The measured metrics follow the data set's definitions: TTFT =
``first_token_ts - queued_ts``; TPOT = ``(last_token_ts - first_token_ts) /
(output_toks - 1)`` (requests with one output token have none); latency =
``last_token_ts - queued_ts``. The data set's root also holds the workload
(``dataset_path``), the model's ``models/<org>/<name>.json`` and the operator
profiles ``profiles/<GPU>/<org>/<name>/<variant>/``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from frontier.devices import load_device
from frontier.errors import ConfigError, InputError

__all__ = [
    "RealRun",
    "RunInputs",
    "check_workload",
    "load_run",
    "locate_inputs",
    "profile_variant",
]

_ENGINE_KEYS = (
    "tensor_parallel_size",
    "data_parallel_size",
    "max_num_seqs",
    "max_num_batched_tokens",
)
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
_ORDER = re.compile(r"(\d+)$")


@attrs.frozen(kw_only=True)
class RealRun:
    """What a real engine was asked to do and what it measured.

    Attributes:
        folder: The run folder.
        meta: The content of ``meta.json``.
        engine: ``meta["engine_kwargs"]``.
        model: Hub id of the model served.
        request_numbers: Workload line (from 0) of each request, ascending.
        line_numbers: Line of ``requests.jsonl`` each request was read from.
        queued_ts: When the engine took each request in (engine clock, s).
        scheduled_ts: When each was first scheduled (s; NaN where not recorded).
        first_token_ts: When each one's first token came out (s).
        last_token_ts: When each one's last token came out (s).
        input_tokens: Prompt length of each request, in workload order.
        output_tokens: Output length of each request.
        ttft_ms: Measured time to first token of each request.
        tpot_ms: Measured time per output token (NaN with one output token).
        latency_ms: Measured end-to-end latency.
    """

    folder: Path
    meta: dict[str, Any]
    engine: dict[str, Any]
    model: str
    request_numbers: np.ndarray
    line_numbers: np.ndarray
    queued_ts: np.ndarray
    scheduled_ts: np.ndarray
    first_token_ts: np.ndarray
    last_token_ts: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    latency_ms: np.ndarray

    @property
    def num_requests(self) -> int:
        """Requests the engine served."""
        return len(self.ttft_ms)


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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; is this a run folder?") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot be read: {error}") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON: {error}") from None


def _field(record: dict[str, Any], name: str, where: str) -> float:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}, field {name}: {value!r} is not a number")
    if not math.isfinite(value):
        raise InputError(f"{where}, field {name}: {value!r} is not finite")
    return float(value)


def load_run(folder: str | Path) -> RealRun:
    """Read a run folder's ``meta.json`` and ``requests.jsonl``.

    Each request is paired with a workload line: the number that ends its
    ``request_id`` (``bench-17`` is the 18th line of the workload) when every id
    has one, else its position in the file; requests are put in that order.

    Raises:
        InputError: A file is missing, a line lacks a field or is not JSON, the
            timestamps of a request are out of order, two requests claim one
            workload line, or ``meta.json`` is of another schema.
    """
    folder = Path(folder)
    if not folder.is_dir():
        if folder.is_file():
            raise InputError(
                f"{folder} is a file; give the run's folder (the one holding "
                "meta.json and requests.jsonl)"
            )
        raise InputError(f"run folder {folder} does not exist")
    meta = _read_json(folder / "meta.json")
    engine = meta.get("engine_kwargs") if isinstance(meta, dict) else None
    if not isinstance(engine, dict):
        raise InputError(f"{folder / 'meta.json'}: no engine_kwargs table")
    missing = [key for key in _ENGINE_KEYS if key not in engine]
    if missing:
        raise InputError(
            f"{folder / 'meta.json'}: engine_kwargs lacks {', '.join(missing)}"
        )
    model = engine.get("model") or meta.get("model")
    if not isinstance(model, str):
        raise InputError(f"{folder / 'meta.json'}: no model name")
    schema = meta.get("schema_version", 1)
    if schema != 1:
        raise InputError(
            f"{folder / 'meta.json'}: schema_version {schema!r}; this reader knows "
            "schema 1 only"
        )

    path = folder / "requests.jsonl"
    records = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as error:
        raise InputError(f"{path}: cannot be read: {error}") from None
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not valid JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object")
        names = ("input_toks", "output_toks", "queued_ts")
        row = [_field(record, n, where) for n in names]
        row += [_field(record, n, where) for n in ("first_token_ts", "last_token_ts")]
        if row[1] < 1:
            raise InputError(f"{where}, field output_toks: at least 1 expected")
        queued_ts, first_ts, last_ts = row[2], row[3], row[4]
        if not queued_ts <= first_ts <= last_ts:
            raise InputError(
                f"{where}: the timestamps are out of order (queued_ts {queued_ts}, "
                f"first_token_ts {first_ts}, last_token_ts {last_ts}); a request is "
                "queued before its first token and that comes before its last"
            )
        scheduled_ts = math.nan
        if record.get("scheduled_ts") is not None:
            scheduled_ts = _field(record, "scheduled_ts", where)
            if not queued_ts <= scheduled_ts <= first_ts:
                raise InputError(
                    f"{where}: scheduled_ts {scheduled_ts} is not between queued_ts "
                    f"{queued_ts} and first_token_ts {first_ts}"
                )
        row.append(scheduled_ts)
        request_id = str(record.get("request_id", ""))
        match = _ORDER.search(request_id)
        records.append(
            (int(match.group(1)) if match else None, row, line_number, request_id)
        )
    if not records:
        raise InputError(f"{path}: no requests")
    if all(order is not None for order, *_ in records):
        first_seen: dict[int, str] = {}
        for order, _, line_number, request_id in records:
            if order in first_seen:
                raise InputError(
                    f"{path}, line {line_number}: request id {request_id!r} names "
                    f"workload line {order}, as {first_seen[order]!r} does; each "
                    "request of the run is recorded once"
                )
            first_seen[order] = request_id
        records.sort(key=lambda item: item[0])
    else:
        records = [(position, *rest) for position, (_, *rest) in enumerate(records)]
    data = np.array([row for _, row, *_ in records])
    inputs, outputs, queued, first, last, scheduled = data.T
    tpot = np.full(len(data), np.nan)
    several = outputs > 1
    tpot[several] = (last[several] - first[several]) / (outputs[several] - 1)
    return RealRun(
        folder=folder,
        meta=meta,
        engine=engine,
        model=model,
        request_numbers=np.array([order for order, *_ in records], dtype=int),
        line_numbers=np.array([line for _, _, line, _ in records], dtype=int),
        queued_ts=queued,
        scheduled_ts=scheduled,
        first_token_ts=first,
        last_token_ts=last,
        input_tokens=inputs.astype(int),
        output_tokens=outputs.astype(int),
        ttft_ms=(first - queued) * 1e3,
        tpot_ms=tpot * 1e3,
        latency_ms=(last - queued) * 1e3,
    )


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

    The data set's root is the nearest folder above the run that holds
    ``meta["dataset_path"]``. The GPU is the run's parent folder name (a device
    alias, e.g. ``rtxpro6000``). ``profiles`` may name the profile folder itself,
    the folder of one GPU's profiles, or the root of all profiles
    (``<data>/profiles`` by default).

    Raises:
        InputError: An input cannot be found; the message names where it looked.
    """
    dataset = run.meta.get("dataset_path")
    if not isinstance(dataset, str):
        raise InputError(f"{run.folder / 'meta.json'}: no dataset_path")
    root = next(
        (p for p in run.folder.resolve().parents if (p / dataset).is_file()), None
    )
    if root is None:
        raise InputError(
            f"{run.folder}: no folder above the run holds its workload {dataset}"
        )
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
        digest = hashlib.sha256((root / dataset).read_bytes()).hexdigest()
        if digest != expected:
            raise InputError(
                f"{root / dataset}: its SHA-256 is {digest[:12]}..., but the run "
                f"served a workload whose hash is {expected[:12]}... "
                "(meta.json dataset_hash); the file was changed since the run"
            )
    return RunInputs(
        data_root=root,
        workload=root / dataset,
        model_config=model_config,
        profile=profile,
        device=device,
    )


def check_workload(run: RealRun, workload: Path) -> int:
    """Check that every request of ``run`` is a line of ``workload`` with its
    token counts; return the workload's number of lines.

    Raises:
        InputError: A request names a line past the workload's end, or its
            ``input_toks`` or ``output_toks`` differ from that line's.
    """
    counts: list[tuple[Any, Any]] = []
    try:
        lines = workload.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{workload}: cannot be read: {error}") from None
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            record = {}
        counts.append((record.get("input_toks"), record.get("output_toks")))
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
                f"{where}: the request id names workload line {number}, but "
                f"{workload} has {len(counts)} requests (lines 0 to {len(counts) - 1})"
            )
        for name, measured, planned in zip(
            ("input_toks", "output_toks"),
            (inputs, outputs),
            counts[number],
            strict=True,
        ):
            if planned != measured:
                raise InputError(
                    f"{where}, field {name}: {int(measured)}, but workload line "
                    f"{number} of {workload} has {planned!r}; the run did not serve "
                    "this workload, or its requests are paired with the wrong lines"
                )
    return len(counts)
