"""A corrupted run folder is refused with the file, line and field."""

from __future__ import annotations

import json

import pytest
from frontier.errors import InputError
from frontier.validation.mapping import build_config_data
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
    with pytest.raises(InputError, match="line 2: request id 'bench-0' names workload"):
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
    from frontier.validation.mapping import _async_scheduling

    folder = make_run(tmp_path / "run", [request(0)])
    meta = json.loads((folder / "meta.json").read_text())
    meta["vllm_version"] = version
    (folder / "meta.json").write_text(json.dumps(meta))
    run = load_run(folder)
    assert _async_scheduling(run.engine, run) is expected
    # unset with pipeline stages it is off: the simulator models it for one stage
    assert _async_scheduling(run.engine, run, pp=2) is False


def test_a_file_is_not_a_run_folder(tmp_path):
    """Giving a file where the run's folder belongs says so."""
    path = tmp_path / "run.toml"
    path.write_text("")
    with pytest.raises(InputError, match="is a file; give the run's folder"):
        load_run(path)


def _with_meta(folder, **fields):
    """Rewrite ``meta.json`` with ``fields`` added at its top level."""
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, **fields}))
    return folder


def test_scheduled_outside_queued_and_first_token_is_refused(tmp_path):
    """scheduled_ts before queued_ts names the line and both timestamps."""
    record = {**request(0), "scheduled_ts": 0.5}  # queued at 1.0
    folder = make_run(tmp_path / "run", [record])
    with pytest.raises(InputError, match=r"line 1: scheduled_ts 0\.5 is not between"):
        load_run(folder)


def test_another_schema_is_refused(tmp_path):
    """A meta.json of schema 2 is not read as schema 1."""
    folder = _with_meta(make_run(tmp_path / "run", [request(0)]), schema_version=2)
    with pytest.raises(InputError, match="schema_version 2; this reader knows"):
        load_run(folder)


@pytest.mark.parametrize(
    "key",
    [
        "enforce_eager",
        "enable_prefix_caching",
        "enable_chunked_prefill",
        "enable_expert_parallel",
    ],
)
def test_a_flag_given_as_a_string_is_refused(tmp_path, key):
    """The string "false" is not read as true: flags must be JSON booleans."""
    folder = make_run(tmp_path / "run", [request(0)], **{key: "false"})
    with pytest.raises(InputError, match=rf"engine_kwargs\.{key}: 'false' is not"):
        build_config_data(load_run(folder), None)


@pytest.mark.parametrize(("value", "reason"), [("high", "not a number"), (0, "not in")])
def test_a_bad_memory_fraction_is_refused(tmp_path, value, reason):
    """gpu_memory_utilization must be a number in (0, 1]."""
    folder = make_run(tmp_path / "run", [request(0)], gpu_memory_utilization=value)
    with pytest.raises(InputError, match=reason):
        build_config_data(load_run(folder), None)


def test_a_null_batch_limit_is_refused(tmp_path):
    """max_num_seqs = null would take a default vLLM may not have used."""
    folder = make_run(tmp_path / "run", [request(0)], max_num_seqs=None)
    with pytest.raises(InputError, match=r"engine_kwargs\.max_num_seqs is null"):
        build_config_data(load_run(folder), None)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("banana", "is not a version like"),
        ("0.6.3", "the replay models vLLM's v1 engine"),
        (None, "neither engine_kwargs.async_scheduling nor vllm_version"),
    ],
)
def test_an_unusable_vllm_version_is_refused(tmp_path, version, message):
    """The async-scheduling default needs a readable v1 version."""
    from frontier.validation.mapping import _async_scheduling

    folder = make_run(tmp_path / "run", [request(0)])
    if version is not None:
        _with_meta(folder, vllm_version=version)
    run = load_run(folder)
    with pytest.raises(InputError, match=message):
        _async_scheduling(run.engine, run)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, None),  # vLLM's default limit
        ({"enforce_eager": True}, 0),
        ({"max_cudagraph_capture_size": 128}, 128),
        ({"cuda_graph_sizes": [1, 2, 4]}, 4),
        ({"compilation_config": {"cudagraph_mode": "NONE"}}, 0),
        ({"compilation_config": {"cudagraph_capture_sizes": [8, 64]}}, 64),
    ],
)
def test_cuda_graph_settings_set_the_graph_limit(tmp_path, kwargs, expected):
    """Every way a run can bound its CUDA graphs reaches the engine section."""
    from frontier.validation.mapping import _cuda_graph_max_tokens

    run = load_run(make_run(tmp_path / "run", [request(0)], **kwargs))
    assert _cuda_graph_max_tokens(run.engine, run) == expected


def test_an_unknown_cuda_graph_mode_is_refused(tmp_path):
    """A cudagraph_mode vLLM does not have is named."""
    from frontier.validation.mapping import _cuda_graph_max_tokens

    compilation = {"cudagraph_mode": "SOMETIMES"}
    run = load_run(
        make_run(tmp_path / "run", [request(0)], compilation_config=compilation)
    )
    with pytest.raises(InputError, match="cudagraph_mode: 'SOMETIMES' is not one"):
        _cuda_graph_max_tokens(run.engine, run)
