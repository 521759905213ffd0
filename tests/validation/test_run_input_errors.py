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


@pytest.mark.parametrize(
    ("version", "expected"), [("0.18.0", False), ("0.19.0", True), ("0.28.1", True)]
)
def test_the_full_isl_gate_follows_the_vllm_version(tmp_path, version, expected):
    """vLLM admits only requests whose whole prompt fits from 0.19.0 (PR #37307;
    0.18.0's scheduler has no such gate); a run's own setting wins."""
    from frontier.validation.mapping import _reserve_full_isl

    folder = make_run(tmp_path / "run", [request(0)])
    _with_meta(folder, vllm_version=version)
    run = load_run(folder)
    assert _reserve_full_isl(run.engine, run) is expected
    set_off = make_run(
        tmp_path / "off", [request(0)], scheduler_reserve_full_isl=not expected
    )
    _with_meta(set_off, vllm_version=version)
    run = load_run(set_off)
    assert _reserve_full_isl(run.engine, run) is (not expected)


@pytest.mark.parametrize(("version", "expected"), [("0.11.0", False), ("0.12.0", True)])
def test_without_chunking_the_admission_stop_follows_the_vllm_version(
    tmp_path, version, expected
):
    """Without chunked prefill vLLM skips a prompt over the budget left up to
    0.11 and stops there from 0.12 (PR #28911)."""
    from frontier.validation.mapping import _stops_at_unfit_prompt

    folder = make_run(tmp_path / "run", [request(0)], enable_chunked_prefill=False)
    _with_meta(folder, vllm_version=version)
    assert _stops_at_unfit_prompt(load_run(folder)) is expected


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


def test_a_truncated_request_file_is_refused(tmp_path):
    """One request where meta.json says the client sent 3 is not a lighter run."""
    folder = _with_meta(make_run(tmp_path / "run", [request(0)]), num_requests=3)
    with pytest.raises(InputError, match=r"1 request\(s\), but meta.json says .* 3"):
        load_run(folder)


def test_request_ids_must_cover_the_requests_sent(tmp_path):
    """bench-0 and bench-5 of 2 requests sent leave workload line 1 unserved."""
    folder = make_run(tmp_path / "run", [request(0), request(5)])
    _with_meta(folder, num_requests=2)
    with pytest.raises(InputError, match=r"line 2: .* and none names line 1"):
        load_run(folder)


def test_the_workload_sent_is_the_number_of_requests(tmp_path):
    """With num_requests 2, lines 0 and 1 are the workload the client sent."""
    folder = make_run(tmp_path / "run", [request(1), request(0)])
    run = load_run(_with_meta(folder, num_requests=2))
    assert run.workload_requests == 2


@pytest.mark.parametrize("value", ["300", 2.0, 0, True])
def test_a_malformed_request_count_is_refused(tmp_path, value):
    """num_requests must be a positive JSON integer."""
    folder = _with_meta(make_run(tmp_path / "run", [request(0)]), num_requests=value)
    with pytest.raises(InputError, match=r"num_requests: .* is not a positive integer"):
        load_run(folder)


RUN_TIMES = {
    "started_at": "2026-04-25T18:47:18Z",
    "finished_at": "2026-04-25T18:48:24Z",  # 66 s later
}
"""A run of 66 s: its engine timestamps may spread 66 + 60 = 126 s."""


def _requests_at(start):
    """Three requests queued a second apart from ``start`` on the engine clock."""
    return [request(i, start + i, start + i + 0.5, start + i + 2) for i in range(3)]


def test_a_timestamp_far_outside_the_run_is_refused(tmp_path):
    """queued_ts -5.0 among values near 479748 names the line and the key."""
    records = _requests_at(479748.0)
    records[1] = {**records[1], "queued_ts": -5.0}
    folder = _with_meta(make_run(tmp_path / "run", records), **RUN_TIMES)
    with pytest.raises(InputError, match=r"line 2, field queued_ts: -5\.0 lies"):
        load_run(folder)


def test_a_huge_last_token_time_is_refused(tmp_path):
    """last_token_ts = 1e300 is named, not turned into a 1e303 ms latency."""
    records = _requests_at(479748.0)
    records[2] = {**records[2], "last_token_ts": 1e300}
    folder = _with_meta(make_run(tmp_path / "run", records), **RUN_TIMES)
    with pytest.raises(InputError, match=r"line 3, field last_token_ts: 1e\+300"):
        load_run(folder)


def test_a_uniformly_shifted_clock_is_read(tmp_path):
    """Only the spread counts: the same run at -479748 s keeps its metrics."""
    folder = make_run(tmp_path / "run", _requests_at(-479748.0))
    run = load_run(_with_meta(folder, **RUN_TIMES))
    # each request: first token 0.5 s after queueing, last 2 s after
    assert run.ttft_ms.tolist() == pytest.approx([500.0] * 3)
    assert run.latency_ms.tolist() == pytest.approx([2000.0] * 3)


def test_timestamps_spread_up_to_the_slack_are_read(tmp_path):
    """A spread of 66 + 60 s is allowed; 0.1 s more is not."""
    # requests 0 to 2 stamp 0 to 4 s; a last token at 126 s spreads 126 s
    records = _requests_at(0.0)
    records[2] = {**records[2], "last_token_ts": 126.0}
    folder = _with_meta(make_run(tmp_path / "run", records), **RUN_TIMES)
    assert load_run(folder).num_requests == 3
    records[2] = {**records[2], "last_token_ts": 126.1}
    folder = _with_meta(make_run(tmp_path / "other", records), **RUN_TIMES)
    with pytest.raises(InputError, match="line 3, field last_token_ts"):
        load_run(folder)


def test_a_malformed_run_time_is_refused(tmp_path):
    """started_at must be an ISO 8601 time."""
    folder = make_run(tmp_path / "run", [request(0)])
    _with_meta(folder, **{**RUN_TIMES, "started_at": "yesterday"})
    with pytest.raises(InputError, match="started_at: 'yesterday' is not an ISO"):
        load_run(folder)


@pytest.mark.parametrize(
    ("field", "value"),
    [("input_toks", 685.5), ("output_toks", 4.4), ("input_toks", 10.0)],
)
def test_a_token_count_with_a_fraction_is_refused(tmp_path, field, value):
    """A token count is a JSON integer: 685.5 is refused, not cut to 685."""
    folder = make_run(tmp_path / "run", [request(0), {**request(1), field: value}])
    with pytest.raises(InputError, match=rf"line 2, field {field}: .* whole number"):
        load_run(folder)


@pytest.mark.parametrize("version", [0.19, 0.2])
def test_a_vllm_version_given_as_a_number_is_refused(tmp_path, version):
    """0.20 written as a JSON number reads 0.2: the version must be a string."""
    from frontier.validation.mapping import _async_scheduling

    folder = _with_meta(make_run(tmp_path / "run", [request(0)]), vllm_version=version)
    run = load_run(folder)
    with pytest.raises(InputError, match=r"vllm_version: 0\.\d+ is not a string"):
        _async_scheduling(run.engine, run)
