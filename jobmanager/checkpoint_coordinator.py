"""The checkpoint coordinator of one job: a pure state machine of its checkpoints and savepoints.

It consumes events — the time (:meth:`CheckpointCoordinator.tick`), the job's task states
(:meth:`~CheckpointCoordinator.observe`), acknowledgements, declines, a savepoint request, the
outcome of writing a checkpoint's metadata, a restart — and answers each with the effects to
carry out: send a trigger to the tasks, write (and publish) the metadata, tell the tasks a
checkpoint completed, delete a checkpoint, fail the job, finish a savepoint. It does no I/O
and reads no clock, so every rule is tested by feeding events with a fake clock
(tests/test_checkpoint_coordinator.py); :mod:`jobmanager.checkpoint_service` is the shell
that carries the effects out.

Checkpoints go on after some tasks finished (say, a bounded source of rules beside an
endless stream of events), as Flink's do since 1.15: a finished task acknowledges by having
finished, with no state, and a restore keeps it finished: its source reads nothing more. What
it sent before finishing is in the state of the tasks downstream, which take a checkpoint's
snapshot only once each input has delivered its barrier or ended; a task whose inputs all
ended without the barrier takes the snapshot then, before its own end of input.

Checkpoint ids grow for the life of the job, across restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Task = tuple[str, int]


@dataclass
class CheckpointSettings:
    interval_ms: int | None = None
    exactly_once: bool = True
    timeout_ms: int = 600_000
    min_pause_ms: int = 0
    max_concurrent: int = 1
    tolerable_failures: int = 0
    num_retained: int = 1


@dataclass
class PendingCheckpoint:
    id: int
    triggered_at: float
    is_savepoint: bool = False
    target: str | None = None
    #: (vertex id, subtask) -> state handle (whatever the task reported: paths, sizes)
    acknowledged: dict[Task, Any] = field(default_factory=dict)
    #: a savepoint's trigger id (Flink's REST shape) and what follows it: "", "stop", "cancel"
    trigger_id: str = ""
    then: str = ""
    #: every task acknowledged: its metadata is being written
    finalizing: bool = False


@dataclass
class CompletedCheckpoint:
    id: int
    triggered_at: float
    completed_at: float
    handles: dict[Task, Any]
    external_path: str
    is_savepoint: bool = False
    state_size: int = 0


@dataclass
class FailedCheckpoint:
    id: int
    triggered_at: float
    failed_at: float
    reason: str
    is_savepoint: bool = False


# ------------------------------------------------------------------ effects


@dataclass(frozen=True)
class SendTrigger:
    """Tell the TaskManagers running the job's tasks to take checkpoint ``checkpoint_id``."""

    checkpoint_id: int
    location: str
    is_savepoint: bool
    timestamp_ms: int


@dataclass(frozen=True)
class WriteMetadata:
    """Write the checkpoint's metadata (last: it makes the checkpoint complete) and, for a
    checkpoint (``publish``), point high availability at it; answer with
    :meth:`CheckpointCoordinator.metadata_written` or
    :meth:`~CheckpointCoordinator.metadata_failed`."""

    checkpoint_id: int
    location: str
    metadata: dict[str, Any]
    publish: bool


@dataclass(frozen=True)
class NotifyComplete:
    """Tell the job's tasks that the checkpoint completed (two-phase-commit sinks commit)."""

    checkpoint_id: int


@dataclass(frozen=True)
class Discard:
    """Delete a checkpoint's files (subsumed, or completed after it was given up)."""

    checkpoint_id: int
    location: str


@dataclass(frozen=True)
class FailJob:
    """Too many checkpoints failed in a row."""

    reason: str


@dataclass(frozen=True)
class SavepointDone:
    """A savepoint ended: at ``location``, or with ``failure``; ``then`` follows a success."""

    trigger_id: str
    location: str | None = None
    failure: str | None = None
    then: str = ""


Effect = SendTrigger | WriteMetadata | NotifyComplete | Discard | FailJob | SavepointDone

#: the checkpoint interval once all sources have finished (see ``due``)
DRAINING_INTERVAL_MS = 100
TOO_MANY_FAILURES = "Exceeded checkpoint tolerable failure threshold."
SUBSUMED = "subsumed by a newer checkpoint"


