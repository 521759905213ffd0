"""Trace replay: requests read from a CSV file, streamed row by row.

Columns (a header row is required; other columns are ignored; a UTF-8 byte-order
mark, as spreadsheet programs write, is skipped):

- ``num_prefill_tokens``, ``num_decode_tokens``: prompt and output lengths (integers
  of at least 1);
- ``arrived_at`` (optional): arrival time in seconds, non-decreasing;
- ``block_hash_ids`` (optional): ``|``-separated ids of the prompt's full KV blocks;
  equal ids at equal positions mean equal blocks, as in a prefix-cache trace.

Arrivals come from the trace (``arrival = "auto"`` with no ``qps``, or ``"trace"``) or
are generated at ``qps`` by an arrival process; ``"offline"`` puts every request at 0.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import attrs
import numpy as np

from frontier.config import WorkloadConfig, positive
from frontier.errors import ConfigError, InputError
from frontier.plugins import RequestGenerator, WorkloadContext
from frontier.request import Request
from frontier.workloads.arrivals import arrival_times

__all__ = ["TraceConfig", "TraceGenerator", "chain_block_hashes"]

_REQUIRED = ("num_prefill_tokens", "num_decode_tokens")


@attrs.frozen(kw_only=True)
class TraceConfig(WorkloadConfig):
    """Replay of a request trace.

    Attributes:
        path: CSV file (see the module docstring for its columns).
        num_requests: Replay only the first this-many rows; all when unset.
        arrival: ``auto`` uses the trace's ``arrived_at`` unless ``qps`` is set;
            ``trace`` requires ``arrived_at``; ``poisson``, ``gamma`` and
            ``fixed`` generate arrivals at ``qps``; ``offline`` puts all at t = 0.
        qps: Arrival rate for generated arrivals, requests per second.
        cv: Coefficient of variation of gamma gaps.
        time_scale: Multiply trace arrival times by this (0.5 replays twice as fast).
        seed: Seed of generated arrivals; the run's seed when unset.
    """

    type: str = "trace"
    path: str
    num_requests: int | None = attrs.field(default=None, validator=positive)
    arrival: Literal["auto", "trace", "poisson", "gamma", "fixed", "offline"] = "auto"
    qps: float | None = attrs.field(default=None, validator=positive)
    cv: float = attrs.field(default=1.0, validator=positive)
    time_scale: float = attrs.field(default=1.0, validator=positive)
    seed: int | None = None


def chain_block_hashes(block_ids: list[int]) -> tuple[int, ...]:
    """Hash each block over its parent's hash, so equal hashes mean equal prefixes.

    The i-th hash is ``hash((hash_{i-1}, id_i))`` with ``hash_{-1} = 0``; Python's
    hash of a tuple of ints does not depend on ``PYTHONHASHSEED``.
    """
    hashes = []
    parent = 0
    for block_id in block_ids:
        parent = hash((parent, block_id))
        hashes.append(parent)
    return tuple(hashes)


class TraceGenerator(RequestGenerator):
    """Replays a CSV trace, with its arrival times or generated ones."""

    def __init__(self, config: TraceConfig, context: WorkloadContext) -> None:
        super().__init__(config, context)
        self.config: TraceConfig = config
        self.path = Path(config.path)
        if self.path.is_dir():
            raise ConfigError(f"workload.path: {self.path} is a folder, not a CSV file")
        if not self.path.is_file():
            raise ConfigError(f"workload.path: trace file {self.path} does not exist")
        self._header = self._read_header()
        missing = [c for c in _REQUIRED if c not in self._header]
        if missing:
            raise InputError(
                f"{self.path}: missing column(s) {', '.join(missing)}; the header is "
                f"{', '.join(self._header)}. A trace needs num_prefill_tokens and "
                "num_decode_tokens (and optionally arrived_at, block_hash_ids)."
            )
        self._has_times = "arrived_at" in self._header
        self.provides_block_hashes = "block_hash_ids" in self._header
        self._mode = self._arrival_mode()

    def _read_header(self) -> list[str]:
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as handle:
                header = next(csv.reader(handle), None)
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(
                f"{self.path}: cannot be read as UTF-8 CSV: {error}"
            ) from None
        if not header:
            raise InputError(
                f"{self.path}: the file is empty; expected a CSV header row"
            )
        return [column.strip() for column in header]

    def _arrival_mode(self) -> str:
        config = self.config
        mode = config.arrival
        if mode == "auto":
            if config.qps is not None:
                mode = "poisson"
            elif self._has_times:
                mode = "trace"
            else:
                raise ConfigError(
                    f"workload: trace {self.path} has no arrived_at column; set "
                    'workload.qps (and optionally workload.arrival = "poisson", '
                    '"gamma" or "fixed"), or workload.arrival = "offline"'
                )
        if mode == "trace" and not self._has_times:
            raise ConfigError(
                f'workload.arrival = "trace" but {self.path} has no arrived_at column'
            )
        if mode in ("trace", "offline") and config.qps is not None:
            raise ConfigError(
                f"workload.qps = {config.qps:g} has no effect with workload.arrival = "
                f'"{mode}"; remove qps, or choose "poisson", "gamma" or "fixed" '
                "arrivals at that rate"
            )
        if mode in ("poisson", "gamma", "fixed") and config.qps is None:
            raise ConfigError(
                f'workload.qps is required with workload.arrival = "{mode}"'
            )
        return mode

    @property
    def label(self) -> str:
        """The trace file's stem, e.g. ``splitwise_conv``."""
        return self.path.stem

    @property
    def num_requests(self) -> int | None:
        """The row limit when set (the file is not pre-read to count rows)."""
        return self.config.num_requests

    def __iter__(self) -> Iterator[Request]:
        config = self.config
        seed = self.context.seed if config.seed is None else config.seed
        generated = None
        if self._mode not in ("trace",):
            generated = arrival_times(
                "offline" if self._mode == "offline" else self._mode,  # type: ignore[arg-type]
                config.qps or 1.0,
                config.cv,
                np.random.default_rng(seed),
            )
        limit = config.num_requests
        previous = -math.inf
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [column.strip() for column in next(reader)]
            index = {name: position for position, name in enumerate(header)}
            prompt_col = index["num_prefill_tokens"]
            output_col = index["num_decode_tokens"]
            time_col = index.get("arrived_at")
            hash_col = index.get("block_hash_ids")
            request_id = 0
            for row_number, row in enumerate(reader, start=2):
                if limit is not None and request_id >= limit:
                    return
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise InputError(
                        f"{self.path}, row {row_number}: {len(row)} fields, the header "
                        f"has {len(header)}"
                    )
                prompt = self._int(row, prompt_col, "num_prefill_tokens", row_number)
                output = self._int(row, output_col, "num_decode_tokens", row_number)
                if generated is not None:
                    arrived_at = next(generated)
                else:
                    arrived_at = (
                        self._time(row, time_col, row_number) * config.time_scale
                    )
                    if arrived_at < previous:
                        raise InputError(
                            f"{self.path}, row {row_number}, column arrived_at: "
                            f"{arrived_at / config.time_scale} is earlier than the row "
                            "before; sort the trace by arrived_at"
                        )
                    previous = arrived_at
                hashes = None
                if hash_col is not None and row[hash_col].strip():
                    hashes = self._hashes(row[hash_col], row_number)
                yield Request(request_id, arrived_at, prompt, output, hashes)
                request_id += 1

    def _int(self, row: list[str], column: int, name: str, row_number: int) -> int:
        text = row[column].strip()
        try:
            value = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not number.is_integer():
                raise InputError(
                    f"{self.path}, row {row_number}, column {name}: {text!r} is not a "
                    "whole number of tokens"
                ) from None
            value = int(number)
        if value < 1:
            raise InputError(
                f"{self.path}, row {row_number}, column {name}: {value} tokens; every "
                "request needs at least 1"
            )
        return value

    def _time(self, row: list[str], column: int | None, row_number: int) -> float:
        assert column is not None
        text = row[column].strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise InputError(
                f"{self.path}, row {row_number}, column arrived_at: {text!r} is not a "
                "time in seconds (a finite number of at least 0)"
            )
        return value

    def _hashes(self, text: str, row_number: int) -> tuple[int, ...]:
        try:
            ids = [int(part) for part in text.split("|") if part.strip()]
        except ValueError:
            raise InputError(
                f"{self.path}, row {row_number}, column block_hash_ids: "
                f"{text!r} is not "
                "a |-separated list of integers"
            ) from None
        return chain_block_hashes(ids)
