"""Data-parallel lockstep: the replicas of an expert-parallel group step together.

vLLM runs the data-parallel engines of an MoE model in lockstep
(``DPEngineCoreProc.run_busy_loop`` in ``vllm/v1/engine/core.py``): every MoE
layer gathers the tokens of all ranks, so every rank must run a forward pass in
every step. The rules reproduced here:

- A step starts on every member at once and ends, for all of them, when the
  slowest member's ends: the collectives of each MoE layer hold the faster
  members back.
- A member whose scheduler forms no batch runs a dummy batch
  (``execute_dummy_batch``: ``lockstep_dummy_tokens`` tokens, no request, no
  sampling).
- Members pad their step to the group's largest token count when every member's
  step runs as a CUDA graph (``coordinate_batch_across_dp`` in
  ``vllm/v1/worker/dp_utils.py`` pads only when the CUDA-graph mode agreed by the
  ranks is not NONE, which needs every rank's tokens within
  ``max_cudagraph_capture_size``; vLLM PR 34102, before 0.19). The padding tokens
  count in the MoE layers and their collectives.
- Asynchronous scheduling (``vllm_v1``'s ``async_scheduling``): each member
  forms its next batch when a step starts, as a lone replica does, and the group
  starts those batches when the step ends; a member with none formed then
  schedules at the step's start.
- Waves: an idle group starts stepping when a request arrives at any member. It
  stops only after a step whose number since the wave began is a multiple of 32
  when no member holds an unfinished request (``_has_global_unfinished_reqs``
  all-reduces that state only every 32 steps); until then every member runs
  dummy steps.

Decode fast-forward is off for lockstep members: every group step is simulated.
Only single-stage replicas step in lockstep (``ParallelConfig`` refuses
expert-parallel groups with pipeline stages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# XXX: decode fast-forward is not group-aware: a window would have to end at any
# member's finish or KV boundary and at the next arrival; lockstep runs step one
# at a time, about 20 % slower to simulate.

if TYPE_CHECKING:
    from frontier.batch import Batch
    from frontier.execution import ExecutionModel
    from frontier.replica import InFlightBatch, Replica

__all__ = ["WAVE_CHECK_STEPS", "LockstepGroup"]

WAVE_CHECK_STEPS = 32
"""Steps between vLLM's checks that every data-parallel rank has run out of work."""


class LockstepGroup:
    """Replicas that start every step together (module doc for the rules).

    Args:
        members: The replicas, in rank order.
        execution: Times each member's step (with the group's token counts).
        dummy_tokens: Tokens of an idle member's dummy batch.
        padding_max_tokens: Members pad to the largest token count when every
            count is at most this; 0 never pads.
        wave_check_steps: Steps between checks for the end of a wave.
    """

    def __init__(
        self,
        members: list[Replica],
        execution: ExecutionModel,
        dummy_tokens: int,
        padding_max_tokens: int,
        wave_check_steps: int = WAVE_CHECK_STEPS,
    ) -> None:
        self.members = members
        self.execution = execution
        self.dummy_tokens = dummy_tokens
        self.padding_max_tokens = padding_max_tokens
        self.wave_check_steps = wave_check_steps
        self.running = False
        """In a wave: the members keep stepping (with dummy batches if need be)."""
        self.stepping = False
        """A step is in flight."""
        self.schedule_pending = False
        self.num_steps = 0
        self._wave_steps = 0
        self._flights: list[tuple[Replica, InFlightBatch]] = []
        for member in members:
            member.group = self

    def wake(self) -> None:
        """A request arrived at a member: start a wave if none is running."""
        if not self.running:
            self.running = True
            self._wave_steps = 0

    def group_tokens(self, counts: list[int]) -> list[int]:
        """Each member's tokens in the MoE layers, after vLLM's padding rule."""
        largest = max(counts)
        if largest <= self.padding_max_tokens:
            return [largest] * len(counts)
        return counts

    def start_step(self, now: float) -> float | None:
        """Form every member's batch and start the step; return when it ends.

        Returns ``None``, starting nothing, when no member can form a batch
        although some hold requests (they wait for an arrival to change that;
        vLLM would spin dummy steps meanwhile).
        """
        members = self.members
        batches: list[Batch | None] = []
        for member in members:
            batch = member.queued
            member.queued = None
            batches.append(batch if batch is not None else member.schedule(now))
        if all(b is None for b in batches) and any(m.num_outstanding for m in members):
            return None
        counts = [self.dummy_tokens if b is None else b.num_tokens for b in batches]
        tokens = self.group_tokens(counts)
        # XXX: a padded member's own operators are timed at its real tokens; the
        # padding only counts in the MoE layers and their collectives. Its dense
        # operators on the padding cost what the largest member's do, which sets
        # the step anyway, unless the padded member's attention is the longer.
        execution = self.execution
        duration = 0.0
        for batch, own in zip(batches, tokens, strict=True):
            if batch is None:
                seconds = sum(execution.dummy_stage_times(own, tokens))
            else:
                seconds = sum(execution.stage_times(batch, tokens))
            if seconds > duration:
                duration = seconds
        ends = now + duration
        flights = []
        for member, batch in zip(members, batches, strict=True):
            if batch is None:
                member.run_dummy_step(now, ends)
            else:
                flights.append((member, member.start_lockstep_batch(batch, now, ends)))
        self._flights = flights
        self.stepping = True
        for member in members:
            if member.lookahead:
                member.queued = member.schedule(now)
        return ends

    def finish_step(self, now: float) -> list[tuple[Replica, InFlightBatch]]:
        """Account the step that ended at ``now`` on every member; return the
        members' real batches (dummy ones produce nothing)."""
        flights = self._flights
        self._flights = []
        for member, flight in flights:
            member.finish_batch(flight, now)
        self.stepping = False
        self.num_steps += 1
        self._wave_steps += 1
        if self._wave_steps % self.wave_check_steps == 0 and not any(
            m.num_outstanding for m in self.members
        ):
            self.running = False
            self._wave_steps = 0
        return flights
