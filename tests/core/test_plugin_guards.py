"""A replica-scheduler plugin that forms impossible batches ends the run with an
error naming it, instead of looping for ever or miscounting tokens."""

from __future__ import annotations

import math
from collections import deque

import attrs
import numpy as np
import pytest
from conftest import StepTimeConfig, StepTimePredictor, _TestPlugins, tiny_config
from frontier.batch import Batch
from frontier.config import ClusterSchedulerConfig, ReplicaSchedulerConfig
from frontier.config_build import build_config
from frontier.errors import SimulationError
from frontier.hookspecs import hookimpl
from frontier.plugins import ClusterScheduler, OperatorTimes, ReplicaScheduler
from frontier.registry import load_plugins
from frontier.simulation import Simulation


class _Fcfs(ReplicaScheduler):
    """Whole prompts, FCFS, blocks for the whole sequence at admission; the
    subclasses below break one rule each."""

    share = None  # tokens given to each request; None: all it has left

    def __init__(self, config, context):
        super().__init__(config, context)
        self.waiting = deque()
        self.running = []

    def add_request(self, request, now):
        self.waiting.append(request)

    def schedule(self, now):
        batch = Batch()
        for request in self.running:
            left = request.num_tokens - request.num_computed_tokens
            if left > 0:
                batch.add(request, left if self.share is None else self.share(left))
        blocks = self.context.block_manager
        while self.waiting:
            request = self.waiting[0]
            if not blocks.allocate(
                request, request.num_tokens + request.max_output_tokens
            ):
                break
            self.running.append(self.waiting.popleft())
            left = request.num_tokens
            batch.add(request, left if self.share is None else self.share(left))
        return self.answer(batch)

    def answer(self, batch):
        return batch if batch.requests else None

    def on_batch_end(self, batch, finished, now):
        done = {id(r) for r in finished}
        for request in finished:
            self.context.block_manager.free(request)
        self.running = [r for r in self.running if id(r) not in done]

    @property
    def num_waiting(self):
        return len(self.waiting)

    @property
    def num_running(self):
        return len(self.running)


class _EmptyBatches(_Fcfs):
    def answer(self, batch):
        return Batch()  # an empty batch, never None


class _ZeroTokens(_Fcfs):
    share = staticmethod(lambda left: 0)


class _TooManyTokens(_Fcfs):
    share = staticmethod(lambda left: left + 1000)


class _StaleRunning(_Fcfs):
    """Forgets to drop finished requests: schedules them again and again."""

    def on_batch_end(self, batch, finished, now):
        pass


class _NeverAllocates(_Fcfs):
    """Admits every request without allocating KV blocks."""

    def schedule(self, now):
        batch = Batch()
        for request in self.running:
            batch.add(request, request.num_tokens - request.num_computed_tokens)
        while self.waiting:
            request = self.waiting.popleft()
            self.running.append(request)
            batch.add(request, request.num_tokens)
        return self.answer(batch)


class _NotABatch(_Fcfs):
    def answer(self, batch):
        return "not a batch"


_BAD_TIMES = {
    "nan": OperatorTimes(math.nan, 0.0, 0.0, 0.01, 0.0),
    "negative": OperatorTimes(-1.0, 0.0, 0.0, 0.01, 0.0),
    "infinite": OperatorTimes(0.0, math.inf, 0.0, 0.01, 0.0),
    "none": None,
    "text": ("fast", "slow", "x", "y", "z"),
}


@attrs.frozen(kw_only=True)
class _BadTimesConfig(StepTimeConfig):
    type: str = "bad_times"
    bad: str = "none"  # a key of _BAD_TIMES: what predict() returns


class _BadTimes(StepTimePredictor):
    """Returns one of ``_BAD_TIMES`` instead of operator times."""

    def predict(self, batch):
        return _BAD_TIMES[self.config.bad]


@attrs.frozen(kw_only=True)
class _FixedRouteConfig(ClusterSchedulerConfig):
    type: str = "fixed_route"
    answer: str = "0"  # what route() returns: an int's text, "numpy1" or text


class _FixedRoute(ClusterScheduler):
    """Routes every request to ``answer``, whatever it is."""

    def route(self, request, replicas):
        answer = self.config.answer
        if answer == "numpy1":
            return np.int64(1)
        try:
            return int(answer)
        except ValueError:
            return answer


class _Plugins:
    @hookimpl
    def frontier_register_cluster_schedulers(self, registry):
        registry.register("fixed_route", _FixedRoute, _FixedRouteConfig)

    @hookimpl
    def frontier_register_predictors(self, registry):
        registry.register("bad_times", _BadTimes, _BadTimesConfig)

    @hookimpl
    def frontier_register_replica_schedulers(self, registry):
        for name, cls in (
            ("not_a_batch", _NotABatch),
            ("fcfs_ok", _Fcfs),
            ("empty_batches", _EmptyBatches),
            ("zero_tokens", _ZeroTokens),
            ("too_many_tokens", _TooManyTokens),
            ("stale_running", _StaleRunning),
            ("never_allocates", _NeverAllocates),
        ):
            registry.register(name, cls, ReplicaSchedulerConfig)


