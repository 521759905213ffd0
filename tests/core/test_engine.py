"""The event queue: deterministic order of same-time events, no time travel."""

from __future__ import annotations

import pytest
from frontier.engine import EventQueue, Priority


def test_earlier_time_pops_first_whatever_the_priority():
    """An event at an earlier time pops before a later one of lower priority."""
    queue = EventQueue()
    queue.push(2.0, Priority.STAGE_END, 0, "late")
    queue.push(1.0, Priority.SCHEDULE, 0, "early")
    assert [queue.pop()[2] for _ in range(2)] == ["early", "late"]


def test_same_time_events_pop_by_priority():
    """At one instant, batch ends run before arrivals, arrivals before schedules."""
    queue = EventQueue()
    queue.push(1.0, Priority.SCHEDULE, 0, "schedule")
    queue.push(1.0, Priority.ARRIVAL, 0, "arrival")
    queue.push(1.0, Priority.BATCH_END, 0, "batch end")
    queue.push(1.0, Priority.STAGE_END, 0, "stage end")
    order = [queue.pop()[2] for _ in range(4)]
    assert order == ["stage end", "batch end", "arrival", "schedule"]


def test_same_time_and_priority_pop_in_insertion_order():
    """Events that tie on time and priority pop in the order they were pushed."""
    queue = EventQueue()
    for name in ("a", "b", "c", "d"):
        queue.push(0.5, Priority.ARRIVAL, 0, name)
    assert [queue.pop()[2] for _ in range(4)] == ["a", "b", "c", "d"]


def test_pop_advances_now_and_returns_time_kind_payload():
    """Popping moves ``now`` to the event's time and returns (time, kind, payload)."""
    queue = EventQueue()
    queue.push(3.25, Priority.ARRIVAL, 7, "x")
    assert queue.pop() == (3.25, 7, "x")
    assert queue.now == 3.25


def test_pushing_into_the_past_raises():
    """An event before ``now`` is refused: simulated time never goes back."""
    queue = EventQueue()
    queue.push(5.0, Priority.ARRIVAL, 0, None)
    queue.pop()  # now = 5.0
    with pytest.raises(ValueError, match="before now"):
        queue.push(4.999, Priority.ARRIVAL, 0, None)


def test_pushing_a_nan_time_raises():
    """A NaN time (say, from a broken predictor) is refused, not queued unordered."""
    queue = EventQueue()
    with pytest.raises(ValueError, match="before now"):
        queue.push(float("nan"), Priority.BATCH_END, 0, None)


def test_pushing_at_now_is_allowed():
    """An event exactly at ``now`` is accepted (a schedule right after a batch end)."""
    queue = EventQueue()
    queue.push(5.0, Priority.BATCH_END, 0, "end")
    queue.pop()
    queue.push(5.0, Priority.SCHEDULE, 0, "schedule")
    assert queue.pop() == (5.0, 0, "schedule")


def test_peek_time_and_emptiness():
    """``peek_time`` gives the earliest time, ``inf`` once the queue is empty."""
    queue = EventQueue()
    assert not queue
    assert queue.peek_time() == float("inf")
    queue.push(2.0, Priority.ARRIVAL, 0, None)
    queue.push(1.0, Priority.ARRIVAL, 0, None)
    assert len(queue) == 2
    assert queue.peek_time() == 1.0
