"""The master of one job as a pure state machine: events in, effects out.

A :class:`JobMaster` owns its job's :class:`~jobmanager.execution_graph.ExecutionGraph` and
restart strategy and consumes the events of the job's life — submitted, slots offered or not,
a deployment done or failed, a task's state, a TaskManager lost, cancel, stop after a
savepoint, too many failed checkpoints, a timer fired, leadership lost — answering each with
the effects to carry out: request slots, deploy, cancel the tasks, release the slots, start a
timer, give up the pending checkpoints, archive the ended job. It does no I/O and reads no
clock (every event brings ``now``), so tests drive every transition with a fake clock
(tests/test_job_master_events.py); :mod:`jobmanager.dispatcher` is the shell that runs the
JobMasters on its loop and carries their effects out.

The job's states are Flink's::

    CREATED (waiting for slots) ──slots──▶ RUNNING (deploying, then running) ──▶ FINISHED
       │  └─slot.request.timeout──▶ FAILED      │ task failed / TaskManager lost / deploy failed
       │                                        ▼
       │                         FAILING ─(restart strategy: delay)─▶ RESTARTING ─timer─▶ CREATED
       │                            └──(no more restarts)──▶ FAILED
       └─cancel──▶ CANCELED      RUNNING ─cancel─▶ CANCELLING ──tasks ended──▶ CANCELED
                                 RUNNING ─savepoint then stop─▶ CANCELLING ──▶ FINISHED
    any state not ended ─leadership lost─▶ SUSPENDED

Timers are effects too: :class:`StartTimer` carries a token, and a fired timer whose token is
no longer the job's current one for that kind is ignored, so no timer is ever cancelled.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from jobmanager.execution_graph import (
    CREATED,
    RESTARTING,
    RUNNING,
    TERMINAL_JOB_STATES,
    Decision,
    ExecutionGraph,
)
from jobmanager.restart_strategy import NoRestart, RestartStrategy

#: a job whose JobManager lost its leadership (Flink's JobStatus.SUSPENDED)
SUSPENDED = "SUSPENDED"
#: timer kinds
SLOT_REQUEST_TIMEOUT = "slot-request-timeout"
RESTART = "restart"

Placement = dict[tuple[str, int], tuple[str, str]]


# ------------------------------------------------------------------ effects


@dataclass(frozen=True)
class RequestSlots:
    """The job waits for ``count`` slots: the slot pool answers with
    :meth:`JobMaster.slots_offered` (all of them at once) or :meth:`JobMaster.slots_unavailable`."""

    count: int


@dataclass(frozen=True)
class Deploy:
    """Deploy attempt ``attempt`` of the job's subtasks where ``placement`` says
    ((vertex, subtask) → (resource id, TaskManager address)); answer with
    :meth:`JobMaster.deployed` or :meth:`JobMaster.deploy_failed`."""

    attempt: int
    placement: Placement


@dataclass(frozen=True)
class CancelTasks:
    """Tell the TaskManagers running attempt ``attempt`` of the job to cancel it."""

    attempt: int


@dataclass(frozen=True)
class ReleaseSlots:
    """Give the job's slots back to the pool."""


@dataclass(frozen=True)
class StartTimer:
    """Call :meth:`JobMaster.timer_fired` with ``kind`` and ``token`` at ``at`` (epoch s)."""

    kind: str
    at: float
    token: int


@dataclass(frozen=True)
class AbortCheckpoints:
    """Give up the job's pending checkpoints (it restarts or is suspended)."""

    reason: str


@dataclass(frozen=True)
class StateChanged:
    """The job is now in ``state`` (log it, wake whoever waits for the job)."""

    state: str


@dataclass(frozen=True)
class JobTerminated:
    """The job reached a final state: archive it, clean up its checkpoints, forget it in
    high availability."""

    state: str


Effect = RequestSlots | Deploy | CancelTasks | ReleaseSlots | StartTimer | AbortCheckpoints
Effect = Effect | StateChanged | JobTerminated


