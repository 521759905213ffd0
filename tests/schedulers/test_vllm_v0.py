"""vLLM v0 scheduler (``vllm``): each rule as a hand-built timeline, step by step.

Steps are lists of ``(request_id, tokens)``; requests are ``(arrived_at_s,
prompt, output)``; steps take 10 ms; blocks hold 16 tokens.
"""

from __future__ import annotations

import pytest
from frontier.errors import ConfigError

from schedulers.stepper import Stepper


def test_a_prefill_step_runs_alone_whenever_the_queue_head_fits():
    """A waiting request's prefill pauses the running decodes for one step."""
    stepper = Stepper("vllm", [(0, 20, 3), (0.015, 10, 2)], num_blocks=64)
    assert stepper.run() == [
        [(0, 20)],  # t=0: A's prefill
        [(0, 1)],  # t=10 ms: nothing waits (B arrives at 15 ms): A decodes
        [(1, 10)],  # t=20 ms: B's prefill alone; A does not decode
        [(0, 1), (1, 1)],  # A's 3rd and B's 2nd token: both done
    ]


def test_prefills_share_the_budget_and_stop_at_the_first_that_does_not_fit():
    """Whole prompts fill a prefill step up to max_num_batched_tokens."""
    stepper = Stepper(
        "vllm",
        [(0, 40, 2), (0, 30, 2), (0, 10, 2)],
        num_blocks=64,
        max_model_len=64,
        max_num_batched_tokens=64,
    )
    assert stepper.run() == [
        [(0, 40)],  # B's 30 > 24 left: the loop stops (C is not considered)
        [(1, 30), (2, 10)],  # the next step is again prefill-only
        [(0, 1), (1, 1), (2, 1)],
    ]


def test_admission_keeps_the_watermark_free():
    """A prompt is admitted only if ``free - needed >= watermark_blocks``."""
    stepper = Stepper(
        "vllm",
        [(0, 1440, 2), (0, 96, 2)],
        num_blocks=100,
        watermark=0.05,  # int(0.05 * 100) = 5 blocks
    )
    assert stepper.run() == [
        [(0, 1440)],  # A: 90 blocks, 100 - 90 = 10 >= 5
        [(0, 1)],  # B: 6 blocks would fit in 10 but 10 - 6 = 4 < 5; A done
        [(1, 96)],
        [(1, 1)],
    ]


def test_a_prompt_that_can_never_pass_the_watermark_is_rejected():
    """``num_blocks - needed < watermark_blocks`` can never change: the request is
    rejected and the one behind it runs."""
    stepper = Stepper(
        "vllm",
        [(0, 1584, 2), (0, 16, 1)],
        num_blocks=100,
        watermark=0.05,
    )
    # 1584 tokens = 99 blocks: 100 - 99 = 1 < 5.
    assert stepper.run() == [[(1, 16)]]
    assert stepper.outcome(0) == "rejected_no_fit"


def test_memory_pressure_preempts_the_newest_running_request():
    """The newest request is preempted first; a request with nobody left to
    preempt preempts itself; both return to the head of the queue in order."""
    stepper = Stepper(
        "vllm",
        [(0, 32, 3), (0, 16, 4), (0, 16, 4)],
        num_blocks=4,
        max_model_len=64,
    )
    steps = stepper.run()
    # Step 1: A 2 blocks, B 1, C 1: 0 free.
    # Step 2: A's 33rd token needs a block: C (newest) is preempted, A takes its
    # block; B's 17th token needs one too: B is now the newest, preempts itself.
    # Waiting: [B, C] (each preempted request goes to the head).
    assert steps[:2] == [[(0, 32), (1, 16), (2, 16)], [(0, 1)]]
    # Step 3: B (17 tokens, 2 blocks) does not fit in 0 free: A decodes, done.
    # Step 4: A's 3 blocks and C's are free (4): B, then C, re-prefill 17 tokens.
    assert steps[2:4] == [[(0, 1)], [(1, 17), (2, 17)]]
    assert [r.num_preemptions for r in stepper.requests] == [0, 1, 1]


def test_the_budget_must_hold_max_model_len():
    """v0 never chunks, so vLLM refuses a budget below max_model_len."""
    with pytest.raises(ConfigError, match="max_num_batched_tokens=32 is smaller"):
        Stepper("vllm", [], num_blocks=16, max_model_len=64, max_num_batched_tokens=32)


def test_an_unset_budget_is_max_model_len_or_2048():
    """``max(max_model_len, 2048)``, as vLLM's SchedulerConfig sets it."""
    short = Stepper("vllm", [], num_blocks=16, max_model_len=64).scheduler
    long = Stepper("vllm", [], num_blocks=16, max_model_len=4096).scheduler
    assert (short.max_num_batched_tokens, long.max_num_batched_tokens) == (2048, 4096)
