"""Data-parallel lockstep: two replicas of an expert-parallel group step together.

Every scenario runs Qwen3-30B-A3B on two replicas sharing the experts (EP 2), the
``step_time`` predictor (a step costs ``10 ms + 0.1 ms x tokens``), the ``free``
CC backend (collectives cost nothing, so each timestamp is a sum of step times) and
the round-robin router (request i on replica i mod 2).
"""

from __future__ import annotations

import csv

import pytest
from conftest import simulate, tiny_config
from frontier.batch import Batch
from frontier.lockstep import LockstepGroup
from frontier.request import Request
from hypothesis import given, settings
from hypothesis import strategies as st

# A on replica 0: arrives at 0, 10-token prompt, 3 output tokens.
# B on replica 1: arrives at 5 ms, 200-token prompt, 1 output token.
REQUESTS = [[0.0, 10, 3], [0.005, 200, 1]]


def run(tmp_path, **parallel):
    data = tiny_config(
        REQUESTS,
        model={"name": "Qwen/Qwen3-30B-A3B"},
        parallel={"num_replicas": 2, "expert_parallel_size": 2, **parallel},
        predictor={"base_ms": 10.0, "per_token_ms": 0.1},
        cc_backend={"type": "free"},
    )
    simulation, result = simulate(data, tmp_path)
    with (result.output_dir / "request_metrics.csv").open() as handle:
        rows = {int(r["request_id"]): r for r in csv.DictReader(handle)}
    return simulation, result, rows


def test_two_replica_timeline_by_hand(tmp_path):
    """Each step lasts as long as the slower member's; an idle member runs a dummy."""
    _, _, rows = run(tmp_path, lockstep_padding_max_tokens=0)
    a, b = rows[0], rows[1]
    # Step 1, 0-11 ms: A's prefill 10 + 0.1 x 10 = 11 ms; replica 1 has nothing
    # (B arrives at 5 ms) and runs a 1-token dummy, 10.1 ms. Step: 11 ms.
    assert float(a["first_token_at_ms"]) == pytest.approx(11.0)
    # Step 2, 11-41 ms: A decodes (10.1 ms), B prefills 200 tokens (30 ms): 30 ms.
    assert float(b["scheduled_at_ms"]) == pytest.approx(11.0)
    assert float(b["first_token_at_ms"]) == pytest.approx(41.0)
    assert float(b["ttft_ms"]) == pytest.approx(36.0)  # 41 - 5
    # Step 3, 41-51.1 ms: A decodes (10.1 ms), replica 1 runs a dummy (10.1 ms).
    assert float(a["completed_at_ms"]) == pytest.approx(51.1)
    assert float(a["tpot_ms"]) == pytest.approx(20.05)  # (51.1 - 11) / 2


def test_asynchronous_scheduling_in_a_group_by_hand(tmp_path):
    """vLLM's async scheduling in lockstep: a member forms its next batch when a
    step starts, so an arrival waits one more group step."""
    data = tiny_config(
        # round robin: A and B on replica 0, C on replica 1
        [[0.0, 10, 3], [0.001, 10, 1], [0.005, 200, 1]],
        model={"name": "Qwen/Qwen3-30B-A3B"},
        parallel={
            "num_replicas": 2,
            "expert_parallel_size": 2,
            "lockstep_padding_max_tokens": 0,
        },
        predictor={"base_ms": 10.0, "per_token_ms": 0.1},
        cc_backend={"type": "free"},
        replica_scheduler={"async_scheduling": True},
    )
    _, result = simulate(data, tmp_path)
    with (result.output_dir / "request_metrics.csv").open() as handle:
        rows = {int(r["request_id"]): r for r in csv.DictReader(handle)}
    a, c, b = rows[0], rows[1], rows[2]
    # Step 1, 0-11 ms: replica 0 prefills A (10 + 0.1 x 10 = 11 ms), replica 1 runs
    # a 1-token dummy (10.1 ms). At its start replica 0 forms [A decode].
    assert float(a["first_token_at_ms"]) == pytest.approx(11.0)
    # C (1 ms) and B (5 ms) wait for the step's end to be taken in.
    assert float(c["queued_at_ms"]) == pytest.approx(11.0)
    assert float(b["queued_at_ms"]) == pytest.approx(11.0)
    # Step 2, 11-22 ms: replica 0 runs the batch formed ahead, [A decode] (10.1
    # ms); replica 1 had none formed and schedules C's prefill (11 ms). At 11 ms
    # replica 0 forms [A decode, B prefill 200]: 10 + 0.1 x 201 = 30.1 ms.
    assert float(c["first_token_at_ms"]) == pytest.approx(22.0)
    # Step 3, 22-52.1 ms: that batch beside a dummy on replica 1.
    assert float(b["scheduled_at_ms"]) == pytest.approx(22.0)
    assert float(b["first_token_at_ms"]) == pytest.approx(52.1)
    assert float(b["ttft_ms"]) == pytest.approx(47.1)  # 52.1 - 5
    assert float(a["completed_at_ms"]) == pytest.approx(52.1)
    assert float(a["tpot_ms"]) == pytest.approx(20.55)  # (52.1 - 11) / 2
    # Synchronous scheduling would run A's decode and B's prefill in step 2
    # (11-41.1 ms): B's TTFT 36.1 ms.


