"""End-to-end timelines small enough to compute by hand.

Every scenario uses the ``step_time`` predictor from ``conftest.py``: a step costs
``base_ms + per_token_ms * tokens``, so each timestamp below is a sum of step times.
"""

from __future__ import annotations

import csv

import pytest
from conftest import simulate, tiny_config
from frontier.errors import ConfigError


def rows(result) -> dict[int, dict[str, str]]:
    """request_metrics.csv of a run, by request id."""
    path = result.output_dir / "request_metrics.csv"
    with path.open() as handle:
        return {int(row["request_id"]): row for row in csv.DictReader(handle)}


def test_one_request_alone(run_scenario, tmp_path):
    """TTFT is the prefill step; TPOT is one decode step."""
    _, result = run_scenario(
        [[0.0, 100, 3]],
        output_dir=tmp_path,
        predictor={"base_ms": 5.0, "per_token_ms": 0.01},
    )
    # Prefill of 100 tokens: 5 + 0.01 * 100 = 6 ms -> first token at 6 ms.
    # Two decodes of 1 token: 5.01 ms each -> tokens at 11.01 and 16.02 ms.
    row = rows(result)[0]
    assert float(row["ttft_ms"]) == pytest.approx(6.0)
    assert float(row["tpot_ms"]) == pytest.approx(5.01)  # (16.02 - 6) / (3 - 1)
    assert float(row["e2e_ms"]) == pytest.approx(16.02)
    assert row["outcome"] == "completed"
    assert result.summary["itl_ms"]["count"] == 2


def test_second_request_starts_when_first_ends(run_scenario, tmp_path):
    """With max_num_seqs=1 the second request is admitted the instant the first ends."""
    _, result = run_scenario(
        [[0.0, 100, 3], [0.0, 100, 3]],
        output_dir=tmp_path,
        predictor={"base_ms": 5.0, "per_token_ms": 0.01},
        replica_scheduler={"max_num_seqs": 1},
    )
    first, second = rows(result)[0], rows(result)[1]
    # Request 0: prefill 0-6 ms, decodes end at 11.01 and 16.02 ms.
    assert float(first["completed_at_ms"]) == pytest.approx(16.02)
    # Request 1 is scheduled at 16.02 ms although nothing else arrives then;
    # its prefill ends at 16.02 + 6 = 22.02 ms, its decodes at 27.03 and 32.04 ms.
    assert float(second["scheduled_at_ms"]) == pytest.approx(16.02)
    assert float(second["ttft_ms"]) == pytest.approx(22.02)
    assert float(second["e2e_ms"]) == pytest.approx(32.04)
    assert float(second["queue_delay_ms"]) == pytest.approx(16.02)


def test_chunked_prefill_takes_three_steps(run_scenario, tmp_path):
    """A 5,000-token prompt under a 2,048-token budget is prefilled in 3 chunks."""
    _, result = run_scenario(
        [[0.0, 5000, 2]],
        output_dir=tmp_path,
        predictor={"base_ms": 10.0, "per_token_ms": 0.01},
        model={"max_model_len": 8192, "name": "llama-3-8b"},
        replica_scheduler={"max_num_batched_tokens": 2048},
    )
    # Chunks of 2048, 2048 and 904 tokens:
    # 10 + 20.48 = 30.48 ms, 30.48 ms, 10 + 9.04 = 19.04 ms -> TTFT = 80.0 ms.
    # One decode: 10.01 ms -> E2E = 90.01 ms.
    row = rows(result)[0]
    assert float(row["ttft_ms"]) == pytest.approx(80.0)
    assert float(row["e2e_ms"]) == pytest.approx(90.01)
    assert result.summary["replicas"][0]["batches"] == 4


