"""Checkpoints and savepoints of running jobs: the I/O around each job's coordinator.

Triggers go to the TaskManagers that run a job's tasks; acknowledgements come back with
where each task wrote its snapshot. When every task has acknowledged, the metadata is written
(last), the checkpoint counts, the tasks are told (two-phase-commit sinks commit) and
checkpoints no longer retained are deleted.

Checkpoints go on after some tasks finished (say, a bounded source of rules beside an
endless stream of events), as Flink's do since 1.15: a finished task acknowledges by having
finished, with no state, and a restore keeps it finished: its source reads nothing more. What
it sent before finishing is in the state of the tasks downstream, which take a checkpoint's
snapshot only once each input has delivered its barrier or ended; a task whose inputs all
ended without the barrier takes the snapshot then, before its own end of input.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc

from jobmanager.checkpoint_coordinator import (
    CheckpointCoordinator,
    CheckpointSettings,
    CompletedCheckpoint,
    FailedCheckpoint,
)
from jobmanager.execution_graph import RUNNING
from strom.rpc import cluster_pb2 as pb

if TYPE_CHECKING:
    from jobmanager.dispatcher import Dispatcher, JobRecord

log = logging.getLogger(__name__)

_TICK_S = 0.05


def settings_from(config: Any) -> CheckpointSettings:
    return CheckpointSettings(
        interval_ms=config["execution.checkpointing.interval"],
        exactly_once=config["execution.checkpointing.mode"] == "exactly_once",
        timeout_ms=config["execution.checkpointing.timeout"],
        min_pause_ms=config["execution.checkpointing.min-pause"],
        max_concurrent=config["execution.checkpointing.max-concurrent-checkpoints"],
        tolerable_failures=config["execution.checkpointing.tolerable-failed-checkpoints"],
        num_retained=config["state.checkpoints.num-retained"],
    )


def finished_handle(record: JobRecord, vertex_id: str) -> dict[str, Any]:
    """The acknowledgement of a task that has finished: its operators, no state."""
    node = next(n for n in record.plan["nodes"] if n["id"] == vertex_id)
    return {
        "finished": True,
        "operators": [op["uid"] for op in node["operators"]],
        "parallelism": node["parallelism"],
        "max_parallelism": node["max_parallelism"],
        "size": 0,
    }


def handle_of(record: JobRecord, ack: pb.CheckpointAck, location: str) -> dict[str, Any] | None:
    """The acknowledged task's state handle as the metadata keeps it; None (logged) for an ack
    that names operators the task does not run or a file outside the checkpoint's folder."""
    node = next((n for n in record.plan["nodes"] if n["id"] == ack.vertex_id), None)
    uids = {op["uid"] for op in node["operators"]} if node is not None else set()
    written = ack.handle
    folder = os.path.normpath(record.storage.local_path(location))
    if (
        node is None
        or not ack.HasField("handle")
        or not set(written.operators) <= uids
        or os.path.dirname(os.path.normpath(written.path)) != folder
    ):
        log.warning(
            "ignoring an acknowledgement of checkpoint %d of job %s from task %s/%d: its "
            "state handle does not match the task (operators %s, file %r)",
            ack.checkpoint_id,
            record.job_id,
            ack.vertex_id,
            ack.subtask,
            list(written.operators),
            written.path,
        )
        return None
    return {
        "path": written.path,
        "operators": list(written.operators),
        "parallelism": written.parallelism,
        "max_parallelism": written.max_parallelism,
        "size": ack.state_size,
    }


def metadata_of(record: JobRecord, done_id: int, handles: dict, savepoint: bool) -> dict:
    operators: dict[str, dict[str, Any]] = {}
    for (vertex_id, subtask), handle in handles.items():
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
            else:
                entry["files"][subtask] = handle["path"]
    return {
        "job_id": record.job_id,
        "job_name": record.graph.name,
        "checkpoint_id": done_id,
        "timestamp": int(time.time() * 1000),
        "is_savepoint": savepoint,
        "operators": operators,
    }


