"""vLLM v1 scheduler: each rule as a hand-built timeline, step by step.

Steps are lists of ``(request_id, tokens)`` in batch order; requests are
``(arrived_at_s, prompt, output[, block_hashes])``; every step takes 10 ms and
blocks hold 16 tokens unless a test says otherwise.
"""

from __future__ import annotations

import pytest
from frontier.errors import ConfigError
from frontier.kv_cache import PreemptionCachingBlockManager, PrefixCachingBlockManager
from frontier.workloads.trace import chain_block_hashes

from schedulers.stepper import Stepper


def test_running_requests_go_first_within_the_token_budget():
    """A request being prefilled keeps the budget; a new one waits for spare tokens."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 30, 3), (0, 5, 2)],
        num_blocks=64,
        max_num_batched_tokens=10,
    )
    assert stepper.run() == [
        [(0, 10)],  # A admitted, chunked to the 10-token budget; B gets none
        [(0, 10)],  # A running: 20 left -> 10
        [(0, 10)],  # A's last 10 prompt tokens; samples its 1st token
        [(0, 1), (1, 5)],  # A decodes (1), B admitted with the 9 left (5)
        [(0, 1), (1, 1)],  # A's 3rd token and B's 2nd: both done
    ]


def test_long_prefill_threshold_caps_each_request_per_step():
    """``long_prefill_token_threshold`` chunks a prompt even with budget to spare."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 20, 2), (0, 4, 2)],
        num_blocks=64,
        long_prefill_token_threshold=8,
    )
    assert stepper.run() == [
        [(0, 8), (1, 4)],  # A: 20 -> 8; B: 4 fits whole
        [(0, 8), (1, 1)],  # A: 12 -> 8; B decodes its last token
        [(0, 4)],  # A: last 4 prompt tokens, 1st token
        [(0, 1)],  # A: 2nd token
    ]


def test_preemption_frees_the_last_request_which_requeues_first():
    """On allocation failure the last running request is preempted by recompute,
    goes back ahead of older waiting requests, and no one is admitted that step."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 30, 10), (0, 30, 10), (0.005, 8, 1)],
        num_blocks=4,
        max_model_len=64,
    )
    steps = stepper.run()
    # Step 1: A and B prefill 30 tokens, 2 blocks each: 0 of 4 free. C arrives.
    # Steps 2-3: A and B decode tokens 31 and 32 (still 2 blocks); C needs 1 block.
    assert steps[:3] == [[(0, 30), (1, 30)], [(0, 1), (1, 1)], [(0, 1), (1, 1)]]
    # Step 4: A's 33rd token needs a 3rd block: B, the last running, is preempted
    # (2 blocks freed, A takes 1). C would fit in the free block but nothing is
    # admitted in a step that preempted.
    assert steps[3] == [(0, 1)]
    # Steps 5-10: B (prompt 30 + 3 generated = 33 tokens, 3 blocks) heads the queue
    # and does not fit in 1 block, so C behind it waits too; A decodes to its 10th.
    assert steps[4:10] == [[(0, 1)]] * 6
    # Step 11: A has left (4 blocks free): B re-prefills all 33 tokens, then C.
    assert steps[10] == [(1, 33), (2, 8)]
    assert steps[11:] == [[(1, 1)]] * 6  # B's tokens 5 to 10
    assert [r.num_preemptions for r in stepper.requests] == [0, 1, 0]


_CACHING_MANAGERS = pytest.mark.parametrize(
    "manager", [PrefixCachingBlockManager, PreemptionCachingBlockManager]
)


@_CACHING_MANAGERS
def test_a_preempted_request_finds_its_own_blocks_without_workload_hashes(manager):
    """vLLM hashes every full block of a request, so after a recompute preemption
    it re-admits over its own blocks still cached, even when the workload gives
    no hashes (the timeline of the test above, prefix caching on)."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 30, 10), (0, 30, 10), (0.005, 8, 1)],
        num_blocks=4,
        max_model_len=64,
        prefix_caching=True,
        manager=manager,
    )
    steps = stepper.run()
    # Step 4: B is preempted with 32 tokens computed (2 full blocks, cached under
    # its own keys); A's 3rd block evicts B's 2nd, the last freed, so B's 1st block
    # survives. Step 11 (A has left): B's 33 tokens hit 16 (1 block), it computes
    # 17 in 2 new blocks; C's 8 tokens take the last free block.
    assert steps[3] == [(0, 1)]
    assert steps[10] == [(1, 17), (2, 8)]


