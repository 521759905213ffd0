"""Reasoning ("thinking") workloads: tokens before the answer, and the time to
the first answer token."""

from __future__ import annotations

import csv

import pytest
from conftest import simulate, tiny_config
from frontier.errors import InputError
from frontier.plugins import WorkloadContext
from frontier.workloads.arrivals import LengthDistribution
from frontier.workloads.resample import ResampleConfig, ResampleGenerator
from frontier.workloads.synthetic import SyntheticConfig, SyntheticGenerator
from frontier.workloads.trace import TraceConfig, TraceGenerator

CONTEXT = WorkloadContext(seed=0, block_size=16, max_model_len=4096)


def _rows(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["request_id"]: row for row in csv.DictReader(handle)}


def test_the_answer_starts_after_the_reasoning_tokens(run_scenario, tmp_path):
    """32 prompt tokens, 5 output tokens of which 3 reason; 10 ms steps.

    step 1 (0-10 ms) prefills and samples token 1 (reasoning); steps 2 and 3
    give tokens 2 and 3 (20, 30 ms, reasoning); step 4 gives token 4, the
    first of the answer, at 40 ms; step 5 token 5 at 50 ms.
    """
    _, result = run_scenario([(0.0, 32, 5, 3)], output_dir=tmp_path)
    row = _rows(tmp_path / "request_metrics.csv")["0"]
    assert row["ttft_ms"] == "10.000000"
    assert row["answer_ttft_ms"] == "40.000000"
    assert row["reasoning_tokens"] == "3"
    assert row["num_output_tokens"] == "5"  # reasoning counts in the output
    summary = result.summary
    assert summary["answer_ttft_ms"]["mean"] == pytest.approx(40.0)
    assert summary["ttft_ms"]["mean"] == pytest.approx(10.0)
    assert summary["reasoning"] == {
        "requests": 1,
        "reasoning_tokens": 3,
        "answer_tokens": 2,  # 5 - 3
    }


def test_the_answer_time_is_exact_inside_a_fast_forwarded_window(tmp_path):
    """Decode fast-forward applies runs of steps at once; the first answer token
    still lands on its own step: the files match step-by-step simulation."""
    requests = [(0.0, 32, 300, 120), (0.0, 64, 200, 0), (0.005, 16, 250, 249)]
    for name, fast in (("fast", True), ("slow", False)):
        simulate(tiny_config(requests) | {"fast_forward": fast}, tmp_path / name)
    fast = (tmp_path / "fast" / "request_metrics.csv").read_bytes()
    slow = (tmp_path / "slow" / "request_metrics.csv").read_bytes()
    assert fast == slow
    rows = _rows(tmp_path / "fast" / "request_metrics.csv")
    # request 0 and 1 prefill together in step 1 (0-10 ms, token 1); request 2
    # arrives at 5 ms and prefills in step 2 (10-20 ms, its token 1).
    # Request 0's answer is token 121: 120 steps after its first, at 1,210 ms.
    assert rows["0"]["answer_ttft_ms"] == "1210.000000"
    assert rows["1"]["answer_ttft_ms"] == rows["1"]["ttft_ms"] == "10.000000"
    # request 2's answer is token 250, its last: step 2 + 249 = step 251 ends
    # at 2,510 ms; it arrived at 5 ms
    assert rows["2"]["answer_ttft_ms"] == "2505.000000"


def test_a_request_cut_before_its_answer_has_no_answer_time(run_scenario, tmp_path):
    """With clients that send no max_tokens, a 32-token prompt on a 36-token
    model generates 36 - 32 = 4 tokens, all reasoning (8 were planned)."""
    _, result = run_scenario(
        [(0.0, 32, 10, 8), (0.0, 8, 3)],
        output_dir=tmp_path,
        model={"max_model_len": 36},
        engine={"client_max_tokens": "none"},
    )
    rows = _rows(tmp_path / "request_metrics.csv")
    assert rows["0"]["outcome"] == "truncated"
    assert rows["0"]["answer_ttft_ms"] == ""
    assert result.summary["answer_ttft_ms"]["count"] == 1  # request 1 only
    assert result.summary["reasoning"]["reasoning_tokens"] == 4  # all it generated


