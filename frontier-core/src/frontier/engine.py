"""The event queue that owns simulated time.

Events are kept in a binary heap keyed by ``(time, priority, sequence)``. Two events
at the same simulated time are ordered first by their priority (a small integer,
lower runs first) and then by the order in which they were scheduled, so a run is a
pure function of its inputs: the same config and seed give the same event order, also
for two runs in one process.

Time is in simulated seconds (float).
"""

from __future__ import annotations

import heapq
from typing import Any

__all__ = ["EventQueue", "Priority"]


class Priority:
    """Tie-break order of events that share a timestamp, lowest first.

    The order mirrors a serving engine's loop: a step that ends is accounted first
    (tokens produced, memory freed), then requests that arrived at that instant join
    the queues, and only then does a replica pick its next batch, so a request that
    arrives exactly when a step ends can join the very next step.
    """

    STAGE_END = 0
    BATCH_END = 1
    ARRIVAL = 2
    SCHEDULE = 3


class EventQueue:
    """A deterministic priority queue of ``(time, priority, kind, payload)`` events."""

    __slots__ = ("_heap", "_sequence", "now")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, int, Any]] = []
        self._sequence = 0
        self.now = 0.0

    def push(self, time: float, priority: int, kind: int, payload: Any) -> None:
        """Schedule an event of ``kind`` at ``time`` (seconds, not before ``now``).

        Raises:
            ValueError: ``time`` is before ``now`` or is NaN (which a heap cannot
                order, so it would silently scramble every later event).
        """
        if not time >= self.now:
            raise ValueError(f"event at t={time} s is before now={self.now} s")
        self._sequence += 1
        heapq.heappush(self._heap, (time, priority, self._sequence, kind, payload))

    def pop(self) -> tuple[float, int, Any]:
        """Remove the earliest event, advance ``now`` to it and return it.

        Returns:
            ``(time, kind, payload)`` of the event.
        """
        time, _priority, _sequence, kind, payload = heapq.heappop(self._heap)
        self.now = time
        return time, kind, payload

    def peek_time(self) -> float:
        """Time of the earliest event; ``inf`` when the queue is empty."""
        return self._heap[0][0] if self._heap else float("inf")

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)