@_CACHING_MANAGERS
def test_a_preempted_request_hits_its_generated_blocks_too(manager):
    """Blocks of generated tokens are hashed as well: a request preempted after
    48 computed tokens (16 prompt + 32 generated) re-admits with a 48-token hit."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 16, 40), (0, 16, 60)],
        num_blocks=7,
        max_model_len=256,
        prefix_caching=True,
        manager=manager,
    )
    steps = stepper.run()
    # Each request takes a block at steps 1, 2, 18 (6 of 7). Step 34: A takes the
    # 7th; B, 48 tokens computed in 3 full blocks, preempts itself. Steps 35-40: B
    # (49 tokens: 3 cached blocks + 1 new) does not fit the 0 free blocks left
    # beside its own; A finishes its 40th token at step 40. Step 41: B hits its
    # 3 blocks (48 tokens, at most (49 - 1) // 16 = 3) and computes 1 token.
    assert steps[33] == [(0, 1)]
    assert steps[40] == [(1, 1)]
    assert stepper.requests[1].num_preemptions == 1


@pytest.mark.parametrize(
    ("stop", "first"), [(False, [(0, 60), (2, 3)]), (True, [(0, 60)])]
)
def test_without_chunking_a_prompt_over_the_budget_left_is_skipped_or_stops(
    stop, first
):
    """vLLM 0.8 to 0.11 skip a whole prompt longer than the budget left and admit
    later ones; from 0.12 (PR #28911) admission stops there."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 60, 3), (0, 10, 2), (0, 3, 2)],
        num_blocks=64,
        max_model_len=64,
        max_num_batched_tokens=64,
        enable_chunked_prefill=False,
        stop_at_unfit_prompt=stop,
    )
    steps = stepper.run()
    # Budget 64: A takes 60; B's 10 > 4 left; C's 3 fits when B is skipped.
    assert steps[0] == first
    # B keeps its place at the head: it runs in step 2 beside the decodes.
    assert (1, 10) in steps[1]


def test_a_request_with_nobody_after_it_preempts_itself():
    """The victim is the newest running request, which may be the one growing."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 20, 3), (0, 32, 3)],
        num_blocks=4,
        max_model_len=64,
    )
    steps = stepper.run()
    # Step 1: A 20 tokens (2 blocks, room up to 32), B 32 tokens (2 full blocks).
    # Step 2: A's 21st token fits; B's 33rd needs a 3rd block and B is the last
    # running request: it preempts itself.
    assert steps[:2] == [[(0, 20), (1, 32)], [(0, 1)]]
    # Step 3: A's 3rd token; B (33 tokens, 3 blocks) waits for A's 2 blocks.
    # Step 4: A has left; B re-prefills 33 tokens.
    assert steps[2:] == [[(0, 1)], [(1, 33)], [(1, 1)]]


def test_chunk_that_fills_the_last_block_allocates_no_new_block():
    """Blocks held always equal ceil(computed tokens / 16): no phantom block."""
    stepper = Stepper("vllm_v1", [(0, 24, 2)], num_blocks=8, max_num_batched_tokens=8)
    used = []
    while stepper.step() is not None:
        used.append(stepper.blocks.num_used_blocks)
    # Chunks of 8: 8 tokens -> 1 block; 16 -> 1 block (fills it); 24 -> 2 blocks;
    # then the decode step ends the request and frees both.
    assert used == [1, 1, 2, 0]


def test_without_chunked_prefill_a_prompt_waits_to_run_whole():
    """With chunking off a prompt larger than the budget left waits for a step."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 40, 2), (0, 30, 2)],
        num_blocks=16,
        max_model_len=64,
        max_num_batched_tokens=64,
        enable_chunked_prefill=False,
    )
    # Step 1: A takes 40 of 64; B's 30 > 24 left, and is not chunked.
    assert stepper.run() == [[(0, 40)], [(0, 1), (1, 30)], [(1, 1)]]


def test_without_chunked_prefill_the_budget_must_hold_max_model_len():
    """vLLM refuses a budget below max_model_len when prompts cannot be chunked."""
    with pytest.raises(ConfigError, match="max_num_batched_tokens=32 is smaller"):
        Stepper(
            "vllm_v1",
            [],
            num_blocks=16,
            max_model_len=64,
            max_num_batched_tokens=32,
            enable_chunked_prefill=False,
        )


def test_without_chunked_prefill_an_unset_budget_rises_to_max_model_len():
    """The default budget (2048 on an A100) becomes max_model_len (4096)."""
    stepper = Stepper(
        "vllm_v1", [], num_blocks=256, max_model_len=4096, enable_chunked_prefill=False
    )
    assert stepper.scheduler.max_num_batched_tokens == 4096


@pytest.mark.parametrize(
    ("device", "limits"),
    [
        ("a100-80gb", (2048, 256)),  # >= 70 GiB but an A100
        ("h100-sxm", (8192, 1024)),  # 79.65 GiB, not an A100
        ("a800", (8192, 1024)),  # the name does not contain "a100"
        ("l40s", (2048, 256)),  # 44.99 GiB < 70 GiB
    ],
)
def test_engine_defaults_follow_the_gpu(device, limits):
    """Unset budget and max_num_seqs take vLLM's serving defaults for the GPU."""
    stepper = Stepper("vllm_v1", [], num_blocks=16, device=device)
    scheduler = stepper.scheduler
    assert (scheduler.max_num_batched_tokens, scheduler.max_num_seqs) == limits