def test_preemption_by_recompute(run_scenario, tmp_path):
    """When KV runs out, the last running request is preempted and re-prefilled."""
    _, result = run_scenario(
        [[0.0, 30, 10], [0.0, 30, 10]],
        output_dir=tmp_path,
        model={"max_model_len": 64},
        cache={"num_gpu_blocks": 4, "block_size": 16},
    )
    # 10 ms steps, 4 blocks of 16 tokens.
    # Step 1 (0-10): A and B prefill 30 tokens, 2 blocks each; free 0.
    # Steps 2-3 (10-30): both decode; 31 and 32 tokens still fit in 2 blocks.
    # Step 4 (30-40): A's 33rd token needs a 3rd block: B (last running) is
    #   preempted, its 2 blocks freed; A takes one. No admission in that step.
    # Steps 5-10 (40-100): A decodes alone (B needs 3 blocks for prompt + 3
    #   generated = 33 tokens; 1 is free); A's 10th token at 100 ms.
    # Step 11 (100-110): B re-prefills 33 tokens and samples its 4th token.
    # Steps 12-17 (110-170): B's tokens 5 to 10; B ends at 170 ms.
    by_id = rows(result)
    a, b = by_id[0], by_id[1]
    assert float(a["e2e_ms"]) == pytest.approx(100.0)
    assert a["num_preemptions"] == "0"
    assert float(b["ttft_ms"]) == pytest.approx(10.0)
    assert float(b["e2e_ms"]) == pytest.approx(170.0)
    assert b["num_preemptions"] == "1"
    assert result.summary["preemption"]["total"] == 1
    assert result.summary["itl_ms"]["max"] == pytest.approx(80.0)  # B: 30 -> 110 ms


def test_prompt_too_long_is_rejected_and_run_ends(run_scenario, tmp_path):
    """A prompt leaving no room for a token is rejected; so is, by default, one
    whose output runs past max_model_len (vLLM's API server refuses
    ``prompt + max_tokens > max_model_len``)."""
    _, result = run_scenario(
        [[0.0, 64, 5], [0.0, 60, 10], [0.0, 20, 2]],
        output_dir=tmp_path,
        model={"max_model_len": 64},
    )
    by_id = rows(result)
    # 64 >= max_model_len: no room for a token -> rejected, no timings.
    assert by_id[0]["outcome"] == "rejected_too_long"
    assert by_id[0]["ttft_ms"] == ""
    # 60 + 10 = 70 > 64: the server refuses it.
    assert by_id[1]["outcome"] == "rejected_too_long"
    assert by_id[2]["outcome"] == "completed"
    requests = result.summary["requests"]
    assert (requests["rejected_too_long"], requests["truncated"]) == (2, 0)


def test_an_output_past_max_model_len_is_cut_when_asked(run_scenario, tmp_path):
    """With clients that set no max_tokens (``engine.client_max_tokens = "none"``;
    also vLLM's LLM class) generation stops at max_model_len instead."""
    _, result = run_scenario(
        [[0.0, 64, 5], [0.0, 60, 10], [0.0, 20, 2]],
        output_dir=tmp_path,
        model={"max_model_len": 64},
        engine={"client_max_tokens": "none"},
    )
    by_id = rows(result)
    assert by_id[0]["outcome"] == "rejected_too_long"
    # 60 + 10 > 64: generation stops at 64 tokens -> 4 output tokens.
    assert by_id[1]["outcome"] == "truncated"
    assert by_id[1]["num_output_tokens"] == "4"
    assert by_id[1]["requested_output_tokens"] == "10"
    assert by_id[2]["outcome"] == "completed"
    requests = result.summary["requests"]
    assert (
        requests["rejected_too_long"],
        requests["truncated"],
        requests["completed"],
    ) == (1, 1, 1)


def test_invalid_key_error_names_the_path():
    """A misspelt scheduler option is reported with its dotted path."""
    with pytest.raises(
        ConfigError, match=r"replica_scheduler: unknown key\(s\) max_num_seq"
    ):
        simulate(tiny_config([[0.0, 10, 2]], replica_scheduler={"max_num_seq": 4}))


