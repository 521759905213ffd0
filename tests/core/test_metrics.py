"""Metrics: vllm-bench-serve definitions, percentiles, request rows, clean JSON."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from frontier.metrics import REQUEST_COLUMNS, MetricsCollector, summarise
from frontier.request import Outcome, Request


def _done(request_id, arrived, first, completed, generated, prompt=10):
    request = Request(request_id, arrived, prompt, generated)
    request.scheduled_at = arrived
    request.first_token_at = first
    request.last_token_at = completed
    request.completed_at = completed
    request.num_generated = generated
    request.outcome = Outcome.COMPLETED
    return request


def test_summarise_by_hand():
    """[1, 2, 3, 4, 10]: mean 4, std sqrt(10), p50 3, p90 7.6, p95 8.8, p99 9.76."""
    stats = summarise([1, 2, 3, 4, 10])
    assert stats["count"] == 5
    assert stats["mean"] == pytest.approx(4.0)  # 20 / 5
    # population std: sqrt((9 + 4 + 1 + 0 + 36) / 5) = sqrt(10)
    assert stats["std"] == pytest.approx(math.sqrt(10))
    assert (stats["min"], stats["max"]) == (1.0, 10.0)
    # linear interpolation at rank q/100 x (n - 1) = q/100 x 4:
    # p50 -> rank 2 -> 3; p90 -> 3.6 -> 4 + 0.6 x 6 = 7.6;
    # p95 -> 3.8 -> 4 + 0.8 x 6 = 8.8; p99 -> 3.96 -> 4 + 0.96 x 6 = 9.76
    assert stats["p50"] == stats["median"] == pytest.approx(3.0)
    assert stats["p90"] == pytest.approx(7.6)
    assert stats["p95"] == pytest.approx(8.8)
    assert stats["p99"] == pytest.approx(9.76)


def test_summarise_equals_numpy_linear_interpolation():
    """On any sample the percentiles are numpy.percentile's (linear)."""
    values = np.random.default_rng(0).exponential(3.0, size=101)
    stats = summarise(values)
    for q in (50, 90, 95, 99):
        assert stats[f"p{q}"] == pytest.approx(
            np.percentile(values, q, method="linear")
        )


def test_summarise_of_nothing_is_only_a_count():
    """An empty sample gives count 0 and no statistics (no NaN)."""
    assert summarise([]) == {"count": 0}


def test_ttft_e2e_and_tpot_follow_the_benchmark_definitions():
    """TTFT = first - arrival, E2E = done - arrival, TPOT = (E2E - TTFT) / (n - 1)."""
    metrics = MetricsCollector()
    # arrives at 1.0 s, first token at 1.1 s, 5 tokens, done at 1.5 s:
    # TTFT 100 ms, E2E 500 ms, TPOT (500 - 100) / 4 = 100 ms
    metrics.record_arrival(_done(0, 1.0, 1.1, 1.5, 5))
    metrics.record_request(_done(0, 1.0, 1.1, 1.5, 5))
    summary = metrics.summary()
    assert summary["ttft_ms"]["mean"] == pytest.approx(100.0)
    assert summary["e2e_ms"]["mean"] == pytest.approx(500.0)
    assert summary["tpot_ms"]["mean"] == pytest.approx(100.0)


def test_tpot_excludes_single_token_outputs():
    """A 1-token request has a TTFT but no TPOT."""
    metrics = MetricsCollector()
    metrics.record_request(_done(0, 0.0, 0.2, 0.2, 1))
    # 4 tokens: (0.5 - 0.2) / 3 = 0.1 s
    metrics.record_request(_done(1, 0.0, 0.2, 0.5, 4))
    summary = metrics.summary()
    assert summary["ttft_ms"]["count"] == 2
    assert summary["tpot_ms"]["count"] == 1
    assert summary["tpot_ms"]["mean"] == pytest.approx(100.0)


def test_throughput_divides_by_first_arrival_to_last_completion():
    """2 requests of 10 + 4 tokens done within 0.5 s - 0.1 s = 0.4 s."""
    metrics = MetricsCollector()
    for request in (_done(0, 0.1, 0.2, 0.3, 4), _done(1, 0.2, 0.3, 0.5, 4)):
        metrics.record_arrival(request)
        metrics.record_request(request)
    throughput = metrics.summary()["throughput"]
    assert throughput["duration_s"] == pytest.approx(0.4)
    assert throughput["request_throughput_per_s"] == pytest.approx(5.0)  # 2 / 0.4
    assert throughput["output_token_throughput_per_s"] == pytest.approx(20.0)  # 8 / 0.4
    # (2 x 10 prompt + 8 output) / 0.4 = 70
    assert throughput["total_token_throughput_per_s"] == pytest.approx(70.0)


