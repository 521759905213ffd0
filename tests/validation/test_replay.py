"""Reading a real run and replaying it: a tiny hand-made data set, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
import typer
from frontier.errors import ConfigError, InputError
from frontier.hookspecs import hookimpl
from frontier.validation import (
    build_config_data,
    load_run,
    locate_inputs,
    validate_run,
)
from frontier.validation.plugin import frontier_add_commands
from typer.testing import CliRunner

from .conftest import write_profile

MODEL = "org/tiny"
TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}
ENGINE = {
    "model": MODEL,
    "tensor_parallel_size": 1,
    "data_parallel_size": 1,
    "enable_expert_parallel": False,
    "max_num_seqs": 8,
    "max_num_batched_tokens": 64,
    "max_model_len": None,
    "dtype": "bfloat16",
    "kv_cache_dtype": "auto",
    "seed": 7,
    "num_gpu_blocks_override": 512,
}


def _jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data set of one run: three requests, their workload, model and profile."""
    root = tmp_path / "data"
    _jsonl(
        root / "workloads" / "tiny.jsonl",
        [
            {
                "input_toks": 20,
                "output_toks": 4,
                "arrival_time_ns": i * 100_000_000,
                "input_tok_ids": list(range(20)),
            }
            for i in range(3)
        ],
    )
    (root / "models" / "org").mkdir(parents=True)
    (root / "models" / "org" / "tiny.json").write_text(json.dumps(TINY_CONFIG))
    write_profile(root / "profiles" / "RTXPRO6000" / "org" / "tiny" / "bf16")
    run = root / "vllm-0.19.0" / "rtxpro6000" / "tiny-tp1"
    run.mkdir(parents=True)
    meta = {
        "model": MODEL,
        "vllm_version": "0.11.0",  # before asynchronous scheduling by default
        "dataset_path": "workloads/tiny.jsonl",
        "engine_kwargs": ENGINE,
    }
    (run / "meta.json").write_text(json.dumps(meta))
    # Listed out of order: the numbers that end the ids give the workload order.
    _jsonl(
        run / "requests.jsonl",
        [
            {
                "request_id": f"bench-{i}",
                "input_toks": 20,
                "output_toks": 4,
                "queued_ts": 10.0 + 0.1 * i,
                "first_token_ts": 10.0 + 0.1 * i + 0.01 * (i + 1),
                "last_token_ts": 10.0 + 0.1 * i + 0.01 * (i + 1) + 0.003,
            }
            for i in (2, 0, 1)
        ],
    )
    return root


def run_dir(root: Path) -> Path:
    return root / "vllm-0.19.0" / "rtxpro6000" / "tiny-tp1"


def test_measured_metrics_follow_the_data_set_definitions(data_root):
    """TTFT = first - queued; TPOT = (last - first) / (out - 1); in ms."""
    run = load_run(run_dir(data_root))
    # Request 1: TTFT 0.02 s = 20 ms; TPOT 3 ms / 3 = 1 ms; latency 23 ms.
    assert run.ttft_ms[1] == pytest.approx(20.0)
    assert run.tpot_ms[1] == pytest.approx(1.0)
    assert run.latency_ms[1] == pytest.approx(23.0)


def test_requests_are_put_in_workload_order(data_root):
    """bench-0 comes first whatever the file order."""
    run = load_run(run_dir(data_root))
    # TTFT of bench-i is 10 (i + 1) ms.
    assert run.ttft_ms.tolist() == pytest.approx([10.0, 20.0, 30.0])


def test_inputs_are_found_beside_the_run(data_root):
    """Workload, model config, profile and device come from the data set."""
    inputs = locate_inputs(load_run(run_dir(data_root)))
    assert inputs.workload == data_root / "workloads" / "tiny.jsonl"
    assert inputs.model_config == data_root / "models" / "org" / "tiny.json"
    assert inputs.profile.name == "bf16"
    assert inputs.device == "rtx-pro-6000"


def test_engine_settings_map_onto_the_config(data_root):
    """max_num_seqs and the token budget go to vllm_v1; defaults fill the rest."""
    run = load_run(run_dir(data_root))
    data = build_config_data(run, locate_inputs(run))
    assert data["replica_scheduler"] == {
        "type": "vllm_v1",
        "max_num_seqs": 8,
        "max_num_batched_tokens": 64,
        "enable_chunked_prefill": True,
        # vLLM 0.11 scheduled synchronously by default, without the full-ISL gate.
        "async_scheduling": False,
        "reserve_full_isl": False,
    }
    assert data["cache"] == {
        "block_size": 16,
        "gpu_memory_utilization": 0.9,
        "enable_prefix_caching": True,
        "num_gpu_blocks": 512,
    }
    assert data["seed"] == 7
    assert "max_model_len" not in data["model"]
    assert data["engine"] == {}  # CUDA graphs as vLLM's defaults have them


def test_enforce_eager_runs_every_step_without_a_cuda_graph(data_root):
    """``enforce_eager`` maps onto a CUDA-graph limit of 0 tokens."""
    run = load_run(run_dir(data_root))
    run = attrs.evolve(run, engine={**run.engine, "enforce_eager": True})
    data = build_config_data(run, locate_inputs(run))
    assert data["engine"] == {"cuda_graph_max_tokens": 0}


