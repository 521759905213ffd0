"""Cluster routers: which replica each request goes to, on two replicas."""

from __future__ import annotations

import csv

import pytest
from conftest import simulate, tiny_config
from frontier.request import Request
from frontier_schedulers.routers import LeastLoadedConfig, LeastLoadedRouter


def replicas_of(result) -> list[int]:
    """The replica of each request, by request id."""
    with (result.output_dir / "request_metrics.csv").open() as handle:
        by_id = {
            int(r["request_id"]): int(r["replica_id"]) for r in csv.DictReader(handle)
        }
    return [by_id[i] for i in sorted(by_id)]


def route(run_scenario, tmp_path, router, requests, **sections):
    _, result = run_scenario(
        requests,
        output_dir=tmp_path,
        parallel={"num_replicas": 2},
        cluster_scheduler={"type": router},
        **sections,
    )
    return replicas_of(result)


# A long request, then three short ones spaced out (10 ms steps):
# R0 at 0 (50 outputs, busy until 500 ms), R1 at 1 ms (2 outputs, done at 21 ms),
# R2 at 50 ms (2 outputs, done at 70 ms), R3 at 60 ms.
SPACED = [[0.0, 10, 50], [0.001, 10, 2], [0.05, 10, 2], [0.06, 10, 2]]


def test_round_robin_takes_replicas_in_turn(run_scenario, tmp_path):
    """Request i goes to replica i mod 2, whatever their load."""
    assert route(run_scenario, tmp_path, "round_robin", SPACED) == [0, 1, 0, 1]


def test_least_outstanding_takes_the_least_loaded_replica(run_scenario, tmp_path):
    """Fewest outstanding requests, ties to the lowest index."""
    # R0: tie -> 0. R1: 0 holds R0 -> 1. R2: R1 left, 0 holds R0 -> 1.
    # R3: R2 still runs on 1, R0 on 0: tie -> 0.
    assert route(run_scenario, tmp_path, "least_outstanding", SPACED) == [0, 1, 1, 0]


def test_random_is_reproducible_for_a_seed(run_scenario, tmp_path):
    """The same seed routes the same way; both replicas get requests."""
    requests = [[0.001 * i, 10, 2] for i in range(40)]
    first = route(run_scenario, tmp_path / "a", "random", requests)
    again = route(run_scenario, tmp_path / "b", "random", requests)
    assert first == again
    assert set(first) == {0, 1}


def test_random_depends_on_the_seed(tmp_path):
    """Another seed gives another assignment."""
    requests = [[0.001 * i, 10, 2] for i in range(40)]
    assignments = []
    for seed in (1, 2):
        data = tiny_config(
            requests, parallel={"num_replicas": 2}, cluster_scheduler={"type": "random"}
        )
        data["seed"] = seed
        _, result = simulate(data, tmp_path / str(seed))
        assignments.append(replicas_of(result))
    assert assignments[0] != assignments[1]


@pytest.mark.parametrize("scheduler", ["vllm_v1", "sglang"])
def test_prefix_aware_follows_the_cached_prefix(tmp_path, scheduler):
    """The replica holding the longest cached prefix wins; without a hit, the
    least loaded one."""
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "arrived_at,num_prefill_tokens,num_decode_tokens,block_hash_ids\n"
        "0.0,48,2,1|2|3\n"  # no cache anywhere: tie -> replica 0
        "0.001,48,2,4|5|6\n"  # no hit; replica 0 busy -> 1
        "0.05,64,2,1|2|3|7\n"  # 1|2|3 cached on replica 0
        "0.06,64,2,1|2|3|8\n"  # still replica 0, though busier than 1
    )
    data = tiny_config(
        [],
        parallel={"num_replicas": 2},
        cluster_scheduler={"type": "prefix_aware"},
        replica_scheduler={"type": scheduler},
    )
    data["workload"] = {"type": "trace", "path": str(trace)}
    _, result = simulate(data, tmp_path / "out")
    assert replicas_of(result) == [0, 1, 0, 0]


class _Counts:
    """A replica as the router sees it: its scheduler's waiting and running."""

    def __init__(self, waiting, running):
        self.scheduler = self
        self.num_waiting = waiting
        self.num_running = running


def _least_loaded(**options):
    return LeastLoadedRouter(LeastLoadedConfig(**options), 2, 0)


def _at(seconds):
    return Request(0, seconds, 10, 2)


def test_least_loaded_weighs_a_waiting_request_as_four_running():
    """Scores 4 x waiting + running: (1 waiting, 2 running) = 6 loses to 5 running."""
    router = _least_loaded()
    assert router.route(_at(0.0), [_Counts(1, 2), _Counts(0, 5)]) == 1


def test_least_loaded_ties_go_to_the_lowest_index():
    """Equal scores (4 x 1 + 0 = 0 + 4): replica 0."""
    router = _least_loaded()
    assert router.route(_at(0.0), [_Counts(1, 0), _Counts(0, 4)]) == 0


def test_least_loaded_counts_its_own_requests_between_refreshes():
    """Within 100 ms each routed request adds a waiting one to its replica."""
    router = _least_loaded()
    replicas = [_Counts(0, 3), _Counts(0, 5)]
    # scores 3 vs 5 -> 0, then 0 counts one more waiting: 7 vs 5 -> 1,
    # then 7 vs 9 -> 0 (the replicas' own counts never changed)
    choices = [router.route(_at(0.01 * i), replicas) for i in range(3)]
    assert choices == [0, 1, 0]


def test_least_loaded_rereads_the_counts_after_the_interval():
    """At 100 ms the view is refreshed from the replicas."""
    router = _least_loaded()
    replicas = [_Counts(0, 3), _Counts(0, 5)]
    assert router.route(_at(0.0), replicas) == 0  # view: 0 now 1 waiting, 7
    replicas[0].num_running = 9  # the replica itself moved on
    # 0.05 s: stale view 7 vs 5 -> 1. 0.1 s: fresh 9 vs 5 -> 1 again.
    assert router.route(_at(0.05), replicas) == 1
    assert router.route(_at(0.1), replicas) == 1
    # fresh view at 0.1 s plus that request: 9 vs 4 + 5 = 9 -> tie -> 0
    assert router.route(_at(0.15), replicas) == 0


def test_least_loaded_with_fresh_counts_reads_every_request():
    """stats_interval_s = 0: every request sees the replicas' own counts."""
    router = _least_loaded(stats_interval_s=0.0)
    replicas = [_Counts(0, 3), _Counts(0, 5)]
    assert [router.route(_at(0.0), replicas) for _ in range(2)] == [0, 0]


def test_least_loaded_in_a_run_spreads_a_burst(run_scenario, tmp_path):
    """Four requests at once (10 ms steps): they alternate as their waits add up."""
    # R0: tie -> 0 (+4 there). R1: 4 vs 0 -> 1. R2: 4 vs 4 -> 0. R3: 8 vs 4 -> 1.
    requests = [[0.0, 10, 2]] * 4
    assert route(run_scenario, tmp_path, "least_loaded", requests) == [0, 1, 0, 1]
