"""The I/O around each job's :class:`~jobmanager.checkpoint_coordinator.CheckpointCoordinator`.

The coordinators decide (pure, see that module); this shell feeds them events — a clock tick
every 50 ms, the tasks' states, acknowledgements and declines from the TaskManagers, savepoint
requests, the outcome of metadata writes — on the dispatcher's loop, one at a time with the
JobMasters' events, and carries out the effects they answer with on bounded executors:
commands to TaskManagers (in order per TaskManager, so a trigger never overtakes the one
before), and storage work (metadata, deletions). A checkpoint's metadata is
written last, then published to high availability; only then is it complete, are the tasks
told (two-phase-commit sinks commit) and are the checkpoints it subsumes deleted.

Handlers on other threads (gRPC, REST, the executors) post their events to the loop or ask
it; no RPC or file I/O happens on the loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc

from jobmanager.checkpoint_coordinator import (
    CheckpointCoordinator,
    CheckpointSettings,
    CompletedCheckpoint,
    Discard,
    Effect,
    FailedCheckpoint,
    FailJob,
    NotifyComplete,
    SavepointDone,
    SendTrigger,
    WriteMetadata,
)
from jobmanager.execution_graph import RUNNING
from strom.checkpoint_storage import encode_metadata
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc

if TYPE_CHECKING:
    from jobmanager.dispatcher import Dispatcher, JobRecord

log = logging.getLogger(__name__)

_TICK_S = 0.05
_RPC_TIMEOUT_S = 10.0
#: threads sending commands to TaskManagers (one TaskManager's commands at a time each)
_RPC_WORKERS = 8
#: threads writing metadata and deleting checkpoints
_STORAGE_WORKERS = 2


def settings_from(config: Any) -> CheckpointSettings:
    """A job's checkpoint settings from its configuration."""
    return CheckpointSettings(
        interval_ms=config["execution.checkpointing.interval"],
        exactly_once=config["execution.checkpointing.mode"] == "exactly_once",
        timeout_ms=config["execution.checkpointing.timeout"],
        min_pause_ms=config["execution.checkpointing.min-pause"],
        max_concurrent=config["execution.checkpointing.max-concurrent-checkpoints"],
        tolerable_failures=config["execution.checkpointing.tolerable-failed-checkpoints"],
        num_retained=config["state.checkpoints.num-retained"],
    )


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