class Checkpointing:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.lock = dispatcher.lock
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jm-checkpoints", daemon=True)
        #: savepoint trigger id -> status (Flink's REST shape)
        self.savepoints: dict[str, dict[str, Any]] = {}
        self._savepoint_of_checkpoint: dict[tuple[str, int], str] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def coordinator_for(self, record: JobRecord) -> CheckpointCoordinator:
        if record.coordinator is None:
            tasks = list(record.graph.subtasks)
            record.coordinator = CheckpointCoordinator(settings_from(record.config), tasks)
        return record.coordinator

    # -------------------------------------------------------------- triggering

    def _loop(self) -> None:
        while not self._stopped.wait(_TICK_S):
            try:
                self.tick(time.time())
            except Exception:
                log.exception("checkpoint scheduling failed")

    def _ready(self, record: JobRecord) -> bool:
        """Whether a checkpoint can start: every task running or finished, one running."""
        graph = record.graph
        states = [s.state for s in graph.subtasks.values()]
        return (
            graph.state == RUNNING
            and all(s in ("RUNNING", "FINISHED") for s in states)
            and "RUNNING" in states
        )

    @staticmethod
    def _draining(record: JobRecord) -> bool:
        """Every source task has finished; the rest of the job is ending."""
        return not any(
            s.state == "RUNNING" and s.vertex_id in record.sources
            for s in record.graph.subtasks.values()
        )

    def _acknowledge_finished(self, record: JobRecord, checkpoint_id: int) -> bool:
        """Finished tasks acknowledge ``checkpoint_id`` at once (lock held); True when that
        completes it."""
        coordinator = record.coordinator
        pending = coordinator.pending.get(checkpoint_id) if coordinator else None
        if pending is None:
            return False
        complete = False
        for key, subtask in record.graph.subtasks.items():
            if subtask.state == "FINISHED" and key not in pending.acknowledged:
                handle = finished_handle(record, subtask.vertex_id)
                complete = coordinator.acknowledge(checkpoint_id, key, handle) or complete
        return complete

    def task_finished(self, record: JobRecord) -> None:
        """A task finished: it acknowledges the checkpoints still waiting for it."""
        with self.lock:
            coordinator = record.coordinator
            if coordinator is None or record.graph.state != RUNNING:
                return
            done = [c for c in list(coordinator.pending) if self._acknowledge_finished(record, c)]
            done_pending = [coordinator.pending[c] for c in done]
        for pending in done_pending:
            self._complete(record, pending.id, pending.is_savepoint, pending.target)

    def tick(self, now: float) -> None:
        triggers, failed_jobs = [], []
        with self.lock:
            for record in self.dispatcher.jobs.values():
                coordinator = record.coordinator
                if coordinator is None or record.graph.state != RUNNING:
                    continue
                for checkpoint_id in coordinator.expired(now):
                    if coordinator.fail(checkpoint_id, now, "expired before completing"):
                        failed_jobs.append(record)
                    self._savepoint_failed(record, checkpoint_id, "expired before completing")
                if self._ready(record) and coordinator.due(now, self._draining(record)):
                    checkpoint_id = coordinator.trigger(now)
                    self._acknowledge_finished(record, checkpoint_id)
                    triggers.append((record, checkpoint_id))
        for record, checkpoint_id in triggers:
            self._send_trigger(record, checkpoint_id, False, None)
        for record in failed_jobs:
            self.dispatcher.fail_job(record, "Exceeded checkpoint tolerable failure threshold.")

    def trigger_savepoint(self, record: JobRecord, target: str | None, then: str = "") -> str:
        """Start a savepoint; returns its trigger id. ``then``: "cancel" or "stop" after it."""
        directory = target or record.config["state.savepoints.dir"]
        if not directory:
            raise ValueError(
                "no savepoint folder: give one (strom savepoint <jobid> <dir>) or set "
                "state.savepoints.dir"
            )
        with self.lock:
            if not self._ready(record):
                raise ValueError(
                    f"job {record.job_id} is {record.graph.state}; a savepoint needs every task "
                    "running or finished"
                )
            coordinator = self.coordinator_for(record)
            location = record.storage.savepoint_location(directory, record.job_id)
            checkpoint_id = coordinator.trigger(time.time(), is_savepoint=True, target=location)
            self._acknowledge_finished(record, checkpoint_id)
            trigger_id = uuid.uuid4().hex
            self.savepoints[trigger_id] = {
                "job_id": record.job_id,
                "status": {"id": "IN_PROGRESS"},
                "then": then,
                "checkpoint_id": checkpoint_id,
            }
            self._savepoint_of_checkpoint[(record.job_id, checkpoint_id)] = trigger_id
        self._send_trigger(record, checkpoint_id, True, location)
        return trigger_id

    def _send_trigger(
        self, record: JobRecord, checkpoint_id: int, savepoint: bool, location: str | None
    ) -> None:
        graph = record.graph
        location = location or record.storage.checkpoint_location(record.job_id, checkpoint_id)
        # Every TaskManager with running tasks: sources inject the barrier, and a task whose
        # inputs all finish without it takes its snapshot then.
        running = {s.location for s in graph.subtasks.values() if s.state == "RUNNING"}
        request = pb.CheckpointTrigger(
            job_id=record.job_id,
            attempt=graph.attempt,
            checkpoint_id=checkpoint_id,
            timestamp=int(time.time() * 1000),
            location=location,
            is_savepoint=savepoint,
            exactly_once=record.coordinator.settings.exactly_once,
        )
        for address in running:
            try:
                self.dispatcher._stub(address).TriggerCheckpoint(request, timeout=10)
            except grpc.RpcError as error:
                log.info("checkpoint %d trigger to %s failed: %s", checkpoint_id, address, error)

    # -------------------------------------------------------------- acknowledgements

    def acknowledge(self, ack: pb.CheckpointAck) -> None:
        with self.lock:
            record = self.dispatcher.jobs.get(ack.job_id)
            if record is None or record.coordinator is None or record.graph.attempt != ack.attempt:
                return
            pending = record.coordinator.pending.get(ack.checkpoint_id)
            if pending is None:
                return
            location = pending.target or record.storage.checkpoint_location(
                record.job_id, ack.checkpoint_id
            )
            handle = handle_of(record, ack, location)
            if handle is None:
                return
            task = (ack.vertex_id, ack.subtask)
            if not record.coordinator.acknowledge(ack.checkpoint_id, task, handle):
                return
            pending = record.coordinator.pending[ack.checkpoint_id]
        self._complete(record, pending.id, pending.is_savepoint, pending.target)

    def _complete(self, record: JobRecord, checkpoint_id: int, savepoint: bool, target) -> None:
        coordinator = record.coordinator
        location = target or record.storage.checkpoint_location(record.job_id, checkpoint_id)
        with self.lock:
            pending = coordinator.pending.get(checkpoint_id)
            if pending is None:
                return
            metadata = metadata_of(record, checkpoint_id, pending.acknowledged, savepoint)
            size = sum(h.get("size", 0) for h in pending.acknowledged.values())
        try:
            record.storage.write_metadata(location, metadata)
        except OSError as error:
            with self.lock:
                coordinator.fail(checkpoint_id, time.time(), f"writing metadata failed: {error}")
            self._savepoint_failed(record, checkpoint_id, str(error))
            return
        with self.lock:
            done, discarded = coordinator.complete(checkpoint_id, time.time(), location, size)
            record.checkpoint_metadata[checkpoint_id] = metadata
            attempt = record.graph.attempt
            addresses = {s.location for s in record.graph.subtasks.values()}
        log.info(
            "%s %d of job %s complete (%d bytes) at %s",
            "savepoint" if savepoint else "checkpoint",
            checkpoint_id,
            record.job_id,
            size,
            location,
        )
        if not savepoint and not self.dispatcher.jm.checkpoint_completed(
            record.job_id, checkpoint_id, location
        ):
            # Deposed: the new leader may restore from a checkpoint this one subsumes.
            return
        # As in Flink since 1.15, a savepoint the job goes on after commits no side effects:
        # recovery restores the latest checkpoint, not the savepoint, so output committed for
        # the savepoint would be written again. Its committables are committed with the next
        # checkpoint (or when a job is started from the savepoint). A stop-with-savepoint is
        # the job's last snapshot: its side effects are committed.
        if savepoint and not self._ends_the_job(record.job_id, checkpoint_id):
            addresses = set()
        notice = pb.CheckpointNotice(
            job_id=record.job_id, attempt=attempt, checkpoint_id=checkpoint_id
        )
        for address in addresses:
            try:
                self.dispatcher._stub(address).NotifyCheckpointComplete(notice, timeout=10)
            except grpc.RpcError as error:
                log.info("notify of checkpoint %d to %s failed: %s", checkpoint_id, address, error)
        for old in discarded:
            record.storage.discard(old.external_path)
            record.checkpoint_metadata.pop(old.id, None)
        if savepoint:
            self._savepoint_done(record, checkpoint_id, location)

    def decline(self, decline: pb.CheckpointDecline) -> None:
        with self.lock:
            record = self.dispatcher.jobs.get(decline.job_id)
            if record is None or record.coordinator is None:
                return
            too_many = record.coordinator.fail(
                decline.checkpoint_id, time.time(), f"declined by a task: {decline.reason}"
            )
        self._savepoint_failed(record, decline.checkpoint_id, decline.reason)
        if too_many:
            self.dispatcher.fail_job(record, "Exceeded checkpoint tolerable failure threshold.")

    def abort_pending(self, record: JobRecord, reason: str) -> None:
        if record.coordinator is None:
            return
        for checkpoint_id in record.coordinator.abort_all(time.time(), reason):
            self._savepoint_failed(record, checkpoint_id, reason)

    def forget(self, job_id: str) -> None:
        """A job left the history: its savepoint triggers go too. Caller holds the lock."""
        for trigger_id in [t for t, s in self.savepoints.items() if s["job_id"] == job_id]:
            del self.savepoints[trigger_id]
        for key in [k for k in self._savepoint_of_checkpoint if k[0] == job_id]:
            del self._savepoint_of_checkpoint[key]

    # -------------------------------------------------------------- savepoints

    def _ends_the_job(self, job_id: str, checkpoint_id: int) -> bool:
        """Whether that savepoint is a stop-with-savepoint's."""
        with self.lock:
            trigger_id = self._savepoint_of_checkpoint.get((job_id, checkpoint_id))
            return trigger_id is not None and self.savepoints[trigger_id]["then"] == "stop"

    def _savepoint_done(self, record: JobRecord, checkpoint_id: int, location: str) -> None:
        trigger_id = self._savepoint_of_checkpoint.pop((record.job_id, checkpoint_id), None)
        if trigger_id is None:
            return
        status = self.savepoints[trigger_id]
        status["status"] = {"id": "COMPLETED"}
        status["operation"] = {"location": location}
        if status["then"]:
            self.dispatcher.finish_after_savepoint(record, status["then"])

    def _savepoint_failed(self, record: JobRecord, checkpoint_id: int, reason: str) -> None:
        trigger_id = self._savepoint_of_checkpoint.pop((record.job_id, checkpoint_id), None)
        if trigger_id is not None:
            status = self.savepoints[trigger_id]
            status["status"] = {"id": "COMPLETED"}
            status["operation"] = {"failure-cause": {"stack-trace": reason}}

    # -------------------------------------------------------------- restore and views

    def restore_bytes(self, record: JobRecord) -> bytes:
        """What the next attempt restores from: the latest complete checkpoint, else the
        savepoint the job was started from."""
        coordinator = record.coordinator
        latest = coordinator.latest() if coordinator is not None else None
        if latest is not None:
            metadata = record.checkpoint_metadata.get(latest.id)
            if metadata is None:
                metadata = record.storage.read_metadata(latest.external_path)
            if metadata is not None:
                return pickle.dumps(metadata)
        if record.initial_restore is not None:
            return pickle.dumps(record.initial_restore)
        return b""

    def stats(self, record: JobRecord) -> dict[str, Any]:
        coordinator = record.coordinator
        counts = {"restored": 0, "total": 0, "in_progress": 0, "completed": 0, "failed": 0}
        history: list[dict[str, Any]] = []
        latest: dict[str, Any] = {"completed": None, "savepoint": None, "failed": None}
        if coordinator is not None:
            counts = {
                "restored": coordinator.counts["restored"],
                "total": coordinator.counts["triggered"],
                "in_progress": len(coordinator.pending),
                "completed": coordinator.counts["completed"],
                "failed": coordinator.counts["failed"],
                "triggered": coordinator.counts["triggered"],
            }
            for entry in reversed(coordinator.history[-50:]):
                history.append(_describe(entry))
            for entry in reversed(coordinator.history):
                kind = _describe(entry)
                if isinstance(entry, CompletedCheckpoint):
                    key = "savepoint" if entry.is_savepoint else "completed"
                    if latest[key] is None:
                        latest[key] = kind
                elif latest["failed"] is None:
                    latest["failed"] = kind
            if coordinator.restored_from is not None:
                latest["restored"] = {
                    "id": coordinator.restored_from.id,
                    "external_path": coordinator.restored_from.external_path,
                    "is_savepoint": coordinator.restored_from.is_savepoint,
                }
        counts.setdefault("triggered", counts["total"])
        return {"counts": counts, "latest": latest, "history": history, "summary": {}}


def _describe(entry: CompletedCheckpoint | FailedCheckpoint) -> dict[str, Any]:
    if isinstance(entry, CompletedCheckpoint):
        return {
            "id": entry.id,
            "status": "COMPLETED",
            "is_savepoint": entry.is_savepoint,
            "trigger_timestamp": int(entry.triggered_at * 1000),
            "latest_ack_timestamp": int(entry.completed_at * 1000),
            "end_to_end_duration": int((entry.completed_at - entry.triggered_at) * 1000),
            "state_size": entry.state_size,
            "checkpointed_size": entry.state_size,
            "external_path": entry.external_path,
            "num_subtasks": len(entry.handles),
            "num_acknowledged_subtasks": len(entry.handles),
        }
    return {
        "id": entry.id,
        "status": "FAILED",
        "is_savepoint": entry.is_savepoint,
        "trigger_timestamp": int(entry.triggered_at * 1000),
        "failure_timestamp": int(entry.failed_at * 1000),
        "failure_message": entry.reason,
        "end_to_end_duration": int((entry.failed_at - entry.triggered_at) * 1000),
    }
