"""Invariants of every replica scheduler over random workloads and small KV caches.

Each example drives one replica step by step (the core's own progress rules, see
``stepper.py``) and checks after every step that the KV blocks in use never
exceed the cache and match the scheduler's own accounting; at the end, that the
run terminated, every request left exactly once, completed requests generated
exactly their tokens, and every request's timestamps are in order.
"""

from __future__ import annotations

import math

import pytest
from conftest import simulate, tiny_config
from frontier.request import Outcome, Request
from frontier.workloads.trace import chain_block_hashes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schedulers.stepper import Stepper

SCHEDULERS = ("vllm_v1", "vllm", "sglang", "sarathi", "orca")


@st.composite
def scenarios(draw, kind: str):
    """A small replica (block size, max_model_len, KV blocks, options) and
    up to 10 requests that fit it, some sharing prompt prefixes."""
    block_size = draw(st.sampled_from([1, 4, 16]))
    max_model_len = draw(st.integers(8, 96))
    minimum = math.ceil(max_model_len / block_size)
    num_blocks = draw(st.integers(minimum, 3 * minimum))
    prefix_caching = draw(st.booleans())
    requests = []
    arrivals = sorted(draw(st.lists(st.floats(0, 0.2), min_size=1, max_size=10)))
    for request_id, arrived_at in enumerate(arrivals):
        prompt = draw(st.integers(1, max_model_len - 1))
        output = draw(st.integers(1, max_model_len - prompt))
        family = draw(st.integers(0, 2))
        shared = draw(st.integers(0, prompt // block_size))
        ids = [family * 1000 + i for i in range(shared)]
        ids += [
            (request_id + 1) * 100_000 + i for i in range(prompt // block_size - shared)
        ]
        hashes = chain_block_hashes(ids) if ids and prefix_caching else None
        requests.append(Request(request_id, arrived_at, prompt, output, hashes))

    options: dict = {}
    if kind == "vllm_v1":
        budget = draw(st.sampled_from([4, 16, 64, 2048]))
        options["max_num_batched_tokens"] = budget
        options["max_num_seqs"] = draw(st.integers(1, min(8, budget)))  # vLLM's rule
        options["long_prefill_token_threshold"] = draw(st.sampled_from([0, 8]))
        options["reserve_full_isl"] = draw(st.booleans())
    elif kind == "vllm":
        options["max_num_seqs"] = draw(st.integers(1, 8))
        options["watermark"] = draw(st.sampled_from([0.0, 0.01, 0.2]))
    elif kind == "sglang":
        options["chunked_prefill_size"] = draw(
            st.sampled_from([-1, block_size, 4 * block_size, 64 * block_size])
        )
        options["max_prefill_tokens"] = draw(st.sampled_from([8, 16384]))
        options["max_running_requests"] = draw(st.integers(1, 8))
        options["enable_mixed_chunk"] = draw(st.booleans())
        options["schedule_policy"] = draw(st.sampled_from(["fcfs", "lpm"]))
        options["retract_decode_steps"] = draw(st.sampled_from([1, 20]))
        # A low ratio over-admits, so that decodes run out of KV and retract.
        options["init_new_token_ratio"] = draw(st.sampled_from([0.7, 0.02]))
    elif kind == "sarathi":
        options["chunk_size"] = draw(st.sampled_from([1, 8, 512]))
        options["max_num_seqs"] = draw(st.integers(1, 8))
        options["watermark"] = draw(st.sampled_from([0.0, 0.01, 0.2]))
    else:
        options["max_batch_size"] = draw(st.integers(1, 8))
        options["reservation"] = draw(st.sampled_from(["max_model_len", "request"]))
    replica = {
        "num_blocks": num_blocks,
        "block_size": block_size,
        "max_model_len": max_model_len,
        "prefix_caching": prefix_caching,
    }
    return replica, requests, options


def _check_run(kind: str, replica: dict, requests: list[Request], options: dict):
    stepper = Stepper(kind, requests, **replica, **options)
    blocks = stepper.blocks
    steps = 0
    while (composition := stepper.step()) is not None:
        steps += 1
        assert steps < 20_000, "the run does not terminate"
        ids = [request_id for request_id, _ in composition]
        assert len(ids) == len(set(ids)), "a request twice in one batch"
        assert all(tokens > 0 for _, tokens in composition)
        assert blocks.num_used_blocks <= blocks.num_blocks
        stepper.scheduler.check_invariants()

    left = [request.request_id for request in stepper.left]
    assert sorted(left) == [r.request_id for r in requests], "each leaves once"
    for request in requests:
        assert request.outcome is not Outcome.PENDING
        if request.outcome in (Outcome.COMPLETED, Outcome.TRUNCATED):
            assert request.num_generated == request.max_output_tokens
            assert (
                request.num_tokens == request.num_prompt_tokens + request.num_generated
            )
            assert request.num_computed_tokens == request.num_tokens - 1
            assert (
                request.arrived_at
                <= request.scheduled_at
                <= request.first_token_at
                <= request.last_token_at
                == request.completed_at
            )
    if kind == "sglang" and stepper.scheduler.tree is not None:
        assert blocks.num_used_blocks == stepper.scheduler.tree.num_nodes
    else:
        assert blocks.num_used_blocks == 0


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_invariants_hold_on_random_workloads(kind):
    """Runs end; requests leave once; tokens conserved; KV within capacity."""

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    @given(scenarios(kind))
    def check(scenario):
        _check_run(kind, *scenario)

    check()


@st.composite
def pipelined_runs(draw, kind: str):
    """A whole-simulation config: 1-4 pipeline stages, 1-2 replicas, a small cache
    and up to 10 requests that fit ``max_model_len``."""
    max_model_len = draw(st.sampled_from([32, 64]))
    arrivals = sorted(draw(st.lists(st.floats(0, 0.1), min_size=1, max_size=10)))
    requests = []
    for arrived_at in arrivals:
        prompt = draw(st.integers(1, max_model_len - 1))
        requests.append(
            [arrived_at, prompt, draw(st.integers(1, max_model_len - prompt))]
        )
    return tiny_config(
        requests,
        model={"max_model_len": max_model_len},
        cache={
            "num_gpu_blocks": draw(st.integers(max_model_len // 16, 12)),
            "block_size": 16,
        },
        parallel={
            "pipeline_parallel_size": draw(st.sampled_from([1, 2, 4])),
            "num_replicas": draw(st.sampled_from([1, 2])),
        },
        replica_scheduler={"type": kind},
        cluster_scheduler={
            "type": draw(st.sampled_from(["round_robin", "least_outstanding"]))
        },
    )


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_every_request_leaves_once_under_pipeline_parallelism(kind):
    """With pipeline stages and replicas the whole simulation accounts every
    request exactly once and ends."""

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(pipelined_runs(kind))
    def check(data):
        _, result = simulate(data)
        requests = result.summary["requests"]
        assert requests["total"] == len(data["workload"]["requests"])
        assert requests["aborted"] == 0

    check()