class JobMaster:
    """One job's state machine (see the module's docstring)."""

    def __init__(
        self,
        graph: ExecutionGraph,
        strategy: RestartStrategy | None = None,
        slot_request_timeout_s: float = 300.0,
    ) -> None:
        self.graph = graph
        self.strategy = strategy or NoRestart()
        self.slot_request_timeout_s = slot_request_timeout_s
        #: the time of the event being handled (every event brings it)
        self.now = 0.0
        #: the attempt whose deployment is under way (None: none is)
        self.deploying: int | None = None
        #: when the pending restart is due (epoch s), while RESTARTING
        self.restart_at = 0.0
        self._tokens = itertools.count(1)
        self._timers: dict[str, int] = {}
        #: the pool's free and total slots when it last could not serve the job
        self._free, self._total = 0, 0
        graph.clock = lambda: self.now
        graph.restart_policy = lambda: self.strategy.on_failure(self.now)

    @property
    def job_id(self) -> str:
        return self.graph.job_id

    @property
    def state(self) -> str:
        return self.graph.state

    @property
    def ended(self) -> bool:
        """Whether the job reached a final state (or was suspended)."""
        return self.graph.state in TERMINAL_JOB_STATES or self.graph.state == SUSPENDED

    @property
    def waiting_for_slots(self) -> bool:
        """Whether the job waits for the slot pool to offer it slots."""
        return self.graph.state == CREATED and self.deploying is None

    # -------------------------------------------------------------- events

    def submitted(self, now: float) -> list[Effect]:
        """The job was accepted: it waits for its slots, for ``slot.request.timeout``."""
        self.now = now
        return [
            self._timer(SLOT_REQUEST_TIMEOUT, now + self.slot_request_timeout_s),
            RequestSlots(self.graph.slots_required()),
        ]

    def slots_offered(self, now: float, slots: list[tuple[str, str]]) -> list[Effect]:
        """The pool gave the job its slots ``[(resource id, address), ...]``: deploy.
        Slots offered to a job that no longer waits go back."""
        self.now = now
        if not self.waiting_for_slots:
            return [ReleaseSlots()]
        placement = self.graph.assign(slots)
        self.deploying = self.graph.attempt
        self._timers.pop(SLOT_REQUEST_TIMEOUT, None)
        return [StateChanged(RUNNING), Deploy(self.graph.attempt, placement)]

    def slots_unavailable(self, now: float, free: int, total: int) -> list[Effect]:
        """The pool has not enough free slots for the job now: say so in its status."""
        self.now = now
        if not self.waiting_for_slots:
            return []
        needed = self.graph.slots_required()
        if self.graph.restarts > 0:  # a restarting job waits for TaskManagers to come (back)
            self.graph.status_message = (
                f"restarting: waiting for {needed} free slot(s); the cluster has {free} free"
            )
        else:
            self.graph.status_message = (
                f"waiting for {needed} free slot(s); the cluster has {free} free of {total} "
                "(raise taskmanager.numberOfTaskSlots, start more TaskManagers or lower the "
                "job's parallelism)"
            )
        self._free, self._total = free, total
        return []

    def deployed(self, now: float, attempt: int) -> list[Effect]:
        """The deployment of ``attempt`` ended. A cancel or failure during it found nothing to
        cancel on the TaskManagers not prepared yet, which then started the tasks: cancel them
        now, or the job would wait for them in CANCELLING or FAILING for ever."""
        self.now = now
        if self.deploying == attempt:
            self.deploying = None
        if self.graph.state != RUNNING or self.graph.attempt != attempt:
            return [CancelTasks(attempt)]
        return []

    def deploy_failed(self, now: float, attempt: int, reason: str) -> list[Effect]:
        """The deployment of ``attempt`` failed: the job fails (restart strategy applies)."""
        self.now = now
        if self.deploying != attempt:
            return []  # its deployment already ended (failed on another TaskManager first)
        self.deploying = None
        if attempt != self.graph.attempt or self.ended:
            return []
        return self._effects(self.graph.fail(reason))

    def task_state(
        self,
        now: float,
        vertex_id: str,
        index: int,
        attempt: int,
        state: str,
        failure: str = "",
        consequential: bool = False,
    ) -> list[Effect]:
        """A TaskManager reported a subtask's state."""
        self.now = now
        if self.ended:
            return []
        return self._effects(
            self.graph.task_state_changed(vertex_id, index, attempt, state, failure, consequential)
        )

    def taskmanager_lost(self, now: float, resource_id: str, reason: str) -> list[Effect]:
        """A TaskManager is gone: a job with subtasks there fails (restart strategy applies)."""
        self.now = now
        if self.ended:
            return []
        return self._effects(self.graph.taskmanager_lost(resource_id, reason))

    def cancel(self, now: float) -> list[Effect]:
        """The user cancels the job."""
        self.now = now
        if self.ended:
            return []
        return self._effects(self.graph.cancel())

    def stop(self, now: float) -> list[Effect]:
        """A stop-with-savepoint's savepoint is complete (the checkpoint coordinator hands the
        job back): cancel its tasks and end FINISHED."""
        self.now = now
        if self.ended:
            return []
        return self._effects(self.graph.stop())

    def fail(self, now: float, reason: str) -> list[Effect]:
        """Fail the job from outside its tasks (too many failed checkpoints)."""
        self.now = now
        if self.ended:
            return []
        return self._effects(self.graph.fail(reason))

    def timer_fired(self, now: float, kind: str, token: int) -> list[Effect]:
        """A timer this job started is due; a superseded one is ignored."""
        self.now = now
        if self._timers.get(kind) != token:
            return []
        del self._timers[kind]
        if kind == SLOT_REQUEST_TIMEOUT:
            return self._slot_request_timed_out()
        if kind == RESTART and self.graph.state == RESTARTING:
            self.graph.begin_attempt()  # a new attempt waits for slots like a new job
            return [StateChanged(CREATED), RequestSlots(self.graph.slots_required())]
        return []

    def suspend(self, now: float, reason: str) -> list[Effect]:
        """This JobManager lost its leadership: the job stops being scheduled and
        checkpointed here, and nothing is cancelled on the TaskManagers (the new leader owns
        those tasks now)."""
        self.now = now
        if self.ended:
            return []
        self.graph.state = SUSPENDED
        self.graph.status_message = reason
        self._timers.clear()
        return [AbortCheckpoints(reason), ReleaseSlots(), StateChanged(SUSPENDED)]

    def decided(self, decision: Decision) -> list[Effect]:
        """The effects of a decision the job's graph took for a scheduler wrapped by the
        shell (BATCH's stage by stage, ``batch_execution.py``), at the current ``now``."""
        return self._effects(decision)

    # -------------------------------------------------------------- internals

    def _slot_request_timed_out(self) -> list[Effect]:
        if not self.waiting_for_slots or self.graph.restarts > 0:
            return []
        needed = self.graph.slots_required()
        free, total = self._free, self._total
        timeout_ms = int(self.slot_request_timeout_s * 1000)
        message = (
            f"Could not acquire the {needed} slot(s) the job needs within slot.request.timeout "
            f"({timeout_ms} ms): the cluster has {free} free of {total}. Start more "
            "TaskManagers, raise taskmanager.numberOfTaskSlots or lower the job's parallelism."
        )
        return self._effects(self.graph.fail(message))

    def _timer(self, kind: str, at: float) -> StartTimer:
        token = next(self._tokens)
        self._timers[kind] = token
        return StartTimer(kind, at, token)

    def _effects(self, decision: Decision) -> list[Effect]:
        """What the execution graph's decision means for the shell."""
        effects: list[Effect] = []
        if decision.restart_after is not None:
            self.restart_at = self.now + decision.restart_after
            effects.append(AbortCheckpoints("the job is restarting"))
            effects.append(self._timer(RESTART, self.restart_at))
        if decision.cancel_tasks:
            effects.append(CancelTasks(self.graph.attempt))
        if decision.release_slots:
            effects.append(ReleaseSlots())
        if decision.job_state_changed:
            effects.append(StateChanged(self.graph.state))
            if self.graph.state in TERMINAL_JOB_STATES:
                self._timers.clear()
                effects.append(JobTerminated(self.graph.state))
        return effects


__all__ = [
    "RESTART",
    "SLOT_REQUEST_TIMEOUT",
    "SUSPENDED",
    "AbortCheckpoints",
    "CancelTasks",
    "Deploy",
    "JobMaster",
    "JobTerminated",
    "ReleaseSlots",
    "RequestSlots",
    "StartTimer",
    "StateChanged",
]
