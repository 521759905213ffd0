"""SGLang scheduler: each rule as a hand-built timeline, step by step.

Blocks hold one token (SGLang's default page size), so budgets read in tokens and
the KV cache holds ``num_blocks`` tokens. Steps are lists of ``(request_id,
tokens)``; requests are ``(arrived_at_s, prompt, output[, block_hashes])``; steps
take 10 ms.
"""

from __future__ import annotations

import pytest
from frontier.errors import ConfigError
from frontier.workloads.trace import chain_block_hashes
from frontier_schedulers.sglang import (
    default_chunked_prefill_size,
    default_max_running_requests,
)

from schedulers.stepper import Stepper

SYSTEM = chain_block_hashes(list(range(8)))
"""An 8-token shared prompt, one hash per token."""


def sglang(requests, **options) -> Stepper:
    """An SGLang replica with one-token blocks (4096 of them unless given)."""
    options.setdefault("num_blocks", 4096)
    return Stepper("sglang", requests, block_size=1, **options)


def test_a_prefill_batch_runs_whenever_one_can_be_formed():
    """Prefill first: a new request's prefill pauses the decodes for a step."""
    stepper = sglang([(0, 20, 4), (0.015, 10, 2)])
    assert stepper.run() == [
        [(0, 20)],
        [(0, 1)],  # B arrives at 15 ms
        [(1, 10)],  # B's prefill alone
        [(0, 1), (1, 1)],  # the running batch, in merge order: A then B
        [(0, 1)],
    ]


def test_mixed_chunk_runs_the_decodes_inside_the_prefill_batch():
    """With ``enable_mixed_chunk`` the running requests decode in the prefill batch,
    and the merged batch puts the new request first."""
    stepper = sglang([(0, 20, 4), (0.015, 10, 2)], enable_mixed_chunk=True)
    assert stepper.run() == [
        [(0, 20)],
        [(0, 1)],
        [(1, 10), (0, 1)],  # prefill of B plus A's decode
        [(1, 1), (0, 1)],  # running batch = [B, A]
    ]


@pytest.mark.parametrize(
    ("policy", "second_step"),
    [("fcfs", [(1, 8)]), ("lpm", [(2, 4)])],
)
def test_lpm_admits_the_longest_cached_prefix_first(policy, second_step):
    """FCFS takes the queue head; LPM the request with most cached prompt."""
    stepper = sglang(
        [
            (0, 8, 1, SYSTEM),
            (0.015, 8, 1, chain_block_hashes(list(range(100, 108)))),
            (0.015, 12, 1, chain_block_hashes([*range(8), 200, 201, 202, 203])),
        ],
        prefix_caching=True,
        max_running_requests=1,
        schedule_policy=policy,
    )
    steps = stepper.run()
    # A's 8 prompt tokens enter the tree. At 15 ms X (no hit) and Y (8 hit of 11
    # allowed: 4 to compute) wait; one request may run at a time.
    assert steps[0] == [(0, 8)]
    assert steps[1] == second_step


@pytest.mark.parametrize(
    ("policy", "steps"),
    [
        ("fcfs", [[(0, 40)], [(1, 4), (2, 10)]]),
        ("lpm", [[(0, 40), (2, 10)], [(1, 4)]]),
    ],
)
def test_lpm_puts_last_a_request_sharing_an_uncached_prefix_with_an_earlier_one(
    policy, steps
):
    """In-batch prefix caching: Q shares 36 uncached tokens with P, so LPM runs R
    before it and Q finds P's prompt cached a step later."""
    shared = list(range(36))
    stepper = sglang(
        [
            (0, 40, 1, chain_block_hashes([*shared, 500, 501, 502, 503])),  # P
            (0, 40, 1, chain_block_hashes([*shared, 600, 601, 602, 603])),  # Q
            (0, 10, 1, chain_block_hashes(list(range(700, 710)))),  # R
        ],
        prefix_caching=True,
        chunked_prefill_size=-1,
        max_prefill_tokens=64,
        schedule_policy=policy,
    )
    # Nothing is cached at first. FCFS: P (40 of 64), then Q's 40 > 24 left stops
    # the batch. LPM: Q shares 36 > 32 tokens with P (both with 0 <= 32 cached): Q
    # goes last, so R (10) joins P. Either way Q later hits P's 36 prompt tokens.
    assert stepper.run() == steps