def test_expert_parallel_spans_every_gpu(data_root):
    """DP 2 x TP 1 with expert parallelism splits experts over 2 ranks."""
    run = load_run(run_dir(data_root))
    engine = {**run.engine, "data_parallel_size": 2, "enable_expert_parallel": True}
    data = build_config_data(attrs.evolve(run, engine=engine), locate_inputs(run))
    assert data["parallel"] == {
        "tensor_parallel_size": 1,
        "num_replicas": 2,
        "expert_parallel_size": 2,
    }


def test_data_parallel_runs_use_vllms_balancer(data_root):
    """DP 2 is routed by ``least_loaded``; DP 1 keeps round-robin (one replica)."""
    run = load_run(run_dir(data_root))
    engine = {**run.engine, "data_parallel_size": 2}
    data = build_config_data(attrs.evolve(run, engine=engine), locate_inputs(run))
    assert data["cluster_scheduler"] == {"type": "least_loaded"}
    assert "expert_parallel_size" not in data["parallel"]
    single = build_config_data(run, locate_inputs(run))
    assert single["cluster_scheduler"] == {"type": "round_robin"}


def test_missing_profile_names_where_it_looked(data_root, tmp_path):
    """--profiles pointing at an empty folder is an input error."""
    run = load_run(run_dir(data_root))
    with pytest.raises(InputError, match="no operator profile of org/tiny"):
        locate_inputs(run, tmp_path / "nowhere")


def test_missing_meta_is_an_input_error(tmp_path):
    """A folder without meta.json is not a run."""
    (tmp_path / "run").mkdir()
    with pytest.raises(InputError, match=r"meta\.json does not exist"):
        load_run(tmp_path / "run")


def test_replay_simulates_every_request(data_root):
    """The replay finishes all three requests and compares all three metrics."""
    result = validate_run(run_dir(data_root))
    for name in ("ttft", "tpot", "latency"):
        assert not np.isnan(result.simulated[name]).any()
        assert result.comparison[name].count == 3
    assert result.summary["predictor"]["type"] == "vllm_profile"


class _Watcher:
    """Observer keeping the finished requests and counting the steps."""

    def __init__(self):
        self.requests = {}
        self.steps = 0

    @hookimpl
    def frontier_request_finished(self, request):
        self.requests[request.request_id] = request

    @hookimpl
    def frontier_batch_finished(self, replica_id, batch, started_at, finished_at):
        self.steps += 1


def test_simulated_latencies_start_when_the_engine_queues_the_request(data_root):
    """As vLLM measures them: TTFT and latency from ``queued_at``, not the arrival."""
    watcher = _Watcher()
    result = validate_run(
        run_dir(data_root),
        sets=["fast_forward=false"],
        observers=[watcher],
    )
    assert watcher.steps > 0
    for request_id, request in watcher.requests.items():
        assert request.queued_at >= request.arrived_at
        assert result.simulated["ttft"][request_id] == pytest.approx(
            (request.first_token_at - request.queued_at) * 1e3
        )
        assert result.simulated["latency"][request_id] == pytest.approx(
            (request.completed_at - request.queued_at) * 1e3
        )


def test_set_overrides_the_built_config(data_root):
    """--set applies after the mapping."""
    result = validate_run(run_dir(data_root), sets=["replica_scheduler.max_num_seqs=1"])
    assert result.config.replica_scheduler.max_num_seqs == 1


def test_command_prints_the_table_and_writes_the_files(data_root, tmp_path):
    """``frontier validate RUN --out DIR`` writes comparison, pairs, simulation."""
    cli = typer.Typer()
    cli.callback()(lambda: None)  # a group, so that `validate` is a sub-command
    frontier_add_commands(cli)
    out = tmp_path / "out"
    arguments = ["validate", str(run_dir(data_root)), "-o", str(out)]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert "TTFT" in result.output
    for name in ("comparison.json", "comparison.csv", "requests.csv"):
        assert (out / name).is_file()
    assert (out / "simulation" / "system_metrics.json").is_file()
    pairs = (out / "requests.csv").read_text("utf-8").splitlines()
    assert len(pairs) == 4  # header + three requests


def test_the_cdf_plot_is_written_where_matplotlib_is_installed(data_root, tmp_path):
    """cdf.png: one panel per metric, vLLM's CDF against the simulated one."""
    pytest.importorskip("matplotlib")
    from frontier.validation.report import write_outputs

    written = write_outputs(tmp_path, validate_run(run_dir(data_root)))
    plot = tmp_path / "cdf.png"
    assert plot in written
    assert plot.read_bytes().startswith(b"\x89PNG")


def _rewrite_requests(root, change):
    """Apply ``change`` to the run's list of request records and write it back."""
    path = run_dir(root) / "requests.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in change(records)))


