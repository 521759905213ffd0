"""Replay of a vLLM benchmark request file: one JSON object per line.

Each line holds a request as a ``vllm bench`` style dataset records it:

- ``input_toks``, ``output_toks``: prompt and output lengths (integers of at least 1);
- ``arrival_time_ns``: arrival as an offset from the start of the run, in
  nanoseconds, non-decreasing from line to line;
- ``input_tok_ids`` (optional): the prompt's token ids; when present, its length
  must equal ``input_toks``.

Other keys (``output_tok_ids``, ...) are ignored; blank lines are skipped, and so is
a UTF-8 byte-order mark. Requests are read one line at a time, so memory does not
grow with the file; only its first line is read before the run, to refuse a file
without requests, or a CSV trace given as JSONL, at once.

Prefix caching: from the token ids each full KV block of the prompt gets a hash
chained over its parent's, the rule of vLLM v1's ``hash_block_tokens``
(``vllm/v1/core/kv_cache_utils.py``): block ``i`` is known by
``hash((hash_{i-1}, tokens of block i))`` and a trailing partial block has none.
Two prompts therefore share cached blocks exactly where the engine's would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from frontier.config import WorkloadConfig, path_field, positive
from frontier.errors import ConfigError, InputError
from frontier.plugins import RequestGenerator, WorkloadContext
from frontier.request import Request

__all__ = ["VllmJsonlConfig", "VllmJsonlGenerator", "prompt_block_hashes"]


@attrs.frozen(kw_only=True)
class VllmJsonlConfig(WorkloadConfig):
    """Replay of a request JSONL file (see the module docstring for its keys).

    Attributes:
        path: The ``.jsonl`` file.
        num_requests: Replay only the first this-many requests; all when unset.
        time_scale: Multiply arrival offsets by this (0.5 replays twice as fast).
        prefix_hashes: Compute prompt block hashes from ``input_tok_ids`` so that
            prefix caching can hit; without them no block is ever shared.
    """

    type: str = "vllm_jsonl"
    path: str = path_field()
    num_requests: int | None = attrs.field(default=None, validator=positive)
    time_scale: float = attrs.field(default=1.0, validator=positive)
    prefix_hashes: bool = True


def prompt_block_hashes(token_ids: list[int], block_size: int) -> tuple[int, ...]:
    """Hashes of the prompt's full KV blocks, each chained over its parent's.

    The i-th hash is ``hash((hash_{i-1}, tuple(block_i)))`` with ``hash_{-1} = 0``,
    so equal hashes mean equal prefixes. Python's hash of a tuple of ints does not
    depend on ``PYTHONHASHSEED``, so runs are reproducible.
    """
    hashes = []
    parent = 0
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = hash((parent, tuple(token_ids[start : start + block_size])))
        hashes.append(parent)
    return tuple(hashes)


class VllmJsonlGenerator(RequestGenerator):
    """Replays a vLLM request JSONL file with its arrival offsets and prompt ids."""

    def __init__(self, config: VllmJsonlConfig, context: WorkloadContext) -> None:
        super().__init__(config, context)
        self.config: VllmJsonlConfig = config
        self.path = Path(config.path)
        if self.path.is_dir():
            raise ConfigError(
                f"workload.path: {self.path} is a folder, not a request JSONL file"
            )
        if not self.path.is_file():
            raise ConfigError(
                f"workload.path: request file {self.path} does not exist"
                f" ({self.path.resolve()}; a relative path is read from the "
                "working directory)"
            )
        self._check_first_line()
        self.provides_block_hashes = config.prefix_hashes

    def _check_first_line(self) -> None:
        """Refuse a file without requests, or a CSV trace, before the run starts."""
        try:
            with self.path.open(encoding="utf-8-sig") as handle:
                first = next((line for line in handle if line.strip()), "")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(
                f"{self.path}: cannot be read as UTF-8 text: {error}"
            ) from None
        if not first:
            raise InputError(
                f"{self.path}: no requests; the file is empty or holds only blank "
                "lines. A request JSONL file has one JSON object per line, with "
                "input_toks, output_toks and arrival_time_ns."
            )
        first = first.strip()
        looks_like_csv = not first.startswith("{") and (
            "num_prefill_tokens" in first or self.path.suffix.lower() == ".csv"
        )
        if looks_like_csv:
            shown = first if len(first) <= 200 else f"{first[:200]}..."
            raise InputError(
                f"{self.path}: not a request JSONL file; its first line, {shown!r}, "
                "looks like the header of a CSV trace. Replay a CSV trace with "
                f'workload.type = "trace" and workload.path = "{self.path}" (on the '
                f"command line: --trace {self.path})."
            )

    @property
    def label(self) -> str:
        """The file's stem, e.g. ``sharegpt-llama-3.1-8b-300-sps10``."""
        return self.path.stem

    @property
    def num_requests(self) -> int | None:
        """The request limit when set (the file is not pre-read to count lines)."""
        return self.config.num_requests

    def __iter__(self) -> Iterator[Request]:
        config = self.config
        block_size = self.context.block_size
        limit = config.num_requests
        previous = -math.inf
        for request_id, (line_number, line) in enumerate(self._lines()):
            if limit is not None and request_id >= limit:
                return
            record = self._record(line, line_number)
            prompt = self._tokens(record, "input_toks", line_number)
            output = self._tokens(record, "output_toks", line_number)
            offset_ns = self._offset_ns(record, line_number)
            if offset_ns < previous:
                raise InputError(
                    f"{self.path}, line {line_number}, field arrival_time_ns: "
                    f"{offset_ns} is earlier than the line before "
                    f"({previous}); sort the requests by arrival_time_ns"
                )
            previous = offset_ns
            hashes = None
            if config.prefix_hashes:
                ids = self._token_ids(record, prompt, line_number)
                if ids is not None:
                    hashes = prompt_block_hashes(ids, block_size)
            arrived_at = offset_ns * 1e-9 * config.time_scale
            yield Request(request_id, arrived_at, prompt, output, hashes)

    def _lines(self) -> Iterator[tuple[int, str]]:
        """The lines that are not blank, numbered from 1."""
        line_number = 0
        try:
            with self.path.open(encoding="utf-8-sig") as handle:
                for line_number, line in enumerate(handle, start=1):
                    if line.strip():
                        yield line_number, line
        except OSError as error:
            raise InputError(f"{self.path}: cannot be read: {error}") from None
        except UnicodeDecodeError as error:
            raise InputError(
                f"{self.path}: cannot be read as UTF-8 text at or after line "
                f"{line_number + 1}: {error}; save the file as UTF-8"
            ) from None

    def _where(self, line_number: int, field: str | None = None) -> str:
        where = f"{self.path}, line {line_number}"
        return f"{where}, field {field}" if field else where

    def _record(self, line: str, line_number: int) -> dict[str, Any]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(
                f"{self._where(line_number)}: not valid JSON ({error.msg} at column "
                f"{error.colno})"
            ) from None
        if not isinstance(record, dict):
            raise InputError(
                f"{self._where(line_number)}: expected a JSON object with "
                "input_toks, output_toks and arrival_time_ns"
            )
        return record

    def _tokens(self, record: dict[str, Any], field: str, line_number: int) -> int:
        if field not in record:
            raise InputError(f"{self._where(line_number, field)}: missing")
        value = record[field]
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(
                f"{self._where(line_number, field)}: {value!r} is not a whole "
                "number of tokens"
            )
        if value < 1:
            raise InputError(
                f"{self._where(line_number, field)}: {value} tokens; every request "
                "needs at least 1"
            )
        return value

    def _offset_ns(self, record: dict[str, Any], line_number: int) -> float:
        field = "arrival_time_ns"
        if field not in record:
            raise InputError(f"{self._where(line_number, field)}: missing")
        value = record[field]
        valid = isinstance(value, int | float) and not isinstance(value, bool)
        if not valid or not math.isfinite(value) or value < 0:
            raise InputError(
                f"{self._where(line_number, field)}: {value!r} is not an offset in "
                "nanoseconds (a finite number of at least 0)"
            )
        return value

    def _token_ids(
        self, record: dict[str, Any], prompt: int, line_number: int
    ) -> list[int] | None:
        field = "input_tok_ids"
        ids = record.get(field)
        if ids is None:
            return None
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise InputError(
                f"{self._where(line_number, field)}: expected a list of integer "
                "token ids"
            )
        if len(ids) != prompt:
            raise InputError(
                f"{self._where(line_number, field)}: {len(ids)} token ids but "
                f"input_toks is {prompt}; the two must agree"
            )
        return ids