class CheckpointService:
    """Checkpoints and savepoints of every job of one dispatcher."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._stopped = threading.Event()
        self._rpc = ThreadPoolExecutor(_RPC_WORKERS, thread_name_prefix="jm-checkpoint-rpc")
        self._storage = ThreadPoolExecutor(_STORAGE_WORKERS, thread_name_prefix="jm-checkpoint-io")
        self._channels: dict[str, grpc.Channel] = {}
        self._outbox_lock = threading.Lock()
        self._outbox: dict[str, deque[tuple[str, Any]]] = {}
        #: savepoint trigger id -> status (Flink's REST shape)
        self.savepoints: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        self.dispatcher.call_later(_TICK_S, self._tick)

    def stop(self) -> None:
        self._stopped.set()
        self._rpc.shutdown(wait=False, cancel_futures=True)
        self._storage.shutdown(wait=False, cancel_futures=True)
        with self._outbox_lock:
            channels = list(self._channels.values())
            self._channels.clear()
        for channel in channels:
            channel.close()

    def coordinator_for(self, record: JobRecord) -> CheckpointCoordinator:
        """The job's coordinator, made on first use."""
        if record.coordinator is None:
            record.coordinator = CheckpointCoordinator(
                settings_from(record.config),
                list(record.graph.subtasks),
                job_id=record.job_id,
                job_name=record.graph.name,
                plan=record.plan,
                location_of=lambda checkpoint_id, r=record: r.storage.checkpoint_location(
                    r.job_id, checkpoint_id
                ),
                assigned_splits=lambda vertex_id, subtask, r=record: (
                    self.dispatcher.splits.assigned(r.job_id, vertex_id, r.graph.attempt, subtask)
                ),
            )
        return record.coordinator

    # ------------------------------------------------------------------ events

    def _tick(self) -> None:
        """On the loop, every ``_TICK_S``: the clock event of every coordinator."""
        if self._stopped.is_set():
            return
        try:
            self.tick(time.time())
        finally:
            self.dispatcher.call_later(_TICK_S, self._tick)

    @staticmethod
    def _observe(record: JobRecord, now: float) -> list[Effect]:
        """Tell the coordinator the job's current state (on the loop)."""
        graph = record.graph
        states = {key: subtask.state for key, subtask in graph.subtasks.items()}
        return record.coordinator.observe(now, graph.state == RUNNING, states)

    def tick(self, now: float) -> None:
        """Expire and trigger checkpoints of every job (on the loop)."""
        for record in list(self.dispatcher.jobs.values()):
            if record.coordinator is None:
                continue
            if record.graph.state != RUNNING and not record.coordinator.job_running:
                continue
            effects = self._observe(record, now)
            self._execute(record, effects + record.coordinator.tick(now))

    def task_finished(self, record: JobRecord) -> None:
        """A task finished: it acknowledges the checkpoints still waiting for it (on the
        loop)."""
        if record.coordinator is not None:
            self._execute(record, self._observe(record, time.time()))

    def trigger_savepoint(self, record: JobRecord, target: str | None, then: str = "") -> str:
        """Start a savepoint; returns its trigger id. ``then``: "cancel" or "stop" after it.
        ValueError when the job cannot take one now."""
        return self.dispatcher.ask(self._trigger_savepoint, record, target, then)

    def _trigger_savepoint(self, record: JobRecord, target: str | None, then: str) -> str:
        directory = target or record.config["state.savepoints.dir"]
        if not directory:
            raise ValueError(
                "no savepoint folder: give one (strom savepoint <jobid> <dir>) or set "
                "state.savepoints.dir"
            )
        now = time.time()
        if self.dispatcher.jobs.get(record.job_id) is not record:
            raise ValueError(f"job {record.job_id} is {record.graph.state}")
        coordinator = self.coordinator_for(record)
        effects = self._observe(record, now)
        if not coordinator.ready():
            self._execute(record, effects)
            raise ValueError(
                f"job {record.job_id} is {record.graph.state}; a savepoint needs every task "
                "running or finished"
            )
        location = record.storage.savepoint_location(directory, record.job_id)
        trigger_id = uuid.uuid4().hex
        effects += coordinator.trigger_savepoint(now, trigger_id, location, then)
        self.savepoints[trigger_id] = {
            "job_id": record.job_id,
            "status": {"id": "IN_PROGRESS"},
            "then": then,
            "checkpoint_id": coordinator.next_id - 1,
        }
        self._execute(record, effects)
        return trigger_id

    def acknowledge(self, ack: pb.CheckpointAck) -> None:
        """A task's acknowledgement of a checkpoint (any thread)."""
        self.dispatcher.post(self._acknowledge, ack)

    def _acknowledge(self, ack: pb.CheckpointAck) -> None:
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
        effects = record.coordinator.acknowledged(time.time(), ack.checkpoint_id, task, handle)
        self._execute(record, effects)

    def decline(self, decline: pb.CheckpointDecline) -> None:
        """A task could not take a checkpoint (any thread)."""
        self.dispatcher.post(self._decline, decline)

    def _decline(self, decline: pb.CheckpointDecline) -> None:
        record = self.dispatcher.jobs.get(decline.job_id)
        if record is None or record.coordinator is None:
            return
        effects = record.coordinator.declined(time.time(), decline.checkpoint_id, decline.reason)
        self._execute(record, effects)

    def abort_pending(self, record: JobRecord, reason: str) -> None:
        """The job restarts or is suspended: its pending checkpoints are given up (on the
        loop)."""
        if record.coordinator is not None:
            self._execute(record, record.coordinator.abort(time.time(), reason))

    def forget(self, job_id: str) -> None:
        """A job left the history: its savepoint triggers go too (on the loop)."""
        for trigger_id in [t for t, s in self.savepoints.items() if s["job_id"] == job_id]:
            del self.savepoints[trigger_id]

    # ------------------------------------------------------------------ effects

    def _execute(self, record: JobRecord, effects: list[Effect]) -> None:
        """Carry the effects out: only submits work (on the loop)."""
        for effect in effects:
            if isinstance(effect, SendTrigger):
                self._send_trigger(record, effect)
            elif isinstance(effect, WriteMetadata):
                self._storage.submit(self._write_metadata, record, effect)
            elif isinstance(effect, NotifyComplete):
                notice = pb.CheckpointNotice(
                    job_id=record.job_id,
                    attempt=record.graph.attempt,
                    checkpoint_id=effect.checkpoint_id,
                )
                for address in {s.location for s in record.graph.subtasks.values()}:
                    self._send(address, "NotifyCheckpointComplete", notice)
            elif isinstance(effect, Discard):
                record.checkpoint_metadata.pop(effect.checkpoint_id, None)
                self._storage.submit(record.storage.discard, effect.location)
            elif isinstance(effect, FailJob):
                self.dispatcher.fail_job(record, effect.reason)
            elif isinstance(effect, SavepointDone):
                self._savepoint_done(record, effect)

    def _send_trigger(self, record: JobRecord, effect: SendTrigger) -> None:
        # Every TaskManager with running tasks: sources inject the barrier, and a task whose
        # inputs all finish without it takes its snapshot then.
        graph = record.graph
        request = pb.CheckpointTrigger(
            job_id=record.job_id,
            attempt=graph.attempt,
            checkpoint_id=effect.checkpoint_id,
            timestamp=effect.timestamp_ms,
            location=effect.location,
            is_savepoint=effect.is_savepoint,
            exactly_once=record.coordinator.settings.exactly_once,
        )
        for address in {s.location for s in graph.subtasks.values() if s.state == "RUNNING"}:
            self._send(address, "TriggerCheckpoint", request)

    def _send(self, address: str, method: str, request: Any) -> None:
        """Queue a command to a TaskManager; its commands go one at a time, in order."""
        with self._outbox_lock:
            queue = self._outbox.get(address)
            if queue is not None:
                queue.append((method, request))
                return
            self._outbox[address] = deque([(method, request)])
        try:
            self._rpc.submit(self._drain, address)
        except RuntimeError:  # shut down
            with self._outbox_lock:
                self._outbox.pop(address, None)

    def _drain(self, address: str) -> None:
        while True:
            with self._outbox_lock:
                queue = self._outbox.get(address)
                if not queue:
                    self._outbox.pop(address, None)
                    return
                method, request = queue.popleft()
                if not method:  # the commands queued before it are delivered
                    callback = request
                    channel = None
                else:
                    callback = None
                    channel = self._channels.get(address)
                if method and channel is None:
                    channel = self._channels[address] = self.dispatcher.jm.command_channel(address)
            if callback is not None:
                callback()
                continue
            stub = cluster_pb2_grpc.TaskExecutorGatewayStub(channel)
            try:
                getattr(stub, method)(request, timeout=_RPC_TIMEOUT_S)
            except grpc.RpcError as error:
                log.info(
                    "%s of checkpoint %d to %s failed: %s",
                    method,
                    request.checkpoint_id,
                    address,
                    error,
                )

    def _write_metadata(self, record: JobRecord, effect: WriteMetadata) -> None:
        """Write the metadata, then (a checkpoint) publish it; report the outcome."""
        failure, counted = None, True
        try:
            record.storage.write_metadata(effect.location, effect.metadata)
        except OSError as error:
            failure = str(error)
        if failure is None and effect.publish:
            published = self.dispatcher.jm.checkpoint_completed(
                record.job_id, effect.checkpoint_id, effect.location
            )
            if not published:
                # Not the job's fault: this JobManager was deposed, or its connection to
                # ZooKeeper dropped; it does not count towards failing the job.
                failure, counted = (
                    "it is not in high-availability storage (this JobManager was deposed or "
                    "lost its connection to ZooKeeper)",
                    False,
                )
        self.dispatcher.post(self._metadata_outcome, record, effect, failure, counted)

    def _metadata_outcome(
        self, record: JobRecord, effect: WriteMetadata, failure: str | None, counted: bool
    ) -> None:
        """On the loop: the metadata of a checkpoint or savepoint was written, or not."""
        now = time.time()
        coordinator = record.coordinator
        if self.dispatcher.jobs.get(record.job_id) is not record or coordinator is None:
            return  # suspended meanwhile: the new leader owns the job
        if failure is not None:
            log.warning(
                "checkpoint %d of job %s failed: %s",
                effect.checkpoint_id,
                record.job_id,
                failure,
            )
            effects = coordinator.metadata_failed(now, effect.checkpoint_id, failure, counted)
        else:
            completing = effect.checkpoint_id in coordinator.pending
            effects = coordinator.metadata_written(now, effect.checkpoint_id)
            latest = coordinator.latest()
            # One a restart gave up while this was written is kept when it is the latest.
            if completing or (latest is not None and latest.id == effect.checkpoint_id):
                record.checkpoint_metadata[effect.checkpoint_id] = effect.metadata
                log.info(
                    "%s %d of job %s complete at %s",
                    "checkpoint" if effect.publish else "savepoint",
                    effect.checkpoint_id,
                    record.job_id,
                    effect.location,
                )
        self._execute(record, effects)

    def _savepoint_done(self, record: JobRecord, effect: SavepointDone) -> None:
        status = self.savepoints.get(effect.trigger_id)
        if status is None:
            return
        status["status"] = {"id": "COMPLETED"}
        if effect.failure is not None:
            status["operation"] = {"failure-cause": {"stack-trace": effect.failure}}
            return
        status["operation"] = {"location": effect.location}
        if effect.then:
            # Once the TaskManagers have the notice of the savepoint (a stop-with-savepoint's
            # sinks commit with it), not before: their commands go in order.
            addresses = {s.location for s in record.graph.subtasks.values()}
            remaining = [len(addresses)]

            def delivered() -> None:
                with self._outbox_lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    self._storage.submit(
                        self.dispatcher.finish_after_savepoint, record, effect.then
                    )

            for address in addresses:
                self._send(address, "", delivered)
            if not addresses:
                self._storage.submit(self.dispatcher.finish_after_savepoint, record, effect.then)

    # ------------------------------------------------------------------ restore and views

    @staticmethod
    def restore_source(record: JobRecord) -> tuple[dict | None, str | None, dict | None]:
        """On the loop: what the next attempt restores from — the latest complete
        checkpoint's metadata if known, else its path to read, and the savepoint the job was
        started from as the fallback. :meth:`restore_bytes` reads it off the loop."""
        coordinator = record.coordinator
        latest = coordinator.latest() if coordinator is not None else None
        if latest is None:
            return None, None, record.initial_restore
        metadata = record.checkpoint_metadata.get(latest.id)
        return metadata, None if metadata else latest.external_path, record.initial_restore

    @staticmethod
    def restore_bytes(
        record: JobRecord, source: tuple[dict | None, str | None, dict | None]
    ) -> bytes:
        """What the next attempt restores from, as the deployment carries it (reads the
        metadata file when :meth:`restore_source` knew only its path: not on the loop)."""
        metadata, path, initial = source
        if metadata is None and path is not None:
            metadata = record.storage.read_metadata(path)
        if metadata is not None:
            return encode_metadata(metadata)
        if initial is not None:
            return encode_metadata(initial)
        return b""

    def stats(self, record: JobRecord) -> dict[str, Any]:
        """The job's checkpoint statistics in Flink's REST shape."""
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
