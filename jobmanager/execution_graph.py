"""The execution graph of one job: its state machine and the states of its subtasks.

Pure: events come in (slots granted, task state changes, cancel, lost TaskManager), and the
graph answers with what the JobMaster must do. No I/O, no clocks, so tests drive it directly.
Job states are Flink's: CREATED, RUNNING, FINISHED, FAILING, FAILED, CANCELLING, CANCELED.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CREATED, RUNNING, FINISHED = "CREATED", "RUNNING", "FINISHED"
FAILING, FAILED, CANCELLING, CANCELED = "FAILING", "FAILED", "CANCELLING", "CANCELED"
RESTARTING = "RESTARTING"
TERMINAL_JOB_STATES = (FINISHED, FAILED, CANCELED)
#: how many failures a job's exception history keeps (the newest)
MAX_FAILURES = 100
TERMINAL_TASK_STATES = ("FINISHED", "FAILED", "CANCELED")
TASK_STATES = (
    ("CREATED", "SCHEDULED", "DEPLOYING", "RUNNING") + TERMINAL_TASK_STATES + ("CANCELING",)
)


@dataclass
class VertexInfo:
    id: str
    name: str
    parallelism: int
    slot_sharing_group: str = "default"


@dataclass
class Subtask:
    vertex_id: str
    index: int
    location: str = ""  # TaskManager address
    resource_id: str = ""
    records_in: int = 0
    records_out: int = 0
    input_bytes_read: int = 0  # a source reading files: of its input_bytes_total
    input_bytes_total: int = 0
    #: when its execution was deployed and when it ended, in epoch ms (-1: not yet): a
    #: subtask's start-time and end-time in Flink's REST API. Set with ``state``.
    start_ms: int = -1
    end_ms: int = -1
    #: the clock of those times (the execution graph's)
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    _state: str = field(default="CREATED", init=False)

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        if state in ("CREATED", "SCHEDULED"):  # a new execution, not yet deployed
            self.start_ms = self.end_ms = -1
        elif state == "DEPLOYING" or (state == "RUNNING" and self.start_ms < 0):
            self.start_ms, self.end_ms = int(self.clock() * 1000), -1
        elif state in TERMINAL_TASK_STATES and self._state not in TERMINAL_TASK_STATES:
            self.end_ms = int(self.clock() * 1000)
        self._state = state


@dataclass
class Decision:
    """What the JobMaster must do after an event."""

    cancel_tasks: bool = False
    release_slots: bool = False
    job_state_changed: bool = False
    #: the job is RESTARTING: run attempt + 1 after this many seconds
    restart_after: float | None = None


@dataclass
class ExecutionGraph:
    job_id: str
    name: str
    vertices: list[VertexInfo]
    state: str = CREATED
    attempt: int = 0
    failure: str = ""
    status_message: str = ""
    subtasks: dict[tuple[str, int], Subtask] = field(default_factory=dict)
    #: asked when the job fails: seconds until a restart, or None to fail for good
    restart_policy: Any = None
    restarts: int = 0
    #: every failure, oldest first: (root cause text, the subtask or TaskManager it came from,
    #: when it was seen in epoch ms)
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    #: the clock of failure times (epoch seconds); a test may pass its own
    clock: Callable[[], float] = time.time
    _pending_restart: float | None = None
    _stopping: bool = False
    #: the attempt's cause so far is a producer that failed because its consumer had ended
    _cause_consequential: bool = False

    @classmethod
    def from_plan(cls, job_id: str, plan: dict[str, Any]) -> ExecutionGraph:
        vertices = [
            VertexInfo(
                node["id"],
                node["contents"],
                int(node["parallelism"]),
                node.get("slot_sharing_group", "default"),
            )
            for node in plan["nodes"]
        ]
        graph = cls(job_id, plan.get("name", "job"), vertices)
        graph.reset_subtasks()
        return graph

    def _now(self) -> float:
        return self.clock()  # whatever clock the graph has when asked

    def reset_subtasks(self) -> None:
        self.subtasks = {
            (v.id, i): Subtask(v.id, i, clock=self._now)
            for v in self.vertices
            for i in range(v.parallelism)
        }

    # -------------------------------------------------------------- scheduling

    def slots_required(self) -> int:
        groups: dict[str, int] = {}
        for vertex in self.vertices:
            groups[vertex.slot_sharing_group] = max(
                groups.get(vertex.slot_sharing_group, 0), vertex.parallelism
            )
        return sum(groups.values())

    def slot_numbers(self) -> dict[tuple[str, int], int]:
        """The job's slot (0 .. slots_required()-1) of each subtask, as :meth:`assign` places
        them: subtasks with the same number share a slot (and a slot process)."""
        groups: list[str] = []
        for vertex in self.vertices:
            if vertex.slot_sharing_group not in groups:
                groups.append(vertex.slot_sharing_group)
        offset, group_offset = 0, {}
        for group in groups:
            group_offset[group] = offset
            offset += max(v.parallelism for v in self.vertices if v.slot_sharing_group == group)
        return {
            (vertex.id, index): group_offset[vertex.slot_sharing_group] + index
            for vertex in self.vertices
            for index in range(vertex.parallelism)
        }

    def assign(self, slots: list[tuple[str, str]]) -> dict[tuple[str, int], tuple[str, str]]:
        """Place subtasks on slots ``[(resource_id, address), ...]`` with slot sharing:
        subtask i of every vertex of a sharing group goes to the group's slot i."""
        groups: list[str] = []
        for vertex in self.vertices:
            if vertex.slot_sharing_group not in groups:
                groups.append(vertex.slot_sharing_group)
        offset, group_offset = 0, {}
        for group in groups:
            group_offset[group] = offset
            offset += max(v.parallelism for v in self.vertices if v.slot_sharing_group == group)
        placement = {}
        for vertex in self.vertices:
            for index in range(vertex.parallelism):
                resource_id, address = slots[group_offset[vertex.slot_sharing_group] + index]
                subtask = self.subtasks[(vertex.id, index)]
                subtask.resource_id, subtask.location = resource_id, address
                subtask.state = "DEPLOYING"
                placement[(vertex.id, index)] = (resource_id, address)
        self.state = RUNNING
        self.status_message = ""
        return placement

    # -------------------------------------------------------------- events

    def task_state_changed(
        self,
        vertex_id: str,
        index: int,
        attempt: int,
        state: str,
        failure: str = "",
        consequential: bool = False,
    ) -> Decision:
        """A subtask's report. The first FAILED one is the attempt's cause, unless it only
        failed because a consumer had closed its input (``consequential``): the consumer's own
        failure, reported later in the same attempt, replaces it as the cause."""
        decision = Decision()
        subtask = self.subtasks.get((vertex_id, index))
        if subtask is None or attempt != self.attempt or self.state in TERMINAL_JOB_STATES:
            return decision  # a late message from an earlier attempt
        if subtask.state in TERMINAL_TASK_STATES:
            return decision
        subtask.state = state
        if state == "FAILED":
            cause, where = failure or f"task {vertex_id}[{index}] failed", f"{vertex_id}[{index}]"
            if self.state in (RUNNING, CREATED):
                self._failing(cause, where)
                self._cause_consequential = consequential
                decision.cancel_tasks = True
                decision.job_state_changed = True
            elif self.state == FAILING and self._cause_consequential and not consequential:
                self.failure = cause
                self._cause_consequential = False
                self.failures[-1] = (cause, where, self.failures[-1][2])
        return self._settle(decision)

    def _failing(self, cause: str, where: str) -> None:
        self.state = FAILING
        self.failure = cause
        self._record_failure(cause, where)
        self._pending_restart = self.restart_policy() if self.restart_policy else None

    def _record_failure(self, cause: str, where: str) -> None:
        """Keep the newest ``MAX_FAILURES`` failures: a job restarting for weeks must not grow
        its history without bound (Flink keeps a bounded exception history too)."""
        self.failures.append((cause, where, int(self.clock() * 1000)))
        del self.failures[:-MAX_FAILURES]

    def begin_attempt(self) -> None:
        """After RESTARTING's delay: a new attempt waits for slots like a new job."""
        self.attempt += 1
        self.restarts += 1
        self.reset_subtasks()
        self.state = CREATED

    def taskmanager_lost(self, resource_id: str, reason: str) -> Decision:
        decision = Decision()
        if self.state in TERMINAL_JOB_STATES:
            return decision
        lost = [s for s in self.subtasks.values() if s.resource_id == resource_id]
        if not lost:
            return decision
        for subtask in lost:
            if subtask.state not in TERMINAL_TASK_STATES:
                subtask.state = "FAILED"
        if self.state in (RUNNING, CREATED):
            self._failing(f"TaskManager {resource_id} was lost ({reason})", resource_id)
            decision.cancel_tasks = True
            decision.job_state_changed = True
        return self._settle(decision)

    def cancel(self) -> Decision:
        decision = Decision()
        if self.state in TERMINAL_JOB_STATES or self.state == CANCELLING:
            return decision
        if self.state in (CREATED, RESTARTING):
            self.state = CANCELED
            decision.job_state_changed = True
            decision.release_slots = True
            return decision
        self.state = CANCELLING
        decision.cancel_tasks = True
        decision.job_state_changed = True
        return self._settle(decision)

    def stop(self) -> Decision:
        """End the job after a savepoint (``strom stop``): cancel its tasks, end FINISHED."""
        decision = self.cancel()
        self._stopping = True
        return self._settle(decision)

    def fail(self, reason: str, restartable: bool = True) -> Decision:
        """Fail the job from outside its tasks (a deployment that did not load, a slot
        timeout, too many failed checkpoints), under the restart strategy like a failed task.

        Subtasks no TaskManager has reported yet (CREATED, SCHEDULED, DEPLOYING) count as
        failed: a deployment that could not load reports nothing, and waiting for them kept
        the job FAILING (and a cancel CANCELLING) for good. Any of them that do run are
        cancelled with the rest, and their late reports are ignored."""
        if self.state in TERMINAL_JOB_STATES:
            return Decision()
        decision = Decision(job_state_changed=True, release_slots=True)
        if self.state in (CREATED, RESTARTING):
            self.failure = reason
            self._record_failure(reason, "JobManager")
            self.state = FAILED
            return decision
        for subtask in self.subtasks.values():
            if subtask.state in ("CREATED", "SCHEDULED", "DEPLOYING"):
                subtask.state = "FAILED"
        if self.state == RUNNING:
            self._failing(reason, "JobManager")
            if not restartable:
                self._pending_restart = None
        else:
            self._record_failure(reason, "JobManager")
        return self._settle(Decision(job_state_changed=True, cancel_tasks=True))

    def _settle(self, decision: Decision) -> Decision:
        states = [s.state for s in self.subtasks.values()]
        if not all(s in TERMINAL_TASK_STATES for s in states):
            return decision
        if self.state == RUNNING:
            if all(s == "FINISHED" for s in states):
                self.state = FINISHED
        elif self.state == FAILING:
            if self._pending_restart is not None:
                self.state = RESTARTING
                decision.restart_after = self._pending_restart
                decision.release_slots = True
                decision.job_state_changed = True
                return decision
            self.state = FAILED
        elif self.state == CANCELLING:
            self.state = FINISHED if self._stopping else CANCELED
        if self.state in TERMINAL_JOB_STATES:
            decision.job_state_changed = True
            decision.release_slots = True
        return decision

    # -------------------------------------------------------------- views

    def task_counts(self, vertex_id: str | None = None) -> dict[str, int]:
        counts = {state: 0 for state in TASK_STATES}
        for subtask in self.subtasks.values():
            if vertex_id is None or subtask.vertex_id == vertex_id:
                counts[subtask.state] = counts.get(subtask.state, 0) + 1
        return counts

    def vertex_state(self, vertex_id: str) -> str:
        states = {s.state for s in self.subtasks.values() if s.vertex_id == vertex_id}
        if "FINISHED" in states and states & {"CREATED", "SCHEDULED", "DEPLOYING"}:
            return "RUNNING"  # a BATCH stage part of which finished (as Flink shows it)
        for state in ("FAILED", "CANCELING", "RUNNING", "DEPLOYING", "CANCELED", "CREATED"):
            if state in states:
                return state
        return "FINISHED" if states == {"FINISHED"} else next(iter(states), "CREATED")
