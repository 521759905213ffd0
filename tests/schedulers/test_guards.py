"""Pathological input ends: never-fitting requests are rejected, repeated
preemption is bounded and reported, a configuration that can only thrash stops
with an error that says why."""

from __future__ import annotations

import csv

import pytest
from frontier.errors import ConfigError, SimulationError

from schedulers.stepper import Stepper


def rows(result) -> dict[int, dict[str, str]]:
    """request_metrics.csv of a run, by request id."""
    with (result.output_dir / "request_metrics.csv").open() as handle:
        return {int(row["request_id"]): row for row in csv.DictReader(handle)}


def test_a_request_that_can_never_fit_is_rejected_without_blocking_the_queue(
    run_scenario, tmp_path
):
    """vLLM v0's watermark can never admit a prompt needing all 5 blocks; it is
    rejected and counted, and the request behind it runs at once."""
    _, result = run_scenario(
        [[0.0, 70, 2], [0.0, 10, 2]],
        output_dir=tmp_path,
        model={"max_model_len": 80},
        cache={"num_gpu_blocks": 5, "block_size": 16},
        replica_scheduler={"type": "vllm", "watermark": 0.2},
    )
    # watermark_blocks = int(0.2 * 5) = 1; 70 tokens = 5 blocks: 5 - 5 < 1.
    by_id = rows(result)
    assert by_id[0]["outcome"] == "rejected_no_fit"
    assert float(by_id[1]["queue_delay_ms"]) == 0.0
    assert result.summary["requests"]["rejected_no_fit"] == 1
    assert result.summary["requests"]["completed"] == 1


def test_a_request_preempted_too_often_is_aborted_and_reported(run_scenario, tmp_path):
    """Past ``max_preemptions_per_request`` a preempted request is aborted; the
    run goes on and the summary counts it."""
    _, result = run_scenario(
        [[0.0, 30, 10], [0.0, 30, 10]],
        output_dir=tmp_path,
        model={"max_model_len": 64},
        cache={"num_gpu_blocks": 4, "block_size": 16},
        replica_scheduler={"max_preemptions_per_request": 0},
    )
    # B is preempted at 30 ms (A's 33rd token needs its blocks): aborted there.
    by_id = rows(result)
    assert by_id[1]["outcome"] == "aborted"
    assert by_id[1]["num_preemptions"] == "1"
    assert float(by_id[0]["e2e_ms"]) == pytest.approx(100.0)  # A, 10 steps
    assert result.summary["requests"]["aborted"] == 1
    assert result.summary["preemption"]["max_per_request"] == 1


def test_the_preemption_cap_counts_every_preemption_of_a_request():
    """Sarathi preempts B three times in this timeline (see test_sarathi); a cap of
    2 aborts it at the third."""
    stepper = Stepper(
        "sarathi",
        [(0, 30, 10), (0, 30, 10)],
        num_blocks=4,
        max_model_len=64,
        max_preemptions_per_request=2,
    )
    stepper.run()
    assert stepper.outcome(1) == "aborted"
    assert stepper.requests[1].num_preemptions == 3


def test_sglang_retraction_counts_as_preemption():
    """A retracted request over the cap is aborted rather than queued again."""
    stepper = Stepper(
        "sglang",
        [(0, 10, 40), (0, 14, 40)],
        num_blocks=60,
        block_size=1,
        max_model_len=128,
        clip_max_new_tokens=1,
        max_preemptions_per_request=0,
    )
    stepper.run()
    assert (stepper.outcome(0), stepper.outcome(1)) == ("completed", "aborted")


def test_a_configuration_that_can_only_thrash_stops_with_an_error(run_scenario):
    """Aborts in a row with no completion between them end the run with a
    SimulationError that names the cause and the remedies."""
    with pytest.raises(SimulationError, match="can only thrash") as error:
        run_scenario(
            [[0.0, 16, 20]] * 4,
            model={"max_model_len": 64},
            cache={"num_gpu_blocks": 4, "block_size": 16},
            replica_scheduler={
                "max_preemptions_per_request": 0,
                "max_consecutive_aborts": 2,
            },
        )
    # Step 1 admits all four (1 block each). Step 2: A's 17th token needs a block:
    # D is preempted and aborted; B's too: C is aborted: 2 in a row.
    assert "give it more KV blocks" in str(error.value)


@pytest.mark.parametrize("kind", ["vllm", "vllm_v1"])
def test_a_budget_below_max_num_seqs_is_refused(kind):
    """vLLM's SchedulerConfig (v0 and v1) refuses max_num_batched_tokens <
    max_num_seqs: a step could not hold one decode of every running request."""
    shape = {"num_blocks": 8, "max_model_len": 4, "max_num_batched_tokens": 4}
    with pytest.raises(ConfigError, match="max_num_batched_tokens=4 is smaller than"):
        Stepper(kind, [(0, 4, 1)], max_num_seqs=8, **shape)
    Stepper(kind, [(0, 4, 1)], max_num_seqs=4, **shape)  # equal is allowed


def test_an_unset_max_num_seqs_is_cut_to_a_small_budget():
    """vLLM 0.19's EngineArgs sets an unset max_num_seqs to min(GPU default,
    max_num_batched_tokens): a budget of 512 on an 80 GB GPU (default 1024
    seats) runs with 512 seats instead of being refused."""
    from frontier.plugins import default_plugins

    from schedulers.stepper import execution_context

    entry = default_plugins().registry.get("replica_scheduler", "vllm_v1")
    config = entry.config_cls(type="vllm_v1", max_num_batched_tokens=512)
    limits = entry.factory.planning_limits(config, execution_context("h100-sxm"), 4096)
    assert limits == (512, 512)  # min(1024, 512) seats
    # Unset budget: 8192 by default, cut to max_num_seqs x max_model_len = 4 x 64.
    config = entry.config_cls(type="vllm_v1", max_num_seqs=4)
    assert entry.factory.planning_limits(config, execution_context("h100-sxm"), 64) == (
        256,
        4,
    )


@pytest.mark.parametrize(
    ("kind", "options", "advice"),
    [
        ("vllm", {}, r"\(this scheduler has no chunked prefill\)"),
        ("vllm_v1", {"enable_chunked_prefill": False}, "or enable chunked prefill"),
    ],
)
def test_a_budget_below_max_model_len_names_what_can_be_changed(kind, options, advice):
    """Without chunked prefill a budget below max_model_len is refused; the advice
    only offers chunked prefill where the scheduler has it (vLLM v0's has not)."""
    with pytest.raises(ConfigError, match=rf"smaller than max_model_len=64.*{advice}"):
        Stepper(
            kind,
            [(0, 4, 1)],
            num_blocks=8,
            max_model_len=64,
            max_num_batched_tokens=32,
            max_num_seqs=4,
            **options,
        )
