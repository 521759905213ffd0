"""Trace replay: requests read from a CSV file, streamed row by row.

Columns (a header row is required; other columns are ignored; a UTF-8 byte-order
mark, as spreadsheet programs write, is skipped; a column the reader uses may appear
only once):

- ``num_prefill_tokens``, ``num_decode_tokens``: prompt and output lengths (integers
  of at least 1);
- ``arrived_at`` (optional): arrival time in seconds, non-decreasing;
- ``block_hash_ids`` (optional): ``|``-separated ids of the prompt's full KV blocks;
  equal ids at equal positions mean equal blocks, as in a prefix-cache trace;
- ``num_reasoning_tokens`` (optional): of ``num_decode_tokens``, the leading
  tokens a reasoning model spends thinking (0 up to ``num_decode_tokens - 1``:
  the answer has at least one token); blank means 0.

Arrivals come from the trace (``arrival = "auto"`` with no ``qps``, or ``"trace"``) or
are generated at ``qps`` by an arrival process; ``"offline"`` puts every request at 0.

Block size of the ids: a trace does not record it. The ids are taken to describe
blocks of ``workload.hash_block_size`` tokens, 16 when unset (vLLM's default, and the
size the shared prefix-cache traces were made for: 32 tokens, 2 ids). A row may give
at most ``num_prefill_tokens // hash_block_size`` ids (fewer leave the rest of the
prompt unshared). When the simulation's ``cache.block_size`` differs, the ids are
mapped onto its blocks (:func:`trace_block_hashes`): a simulated block is known where
the ids cover all its tokens, and two prompts share it when their ids agree on every
trace block it overlaps.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import attrs
import numpy as np

from frontier.config import WorkloadConfig, path_field, positive
from frontier.errors import ConfigError, InputError
from frontier.plugins import RequestGenerator, WorkloadContext
from frontier.request import Request
from frontier.workloads.arrivals import arrival_times

__all__ = [
    "DEFAULT_HASH_BLOCK_SIZE",
    "TraceConfig",
    "TraceGenerator",
    "chain_block_hashes",
    "trace_block_hashes",
]

_REQUIRED = ("num_prefill_tokens", "num_decode_tokens")
_OPTIONAL = ("arrived_at", "block_hash_ids", "num_reasoning_tokens")

DEFAULT_HASH_BLOCK_SIZE = 16
"""Tokens per block of ``block_hash_ids`` when ``workload.hash_block_size`` is unset."""

_QUOTE_CHARS = 200
"""How much of a malformed header an error message quotes."""

# Python's csv module refuses fields over 128 KiB; the block ids of a prompt of a
# million tokens take about half a megabyte.
_FIELD_SIZE_LIMIT = 64 * 1024 * 1024


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
        hash_block_size: Tokens per block of the trace's ``block_hash_ids`` (the
            block size the trace was made for); 16 when unset.
    """

    type: str = "trace"
    path: str = path_field()
    num_requests: int | None = attrs.field(default=None, validator=positive)
    arrival: Literal["auto", "trace", "poisson", "gamma", "fixed", "offline"] = "auto"
    qps: float | None = attrs.field(default=None, validator=positive)
    cv: float = attrs.field(default=1.0, validator=positive)
    time_scale: float = attrs.field(default=1.0, validator=positive)
    seed: int | None = None
    hash_block_size: int | None = attrs.field(default=None, validator=positive)


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