def test_independent_replicas_without_lockstep(tmp_path):
    """Lockstep off: each replica keeps its own clock."""
    _, _, rows = run(tmp_path, data_parallel_lockstep=False)
    a, b = rows[0], rows[1]
    # A: prefill 0-11 ms, decodes end at 21.1 and 31.2 ms.
    assert float(a["completed_at_ms"]) == pytest.approx(31.2)
    # B: prefill 5-35 ms, at once.
    assert float(b["ttft_ms"]) == pytest.approx(30.0)


def test_wave_ends_on_a_multiple_of_32_steps(tmp_path):
    """After the last request the group runs dummy steps up to step 32."""
    simulation, result, _ = run(tmp_path, lockstep_padding_max_tokens=0)
    (group,) = simulation.lockstep_groups
    assert group.num_steps == 32
    first, second = result.summary["replicas"]
    # replica 0: steps 1-3 real, 4-32 dummy; replica 1: step 2 real, the rest dummy
    assert (first["batches"], first["dummy_steps"]) == (3, 29)
    assert (second["batches"], second["dummy_steps"]) == (1, 31)


def test_lockstep_runs_are_deterministic(tmp_path):
    """The same config gives byte-identical request metrics."""
    _, first, _ = run(tmp_path / "a")
    _, again, _ = run(tmp_path / "b")
    name = "request_metrics.csv"
    assert (first.output_dir / name).read_bytes() == (
        again.output_dir / name
    ).read_bytes()


class _Stub:
    group = None


def test_vllm_pads_only_when_every_member_fits_a_cuda_graph():
    """Counts pad to the largest when all are within the limit, else stay."""
    group = LockstepGroup([_Stub(), _Stub()], None, 1, 256)
    assert group.group_tokens([100, 1]) == [100, 100]
    assert group.group_tokens([256, 3]) == [256, 256]
    assert group.group_tokens([300, 1]) == [300, 1]
    assert LockstepGroup([_Stub(), _Stub()], None, 1, 0).group_tokens([5, 1]) == [5, 1]


class _Scheduler:
    def __init__(self, batch):
        self.batch = batch

    def schedule(self, now):
        return self.batch


class _Member:
    """A replica that forms ``batch`` (or nothing) and records what it runs."""

    group = None
    num_outstanding = 1
    queued = None
    lookahead = False

    def __init__(self, batch):
        self.scheduler = _Scheduler(batch)
        self.ran = None

    def schedule(self, now):
        return self.scheduler.schedule(now)

    def start_lockstep_batch(self, batch, now, finishes_at):
        self.ran = ("batch", now, finishes_at)
        return batch

    def run_dummy_step(self, now, finishes_at):
        self.ran = ("dummy", now, finishes_at)


class _Execution:
    """Step time: 1 ms per token the member runs; records the group counts."""

    def __init__(self):
        self.calls = []

    def stage_times(self, batch, group_tokens):
        self.calls.append(("batch", batch.num_tokens, list(group_tokens)))
        return [batch.num_tokens * 1e-3]

    def dummy_stage_times(self, num_tokens, group_tokens):
        self.calls.append(("dummy", num_tokens, list(group_tokens)))
        return [num_tokens * 1e-3]


def _batch(tokens):
    batch = Batch()
    batch.add(Request(0, 0.0, tokens, 2), tokens)
    return batch


