"""The ``vllm_jsonl`` workload: requests, arrival offsets and prompt block hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from frontier.errors import ConfigError, InputError
from frontier.plugins import WorkloadContext, load_plugins
from frontier.workloads.jsonl import (
    VllmJsonlConfig,
    VllmJsonlGenerator,
    prompt_block_hashes,
)


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records),
        "utf-8",
    )
    return path


def requests(path: Path, block_size: int = 4, **options):
    config = VllmJsonlConfig(path=str(path), **options)
    context = WorkloadContext(seed=0, block_size=block_size, max_model_len=4096)
    return list(VllmJsonlGenerator(config, context))


def record(prompt_ids, output=3, arrival_ns=0):
    return {
        "input_toks": len(prompt_ids),
        "output_toks": output,
        "arrival_time_ns": arrival_ns,
        "input_tok_ids": prompt_ids,
    }


def test_lengths_and_arrivals_come_from_the_file(tmp_path):
    """Offsets in nanoseconds become arrival seconds; ids count from 0."""
    path = write_lines(
        tmp_path / "w.jsonl",
        [record([1, 2, 3], 5, 0), record([4, 5], 7, 250_000_000)],
    )
    first, second = requests(path)
    assert (first.request_id, first.arrived_at, first.num_prompt_tokens) == (0, 0, 3)
    assert first.num_output_tokens == 5
    # 250,000,000 ns = 0.25 s.
    assert second.arrived_at == pytest.approx(0.25)
    assert (second.request_id, second.num_output_tokens) == (1, 7)


def test_time_scale_stretches_arrivals(tmp_path):
    """time_scale 2 replays at half the rate."""
    path = write_lines(tmp_path / "w.jsonl", [record([1], 2, 1_000_000_000)])
    (request,) = requests(path, time_scale=2.0)
    assert request.arrived_at == pytest.approx(2.0)


def test_only_full_blocks_get_hashes(tmp_path):
    """Ten tokens in blocks of four: two full blocks, the last two tokens none."""
    path = write_lines(tmp_path / "w.jsonl", [record(list(range(10)))])
    (request,) = requests(path, block_size=4)
    assert len(request.block_hashes) == 2


def test_shared_prefix_shares_hashes_until_the_first_difference(tmp_path):
    """Prompts equal in their first block but not the second share one hash."""
    a = [1, 2, 3, 4, 5, 6, 7, 8]
    b = [1, 2, 3, 4, 5, 6, 7, 9]
    path = write_lines(tmp_path / "w.jsonl", [record(a), record(b)])
    first, second = requests(path, block_size=4)
    assert first.block_hashes[0] == second.block_hashes[0]
    assert first.block_hashes[1] != second.block_hashes[1]


def test_equal_block_after_different_prefix_has_another_hash():
    """A block's hash depends on everything before it (chained hashes)."""
    first = prompt_block_hashes([1, 1, 1, 1, 7, 7, 7, 7], 4)
    second = prompt_block_hashes([2, 2, 2, 2, 7, 7, 7, 7], 4)
    assert first[1] != second[1]


def test_hashes_can_be_turned_off(tmp_path):
    """Without prefix hashes no request carries any."""
    path = write_lines(tmp_path / "w.jsonl", [record(list(range(8)))])
    (request,) = requests(path, prefix_hashes=False)
    assert request.block_hashes is None


def test_num_requests_limits_the_replay(tmp_path):
    """num_requests = 1 reads only the first request."""
    path = write_lines(tmp_path / "w.jsonl", [record([1]), record([2])])
    assert len(requests(path, num_requests=1)) == 1


def test_missing_field_names_file_line_and_field(tmp_path):
    """A line without output_toks is reported by line and field."""
    bad = {"input_toks": 1, "arrival_time_ns": 0}
    path = write_lines(tmp_path / "w.jsonl", [record([1]), bad])
    with pytest.raises(InputError, match=r"w\.jsonl, line 2, field output_toks"):
        requests(path)


def test_token_ids_must_match_the_prompt_length(tmp_path):
    """input_tok_ids of another length than input_toks is an error."""
    bad = {**record([1, 2, 3]), "input_toks": 4}
    path = write_lines(tmp_path / "w.jsonl", [bad])
    with pytest.raises(InputError, match="3 token ids but input_toks is 4"):
        requests(path)


def test_arrivals_must_not_go_back_in_time(tmp_path):
    """An arrival earlier than the line before asks for sorting."""
    path = write_lines(tmp_path / "w.jsonl", [record([1], 1, 10), record([1], 1, 5)])
    with pytest.raises(InputError, match="line 2, field arrival_time_ns"):
        requests(path)


def test_not_json_names_the_line(tmp_path):
    """A line that is not JSON is reported with its number."""
    path = write_lines(tmp_path / "w.jsonl", [record([1]), "{oops"])
    with pytest.raises(InputError, match="line 2: not valid JSON"):
        requests(path)


def test_zero_output_tokens_is_refused(tmp_path):
    """Every request needs at least one output token."""
    path = write_lines(tmp_path / "w.jsonl", [record([1], 0)])
    with pytest.raises(InputError, match="field output_toks: 0 tokens"):
        requests(path)


def test_missing_file_is_a_config_error(tmp_path):
    """A path that does not exist names workload.path."""
    with pytest.raises(ConfigError, match=r"workload\.path"):
        requests(tmp_path / "absent.jsonl")


def test_registered_as_a_request_generator():
    """``vllm_jsonl`` is found through the entry points."""
    entry = load_plugins().registry.get("request_generator", "vllm_jsonl")
    assert entry.factory is VllmJsonlGenerator