def test_disaggregated_architecture_fails_fast(tmp_path):
    """PD disaggregation is refused before any output is written."""
    data = tiny_config([[0.0, 10, 2]])
    data["architecture"] = "pd-disaggregation"
    with pytest.raises(ConfigError, match="not available yet"):
        simulate(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_same_seed_gives_identical_files(tmp_path):
    """Two runs of one config in one process write byte-identical metrics."""
    data = {
        "metrics": {"progress": False},
        "workload": {"type": "synthetic", "num_requests": 300, "qps": 8.0},
        "seed": 7,
    }
    _, first = simulate(data, tmp_path / "a")
    _, second = simulate(data, tmp_path / "b")
    for name in ("request_metrics.csv", "system_metrics.json", "config.toml"):
        assert (first.output_dir / name).read_bytes() == (
            second.output_dir / name
        ).read_bytes()
    _, other = simulate({**data, "seed": 8}, tmp_path / "c")
    assert (other.output_dir / "request_metrics.csv").read_bytes() != (
        first.output_dir / "request_metrics.csv"
    ).read_bytes()


def test_asynchronous_scheduling_admits_an_arrival_one_step_later(
    run_scenario, tmp_path
):
    """With vLLM's async scheduling, step N + 1 is formed when step N starts."""
    _, result = run_scenario(
        [[0.0, 100, 3], [0.005, 100, 3]],
        output_dir=tmp_path,
        replica_scheduler={"async_scheduling": True},
    )
    # 10 ms steps. t=0: step 1 = [A prefill] starts and step 2 = [A decode] is
    # formed at once (A holds a placeholder). B arrives at 5 ms. t=10: A's 1st
    # token; step 2 starts; step 3 = [A decode, B prefill] is formed. t=20: A's
    # 2nd token; step 3 starts; step 4 = [B decode] is formed (A's placeholders
    # reach its 3rd and last token, so A is skipped). t=30: A's 3rd token (E2E
    # 30 ms), B's 1st (TTFT 30 - 5 = 25 ms); then B decodes at 40 and 50 ms (E2E
    # 50 - 5 = 45 ms). Synchronous scheduling gives B 15 and 35 ms.
    by_id = rows(result)
    assert float(by_id[0]["e2e_ms"]) == pytest.approx(30.0)
    assert float(by_id[1]["ttft_ms"]) == pytest.approx(25.0)
    assert float(by_id[1]["e2e_ms"]) == pytest.approx(45.0)
    # B is taken in by the scheduling pass at 10 ms, the end of the step it
    # arrived in (vLLM's queued_ts), and scheduled in step 3, formed then.
    assert float(by_id[1]["queued_at_ms"]) == pytest.approx(10.0)
    assert float(by_id[1]["scheduled_at_ms"]) == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("disable_overlap", "b_ttft", "b_e2e"), [(True, 15.0, 35.0), (False, 25.0, 45.0)]
)
def test_sglang_overlap_schedule_forms_each_batch_while_the_last_runs(
    run_scenario, tmp_path, disable_overlap, b_ttft, b_e2e
):
    """SGLang's overlap loop (its default) forms batch N + 1 while batch N runs:
    an arrival joins a batch later, as with vLLM's async scheduling."""
    _, result = run_scenario(
        [[0.0, 100, 3], [0.005, 100, 3]],
        output_dir=tmp_path,
        replica_scheduler={
            "type": "sglang",
            "disable_overlap_schedule": disable_overlap,
        },
    )
    # 10 ms steps. Plain loop: A's prefill (0-10), B's prefill first (10-20, B
    # arrived at 5 ms), then both decode at 20-30 and 30-40: B's TTFT 15, E2E 35.
    # Overlap: at 0 A's prefill starts and A's decode (10-20) is formed at once,
    # so B, queued at 10, prefills at 20-30 (TTFT 25); A and B decode at 30-40
    # (A's 3rd and last token), B alone at 40-50 (E2E 45). A ends at 40 ms in
    # both loops.
    by_id = rows(result)
    assert float(by_id[0]["e2e_ms"]) == pytest.approx(40.0)
    assert float(by_id[1]["ttft_ms"]) == pytest.approx(b_ttft)
    assert float(by_id[1]["e2e_ms"]) == pytest.approx(b_e2e)


