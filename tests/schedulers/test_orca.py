"""Orca scheduler: each rule as a hand-built timeline, step by step.

Steps are lists of ``(request_id, tokens)``; requests are ``(arrived_at_s,
prompt, output)``; steps take 10 ms; blocks hold 16 tokens.
"""

from __future__ import annotations

from schedulers.stepper import Stepper


def test_a_whole_prompt_runs_in_one_iteration_beside_the_decodes():
    """Iteration-level batching: no chunking, prefills join decodes."""
    stepper = Stepper("orca", [(0, 100, 3), (0.015, 200, 2)], num_blocks=1024)
    assert stepper.run() == [
        [(0, 100)],
        [(0, 1)],
        [(0, 1), (1, 200)],  # B's whole prompt beside A's last decode
        [(1, 1)],
    ]


def test_max_batch_size_bounds_the_running_requests():
    """A request waits for a seat, not for memory."""
    stepper = Stepper(
        "orca", [(0, 10, 2), (0, 10, 2)], num_blocks=1024, max_batch_size=1
    )
    assert stepper.run() == [[(0, 10)], [(0, 1)], [(1, 10)], [(1, 1)]]


def test_each_request_reserves_max_model_len_at_admission():
    """With max_model_len 64 every request takes 4 blocks, used or not."""
    stepper = Stepper(
        "orca", [(0, 8, 2), (0, 8, 2), (0, 8, 2)], num_blocks=8, max_model_len=64
    )
    first = stepper.step()
    assert first == [(0, 8), (1, 8)]  # C waits: 8 blocks reserved, 2 used
    assert stepper.blocks.num_used_blocks == 8
    assert stepper.run() == [[(0, 1), (1, 1)], [(2, 8)], [(2, 1)]]
    assert all(r.num_preemptions == 0 for r in stepper.requests)


def test_request_reservation_takes_prompt_plus_maximum_output():
    """``reservation = "request"``: 8 + 2 tokens = 1 block each, all three fit."""
    stepper = Stepper(
        "orca",
        [(0, 8, 2), (0, 8, 2), (0, 8, 2)],
        num_blocks=8,
        max_model_len=64,
        reservation="request",
    )
    assert stepper.run() == [[(0, 8), (1, 8), (2, 8)], [(0, 1), (1, 1), (2, 1)]]