def _run(kind: str, **sections):
    host = load_plugins(extra=[("tests", _TestPlugins()), ("broken", _Plugins())])
    data = tiny_config(
        [(0.0, 8, 2), (0.0, 8, 2)], replica_scheduler={"type": kind}, **sections
    )
    config = build_config(data, host.registry.config_classes())
    return Simulation(config, host).run(None)


def test_a_scheduler_returning_something_else_than_a_batch_is_named():
    """A string from schedule() failed deep in the core as Frontier's bug."""
    with pytest.raises(SimulationError, match=r"_NotABatch\) returned 'not a batch'"):
        _run("not_a_batch")


@pytest.mark.parametrize("times", sorted(_BAD_TIMES))
def test_a_predictor_returning_unusable_times_is_named(times):
    """NaN, negative or infinite times ended in 'event at t=nan' blamed on the
    core; None or text in a TypeError inside the execution model."""
    with pytest.raises(SimulationError, match=r"predictor .*_BadTimes returned"):
        _run("fcfs_ok", predictor={"type": "bad_times", "bad": times})


def test_the_well_formed_scheduler_completes():
    """The base of the broken ones runs both requests to completion."""
    assert _run("fcfs_ok").summary["requests"]["completed"] == 2


def test_an_empty_batch_is_no_batch_and_the_stall_is_reported():
    """An empty Batch used to be launched as a step that did nothing, for ever."""
    with pytest.raises(SimulationError, match="formed no batch although requests"):
        _run("empty_batches")


@pytest.mark.parametrize(
    ("kind", "given"), [("zero_tokens", r"0 token\(s\)"), ("too_many_tokens", "1008")]
)
def test_a_share_no_engine_could_run_is_refused(kind, given):
    """0 tokens looped for ever; more tokens than the request has were counted."""
    with pytest.raises(SimulationError, match=rf"gave request 0 {given}.* 8 left"):
        _run(kind)


class _BrokenRegistration:
    @hookimpl
    def frontier_register_predictors(self, registry):
        raise RuntimeError("boom")


def test_a_failing_registration_hook_names_its_distribution():
    """A plugin whose hook raises used to break every command with a traceback,
    ``frontier plugins list`` included."""
    from frontier.errors import PluginError

    with pytest.raises(PluginError, match="broken-dist: its frontier_register_pre"):
        load_plugins(extra=[("broken-dist", _BrokenRegistration())])


def test_a_finished_request_scheduled_again_is_refused():
    """A scheduler that kept finished requests in its running list made them
    generate for ever (the run never ended)."""
    # Both 8-token prompts run in step 1 (10 ms); each then decodes its second
    # and last token in step 2, and finishes at 20 ms. Step 3 schedules them again.
    with pytest.raises(SimulationError, match=r"request 0 at t=0\.020000 s, but it"):
        _run("stale_running")


def test_a_scheduler_that_never_allocates_kv_blocks_is_named():
    """Without blocks the cache never filled and throughput tripled, silently."""
    # Both 8-token prompts run in step 1 (10 ms); each decodes its second and
    # last token in step 2 and finishes at 20 ms, having computed 8 + 1 = 9
    # tokens while 0 blocks were held.
    with pytest.raises(
        SimulationError,
        match=r"finished request 0 at t=0\.020000 s after computing 9 tokens, but "
        r"the KV cache held 0 blocks of 16 tokens",
    ):
        _run("never_allocates")


@pytest.mark.parametrize("answer", ["-1", "2", "zero"])
def test_a_router_answering_no_replica_is_named(answer):
    """-1 picked the last replica silently; 2 (of 2) or text failed inside the
    core, blamed on Frontier."""
    with pytest.raises(
        SimulationError,
        match=r"\(_FixedRoute\) routed request 0 at t=0.000000 s to replica .*"
        r"from 0 to 1",
    ):
        _run(
            "fcfs_ok",
            parallel={"num_replicas": 2},
            cluster_scheduler={"type": "fixed_route", "answer": answer},
        )


def test_a_router_may_answer_a_numpy_integer():
    summary = _run(
        "fcfs_ok",
        parallel={"num_replicas": 2},
        cluster_scheduler={"type": "fixed_route", "answer": "numpy1"},
    ).summary
    assert summary["requests"]["completed"] == 2
    assert [r["batches"] > 0 for r in summary["replicas"]] == [False, True]