def test_synthetic_reasoning_precedes_the_answer_and_leaves_the_rest_alone():
    """Each request thinks a draw of reasoning_tokens, then answers a draw of
    output_tokens; arrivals and prompts are those of the workload without."""
    plain = list(SyntheticGenerator(SyntheticConfig(num_requests=50), CONTEXT))
    thinking = list(
        SyntheticGenerator(
            SyntheticConfig(
                num_requests=50,
                reasoning_tokens=LengthDistribution(
                    distribution="uniform", min=100, max=2000
                ),
            ),
            CONTEXT,
        )
    )
    for a, b in zip(plain, thinking, strict=True):
        assert (a.arrived_at, a.num_prompt_tokens) == (
            b.arrived_at,
            b.num_prompt_tokens,
        )
        assert 100 <= b.num_reasoning_tokens <= 2000
        assert b.num_output_tokens == a.num_output_tokens + b.num_reasoning_tokens
        assert a.num_reasoning_tokens == 0


def _trace(tmp_path, text):
    path = tmp_path / "trace.csv"
    path.write_text(text, "utf-8")
    return path


def test_a_trace_gives_reasoning_tokens_per_row(tmp_path):
    """A blank cell is 0; the column is optional."""
    path = _trace(
        tmp_path,
        "num_prefill_tokens,num_decode_tokens,num_reasoning_tokens\n"
        "100,50,40\n200,20,\n300,30,0\n",
    )
    generator = TraceGenerator(TraceConfig(path=str(path), arrival="offline"), CONTEXT)
    assert [r.num_reasoning_tokens for r in generator] == [40, 0, 0]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("abc", "'abc' is not a whole number"),
        ("-1", "-1 tokens of reasoning in an output of 50"),
        ("50", "50 tokens of reasoning in an output of 50"),
        ("2.5", "'2.5' is not a whole number"),
    ],
)
def test_a_bad_reasoning_count_is_refused_naming_the_row(tmp_path, cell, message):
    path = _trace(
        tmp_path,
        f"num_prefill_tokens,num_decode_tokens,num_reasoning_tokens\n100,50,{cell}\n",
    )
    generator = TraceGenerator(TraceConfig(path=str(path), arrival="offline"), CONTEXT)
    with pytest.raises(
        InputError, match=f"trace.csv, row 2, column num_reasoning_tokens: {message}"
    ):
        list(generator)


def test_resampling_keeps_each_rows_reasoning_with_its_lengths(tmp_path):
    """Rows are drawn whole: a 50-token output always brings its 40 reasoning."""
    path = _trace(
        tmp_path,
        "num_prefill_tokens,num_decode_tokens,num_reasoning_tokens\n100,50,40\n200,20,0\n",
    )
    config = ResampleConfig(path=str(path), num_requests=200, arrival="offline")
    drawn = {
        (r.num_prompt_tokens, r.num_output_tokens, r.num_reasoning_tokens)
        for r in ResampleGenerator(config, CONTEXT)
    }
    assert drawn == {(100, 50, 40), (200, 20, 0)}


def test_answer_ttft_counts_every_request_in_a_mixed_workload(run_scenario):
    """Requests without reasoning answer with their first token, also those
    that finished before the first reasoning request did.

    A (0 s, no reasoning): first token at 10 ms. B (1 s, 2 of 4 tokens
    reasoning): tokens at 1.010, 1.020 s, its answer at 1.030 s: 30 ms.
    C (2 s, no reasoning): 10 ms. Answer TTFT: (10 + 30 + 10) / 3 = 16.667 ms.
    """
    _, result = run_scenario([(0.0, 8, 2), (1.0, 8, 4, 2), (2.0, 8, 2)])
    answer = result.summary["answer_ttft_ms"]
    assert answer["count"] == 3
    assert answer["mean"] == pytest.approx(50.0 / 3)
    assert answer["max"] == pytest.approx(30.0)
    assert result.summary["ttft_ms"]["mean"] == pytest.approx(10.0)
