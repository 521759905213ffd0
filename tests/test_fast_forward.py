"""Decode fast-forward gives exactly the metrics of stepping one batch at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCHEDULERS = ("vllm_v1", "vllm", "sarathi", "orca", "sglang")


def outputs(data: dict, root: Path, fast_forward: bool) -> tuple[bytes, bytes, int]:
    """Run ``data`` and return request_metrics.csv, system_metrics.json and the
    number of steps that were fast-forwarded."""
    data = {**data, "fast_forward": fast_forward, "metrics": {"progress": False}}
    simulation, result = simulate(data, root / str(fast_forward))
    skipped = sum(r.num_fast_forwarded for r in simulation.replicas)
    return (
        (result.output_dir / "request_metrics.csv").read_bytes(),
        (result.output_dir / "system_metrics.json").read_bytes(),
        skipped,
    )


def assert_identical(data: dict, root: Path) -> int:
    """Both modes write byte-identical files; returns the steps skipped."""
    on_csv, on_json, skipped = outputs(data, root, True)
    off_csv, off_json, none = outputs(data, root, False)
    assert none == 0
    assert on_csv == off_csv
    assert on_json == off_json
    return skipped


def write_shared_prefix_trace(path: Path) -> Path:
    """Sessions whose prompts share their first blocks (prefix-cache hits)."""
    lines = ["arrived_at,num_prefill_tokens,num_decode_tokens,block_hash_ids"]
    for index in range(120):
        session = index % 6
        blocks = [session * 100 + b for b in range(4 + index % 5)]
        prompt = 16 * len(blocks) + 7
        ids = "|".join(str(b) for b in blocks)
        lines.append(f"{index * 0.05:.3f},{prompt},{40 + (index * 37) % 90},{ids}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_synthetic_workload_is_identical(scheduler, tmp_path):
    """Poisson traffic on the default deployment, every scheduler."""
    data = {
        "replica_scheduler": {"type": scheduler},
        "workload": {"type": "synthetic", "num_requests": 400, "qps": 6.0},
    }
    skipped = assert_identical(data, tmp_path)
    if scheduler != "sglang":  # sglang never fast-forwards (see its module)
        assert skipped > 0


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_memory_pressure_is_identical(scheduler, tmp_path):
    """A small KV cache under overload: windows stop where blocks run out."""
    data = {
        "model": {"name": "llama-2-7b", "max_model_len": 2048},
        "device": {"name": "a800"},
        "cache": {"num_gpu_blocks": 300},
        "replica_scheduler": {"type": scheduler},
        "workload": {
            "type": "synthetic",
            "num_requests": 300,
            "qps": 25.0,
            "output_tokens": {"distribution": "uniform", "min": 1, "max": 700},
        },
    }
    assert_identical(data, tmp_path)


def test_prefix_caching_and_replicas_are_identical(tmp_path):
    """Prefix-cache block identity and several replicas, with vLLM v1."""
    trace = write_shared_prefix_trace(tmp_path / "trace.csv")
    data = {
        "model": {"name": "llama-2-7b"},
        "device": {"name": "a800"},
        "cache": {"num_gpu_blocks": 320},
        "parallel": {"num_replicas": 2},
        "cluster_scheduler": {"type": "least_outstanding"},
        "workload": {"type": "trace", "path": str(trace)},
    }
    assert assert_identical(data, tmp_path) > 0


def test_tensor_parallel_offline_is_identical(tmp_path):
    """Offline arrivals (no horizon at all) on TP2, with all-reduce costs."""
    data = {
        "parallel": {"tensor_parallel_size": 2},
        "workload": {"type": "synthetic", "num_requests": 300, "arrival": "offline"},
    }
    assert assert_identical(data, tmp_path) > 0


def test_lockstep_group_is_identical(tmp_path):
    """Replicas stepping in lockstep (EP 2) step one at a time: same files."""
    data = {
        "model": {"name": "Qwen/Qwen3-30B-A3B"},
        "device": {"name": "h100-sxm"},
        "parallel": {"num_replicas": 2, "expert_parallel_size": 2},
        "cluster_scheduler": {"type": "least_loaded"},
        "workload": {"type": "synthetic", "num_requests": 200, "qps": 6.0},
    }
    # XXX: decode fast-forward is not group-aware, so lockstep members never
    # skip a step; a group window would end at any member's finish or arrival.
    assert assert_identical(data, tmp_path) == 0


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    scheduler=st.sampled_from(SCHEDULERS),
    requests=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=2.0),
            st.integers(min_value=1, max_value=300),
            st.integers(min_value=1, max_value=120),
        ),
        min_size=1,
        max_size=25,
    ),
    num_blocks=st.integers(min_value=40, max_value=120),
)
def test_random_workloads_are_identical(
    scheduler, requests, num_blocks, tmp_path_factory
):
    """Random small workloads and caches, every scheduler: same files."""
    arrivals = sorted(requests)
    data = {
        "model": {"name": "llama-2-7b", "max_model_len": 512},
        "device": {"name": "a100-80gb"},
        "cache": {"num_gpu_blocks": num_blocks},
        "replica_scheduler": {"type": scheduler},
        "predictor": {"type": "step_time", "base_ms": 7.0, "per_token_ms": 0.013},
        "workload": {"type": "literal", "requests": [list(r) for r in arrivals]},
    }
    assert_identical(data, tmp_path_factory.mktemp("ff"))


def test_window_stops_before_an_arrival(run_scenario, tmp_path):
    """A request arriving mid-decode joins the very next step, as stepping would."""
    # 10 ms steps. Request 0: prefill 0-10 ms, then decodes. Request 1 arrives at
    # 35 ms, during the step 30-40 ms, and is prefilled in the step 40-50 ms
    # together with request 0's decode: its first token is at 50 ms (TTFT 15 ms).
    simulation, result = run_scenario(
        [[0.0, 50, 20], [0.035, 50, 2]], output_dir=tmp_path
    )
    rows = (result.output_dir / "request_metrics.csv").read_text().splitlines()
    by_id = {line.split(",")[0]: line.split(",") for line in rows[1:]}
    ttft_column = rows[0].split(",").index("ttft_ms")
    assert float(by_id["1"][ttft_column]) == pytest.approx(15.0)
    # Request 0 ends at 200 ms: 20 steps of 10 ms, the step it shared included.
    e2e_column = rows[0].split(",").index("e2e_ms")
    assert float(by_id["0"][e2e_column]) == pytest.approx(200.0)
    assert simulation.replicas[0].num_fast_forwarded > 0