def trace_block_hashes(
    block_ids: list[int], ids_block_size: int, block_size: int
) -> tuple[int, ...]:
    """Chained hashes of the ``block_size``-token blocks that ``block_ids`` cover.

    ``block_ids`` name blocks of ``ids_block_size`` tokens. Block ``j`` of the
    simulation ends at token ``e = (j + 1) * block_size``; it gets a hash when
    ``e <= len(block_ids) * ids_block_size``, and the hash is chained over the ids
    of every trace block that starts before ``e``: two prompts share the block
    exactly when their ids agree up to there. A block that ends inside a trace
    block is therefore shared only when that whole trace block is (the trace says
    nothing finer). With equal sizes this is :func:`chain_block_hashes`.
    """
    if ids_block_size == block_size:
        return chain_block_hashes(block_ids)
    hashes = []
    parent = 0
    folded = 0  # trace blocks already chained into ``parent``
    known_tokens = len(block_ids) * ids_block_size
    for end in range(block_size, known_tokens + 1, block_size):
        needed = -(-end // ids_block_size)
        parent = hash((parent, tuple(block_ids[folded:needed])))
        folded = needed
        hashes.append(parent)
    return tuple(hashes)


def _quote(text: str) -> str:
    """``text`` cut to its first few hundred characters for an error message."""
    if len(text) <= _QUOTE_CHARS:
        return text
    return f"{text[:_QUOTE_CHARS]}... ({len(text)} characters)"


class TraceGenerator(RequestGenerator):
    """Replays a CSV trace, with its arrival times or generated ones."""

    def __init__(self, config: TraceConfig, context: WorkloadContext) -> None:
        super().__init__(config, context)
        self.config: TraceConfig = config
        self.path = Path(config.path)
        if self.path.is_dir():
            raise ConfigError(f"workload.path: {self.path} is a folder, not a CSV file")
        if not self.path.is_file():
            raise ConfigError(
                f"workload.path: trace file {self.path} does not exist"
                f" ({self.path.resolve()}; a relative path is read from the "
                "working directory)"
            )
        csv.field_size_limit(max(csv.field_size_limit(), _FIELD_SIZE_LIMIT))
        self._header = self._read_header()
        self._check_header()
        self._has_times = "arrived_at" in self._header
        self.provides_block_hashes = "block_hash_ids" in self._header
        self._hash_block_size = self._ids_block_size()
        self._mode = self._arrival_mode()

    def _read_header(self) -> list[str]:
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as handle:
                header = next(csv.reader(handle), None)
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise InputError(
                f"{self.path}: cannot be read as UTF-8 CSV: {error}"
            ) from None
        if not header:
            raise InputError(
                f"{self.path}: the file is empty; expected a CSV header row"
            )
        return [column.strip() for column in header]

    def _check_header(self) -> None:
        header = self._header
        for name in (*_REQUIRED, *_OPTIONAL):
            positions = [str(i + 1) for i, col in enumerate(header) if col == name]
            if len(positions) > 1:
                raise InputError(
                    f"{self.path}: column {name} appears {len(positions)} times in "
                    f"the header (columns {', '.join(positions)}); keep one and "
                    "rename or remove the others"
                )
        missing = [c for c in _REQUIRED if c not in header]
        if not missing:
            return
        first_line = ",".join(header)
        if self.path.suffix.lower() in (".jsonl", ".json") or first_line.startswith(
            "{"
        ):
            raise InputError(
                f"{self.path}: not a CSV trace; it looks like a request JSONL file "
                f"(one JSON object per line), whose first line starts "
                f"{_quote(first_line)!r}. Replay such a file with "
                f'workload.type = "vllm_jsonl" and workload.path = "{self.path}" '
                "(on the command line: --set workload.type=vllm_jsonl --set "
                f"workload.path={self.path}, instead of --trace)."
            )
        raise InputError(
            f"{self.path}: missing column(s) {', '.join(missing)}; the header is "
            f"{_quote(', '.join(header))!r}. A trace needs num_prefill_tokens and "
            "num_decode_tokens (and optionally arrived_at, block_hash_ids)."
        )

    def _ids_block_size(self) -> int:
        configured = self.config.hash_block_size
        if configured is not None and not self.provides_block_hashes:
            raise ConfigError(
                f"workload.hash_block_size = {configured} has no effect: trace "
                f"{self.path} has no block_hash_ids column; remove it"
            )
        return DEFAULT_HASH_BLOCK_SIZE if configured is None else configured

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
        header = self._header
        index = {name: position for position, name in enumerate(header)}
        prompt_col = index["num_prefill_tokens"]
        output_col = index["num_decode_tokens"]
        time_col = index.get("arrived_at")
        # Without provides_block_hashes (a reader of lengths only) ids are not read.
        hash_col = index.get("block_hash_ids") if self.provides_block_hashes else None
        reasoning_col = index.get("num_reasoning_tokens")
        limit = config.num_requests
        previous = -math.inf
        for request_id, (row_number, row) in enumerate(self._rows()):
            if limit is not None and request_id >= limit:
                return
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
                arrived_at = self._time(row, time_col, row_number) * config.time_scale
                if arrived_at < previous:
                    raise InputError(
                        f"{self.path}, row {row_number}, column arrived_at: "
                        f"{arrived_at / config.time_scale} is earlier than the row "
                        "before; sort the trace by arrived_at"
                    )
                previous = arrived_at
            hashes = None
            if hash_col is not None and row[hash_col].strip():
                hashes = self._hashes(row[hash_col], prompt, row_number)
            reasoning = 0
            if reasoning_col is not None and row[reasoning_col].strip():
                reasoning = self._reasoning(row[reasoning_col], output, row_number)
            yield Request(request_id, arrived_at, prompt, output, hashes, reasoning)

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        """The data rows that are not blank, numbered from 2 (the header is 1)."""
        row_number = 1
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                next(reader)
                for row_number, row in enumerate(reader, start=2):
                    if any(cell.strip() for cell in row):
                        yield row_number, row
            except UnicodeDecodeError as error:
                raise InputError(
                    f"{self.path}: cannot be read as UTF-8 text at or after row "
                    f"{row_number + 1}: {error}; save the trace as UTF-8 CSV"
                ) from None
            except csv.Error as error:
                raise InputError(
                    f"{self.path}, row {row_number + 1}: not valid CSV: {error}"
                ) from None

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
                    f"{self.path}, row {row_number}, column {name}: "
                    f"{_quote(text)!r} is not a whole number of tokens"
                ) from None
            value = int(number)
        if value < 1:
            raise InputError(
                f"{self.path}, row {row_number}, column {name}: {value} tokens; every "
                "request needs at least 1"
            )
        return value

    def _reasoning(self, text: str, output: int, row_number: int) -> int:
        """A row's ``num_reasoning_tokens``: a whole number from 0 to one less
        than its ``num_decode_tokens``."""
        where = f"{self.path}, row {row_number}, column num_reasoning_tokens"
        try:
            value = int(text.strip())
        except ValueError:
            raise InputError(
                f"{where}: {_quote(text.strip())!r} is not a whole number of tokens"
            ) from None
        if not 0 <= value < output:
            raise InputError(
                f"{where}: {value} tokens of reasoning in an output of {output}; "
                "give 0 up to num_decode_tokens - 1 (reasoning tokens are part of "
                "the output, and the answer has at least one token)"
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
                f"{self.path}, row {row_number}, column arrived_at: "
                f"{_quote(text)!r} is not a time in seconds (a finite number of at "
                "least 0)"
            )
        return value

    def _hashes(self, text: str, prompt: int, row_number: int) -> tuple[int, ...]:
        where = f"{self.path}, row {row_number}, column block_hash_ids"
        try:
            ids = [int(part) for part in text.split("|")]
        except ValueError:
            raise InputError(
                f"{where}: {_quote(text)!r} is not a |-separated list of integers "
                "(no empty ids)"
            ) from None
        size = self._hash_block_size
        full_blocks = prompt // size
        if len(ids) > full_blocks:
            configured = self.config.hash_block_size is not None
            source = "workload.hash_block_size" if configured else "the default"
            raise InputError(
                f"{where}: {len(ids)} block ids, but a prompt of {prompt} tokens has "
                f"only {full_blocks} full block{'' if full_blocks == 1 else 's'} of "
                f"{size} tokens ({source}); give "
                "one id per full block of the prompt, or set workload.hash_block_size "
                "to the block size the trace was made for"
            )
        return trace_block_hashes(ids, size, self.context.block_size)
