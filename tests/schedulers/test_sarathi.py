"""Sarathi-Serve scheduler: each rule as a hand-built timeline, step by step.

Steps are lists of ``(request_id, tokens)``; requests are ``(arrived_at_s,
prompt, output)``; steps take 10 ms; blocks hold 16 tokens.
"""

from __future__ import annotations

from schedulers.stepper import Stepper


def test_decodes_then_partial_prefills_then_admissions_share_one_budget():
    """Stall-free batching: every decode runs, prefills fill the chunk budget."""
    stepper = Stepper(
        "sarathi",
        [(0, 8, 5), (0, 40, 3), (0.015, 10, 2)],
        num_blocks=64,
        chunk_size=16,
    )
    assert stepper.run() == [
        [(0, 8), (1, 8)],  # A's 8, then B's first 8 (16 - 8 left)
        [(0, 1), (1, 15)],  # A decodes; B continues with the 15 left
        [(0, 1), (1, 15)],  # C (arrived at 15 ms) finds no budget left
        [(0, 1), (1, 2), (2, 10)],  # B's last 2 prompt tokens; C whole (13 left)
        [(0, 1), (1, 1), (2, 1)],  # A's 5th token and C's 2nd: done
        [(1, 1)],  # B's 3rd token
    ]


def test_admission_reserves_blocks_for_the_whole_prompt():
    """A 40-token prompt holds 3 blocks from its first 16-token chunk on."""
    stepper = Stepper("sarathi", [(0, 40, 2)], num_blocks=8, chunk_size=16)
    stepper.step()
    assert stepper.blocks.num_used_blocks == 3  # ceil(40 / 16), not ceil(16 / 16)


def test_no_free_block_preempts_the_last_request_even_when_not_needed():
    """Sarathi asks for any free block before each decode, so with none free it
    preempts the last running request, which is re-admitted at once."""
    stepper = Stepper(
        "sarathi", [(0, 30, 10), (0, 30, 10)], num_blocks=4, max_model_len=64
    )
    steps = stepper.run()
    # Step 1: A and B take 2 blocks each: none free.
    # Step 2: A's 31st token fits its blocks, but no block is free: B is preempted
    # (2 freed), and re-admitted in the same step with its 31 tokens.
    # Step 3: the same with 32 tokens. Step 4: A needs its 3rd block; B (33 tokens,
    # 3 blocks) no longer fits in the 1 left and waits for A to finish.
    assert steps[:4] == [
        [(0, 30), (1, 30)],
        [(0, 1), (1, 31)],
        [(0, 1), (1, 32)],
        [(0, 1)],
    ]
    assert steps[10] == [(1, 33)]
    assert [r.num_preemptions for r in stepper.requests] == [0, 3]


def test_admission_keeps_the_watermark_free_and_respects_max_num_seqs():
    """Admission needs ``free - prompt blocks >= watermark`` and a free seat."""
    stepper = Stepper(
        "sarathi",
        [(0, 1440, 2), (0, 96, 2), (0, 16, 2)],
        num_blocks=100,
        watermark=0.05,  # 5 blocks
        chunk_size=2048,
        max_num_seqs=2,
    )
    steps = stepper.run()
    # A: 90 blocks (100 - 90 >= 5). B: 6 blocks, 10 - 6 = 4 < 5: admission stops.
    assert steps[0] == [(0, 1440)]
    # Step 2: A's last token; B still stopped by the watermark (9 free - 6 < 5).
    assert steps[1] == [(0, 1)]
    # Step 3: B and C admitted (2 seats, 100 free).
    assert steps[2] == [(1, 96), (2, 16)]


def test_a_prompt_that_can_never_pass_the_watermark_is_rejected():
    """Sarathi would keep it at the head of its queue for ever; it is rejected so
    the requests behind it run."""
    stepper = Stepper(
        "sarathi", [(0, 1584, 2), (0, 16, 1)], num_blocks=100, watermark=0.05
    )
    assert stepper.run() == [[(1, 16)]]
    assert stepper.outcome(0) == "rejected_no_fit"


def test_a_request_preempted_past_the_watermark_is_aborted():
    """A request can grow past what admission allows: a recompute preemption then
    sends it back longer than the watermark test can ever pass. It is aborted with
    the tokens it produced, not counted as a prompt that never fit."""
    stepper = Stepper(
        "sarathi", [(0, 128, 33)], num_blocks=10, watermark=0.1, max_model_len=256
    )
    steps = stepper.run()
    # Admission: 8 prompt blocks, 10 - 8 = 2 >= the 1-block watermark. The whole
    # sequence, 128 + 33 - 1 = 160 tokens, needs all 10 blocks, so the core
    # admits it. Decodes compute positions 129..144 in the 9th block and 145 in
    # the 10th (0 free); before the next decode Sarathi finds no free block and
    # preempts the request itself, which then needs ceil(146 / 16) = 10 blocks
    # to come back, and 10 - 10 < 1: aborted.
    assert steps[0] == [(0, 128)]
    assert len(steps) == 1 + 17  # the prompt, then positions 129 to 145
    assert stepper.outcome(0) == "aborted"
    assert stepper.requests[0].num_generated == 18  # 1 from the prompt + 17
