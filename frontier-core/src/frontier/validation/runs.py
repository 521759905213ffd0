"""A real serving run on disk: its engine settings, its measurements, its inputs.

A run folder (``<data>/vllm-<version>/<gpu>/<run>/``) holds:

- ``meta.json``: ``model``, ``dataset_path`` (relative to the data set's root,
  or absolute) and ``engine_kwargs`` (``tensor_parallel_size``,
  ``data_parallel_size``, ``enable_expert_parallel``, ``max_num_seqs``,
  ``max_num_batched_tokens``, ``max_model_len``, ``dtype``, ``kv_cache_dtype``,
  ``seed``); optionally ``num_requests`` (the requests the client sent) and
  ``started_at`` / ``finished_at`` (ISO 8601 wall-clock times of the run);
- ``requests.jsonl``: per request ``input_toks``, ``output_toks`` (JSON
  integers) and, on the engine's monotonic clock in seconds, ``queued_ts``,
  ``first_token_ts`` and ``last_token_ts``.

The measured metrics follow the data set's definitions: TTFT =
``first_token_ts - queued_ts``; TPOT = ``(last_token_ts - first_token_ts) /
(output_toks - 1)`` (requests with one output token have none); latency =
``last_token_ts - queued_ts``. The data set's root also holds the workload
(``dataset_path``), the model's ``models/<org>/<name>.json`` and the operator
profiles ``profiles/<GPU>/<org>/<name>/<variant>/``, which
:mod:`frontier.validation.inputs` finds.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from frontier.errors import InputError

__all__ = ["CLOCK_SLACK_S", "RealRun", "load_run"]

_ENGINE_KEYS = (
    "tensor_parallel_size",
    "data_parallel_size",
    "max_num_seqs",
    "max_num_batched_tokens",
)
_ORDER = re.compile(r"(\d+)$")
_TIMESTAMPS = ("queued_ts", "first_token_ts", "last_token_ts", "scheduled_ts")
"""A request's engine timestamps, in the order of its row after the counts."""
CLOCK_SLACK_S = 60.0
"""How much longer than ``finished_at - started_at`` the engine timestamps of a
run may spread: the engine starts before the benchmark's clock and its last
tokens may be stamped after the summary's time is taken."""


