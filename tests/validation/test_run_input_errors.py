"""A corrupted run folder is refused with the file, line and field."""

from __future__ import annotations

import json

import pytest
from frontier.errors import InputError
from frontier.validation.replay import build_config_data
from frontier.validation.runs import load_run

ENGINE = {
    "model": "meta-llama/Llama-3.1-8B",
    "tensor_parallel_size": 1,
    "data_parallel_size": 1,
    "enable_expert_parallel": False,
    "max_num_seqs": 128,
    "max_num_batched_tokens": 2048,
    "max_model_len": None,
    "dtype": "bfloat16",
    "kv_cache_dtype": "auto",
    "seed": 42,
}


def make_run(folder, requests, **engine):
    """A run folder with ``meta.json`` and ``requests.jsonl``."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"model": ENGINE["model"], "engine_kwargs": {**ENGINE, **engine}}
    (folder / "meta.json").write_text(json.dumps(meta))
    lines = [json.dumps(r) for r in requests]
    (folder / "requests.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def request(number, queued=1.0, first=1.5, last=3.0):
    """One request record as the engine writes it."""
    return {
        "request_id": f"bench-{number}",
        "input_toks": 10,
        "output_toks": 5,
        "queued_ts": queued,
        "first_token_ts": first,
        "last_token_ts": last,
    }


def test_first_token_before_queueing_is_refused(tmp_path):
    """A first token stamped before the request was queued names the line."""
    folder = make_run(tmp_path / "run", [request(0), request(1, first=0.5)])
    with pytest.raises(InputError, match="line 2: the timestamps are out of order"):
        load_run(folder)


def test_a_request_recorded_twice_is_refused(tmp_path):
    """Two lines for bench-0 are refused instead of counted twice."""
    folder = make_run(tmp_path / "run", [request(0), request(0), request(1)])
    with pytest.raises(InputError, match="request number 0 appears more than once"):
        load_run(folder)


def test_engine_setting_of_the_wrong_type_is_refused(tmp_path):
    """max_num_seqs = "abc" names meta.json and the setting."""
    folder = make_run(tmp_path / "run", [request(0)], max_num_seqs="abc")
    run = load_run(folder)
    with pytest.raises(InputError, match=r"engine_kwargs\.max_num_seqs: 'abc'"):
        build_config_data(run, None)


def test_unmodelled_quantisation_is_refused(tmp_path):
    """A quantised deployment is not silently replayed as bf16."""
    folder = make_run(tmp_path / "run", [request(0)], quantization="fp8")
    run = load_run(folder)
    with pytest.raises(InputError, match=r"engine_kwargs\.quantization: 'fp8'"):
        build_config_data(run, None)


@pytest.mark.parametrize(
    ("version", "expected"), [("0.11.2", False), ("0.12.0", True), ("0.19.0", True)]
)
def test_asynchronous_scheduling_follows_the_vllm_version(tmp_path, version, expected):
    """vLLM schedules asynchronously by default from 0.12: the replay does too."""
    from frontier.validation.replay import _async_scheduling

    folder = make_run(tmp_path / "run", [request(0)])
    meta = json.loads((folder / "meta.json").read_text())
    meta["vllm_version"] = version
    (folder / "meta.json").write_text(json.dumps(meta))
    run = load_run(folder)
    assert _async_scheduling(run.engine, run) is expected


def test_a_file_is_not_a_run_folder(tmp_path):
    """Giving a file where the run's folder belongs says so."""
    path = tmp_path / "run.toml"
    path.write_text("")
    with pytest.raises(InputError, match="is a file; give the run's folder"):
        load_run(path)