def test_a_request_finished_in_a_decode_step_holds_its_seat_until_the_next():
    """SGLang's prefill counts ``len(running_batch.reqs)``, where requests that
    finished in the last decode step stay until ``update_running_batch`` filters
    them, before the next decode step."""
    stepper = sglang(
        [(0, 10, 2), (0, 10, 3), (0, 10, 10), (0, 10, 4), (0, 10, 4)],
        max_running_requests=3,
    )
    steps = stepper.run()
    # Step 1 prefills A, B, X (3 seats). Step 2 decodes: A's 2nd token ends it.
    # Step 3: the full batch skips prefill; the decode filters A and ends B.
    # Step 4: running_bs = X + finished B = 2: one seat, C alone. Step 5: no
    # seat for D; the decode filters B. Step 6: D.
    assert steps[:6] == [
        [(0, 10), (1, 10), (2, 10)],
        [(0, 1), (1, 1), (2, 1)],
        [(1, 1), (2, 1)],
        [(3, 10)],
        [(2, 1), (3, 1)],
        [(4, 10)],
    ]


@pytest.mark.parametrize(("client", "b_prefill_step"), [("output", 3), ("none", 6)])
def test_without_max_tokens_sglang_reserves_up_to_the_context(client, b_prefill_step):
    """A request without ``max_tokens`` gets ``max_new_tokens = max_req_len -
    prompt - 1`` in SGLang, and the budgets reserve that, not its real output."""
    stepper = sglang(
        [(0, 10, 5), (0.015, 10, 5)],
        num_blocks=200,
        max_model_len=1000,
        client_max_tokens=client,
    )
    steps = stepper.run()
    # max_req_len = min(999, 199) = 199. At 20 ms A holds 11 blocks (189 free)
    # with 2 of its outputs. "output": A reserves (5 - 2) x 0.7 = 2.1, so the
    # total budget is 186.9 and B (10 + 5 = 15) joins in step 3. "none": A
    # reserves (188 - 2) x 0.7 = 130.2, leaving 58.8 < B's 10 + 188 = 198; B
    # waits for A's 5th token (step 5) and prefills in step 6.
    assert steps[b_prefill_step - 1] == [(1, 10)]
    assert [r.num_generated for r in stepper.requests] == [5, 5]


def test_mixed_chunk_does_nothing_without_chunked_prefill():
    """SGLang mixes only when chunked prefill is on (``is_mixed_chunk``): with
    ``chunked_prefill_size = -1`` B's prefill runs alone, as without mixing."""
    stepper = sglang(
        [(0, 20, 4), (0.015, 10, 2)], enable_mixed_chunk=True, chunked_prefill_size=-1
    )
    assert stepper.run()[:4] == [[(0, 20)], [(0, 1)], [(1, 10)], [(0, 1), (1, 1)]]


@pytest.mark.parametrize(
    ("shared", "first"), [(31, [(0, 40), (1, 40)]), (32, [(0, 40), (2, 10)])]
)
def test_lpm_puts_last_from_exactly_32_shared_tokens(shared, first):
    """SGLang deprioritizes at ``>= 32`` matching tokens: 31 shared tokens leave
    Q in place, 32 put it after R."""
    stepper = sglang(
        [
            (0, 40, 1, chain_block_hashes([*range(shared), *range(500, 540)][:40])),
            (0, 40, 1, chain_block_hashes([*range(shared), *range(600, 640)][:40])),
            (0, 10, 1, chain_block_hashes(list(range(700, 710)))),
        ],
        prefix_caching=True,
        chunked_prefill_size=-1,
        max_prefill_tokens=89,
        schedule_policy="lpm",
    )
    # Budget 89 holds two of the three prompts but not all (40 + 40 + 10 = 90).
    # 31 shared tokens: the order stays P, Q, R and P and Q run (80). 32: Q goes
    # last, P and R run (50) and Q's 40 do not fit beside them.
    assert stepper.run()[0] == first


@pytest.mark.parametrize(("fillers", "first"), [(127, 1), (126, 128)])
def test_lpm_falls_back_to_fcfs_above_128_waiting(fillers, first):
    """With 129 waiting requests LPM does not sort; with 128 it does."""
    requests = [(0, 8, 1, SYSTEM), (0.015, 8, 1)]
    requests += [(0.015, 8, 1)] * fillers
    requests += [(0.015, 12, 1, chain_block_hashes([*range(8), 9, 10, 11, 12]))]
    stepper = sglang(
        requests, prefix_caching=True, max_running_requests=1, schedule_policy="lpm"
    )
    stepper.step()
    # X is request 1; Y is the last request (id 2 + fillers).
    assert stepper.step()[0][0] == (1 if first == 1 else 2 + fillers)