@attrs.frozen(kw_only=True)
class RealRun:
    """What a real engine was asked to do and what it measured.

    Attributes:
        folder: The run folder.
        meta: The content of ``meta.json``.
        engine: ``meta["engine_kwargs"]``.
        model: Hub id of the model served.
        workload_requests: Workload lines the run's client sent, from the
            first: ``meta["num_requests"]``, else one past the last line a
            request names.
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
    workload_requests: int
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


def _token_count(record: dict[str, Any], name: str, where: str) -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(
            f"{where}, field {name}: {value!r} is not a whole number; a token "
            "count is a JSON integer such as 685 (no fraction, no quotes)"
        )
    if value < 1:
        raise InputError(f"{where}, field {name}: {value}; at least 1 expected")
    return value


def _num_requests(meta: dict[str, Any], where: Path) -> int | None:
    value = meta.get("num_requests")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < 1
    ):
        raise InputError(
            f"{where}, num_requests: {value!r} is not a positive integer; it is the "
            "number of requests the run's client sent (remove it if unknown)"
        )
    return value


def _run_duration_s(meta: dict[str, Any], where: Path) -> float | None:
    """``finished_at - started_at`` in seconds; ``None`` when either is absent."""
    if meta.get("started_at") is None or meta.get("finished_at") is None:
        return None
    moments = []
    for key in ("started_at", "finished_at"):
        value = meta[key]
        try:
            moments.append(datetime.fromisoformat(value))
        except (TypeError, ValueError):
            raise InputError(
                f"{where}, {key}: {value!r} is not an ISO 8601 time such as "
                '"2026-04-25T18:47:18.273385Z"'
            ) from None
    try:
        duration = (moments[1] - moments[0]).total_seconds()
    except TypeError:
        raise InputError(
            f"{where}: started_at and finished_at must both name a time zone "
            "(such as a final Z) or neither"
        ) from None
    if duration < 0:
        raise InputError(
            f"{where}: finished_at {meta['finished_at']!r} is before started_at "
            f"{meta['started_at']!r}"
        )
    return duration


def _check_span(
    stamps: list[tuple[float, int, str]], duration_s: float, path: Path
) -> None:
    """Refuse engine timestamps ``(value, line, key)`` that spread further than
    the run lasted plus :data:`CLOCK_SLACK_S`; name the one farthest from the
    median, the likeliest to be wrong. A uniform shift of the clock passes."""
    values = np.array([value for value, *_ in stamps])
    span = float(values.max() - values.min())
    if span <= duration_s + CLOCK_SLACK_S:
        return
    median = float(np.median(values))
    value, line_number, key = max(stamps, key=lambda s: abs(s[0] - median))
    raise InputError(
        f"{path}, line {line_number}, field {key}: {value!r} lies "
        f"{abs(value - median):.6g} s from the run's median timestamp "
        f"({median:.6f}); the engine timestamps span {span:.6g} s, but the run "
        f"lasted {duration_s:.6g} s (meta.json started_at to finished_at) and "
        f"at most {CLOCK_SLACK_S:g} s more is allowed. Correct this timestamp "
        "(all of a run's are on one engine clock), or started_at and finished_at "
        "if they are wrong"
    )


def load_run(folder: str | Path) -> RealRun:
    """Read a run folder's ``meta.json`` and ``requests.jsonl``.

    Each request is paired with a workload line: the number that ends its
    ``request_id`` (``bench-17`` is the 18th line of the workload) when every id
    has one, else its position in the file; requests are put in that order.

    Raises:
        InputError: A file is missing, a line lacks a field or is not JSON, a
            token count is not a whole number, the timestamps of a request are
            out of order or far outside the run's duration, two requests claim
            one workload line, the file holds another number of requests than
            ``meta.json``'s ``num_requests``, or ``meta.json`` is of another
            schema.
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
    num_requests = _num_requests(meta, folder / "meta.json")
    duration_s = _run_duration_s(meta, folder / "meta.json")

    path = folder / "requests.jsonl"
    records = []
    stamps: list[tuple[float, int, str]] = []
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
        counts = ("input_toks", "output_toks")
        row = [float(_token_count(record, n, where)) for n in counts]
        row += [_field(record, n, where) for n in _TIMESTAMPS[:3]]
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
        stamps += [
            (value, line_number, key)
            for key, value in zip(_TIMESTAMPS, row[2:], strict=True)
            if not math.isnan(value)
        ]
        request_id = str(record.get("request_id", ""))
        match = _ORDER.search(request_id)
        records.append(
            (int(match.group(1)) if match else None, row, line_number, request_id)
        )
    if not records:
        raise InputError(f"{path}: no requests")
    if duration_s is not None:
        _check_span(stamps, duration_s, path)
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
    if num_requests is not None and len(records) != num_requests:
        raise InputError(
            f"{path}: {len(records)} request(s), but meta.json says the run's "
            f"client sent {num_requests} (num_requests); a truncated or padded "
            "file would be compared with another load. Restore the run's complete "
            "requests.jsonl, or correct num_requests if it is the one that is wrong"
        )
    last_number, _, last_line, last_id = records[-1]
    if num_requests is not None and last_number >= num_requests:
        present = {order for order, *_ in records}
        missing = next(n for n in range(num_requests) if n not in present)
        raise InputError(
            f"{path}, line {last_line}: request id {last_id!r} names workload line "
            f"{last_number}, but the run's client sent {num_requests} requests "
            f"(meta.json num_requests: lines 0 to {num_requests - 1}) and none names "
            f"line {missing}; give each request the id of its workload line"
        )
    # XXX: without num_requests a truncated file cannot be told from a shorter
    # run, and without started_at/finished_at a stray timestamp is not caught;
    # the replay then trusts requests.jsonl as it stands.
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
        workload_requests=num_requests or last_number + 1,
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