def test_a_missing_request_leaves_the_others_paired_by_id(data_root):
    """Without bench-1, bench-2 is still compared with workload line 2."""
    _rewrite_requests(
        data_root, lambda rs: [r for r in rs if r["request_id"] != "bench-1"]
    )
    result = validate_run(run_dir(data_root))
    assert result.run.request_numbers.tolist() == [0, 2]
    # vLLM's TTFT of bench-2 is 0.01 x 3 s = 30 ms (fixture)
    assert result.real["ttft"].tolist() == pytest.approx([10.0, 30.0])
    assert result.comparison["ttft"].count == 2


def test_a_request_past_the_workload_is_refused(data_root):
    """bench-7 of a 3-line workload names the line and the workload's length."""
    _rewrite_requests(
        data_root,
        lambda rs: [
            {**r, "request_id": "bench-7"} if r["request_id"] == "bench-2" else r
            for r in rs
        ],
    )
    with pytest.raises(
        InputError, match=r"names workload request 7 \(from 0\), but .* has 3"
    ):
        validate_run(run_dir(data_root))


def test_token_counts_that_disagree_with_the_workload_are_refused(data_root):
    """An output_toks of 5 where the workload line says 4 is refused, naming
    the workload's line as a text editor numbers it (request 1 is line 2)."""
    _rewrite_requests(
        data_root,
        lambda rs: [
            {**r, "output_toks": 5} if r["request_id"] == "bench-1" else r for r in rs
        ],
    )
    with pytest.raises(
        InputError, match=r"field output_toks: 5, but workload request 1 \(line 2 of"
    ):
        validate_run(run_dir(data_root))


def test_a_malformed_dataset_hash_is_refused(data_root):
    """A dataset_hash that is no SHA-256 digest is not silently skipped."""
    meta_path = run_dir(data_root) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "dataset_hash": "deadbeef"}))
    run = load_run(run_dir(data_root))
    with pytest.raises(InputError, match="'deadbeef' is not a SHA-256 digest"):
        locate_inputs(run)


def test_a_shortened_workload_is_refused_after_the_run(data_root):
    """--set workload.num_requests=1 leaves two requests of the run unsimulated."""
    with pytest.raises(ConfigError, match="2 of the run's 3 requests did not complete"):
        validate_run(run_dir(data_root), sets=["workload.num_requests=1"])


def test_another_predictor_does_not_inherit_the_profile_path(data_root):
    """--set predictor.type=roofline replays with the roofline, no stray path."""
    result = validate_run(run_dir(data_root), sets=["predictor.type=roofline"])
    assert result.summary["predictor"]["type"] == "roofline"
    assert result.comparison["ttft"].count == 3


def _rewrite_meta(root, **fields):
    """Add ``fields`` to the run's ``meta.json``."""
    path = run_dir(root) / "meta.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_the_whole_workload_sent_is_simulated(data_root):
    """num_requests 3 simulates workload lines 0 to 2."""
    _rewrite_meta(data_root, num_requests=3)
    run = load_run(run_dir(data_root))
    assert build_config_data(run, locate_inputs(run))["workload"]["num_requests"] == 3


def test_a_workload_shorter_than_the_requests_sent_is_refused(data_root):
    """A 2-line workload cannot be the one a client sent 3 requests of."""
    workload = data_root / "workloads" / "tiny.jsonl"
    workload.write_text("".join(workload.read_text().splitlines(True)[:2]))
    _rewrite_meta(data_root, num_requests=3)
    with pytest.raises(InputError, match=r"num_requests: 3, but the workload .* has 2"):
        validate_run(run_dir(data_root))


def test_undefined_differences_print_as_not_available(data_root):
    """With every timestamp equal the measured TTFT is 0: its difference is n/a."""
    from frontier.validation.report import print_comparison
    from rich.console import Console

    def same_time(records):
        times = ("queued_ts", "first_token_ts", "last_token_ts")
        return [{**r, **dict.fromkeys(times, 10.0)} for r in records]

    _rewrite_requests(data_root, same_time)
    console = Console(record=True, width=120)
    print_comparison(console, validate_run(run_dir(data_root)))
    text = console.export_text()
    assert "n/a" in text
    assert "nan" not in text


def test_an_absolute_dataset_path_is_read(data_root):
    """An absolute workload path is used as is; models come from the data root."""
    workload = data_root / "workloads" / "tiny.jsonl"
    _rewrite_meta(data_root, dataset_path=str(workload))
    inputs = locate_inputs(load_run(run_dir(data_root)))
    assert inputs.workload == workload
    assert inputs.model_config == data_root / "models" / "org" / "tiny.json"


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("../../../workloads/tiny.jsonl", "climbs out of the data set's root"),
        ("/nowhere/tiny.jsonl", "the workload /nowhere/tiny.jsonl does not exist"),
        ("workloads/other.jsonl", "no folder above the run .* holds the workload"),
    ],
)
def test_a_bad_dataset_path_is_named(data_root, dataset, message):
    """The error names dataset_path, not a model config looked up elsewhere."""
    _rewrite_meta(data_root, dataset_path=dataset)
    with pytest.raises(InputError, match=f"dataset_path: .*{message}"):
        locate_inputs(load_run(run_dir(data_root)))