@pytest.mark.parametrize(
    ("num_blocks", "first_step"), [(120, [(0, 20)]), (121, [(0, 20), (1, 20)])]
)
def test_a_request_needs_its_input_and_outputs_below_the_total_budget(
    num_blocks, first_step
):
    """A request is refused when ``extend + max_new >= free - reserved``."""
    stepper = sglang(
        [(0, 20, 40), (0, 20, 40)], num_blocks=num_blocks, max_model_len=64
    )
    # A: 20 + 40 = 60 < 120. Then 120 - 60 = 60 left: B's 60 >= 60 is refused;
    # with 121 blocks 61 are left and B is admitted.
    assert stepper.step() == first_step


@pytest.mark.parametrize(("conservativeness", "admitted"), [(1.0, False), (0.5, True)])
def test_running_requests_reserve_their_outputs_scaled_by_the_ratio(
    conservativeness, admitted
):
    """The total budget keeps ``outputs left * new_token_ratio`` per running request."""
    stepper = sglang(
        [(0, 20, 40), (0.005, 30, 25)],
        num_blocks=100,
        max_model_len=64,
        schedule_conservativeness=conservativeness,
    )
    stepper.step()
    # At 10 ms A holds 20 blocks and has 39 outputs left: 100 - 20 = 80 free.
    # Ratio 0.7: 80 - 39 * 0.7 = 52.7 <= B's 30 + 25 = 55: refused.
    # Ratio 0.35: 80 - 39 * 0.35 = 66.35 > 55: admitted.
    assert stepper.step() == ([(1, 30)] if admitted else [(0, 1)])


def test_a_refused_request_waits_until_a_running_request_leaves():
    """NO_TOKEN marks the batch full: no prefill is tried again until a running
    request leaves, although the decaying ratio would have made room earlier."""
    stepper = sglang([(0, 20, 40), (0.005, 30, 25)], num_blocks=100, max_model_len=64)
    steps = stepper.run()
    # A's 40 tokens: prefill at step 1, decodes at steps 2-40. Step 41 (400 ms): the
    # prefill try still sees the full flag, the decode step clears it and finds
    # nothing to run, and the loop tries prefill again at once: B is admitted.
    assert steps[1:40] == [[(0, 1)]] * 39
    assert steps[40] == [(1, 30)]
    assert stepper.requests[1].scheduled_at == pytest.approx(0.40)


def test_the_input_budget_stops_a_batch_but_not_its_first_request():
    """``max_prefill_tokens`` bounds a batch's input; a longer first request runs."""
    stepper = sglang(
        [(0, 10, 1), (0, 10, 1), (0.015, 30, 1)],
        max_prefill_tokens=16,
        chunked_prefill_size=-1,
    )
    assert stepper.run() == [
        [(0, 10)],  # B's 10 > 6 left, and A was added: stop
        [(1, 10)],
        [(2, 30)],  # 30 > 16, but nothing was added yet
    ]


def test_only_one_request_is_chunked_at_a_time():
    """A long prompt is chunked; no second request is chunked until it is done."""
    stepper = sglang([(0, 40, 1), (0, 8, 1)], chunked_prefill_size=16)
    assert stepper.run() == [
        [(0, 16)],  # A chunked: 16 of 40; the chunk budget is spent
        [(0, 16)],  # A's next chunk; B may not be chunked meanwhile
        [(0, 8), (1, 8)],  # A's last 8 leave 8 of the chunk budget: B fits whole
    ]


def test_new_token_ratio_decays_per_decode_step_and_resets_when_idle():
    """The ratio drops by (0.7 - 0.098) / 600 per decode step, back to 0.7 idle."""
    stepper = sglang([(0, 4, 4)])
    decay = (0.7 - 0.7 * 0.14) / 600
    ratios = []
    while stepper.step() is not None:
        ratios.append(stepper.scheduler.new_token_ratio)
    # A prefill step does not decay; the three decode steps do.
    assert ratios == pytest.approx([0.7, 0.7 - decay, 0.7 - 2 * decay, 0.7 - 3 * decay])
    assert stepper.scheduler.new_token_ratio == 0.7  # the final idle call reset it