def test_idle_member_runs_a_padded_dummy_and_the_step_waits_for_the_slowest():
    """40 tokens beside an idle member: the dummy pads to 40, the step takes 40 ms."""
    execution = _Execution()
    busy, idle = _Member(_batch(40)), _Member(None)
    group = LockstepGroup([busy, idle], execution, 1, 256)
    ends = group.start_step(2.0)
    # counts [40, 1] are within 256: both run 40 tokens in the MoE layers
    assert execution.calls == [("batch", 40, [40, 40]), ("dummy", 40, [40, 40])]
    assert ends == pytest.approx(2.04)  # max(40, 40) x 1 ms after t = 2 s
    assert busy.ran == ("batch", 2.0, ends)
    assert idle.ran == ("dummy", 2.0, ends)


def test_a_long_step_beside_a_dummy_is_not_padded():
    """300 tokens exceed the CUDA-graph limit: the dummy keeps its one token."""
    execution = _Execution()
    group = LockstepGroup([_Member(_batch(300)), _Member(None)], execution, 1, 256)
    ends = group.start_step(0.0)
    assert execution.calls == [("batch", 300, [300, 1]), ("dummy", 1, [300, 1])]
    assert ends == pytest.approx(0.3)


def test_members_holding_requests_but_forming_no_batch_wait():
    """No member can form a batch although requests remain: no step starts."""
    group = LockstepGroup([_Member(None), _Member(None)], _Execution(), 1, 256)
    assert group.start_step(0.0) is None
    assert not group.stepping


@st.composite
def lockstep_runs(draw):
    """A whole simulation with expert-parallel groups: 2 or 4 replicas in groups
    of 2 or 4, any scheduler and router, a small cache, up to 12 requests."""
    max_model_len = draw(st.sampled_from([32, 64]))
    arrivals = sorted(draw(st.lists(st.floats(0, 0.2), min_size=1, max_size=12)))
    requests = []
    for arrived_at in arrivals:
        prompt = draw(st.integers(1, max_model_len - 1))
        requests.append(
            [arrived_at, prompt, draw(st.integers(1, max_model_len - prompt))]
        )
    replicas = draw(st.sampled_from([2, 4]))
    scheduler = {
        "type": draw(st.sampled_from(["vllm_v1", "vllm", "sglang", "sarathi", "orca"]))
    }
    if scheduler["type"] == "vllm_v1":
        scheduler["async_scheduling"] = draw(st.booleans())
    return tiny_config(
        requests,
        model={"name": "Qwen/Qwen3-30B-A3B", "max_model_len": max_model_len},
        cache={"num_gpu_blocks": draw(st.integers(max_model_len // 16, 12))},
        parallel={
            "num_replicas": replicas,
            "expert_parallel_size": draw(st.sampled_from([2, replicas])),
        },
        predictor={"base_ms": 10.0, "per_token_ms": 0.1},
        replica_scheduler=scheduler,
        cluster_scheduler={
            "type": draw(st.sampled_from(["round_robin", "least_loaded"]))
        },
    )


@settings(max_examples=30, deadline=None, derandomize=True)
@given(lockstep_runs())
def test_lockstep_runs_account_every_request_and_keep_members_in_step(data):
    """Every request leaves once; every member of a group ran every group step."""
    simulation, result = simulate(data)
    requests = result.summary["requests"]
    assert requests["total"] == len(data["workload"]["requests"])
    assert requests["aborted"] == 0
    steps = sum(g.num_steps for g in simulation.lockstep_groups)
    size = len(simulation.replicas) // len(simulation.lockstep_groups)
    ran = sum(r["batches"] + r["dummy_steps"] for r in result.summary["replicas"])
    assert ran == steps * size
    # dummy steps run past the last completion, and count in the span
    assert all(r["utilisation"] <= 1 + 1e-9 for r in result.summary["replicas"])


def test_padding_never_exceeds_the_cuda_graph_limit(tmp_path):
    """Steps without a CUDA graph are not padded, whatever the padding limit."""
    data = tiny_config(
        REQUESTS,
        model={"name": "Qwen/Qwen3-30B-A3B"},
        parallel={
            "num_replicas": 2,
            "expert_parallel_size": 2,
            "lockstep_padding_max_tokens": 512,
        },
        engine={"cuda_graph_max_tokens": 0},  # enforce_eager
    )
    simulation, result = simulate(data, tmp_path)
    assert simulation.lockstep_padding_max_tokens == 0
    assert result.summary["engine"] == {
        "cuda_graph_max_tokens": 0,
        "eager_step_overhead_ms": 0.0,
    }