class CheckpointCoordinator:
    """One job's checkpoints. ``plan`` (the job's plan: its nodes' operators) and
    ``location_of`` (a checkpoint id's folder) let it build acknowledgements of finished tasks
    and the metadata; without them it is the bare bookkeeping the lower methods do."""

    def __init__(
        self,
        settings: CheckpointSettings,
        tasks: list[Task],
        *,
        job_id: str = "",
        job_name: str = "",
        plan: dict[str, Any] | None = None,
        location_of: Callable[[int], str] | None = None,
        assigned_splits: Callable[[str, int], list[int] | None] | None = None,
    ) -> None:
        self.settings = settings
        #: (vertex, subtask) -> the source splits the JobManager gave that subtask in the
        #: running attempt (split_assignment.py), kept with a finished subtask
        self._assigned_splits = assigned_splits or (lambda vertex_id, subtask: None)
        self.tasks = set(tasks)
        self.job_id = job_id
        self.job_name = job_name
        self._nodes = {n["id"]: n for n in (plan or {}).get("nodes", [])}
        self._sources = {i for i, n in self._nodes.items() if n.get("pact") == "Data Source"}
        self._location_of = location_of or (lambda checkpoint_id: f"chk-{checkpoint_id}")
        self.next_id = 1
        self.pending: dict[int, PendingCheckpoint] = {}
        self.completed: list[CompletedCheckpoint] = []  # oldest first, retained ones
        self.history: list[CompletedCheckpoint | FailedCheckpoint] = []
        self.counts = {"triggered": 0, "completed": 0, "failed": 0, "restored": 0}
        self.consecutive_failures = 0
        self.last_completion = float("-inf")
        self.last_trigger = float("-inf")
        self.restored_from: CompletedCheckpoint | None = None
        #: the job is RUNNING, and its tasks' states, as last observed
        self.job_running = False
        self.task_states: dict[Task, str] = {}
        #: checkpoints given up while their metadata was written
        self._abandoned: dict[int, PendingCheckpoint] = {}

    # ================================================================== events

    def observe(self, now: float, job_running: bool, states: Mapping[Task, str]) -> list[Effect]:
        """The job's state and its tasks' states as they are now. A task that finished
        acknowledges every pending checkpoint at once, which may complete one."""
        self.job_running = job_running
        self.task_states = dict(states)
        if not job_running:
            return []
        effects: list[Effect] = []
        for pending in list(self.pending.values()):
            effects += self._acknowledge_finished(now, pending)
        return effects

    def tick(self, now: float) -> list[Effect]:
        """Time passed: expire checkpoints past their timeout, trigger a periodic one when
        it is due."""
        if not self.job_running:
            return []
        effects: list[Effect] = []
        for checkpoint_id in self.expired(now):
            effects += self._failed(now, checkpoint_id, "expired before completing")
        if self.ready() and self.due(now, self.draining()):
            checkpoint_id = self.trigger(now)
            effects.append(
                SendTrigger(checkpoint_id, self._location_of(checkpoint_id), False, int(now * 1000))
            )
            effects += self._acknowledge_finished(now, self.pending[checkpoint_id])
        return effects

    def trigger_savepoint(
        self, now: float, trigger_id: str, location: str, then: str = ""
    ) -> list[Effect]:
        """Start a savepoint into ``location``; ``then``: "stop" or "cancel" the job after it.
        Raises ValueError when the job cannot take one now."""
        if not self.ready():
            raise ValueError(
                f"job {self.job_id} is not running every task; a savepoint needs every task "
                "running or finished"
            )
        checkpoint_id = self.trigger(now, is_savepoint=True, target=location)
        pending = self.pending[checkpoint_id]
        pending.trigger_id, pending.then = trigger_id, then
        effects: list[Effect] = [SendTrigger(checkpoint_id, location, True, int(now * 1000))]
        return effects + self._acknowledge_finished(now, pending)

    def acknowledged(self, now: float, checkpoint_id: int, task: Task, handle: Any) -> list[Effect]:
        """A task wrote its snapshot; the last acknowledgement starts writing the metadata."""
        pending = self.pending.get(checkpoint_id)
        if (
            pending is None
            or pending.finalizing
            or not self.acknowledge(checkpoint_id, task, handle)
        ):
            return []
        return self._finalize(now, pending)

    def declined(self, now: float, checkpoint_id: int, reason: str) -> list[Effect]:
        """A task could not take the checkpoint: it fails."""
        return self._failed(now, checkpoint_id, f"declined by a task: {reason}")

    def metadata_written(self, now: float, checkpoint_id: int) -> list[Effect]:
        """The metadata is written (and published): the checkpoint counts. Tell the tasks,
        delete what it subsumes, finish a savepoint."""
        pending = self.pending.get(checkpoint_id)
        if pending is None or not pending.finalizing:
            return self._written_after_abort(now, checkpoint_id)
        location = self._location(checkpoint_id, pending.target)
        done, discarded = self.complete(checkpoint_id, now, location, _size(pending))
        effects: list[Effect] = []
        # As in Flink since 1.15, a savepoint the job goes on after commits no side effects:
        # recovery restores the latest checkpoint, not the savepoint, so output committed for
        # the savepoint would be written again. Its committables are committed with the next
        # checkpoint (or when a job is started from the savepoint). A stop-with-savepoint is
        # the job's last snapshot: its side effects are committed.
        if not done.is_savepoint or pending.then == "stop":
            effects.append(NotifyComplete(checkpoint_id))
        effects += [Discard(old.id, old.external_path) for old in discarded]
        if done.is_savepoint and pending.trigger_id:
            effects.append(SavepointDone(pending.trigger_id, location, then=pending.then))
        return effects

    def metadata_failed(
        self, now: float, checkpoint_id: int, reason: str, counted: bool = True
    ) -> list[Effect]:
        """Writing or publishing the metadata failed: the checkpoint failed. Not ``counted``
        against the tolerable failures when it was not the job's fault (high availability
        could not take its pointer: this JobManager's leadership is in doubt)."""
        self._abandoned.pop(checkpoint_id, None)
        pending = self.pending.get(checkpoint_id)
        if pending is None or not pending.finalizing:
            return []
        return self._failed(now, checkpoint_id, f"writing metadata failed: {reason}", counted)

    def abort(self, now: float, reason: str) -> list[Effect]:
        """The job restarts (or its JobManager no longer leads): every pending checkpoint is
        given up, without counting against the tolerable failures."""
        savepoints = [p.trigger_id for p in self.pending.values() if p.trigger_id]
        self.abort_all(now, reason)
        self.job_running = False
        return [SavepointDone(trigger_id, failure=reason) for trigger_id in savepoints]

    # ================================================================== views

    def ready(self) -> bool:
        """Whether a checkpoint can start: the job runs, every task running or finished,
        one running."""
        states = list(self.task_states.values())
        return (
            self.job_running
            and all(s in ("RUNNING", "FINISHED") for s in states)
            and "RUNNING" in states
        )

    def draining(self) -> bool:
        """Every source task has finished; the rest of the job is ending."""
        return not any(
            state == "RUNNING" and vertex_id in self._sources
            for (vertex_id, _), state in self.task_states.items()
        )

    def latest(self) -> CompletedCheckpoint | None:
        return self.completed[-1] if self.completed else self.restored_from

    def restored(self, checkpoint: CompletedCheckpoint, owned: bool = False) -> None:
        """The job starts from ``checkpoint``. ``owned``: it is one of this job's own
        checkpoints (a new leader recovering the job), which is retained and subsumed like
        any other, so it is deleted once ``num_retained`` newer ones completed; a savepoint,
        or a checkpoint the user named (``strom run -s``), belongs to the user and stays."""
        self.counts["restored"] += 1
        self.restored_from = checkpoint
        self.next_id = max(self.next_id, checkpoint.id + 1)
        if owned and not checkpoint.is_savepoint:
            self.completed.append(checkpoint)

    # ================================================================== internal

    def _location(self, checkpoint_id: int, target: str | None) -> str:
        return target or self._location_of(checkpoint_id)

    def _acknowledge_finished(self, now: float, pending: PendingCheckpoint) -> list[Effect]:
        """Finished tasks acknowledge ``pending`` with no state."""
        if pending.finalizing:
            return []
        complete = False
        for task, state in self.task_states.items():
            if state == "FINISHED" and task not in pending.acknowledged:
                handle = self._finished_handle(task[0], task[1])
                complete = self.acknowledge(pending.id, task, handle) or complete
        return self._finalize(now, pending) if complete else []

    def _written_after_abort(self, now: float, checkpoint_id: int) -> list[Effect]:
        """The metadata of a checkpoint a restart gave up was written (and published) after
        all. It is complete, and high availability points at it: a new leader may be
        restoring from it, so it is kept as the latest checkpoint, retained and subsumed like
        any other, unless a newer one completed meanwhile. A savepoint given up so (its
        trigger already failed) is deleted."""
        abandoned = self._abandoned.pop(checkpoint_id, None)
        if abandoned is None:
            return []
        location = self._location(checkpoint_id, abandoned.target)
        latest = self.latest()
        if abandoned.is_savepoint or (latest is not None and latest.id > checkpoint_id):
            return [Discard(checkpoint_id, location)]
        done = CompletedCheckpoint(
            checkpoint_id,
            abandoned.triggered_at,
            now,
            dict(abandoned.acknowledged),
            location,
            state_size=_size(abandoned),
        )
        self.last_completion = now
        # It was counted and listed as failed when the restart gave it up: now it completed.
        self.counts["failed"] -= 1
        self.counts["completed"] += 1
        self.history = [
            done if isinstance(entry, FailedCheckpoint) and entry.id == checkpoint_id else entry
            for entry in self.history
        ]
        return [Discard(old.id, old.external_path) for old in self._retain(done)]

    def _finished_handle(self, vertex_id: str, subtask: int) -> dict[str, Any]:
        node = self._nodes.get(vertex_id, {})
        handle = {
            "finished": True,
            "operators": [op["uid"] for op in node.get("operators", [])],
            "parallelism": node.get("parallelism", 1),
            "max_parallelism": node.get("max_parallelism", 128),
            "size": 0,
        }
        # A finished task takes no snapshot; what its source read is what it was given.
        splits = self._assigned_splits(vertex_id, subtask)
        if splits is not None:
            handle["splits"] = splits
        return handle

    def _finalize(self, now: float, pending: PendingCheckpoint) -> list[Effect]:
        pending.finalizing = True
        metadata = self._metadata(now, pending)
        location = self._location(pending.id, pending.target)
        return [WriteMetadata(pending.id, location, metadata, publish=not pending.is_savepoint)]

    def _metadata(self, now: float, pending: PendingCheckpoint) -> dict[str, Any]:
        operators: dict[str, dict[str, Any]] = {}
        for (vertex_id, subtask), handle in pending.acknowledged.items():
            for uid in handle["operators"]:
                entry = operators.setdefault(
                    uid,
                    {
                        "parallelism": handle["parallelism"],
                        "max_parallelism": handle["max_parallelism"],
                        "vertex": vertex_id,
                        "files": {},
                        "finished": [],
                    },
                )
                if handle.get("finished"):
                    entry["finished"].append(subtask)
                    if "splits" in handle:
                        entry.setdefault("finished_splits", {})[str(subtask)] = handle["splits"]
                else:
                    entry["files"][subtask] = handle["path"]
        return {
            "job_id": self.job_id,
            "job_name": self.job_name,
            "checkpoint_id": pending.id,
            "timestamp": int(now * 1000),
            "is_savepoint": pending.is_savepoint,
            "operators": operators,
        }

    def _failed(
        self, now: float, checkpoint_id: int, reason: str, counted: bool = True
    ) -> list[Effect]:
        pending = self.pending.get(checkpoint_id)
        if pending is None:
            return []
        effects: list[Effect] = []
        if self.fail(checkpoint_id, now, reason, counted):
            effects.append(FailJob(TOO_MANY_FAILURES))
        if pending.trigger_id:
            effects.append(SavepointDone(pending.trigger_id, failure=reason))
        return effects

    # ============================================= bookkeeping (the events' building blocks)

    def due(self, now: float, draining: bool = False) -> bool:
        """Whether a periodic checkpoint should be triggered now. ``draining``: every source
        has finished, so the tasks left end as soon as a checkpoint commits their output; it
        comes after ``DRAINING_INTERVAL_MS`` rather than the whole interval."""
        interval = self.settings.interval_ms
        if not interval:
            return False
        if draining:
            interval = min(interval, DRAINING_INTERVAL_MS)
        if self.last_trigger == float("-inf"):
            # The first time the job is ready: its first checkpoint comes one interval later,
            # as in Flink (whose first comes after a random delay of at most the interval), not
            # at once, so a job checkpointed every minute is not snapshotted as it starts.
            self.last_trigger = now
            return False
        if len([p for p in self.pending.values() if not p.is_savepoint]) >= max(
            1, self.settings.max_concurrent
        ):
            return False
        if now - self.last_trigger < interval / 1000.0:
            return False
        return now - self.last_completion >= self.settings.min_pause_ms / 1000.0

    def trigger(self, now: float, is_savepoint: bool = False, target: str | None = None) -> int:
        checkpoint_id = self.next_id
        self.next_id += 1
        self.pending[checkpoint_id] = PendingCheckpoint(checkpoint_id, now, is_savepoint, target)
        self.counts["triggered"] += 1
        if not is_savepoint:
            self.last_trigger = now
        return checkpoint_id

    def acknowledge(self, checkpoint_id: int, task: Task, handle: Any) -> bool:
        """Record a task's snapshot; True when the checkpoint has every acknowledgement."""
        pending = self.pending.get(checkpoint_id)
        if pending is None or task not in self.tasks:
            return False
        pending.acknowledged[task] = handle
        return set(pending.acknowledged) == self.tasks

    def complete(
        self, checkpoint_id: int, now: float, external_path: str, size: int
    ) -> tuple[CompletedCheckpoint, list[CompletedCheckpoint]]:
        """The metadata is written: the checkpoint counts. Returns it and the checkpoints no
        longer retained (their files may go)."""
        pending = self.pending.pop(checkpoint_id)
        done = CompletedCheckpoint(
            pending.id,
            pending.triggered_at,
            now,
            dict(pending.acknowledged),
            external_path,
            pending.is_savepoint,
            size,
        )
        self.counts["completed"] += 1
        self.consecutive_failures = 0
        self.history.append(done)
        discarded: list[CompletedCheckpoint] = []
        if not pending.is_savepoint:
            self.last_completion = now
            discarded = self._retain(done)
            # Older pending checkpoints are subsumed by a newer complete one.
            for older in [cid for cid, p in self.pending.items() if cid < checkpoint_id]:
                if not self.pending[older].is_savepoint and not self.pending[older].finalizing:
                    self.fail(older, now, SUBSUMED)
        return done, discarded

    def _retain(self, done: CompletedCheckpoint) -> list[CompletedCheckpoint]:
        """Keep ``done`` as the latest; returns the checkpoints no longer retained."""
        self.completed.append(done)
        discarded: list[CompletedCheckpoint] = []
        while len(self.completed) > max(1, self.settings.num_retained):
            discarded.append(self.completed.pop(0))
        return discarded

    def fail(self, checkpoint_id: int, now: float, reason: str, counted: bool = True) -> bool:
        """Abort a pending checkpoint; True if too many failed in a row (the job must fail).
        One not ``counted`` does not count against the tolerable failures."""
        pending = self.pending.pop(checkpoint_id, None)
        if pending is None:
            return False
        self.counts["failed"] += 1
        self.history.append(
            FailedCheckpoint(checkpoint_id, pending.triggered_at, now, reason, pending.is_savepoint)
        )
        if pending.is_savepoint or reason == SUBSUMED or not counted:
            return False
        self.consecutive_failures += 1
        return self.consecutive_failures > self.settings.tolerable_failures

    def expired(self, now: float) -> list[int]:
        """Pending checkpoints past the timeout (not those whose metadata is being written)."""
        timeout = self.settings.timeout_ms / 1000.0
        return [
            cid
            for cid, p in self.pending.items()
            if now - p.triggered_at > timeout and not p.finalizing
        ]

    def abort_all(self, now: float, reason: str) -> list[int]:
        """A restart aborts every pending checkpoint (without counting against tolerance)."""
        ids = list(self.pending)
        for checkpoint_id in ids:
            pending = self.pending.pop(checkpoint_id)
            if pending.finalizing:
                self._abandoned[checkpoint_id] = pending
            self.counts["failed"] += 1
            self.history.append(
                FailedCheckpoint(
                    checkpoint_id, pending.triggered_at, now, reason, pending.is_savepoint
                )
            )
        return ids


def _size(pending: PendingCheckpoint) -> int:
    """The bytes of state the tasks reported for ``pending``."""
    return sum(h.get("size", 0) for h in pending.acknowledged.values() if isinstance(h, dict))