def test_retraction_takes_the_longest_prompt_among_equal_outputs():
    """Out of KV in decode: retract fewest outputs first, longest prompt among them;
    the ratio becomes (decoded + 20 * left) / max_new of those left."""
    stepper = sglang(
        [(0, 10, 40), (0, 14, 40)],
        num_blocks=60,
        max_model_len=128,
        clip_max_new_tokens=1,  # budgets count one future token: both fit at once
    )
    ratios = []
    steps = []
    while (step := stepper.step()) is not None:
        steps.append(step)
        ratios.append(stepper.scheduler.new_token_ratio)
    # Step 1: A 10 and B 14 tokens: 36 of 60 free. Each decode step takes 2 blocks:
    # 0 free before step 20. Both have 19 outputs; B's prompt is longer: B is
    # retracted (its 14 + 18 computed tokens freed) and A decodes alone.
    assert steps[0] == [(0, 10), (1, 14)]
    assert steps[1:19] == [[(0, 1), (1, 1)]] * 18
    assert steps[19] == [(0, 1)]
    assert ratios[19] == pytest.approx((19 + 20) / 40)
    # B (33 tokens + 1 future) does not fit beside A until A leaves after step 40.
    assert steps[40] == [(1, 33)]
    assert [r.num_preemptions for r in stepper.requests] == [0, 1]


def test_retraction_takes_the_fewest_outputs_before_the_longest_prompt():
    """The later request, with fewer outputs, is retracted though its prompt is
    shorter."""
    stepper = sglang(
        [(0, 14, 40), (0.015, 10, 40)],
        num_blocks=60,
        max_model_len=128,
        clip_max_new_tokens=1,
    )
    steps = stepper.run()
    # Steps 1-2: A prefills 14 and decodes; step 3: B prefills 10. 25 blocks held.
    # Decodes from step 4 take 2 a step: 1 free before step 21. A has 19 outputs,
    # B 18: B goes.
    assert steps[2] == [(1, 10)]
    assert steps[20] == [(0, 1)]
    assert [r.num_preemptions for r in stepper.requests] == [0, 1]


def test_a_prompt_is_cached_when_its_prefill_ends():
    """A request arriving while the first still decodes hits its prompt blocks."""
    stepper = sglang([(0, 8, 3, SYSTEM), (0.015, 8, 1, SYSTEM)], prefix_caching=True)
    assert stepper.run() == [
        [(0, 8)],  # A's 8 prompt tokens enter the tree, locked by A
        [(0, 1)],
        [(1, 1)],  # B: at most 8 - 1 = 7 tokens may hit: 1 computed
        [(0, 1)],
    ]
    assert stepper.requests[1].num_cached_tokens == 7
    stats = stepper.blocks.prefix_stats.as_dict()
    assert (stats["first_attempt_query_tokens"], stats["first_attempt_hit_tokens"]) == (
        16,
        7,
    )


def test_prompts_longer_than_the_cache_allows_are_refused_and_outputs_clipped():
    """``max_req_len = min(max_model_len - 1, KV tokens - 1)``: prompts above
    ``max_req_len - 5`` are refused, outputs cut to ``max_req_len - prompt - 1``."""
    stepper = sglang([(0, 45, 2), (0, 20, 40)], num_blocks=50, max_model_len=64)
    stepper.run()
    # max_req_len = min(63, 49) = 49: prompts above 44 refused; 49 - 20 - 1 = 28.
    assert stepper.outcome(0) == "rejected_too_long"
    assert stepper.outcome(1) == "truncated"
    assert stepper.requests[1].num_generated == 28


def test_the_tokenizer_manager_refuses_a_request_reaching_the_context_length():
    """SGLang refuses ``prompt + max_new_tokens >= context_len`` (vLLM only
    ``>``); one token less passes and is clipped by the scheduler's rule."""
    stepper = sglang([(0, 20, 44), (0, 20, 43)], max_model_len=64)
    stepper.run()
    # 20 + 44 = 64 >= 64: refused. 20 + 43 = 63 passes; max_req_len = min(63,
    # 4095) = 63, so at most 63 - 20 - 1 = 42 tokens.
    assert stepper.outcome(0) == "rejected_too_long"
    assert stepper.outcome(1) == "truncated"
    assert stepper.requests[1].num_generated == 42