def test_prefix_hit_covers_full_blocks_and_leaves_the_last_token():
    """A repeated prompt hits its full cached blocks but never its last token."""
    blocks = chain_block_hashes([1, 2, 3])
    stepper = Stepper(
        "vllm_v1",
        [(0, 48, 1, blocks), (0.015, 48, 1, blocks), (0.025, 40, 1, blocks[:2])],
        num_blocks=16,
        prefix_caching=True,
    )
    assert stepper.run() == [
        [(0, 48)],  # A computes all 3 blocks and leaves; they stay cached
        [(1, 16)],  # B: (48 - 1) // 16 = 2 blocks may hit: 32 cached, 16 computed
        [(2, 8)],  # C: 40 tokens, 2 full blocks, both hit: 8 computed
    ]
    assert [r.num_cached_tokens for r in stepper.requests] == [0, 32, 32]


def test_prefix_hashes_chain_over_the_parent_block():
    """Equal block contents after a different first block do not hit."""
    stepper = Stepper(
        "vllm_v1",
        [
            (0, 48, 1, chain_block_hashes([1, 2, 3])),
            (0.015, 48, 1, chain_block_hashes([9, 2, 3])),
        ],
        num_blocks=16,
        prefix_caching=True,
    )
    assert stepper.run() == [[(0, 48)], [(1, 48)]]


def test_free_cached_blocks_are_evicted_least_recently_used_tail_first():
    """Freed blocks join the LRU queue last block first, so a prompt's tail is
    evicted before its prefix."""
    a = chain_block_hashes([1, 2, 3])
    stepper = Stepper(
        "vllm_v1",
        [
            (0, 48, 1, a),
            (0.015, 32, 1, chain_block_hashes([7, 8])),
            (0.025, 49, 1, a),
        ],
        num_blocks=4,
        max_model_len=64,
        prefix_caching=True,
    )
    # A holds blocks 0-2 and leaves: free queue [3, 2(a3), 1(a2), 0(a1)].
    # B takes blocks 3 and 2, evicting a3. C (49 tokens: 3 full blocks may hit)
    # finds a1 and a2 only: 32 cached, 17 computed.
    assert stepper.run() == [[(0, 48)], [(1, 32)], [(2, 17)]]
    assert stepper.requests[2].num_cached_tokens == 32


def test_hit_rates_of_first_attempts_and_of_all_attempts_are_apart():
    """A preempted request's re-admission hits its own cached prompt block; only
    the all-attempts rate counts it."""
    stepper = Stepper(
        "vllm_v1",
        [(0, 30, 10, chain_block_hashes([1])), (0, 30, 10, chain_block_hashes([2]))],
        num_blocks=4,
        max_model_len=64,
        prefix_caching=True,
    )
    steps = stepper.run()
    # As in the preemption timeline: B is preempted in step 4 and re-admitted in
    # step 11 with 33 tokens; its first block (hash 2) is still cached: 16 hit.
    assert steps[10] == [(1, 17)]
    stats = stepper.blocks.prefix_stats.as_dict()
    assert stats["first_attempt_query_tokens"] == 60  # 30 + 30
    assert stats["first_attempt_hit_tokens"] == 0
    assert stats["all_attempts_query_tokens"] == 93  # 60 + 33
    assert stats["all_attempts_hit_tokens"] == 16
    assert stats["all_attempts_hit_rate"] == pytest.approx(16 / 93)


def test_full_sequence_gate_refuses_a_prompt_whose_whole_does_not_fit():
    """With ``reserve_full_isl`` admission needs blocks for the whole sequence, so
    the over-admission that ends in a preemption does not happen."""
    requests = [(0, 32, 2), (0, 63, 1)]
    options = {
        "num_blocks": 4,
        "max_model_len": 64,
        "max_num_batched_tokens": 64,
        "long_prefill_token_threshold": 16,
    }
    plain = Stepper("vllm_v1", requests, **options)
    assert plain.run() == [
        [(0, 16), (1, 16)],  # both admitted on their first chunk (1 block each)
        [(0, 16), (1, 16)],  # 2 blocks each: 0 free; A samples
        [(0, 1)],  # A's 33rd token needs a block: B preempted
        [(1, 16)],
        [(1, 16)],
        [(1, 16)],
        [(1, 15)],  # B's 63rd prompt token; done
    ]
    assert plain.requests[1].num_preemptions == 1

    gated = Stepper("vllm_v1", requests, reserve_full_isl=True, **options)
    assert gated.run() == [
        [(0, 16)],  # A's 32 tokens need 2 blocks: fits; B's 63 need 4 > 3 free
        [(0, 16)],  # 2 free < 4
        [(0, 1)],  # A's 3rd block (1 free < 4); A done
        [(1, 16)],
        [(1, 16)],
        [(1, 16)],
        [(1, 15)],
    ]
    assert gated.requests[1].num_preemptions == 0