def test_a_request_preempted_while_its_step_runs_keeps_that_steps_token(
    run_scenario, tmp_path
):
    """vLLM v1 appends the token a step sampled for a request preempted while the
    step ran (``update_from_output`` skips only finished requests)."""
    _, result = run_scenario(
        [[0.0, 32, 5], [0.0, 32, 5]],
        output_dir=tmp_path,
        model={"max_model_len": 64},
        cache={"num_gpu_blocks": 4},
        replica_scheduler={"async_scheduling": True},
    )
    # 10 ms steps, 4 blocks of 16. t=0: step 1 prefills A and B (2 blocks each)
    # and step 2 is formed at once: A's 33rd token needs a 3rd block, so B, the
    # last running, is preempted (its 2 full blocks cached under its own keys)
    # and A takes one of them. t=10: step 1 ends; B keeps its sampled token (TTFT
    # 10 ms) and waits: 33 tokens would hit its 1 surviving block and need 2 more.
    # A decodes its tokens 2-5 at 20-50 ms and leaves (E2E 50 ms). t=50: B hits
    # 16 tokens and computes 17 (token 2 at 60 ms), then tokens 3-5 at 70-90 ms.
    by_id = rows(result)
    assert float(by_id[0]["e2e_ms"]) == pytest.approx(50.0)
    assert float(by_id[1]["ttft_ms"]) == pytest.approx(10.0)
    assert float(by_id[1]["e2e_ms"]) == pytest.approx(90.0)
    assert by_id[1]["num_preemptions"] == "1"
    assert result.summary["requests"]["completed"] == 2


def test_a_request_preempted_in_its_last_step_finishes_from_the_queue(
    run_scenario, tmp_path
):
    """A preempted request whose in-flight step samples its last token completes
    from the waiting queue and is never admitted again."""
    _, result = run_scenario(
        [[0.0, 32, 5], [0.0, 32, 1]],
        output_dir=tmp_path,
        model={"max_model_len": 64},
        cache={"num_gpu_blocks": 4},
        replica_scheduler={"async_scheduling": True},
    )
    # As above, but B wants 1 token: step 1 samples it while B is preempted for
    # A's 3rd block, so B completes at 10 ms without running again.
    by_id = rows(result)
    assert float(by_id[1]["e2e_ms"]) == pytest.approx(10.0)
    assert by_id[1]["outcome"] == "completed"
    assert float(by_id[0]["e2e_ms"]) == pytest.approx(50.0)


def test_a_request_is_queued_at_the_end_of_the_step_it_arrives_in(
    run_scenario, tmp_path
):
    """vLLM's engine reads new requests between steps: ``queued_at`` is the first
    scheduling pass at or after the arrival."""
    _, result = run_scenario(
        [[0.0, 100, 3], [0.005, 100, 3], [0.050, 100, 1]], output_dir=tmp_path
    )
    by_id = rows(result)
    # A on an idle replica: taken in on arrival.
    assert float(by_id[0]["queued_at_ms"]) == pytest.approx(0.0)
    # B arrives at 5 ms inside step 1 (0-10 ms): taken in and scheduled at 10 ms.
    assert float(by_id[1]["queued_at_ms"]) == pytest.approx(10.0)
    assert float(by_id[1]["scheduled_at_ms"]) == pytest.approx(10.0)
    # Steps 2-4 (10-40 ms) finish A and B; C arrives at 50 ms on an idle replica.
    assert float(by_id[2]["queued_at_ms"]) == pytest.approx(50.0)


def test_an_eager_step_costs_the_engine_overhead(run_scenario, tmp_path):
    """A prefill above the CUDA-graph limit pays ``eager_step_overhead_ms``."""
    _, result = run_scenario(
        [[0.0, 100, 3]],
        output_dir=tmp_path,
        engine={"cuda_graph_max_tokens": 50, "eager_step_overhead_ms": 2.0},
    )
    (row,) = rows(result).values()
    # step 1: 100 prompt tokens > 50, no graph: 10 + 2 = 12 ms (first token);
    # steps 2 and 3 decode one token each as graphs: 10 ms, done at 32 ms
    assert float(row["ttft_ms"]) == pytest.approx(12.0)
    assert float(row["e2e_ms"]) == pytest.approx(32.0)