def test_rejected_requests_are_counted_but_not_timed():
    """A rejected request adds to its outcome count and to no latency."""
    metrics = MetricsCollector()
    rejected = Request(0, 0.0, 5000, 10)
    rejected.outcome = Outcome.REJECTED_TOO_LONG
    metrics.record_request(rejected)
    summary = metrics.summary()
    assert summary["requests"]["total"] == 1
    assert summary["requests"]["rejected_too_long"] == 1
    assert summary["ttft_ms"] == {"count": 0}
    assert summary["throughput"]["request_throughput_per_s"] == 0.0


def test_preemptions_are_totalled_per_request():
    """Preemptions sum over requests; requests preempted and the maximum too."""
    metrics = MetricsCollector()
    for request_id, preemptions in enumerate((0, 2, 3)):
        request = _done(request_id, 0.0, 0.1, 0.2, 2)
        request.num_preemptions = preemptions
        metrics.record_request(request)
    assert metrics.summary()["preemption"] == {
        "total": 5,  # 0 + 2 + 3
        "requests_preempted": 2,
        "max_per_request": 3,
    }


def _read_rows(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_request_row_of_a_tiny_run(run_scenario, tmp_path):
    """One request of 32 prompt and 3 output tokens with 10 ms steps: first token
    at 10 ms, done at 30 ms."""
    # step 1 (0-10 ms) prefills 32 tokens and samples token 1;
    # steps 2 and 3 (10-20, 20-30 ms) decode tokens 2 and 3
    _, result = run_scenario([(0.0, 32, 3)], output_dir=tmp_path)
    (row,) = _read_rows(tmp_path / "request_metrics.csv")
    assert tuple(row) == REQUEST_COLUMNS
    assert row == {
        "request_id": "0",
        "replica_id": "0",
        "outcome": "completed",
        "arrived_at_ms": "0.000000",
        "queued_at_ms": "0.000000",  # the replica is idle: taken in on arrival
        "scheduled_at_ms": "0.000000",
        "first_token_at_ms": "10.000000",
        "completed_at_ms": "30.000000",
        "queue_delay_ms": "0.000000",
        "ttft_ms": "10.000000",
        "tpot_ms": "10.000000",  # (30 - 10) / (3 - 1)
        "e2e_ms": "30.000000",
        "num_prompt_tokens": "32",
        "num_output_tokens": "3",
        "requested_output_tokens": "3",
        "num_cached_tokens": "0",
        "num_preemptions": "0",
        "reasoning_tokens": "0",
        "answer_ttft_ms": "10.000000",  # no reasoning: the first token answers
    }
    assert result.summary["itl_ms"]["count"] == 2  # two gaps of 10 ms
    assert result.summary["itl_ms"]["mean"] == pytest.approx(10.0)


def test_rejected_request_row_has_empty_times(run_scenario, tmp_path):
    """A prompt longer than max_model_len gets a row with its outcome and no times."""
    run_scenario(
        [(0.0, 100, 3), (0.0, 8, 2)], output_dir=tmp_path, model={"max_model_len": 64}
    )
    rows = {
        row["request_id"]: row for row in _read_rows(tmp_path / "request_metrics.csv")
    }
    rejected = rows["0"]
    assert rejected["outcome"] == "rejected_too_long"
    assert rejected["ttft_ms"] == rejected["e2e_ms"] == rejected["tpot_ms"] == ""
    assert rows["1"]["outcome"] == "completed"


def _no_constants(name):
    raise AssertionError(f"system_metrics.json holds {name}, which is not JSON")


@pytest.mark.parametrize(
    ("requests", "model"),
    [
        ([(0.0, 32, 1), (0.0, 8, 3)], {}),  # a one-token output: no TPOT of its own
        ([(0.0, 100, 3)], {"max_model_len": 64}),  # nothing completes at all
    ],
)
def test_system_metrics_json_has_no_nan(run_scenario, tmp_path, requests, model):
    """system_metrics.json parses as strict JSON, even with empty sections."""
    run_scenario(requests, output_dir=tmp_path, model=model)
    text = (tmp_path / "system_metrics.json").read_text("utf-8")
    summary = json.loads(text, parse_constant=_no_constants)
    for section in ("metadata", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "throughput"):
        assert section in summary