def test_chunks_must_be_whole_pages():
    """SGLang requires chunked_prefill_size to be a multiple of the page size."""
    with pytest.raises(ConfigError, match="chunked_prefill_size=24 is not a multiple"):
        Stepper("sglang", [], num_blocks=64, block_size=16, chunked_prefill_size=24)


def test_chunk_size_default_depends_on_gpu_memory():
    """2048 tokens below 25,000 MiB of GPU memory, 8192 above (v0.4.6)."""
    # 24 GiB = 24,576 MiB < 25,000; 80 GiB = 81,920 MiB.
    assert (default_chunked_prefill_size(24), default_chunked_prefill_size(80)) == (
        2048,
        8192,
    )


@pytest.mark.parametrize(
    ("kv_tokens", "max_model_len", "limit"),
    [
        (400_000, 8192, 4096),  # pool min(max(25000, 2048), 4096) = 4096
        (10_000, 8192, 2048),  # pool max(625, 2048) = 2048 < 5000
        (1_000, 4096, 500),  # kv_tokens // 2 = 500
    ],
)
def test_max_running_requests_default_follows_the_kv_size(
    kv_tokens, max_model_len, limit
):
    """``min(kv_tokens // 2, min(max(kv / context * 512, 2048), 4096))``."""
    assert default_max_running_requests(kv_tokens, max_model_len) == limit


def test_a_finished_request_marks_its_cached_path_used_at_its_finish():
    """SGLang's ``cache_finished_req`` inserts the finished request's tokens,
    which sets the access time of every node on its path: LRU eviction follows
    when requests finished, not when they were prefilled."""
    a = chain_block_hashes(list(range(30)))
    b = chain_block_hashes(list(range(100, 130)))
    c = chain_block_hashes(list(range(200, 250)))
    stepper = sglang(
        [
            (0, 30, 30, a),
            (0.015, 30, 2, b),
            (1.0, 50, 1, c),
            (2.0, 30, 1, a),
            (2.0, 30, 1, b),
        ],
        num_blocks=100,
        prefix_caching=True,
    )
    stepper.run()
    # A (prefilled at 0 ms) finishes its 30 tokens at about 310 ms; B (prefilled
    # at 20 ms) finishes at 40 ms, so B's path is the least recently used. C's 50
    # blocks exceed the 40 free: SGLang evicts 50, B's 30 nodes and then 20 of
    # A's, from the leaf up. At 2 s A's copy hits A's 10 surviving blocks, B's
    # copy nothing (touching at prefill time would give A 0 and B 10).
    assert [r.num_cached_tokens for r in stepper.requests[3:]] == [10, 0]


def test_evictable_cache_counts_as_free_and_a_short_allocation_evicts_its_size():
    """The total budget counts unlocked tree blocks as free; an allocation that
    finds too few free blocks evicts as many LRU leaf blocks as it asks for."""
    prompt = chain_block_hashes(list(range(60)))
    stepper = sglang(
        [(0, 60, 1, prompt), (0.015, 50, 20)],
        num_blocks=100,
        max_model_len=128,
        prefix_caching=True,
    )
    stepper.step()
    tree = stepper.scheduler.tree
    # A leaves: its 60 prompt blocks stay in the tree, unlocked; 40 free.
    assert (tree.num_nodes, tree.num_evictable) == (60, 60)
    # B: 50 + 20 = 70 < 40 free + 60 evictable. Its 50 blocks > 40 free: 50
    # blocks are evicted, A's prompt tail first, leaving A's first 10.
    assert stepper.step() == [(1, 50)]
    assert tree.num_nodes == 10
    assert tree.peek(prompt, 60) == 10
    assert stepper.blocks.num_free_blocks == 40  # 40 + 50 evicted - 50 taken


def test_no_lookups_are_counted_with_the_cache_off():
    """With the radix cache off there is no lookup: the summary's query tokens
    stay 0, as they do for the vLLM schedulers."""
    stepper = sglang([(0, 8, 3, SYSTEM), (0.015, 8, 1, SYSTEM)], prefix_caching=False)
    stepper.run()
    assert stepper.requests[1].num_cached_tokens == 0
    stats = stepper.blocks.prefix_stats.as_dict()
    assert (
        stats["first_attempt_query_tokens"],
        stats["all_attempts_query_tokens"],
    ) == (
        0,
        0,
    )
