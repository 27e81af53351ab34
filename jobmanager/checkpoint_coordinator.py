"""The checkpoint coordinator of one job: which checkpoints are pending, complete or failed.

Pure: the JobMaster tells it the time, acknowledgements and declines; it answers with what
to do (trigger, finalize, notify, discard). Writing metadata and talking to TaskManagers is
the caller's business, so every rule here is tested without sockets or clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    acknowledged: dict[tuple[str, int], Any] = field(default_factory=dict)


@dataclass
class CompletedCheckpoint:
    id: int
    triggered_at: float
    completed_at: float
    handles: dict[tuple[str, int], Any]
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


#: the checkpoint interval once all sources have finished (see ``due``)
DRAINING_INTERVAL_MS = 100


class CheckpointCoordinator:
    """Checkpoint ids grow for the life of the job, across restarts."""

    def __init__(self, settings: CheckpointSettings, tasks: list[tuple[str, int]]) -> None:
        self.settings = settings
        self.tasks = set(tasks)
        self.next_id = 1
        self.pending: dict[int, PendingCheckpoint] = {}
        self.completed: list[CompletedCheckpoint] = []  # oldest first, retained ones
        self.history: list[CompletedCheckpoint | FailedCheckpoint] = []
        self.counts = {"triggered": 0, "completed": 0, "failed": 0, "restored": 0}
        self.consecutive_failures = 0
        self.last_completion = float("-inf")
        self.last_trigger = float("-inf")
        self.restored_from: CompletedCheckpoint | None = None

    # -------------------------------------------------------------- triggering

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

    # -------------------------------------------------------------- acknowledgements

    def acknowledge(self, checkpoint_id: int, task: tuple[str, int], handle: Any) -> bool:
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
            self.completed.append(done)
            while len(self.completed) > max(1, self.settings.num_retained):
                discarded.append(self.completed.pop(0))
            # Older pending checkpoints are subsumed by a newer complete one.
            for older in [cid for cid, p in self.pending.items() if cid < checkpoint_id]:
                if not self.pending[older].is_savepoint:
                    self.fail(older, now, "subsumed by a newer checkpoint")
        return done, discarded

    def fail(self, checkpoint_id: int, now: float, reason: str) -> bool:
        """Abort a pending checkpoint; True if too many failed in a row (the job must fail)."""
        pending = self.pending.pop(checkpoint_id, None)
        if pending is None:
            return False
        self.counts["failed"] += 1
        self.history.append(
            FailedCheckpoint(checkpoint_id, pending.triggered_at, now, reason, pending.is_savepoint)
        )
        if pending.is_savepoint or reason == "subsumed by a newer checkpoint":
            return False
        self.consecutive_failures += 1
        return self.consecutive_failures > self.settings.tolerable_failures

    def expired(self, now: float) -> list[int]:
        timeout = self.settings.timeout_ms / 1000.0
        return [cid for cid, p in self.pending.items() if now - p.triggered_at > timeout]

    def abort_all(self, now: float, reason: str) -> list[int]:
        """A restart aborts every pending checkpoint (without counting against tolerance)."""
        ids = list(self.pending)
        for checkpoint_id in ids:
            pending = self.pending.pop(checkpoint_id)
            self.counts["failed"] += 1
            self.history.append(FailedCheckpoint(checkpoint_id, pending.triggered_at, now, reason))
        return ids

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
