"""The dispatcher: accepts jobs, waits for slots, deploys subtasks and follows them to the end.

The decisions live in :class:`ExecutionGraph` (pure); this module does the I/O around them:
slot requests against the TaskManager registry, DeployTasks/CancelTasks calls to TaskManagers.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from jobmanager import restart_strategy
from jobmanager.batch_execution import BatchExecution, BatchJobs
from jobmanager.checkpoint_coordinator import CheckpointCoordinator, CompletedCheckpoint
from jobmanager.checkpoint_service import CheckpointService
from jobmanager.execution_graph import (
    CREATED,
    RESTARTING,
    RUNNING,
    TERMINAL_JOB_STATES,
    TERMINAL_TASK_STATES,
    Decision,
    ExecutionGraph,
)
from strom.checkpoint_storage import FileSystemCheckpointStorage, storage_for
from strom.configuration import OPTIONS, StromConfig
from strom.errors import ConfigurationError
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc

if TYPE_CHECKING:
    from jobmanager.service import JobManager
    from jobmanager.taskmanager_registry import TaskManagerRecord

log = logging.getLogger(__name__)

#: a job whose JobManager lost its leadership (Flink's JobStatus.SUSPENDED)
SUSPENDED = "SUSPENDED"
JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_RPC_TIMEOUT_S = 30.0


@dataclass
class JobRecord:
    request: pb.SubmitJobRequest
    graph: ExecutionGraph
    plan: dict[str, Any]
    submitted_at: float
    config: StromConfig
    storage: FileSystemCheckpointStorage
    strategy: restart_strategy.RestartStrategy
    sources: set[str]
    started_at: float = -1.0
    ended_at: float = -1.0
    placement: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    coordinator: CheckpointCoordinator | None = None
    checkpoint_metadata: dict[int, dict] = field(default_factory=dict)
    #: the savepoint the job was started from (strom run -s)
    initial_restore: dict | None = None
    #: a BATCH job's stage-by-stage run (None for STREAMING): see batch_execution.py
    batch: BatchExecution | None = None

    @property
    def job_id(self) -> str:
        return self.request.job_id

    @property
    def state(self) -> str:
        return self.graph.state


class Dispatcher:
    def __init__(self, jobmanager: JobManager) -> None:
        self.jm = jobmanager
        self.lock = jobmanager.lock
        self.jobs: dict[str, JobRecord] = {}
        self._pending: list[str] = []
        self._job_state_changed = threading.Condition(self.lock)
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._channels: dict[str, grpc.Channel] = {}
        self._thread = threading.Thread(
            target=self._schedule_loop, name="jm-scheduler", daemon=True
        )
        self.checkpointing = CheckpointService(self)
        self.batch = BatchJobs(self)

    def start(self) -> None:
        self._thread.start()
        self.checkpointing.start()

    def stop(self) -> None:
        self._stopped.set()
        self.checkpointing.stop()
        self._wake.set()
        for channel in list(self._channels.values()):
            channel.close()

    # -------------------------------------------------------------- jobs

    def submit(self, request: pb.SubmitJobRequest, recovered: bool = False) -> str:
        """Accept a job. ``recovered``: a new leader resubmits it from HA storage, and its
        ``execution.savepoint.path`` is the job's own latest checkpoint, not the user's."""
        job_id = request.job_id
        if not JOB_ID_PATTERN.match(job_id):
            raise ValueError(f"job id '{job_id}' is not 32 lowercase hex characters")
        try:
            plan = json.loads(request.plan_json)
            graph = ExecutionGraph.from_plan(job_id, plan)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"the job's plan is malformed: {error}") from None
        settings = {k: v for k, v in request.config.items() if k in OPTIONS}
        try:
            config = self.jm.config.with_overrides(settings, source="the job's configuration")
        except ConfigurationError as error:
            raise ValueError(str(error)) from None
        if config["execution.runtime-mode"] == "batch":  # no checkpoints in BATCH, as in Flink
            config = config.with_overrides({"execution.checkpointing.interval": None})
        checkpointing = config["execution.checkpointing.interval"] is not None
        strategy = restart_strategy.from_config(
            {**{k: v for k, v in config.explicit().items()}, **request.config}, checkpointing
        )
        storage = storage_for(config["state.checkpoints.dir"])
        initial_restore = None
        savepoint_path = request.config.get("execution.savepoint.path")
        if savepoint_path:
            initial_restore = storage.read_metadata(savepoint_path)
            if initial_restore is None:
                raise ValueError(
                    f"'{savepoint_path}' is not a finished savepoint or checkpoint (it has no "
                    "_metadata)"
                )
            uids = {op["uid"] for node in plan["nodes"] for op in node.get("operators", [])}
            unknown = sorted(set(initial_restore["operators"]) - uids)
            allow = request.config.get("execution.savepoint.ignore-unclaimed-state") == "true"
            if unknown and not allow:
                raise ValueError(
                    f"the savepoint has state for operators this job does not have: "
                    f"{', '.join(unknown)}. Set matching uid()s, or allow dropping that state "
                    "with -n/--allowNonRestoredState"
                )
        sources = {node["id"] for node in plan["nodes"] if node.get("pact") == "Data Source"}
        with self.lock:
            if job_id in self.jobs:
                raise ValueError(f"a job with id {job_id} was already submitted")
            record = JobRecord(
                request,
                graph,
                plan,
                time.time(),
                config,
                storage,
                strategy,
                sources,
                initial_restore=initial_restore,
            )
            graph.name = request.job_name or graph.name
            if config["execution.runtime-mode"] == "batch":
                self.batch.submitted(record)
            graph.restart_policy = lambda: strategy.on_failure(time.time())
            coordinator = self.checkpointing.coordinator_for(record)
            if initial_restore is not None:
                coordinator.restored(
                    CompletedCheckpoint(
                        initial_restore["checkpoint_id"],
                        0.0,
                        0.0,
                        {},
                        savepoint_path,
                        bool(initial_restore.get("is_savepoint")),
                    ),
                    owned=recovered,
                )
                if recovered:
                    record.checkpoint_metadata[initial_restore["checkpoint_id"]] = initial_restore
            self.jobs[job_id] = record
            self._pending.append(job_id)
        log.info(
            "job %s (%s) submitted: %d vertices, needs %d slot(s)",
            job_id,
            graph.name,
            len(graph.vertices),
            graph.slots_required(),
        )
        self.wake()
        return job_id

    def cancel(self, job_id: str) -> None:
        with self.lock:
            record = self._get(job_id)
            if record.batch is not None and record.graph.state == RUNNING:
                self.batch.stopping(record)
            decision = record.graph.cancel()
        self._apply(record, decision)

    def job(self, job_id: str) -> JobRecord:
        """The job's record; KeyError when there is no such job."""
        return self._get(job_id)

    def _get(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise KeyError(f"no job with id {job_id}")
        return record

    def wake(self) -> None:
        self._wake.set()

    # -------------------------------------------------------------- scheduling

    def _schedule_loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self._schedule()
                self.expire_history()
            except Exception:
                log.exception("scheduling failed")

    def _schedule(self) -> None:
        to_deploy: list[JobRecord] = []
        failed: list[tuple[JobRecord, Decision]] = []
        with self.lock:
            now = time.time()
            for record in [r for r in self.jobs.values() if r.batch is not None]:
                decision = self.batch.schedule(record, now)  # stage by stage
                if decision is not None:
                    failed.append((record, decision))
            for job_id in list(self._pending):
                record = self.jobs[job_id]
                graph = record.graph
                if graph.state != CREATED or record.batch is not None:
                    self._pending.remove(job_id)
                    continue
                needed = graph.slots_required()
                # the job's own setting (strom run -D, its code) over the cluster's
                timeout_s = record.config["slot.request.timeout"] / 1000.0
                slots = self.jm.registry.allocate(job_id, needed)
                if slots is None:
                    if graph.attempt > 0:
                        # A restarting job waits for TaskManagers to come (back).
                        graph.status_message = (
                            f"restarting: waiting for {needed} free slot(s); the cluster has "
                            f"{self.jm.registry.slots_available} free"
                        )
                        continue
                    total = self.jm.registry.slots_total
                    free = self.jm.registry.slots_available
                    graph.status_message = (
                        f"waiting for {needed} free slot(s); the cluster has {free} free of "
                        f"{total} (raise taskmanager.numberOfTaskSlots, start more TaskManagers "
                        f"or lower the job's parallelism)"
                    )
                    if time.time() - record.submitted_at > timeout_s:
                        message = (
                            f"Could not acquire the {needed} slot(s) the job needs within "
                            f"slot.request.timeout ({int(timeout_s * 1000)} ms): the cluster has "
                            f"{free} free of {total}. Start more TaskManagers, raise "
                            "taskmanager.numberOfTaskSlots or lower the job's parallelism."
                        )
                        failed.append((record, graph.fail(message)))
                        self._pending.remove(job_id)
                    continue
                self._pending.remove(job_id)
                slot_addresses = []
                for slot in slots:
                    tm = self.jm.registry.get(slot.resource_id)
                    slot_addresses.append((slot.resource_id, tm.address if tm else ""))
                record.placement = graph.assign(slot_addresses)
                record.started_at = time.time()
                to_deploy.append(record)
        for record, decision in failed:
            log.warning("job %s failed: %s", record.job_id, record.graph.failure)
            self._apply(record, decision)
        for record in to_deploy:
            threading.Thread(
                target=self._deploy_or_fail, args=(record,), name="jm-deploy", daemon=True
            ).start()

    def _stub(self, address: str) -> cluster_pb2_grpc.TaskExecutorGatewayStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = self.jm.command_channel(address)
        return cluster_pb2_grpc.TaskExecutorGatewayStub(channel)

    def _deploy_or_fail(self, record: JobRecord) -> None:
        """Deploy; an unexpected error fails the job (restart strategy applies) instead of
        ending the deploy thread with the job left waiting for tasks that never start."""
        try:
            self._deploy(record)
        except Exception as error:
            log.exception("deploying job %s failed", record.job_id)
            self._deploy_failed(record, "", error)

    def _deploy(self, record: JobRecord) -> None:
        """Deploy in two phases: each TaskManager first starts the job's slot processes and
        answers their data addresses, so that every producer is deployed knowing where its
        consumers listen; then every TaskManager gets the subtasks with those locations."""
        request = record.request
        graph = record.graph
        attempt = graph.attempt
        by_address: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for (vertex_id, index), (_, address) in record.placement.items():
            by_address[address].append((vertex_id, index))
        slot_numbers = graph.slot_numbers()
        restore = self.checkpointing.restore_bytes(record)
        log.info(
            "deploying job %s attempt %d to %d TaskManager(s)",
            record.job_id,
            graph.attempt,
            len(by_address),
        )
        data_addresses: dict[tuple[str, int], str] = {}
        for address, tasks in by_address.items():
            slots: dict[int, list[tuple[str, int]]] = defaultdict(list)
            for task in tasks:
                slots[slot_numbers[task]].append(task)
            prepare = pb.PrepareSlotsRequest(
                job_id=request.job_id,
                attempt=graph.attempt,
                jobmanager_address=self.jm.advertised_address,
                # the job's (or -D's) python.executable, else the cluster configuration's
                python_executable=request.config.get("python.executable")
                or self.jm.config["python.executable"]
                or "",
                slots=[
                    pb.SlotAssignment(
                        slot=slot,
                        tasks=[pb.TaskSpec(vertex_id=v, subtask=i) for v, i in members],
                    )
                    for slot, members in sorted(slots.items())
                ],
            )
            try:
                answer = self._stub(address).PrepareSlots(prepare, timeout=_RPC_TIMEOUT_S)
                if not answer.ok:
                    raise RuntimeError(answer.message)
            except (grpc.RpcError, RuntimeError) as error:
                self._deploy_failed(record, address, error)
                return
            prepared = {slot.slot: slot.address for slot in answer.slots}
            for slot, members in slots.items():
                for task in members:
                    data_addresses[task] = prepared.get(slot, address)
        locations = [
            pb.TaskLocation(vertex_id=v, subtask=i, address=data_address)
            for (v, i), data_address in data_addresses.items()
        ]
        for address, tasks in by_address.items():
            deployment = pb.DeployTasksRequest(
                job_id=request.job_id,
                attempt=graph.attempt,
                job_name=graph.name,
                job_graph=request.job_graph,
                files=request.files,
                tasks=[pb.TaskSpec(vertex_id=v, subtask=i) for v, i in tasks],
                locations=locations,
                config=request.config,
                jobmanager_address=self.jm.advertised_address,
                restore=restore,
                checkpointing=bool(record.coordinator and record.coordinator.settings.interval_ms),
            )
            try:
                answer = self._stub(address).DeployTasks(deployment, timeout=_RPC_TIMEOUT_S)
                if not answer.ok:
                    raise RuntimeError(answer.message)
            except (grpc.RpcError, RuntimeError) as error:
                self._deploy_failed(record, address, error)
                return
        with self.lock:
            superseded = graph.state != RUNNING or graph.attempt != attempt
        if superseded:
            # A cancel or failure during the deployment found nothing to cancel on the
            # TaskManagers not prepared yet, which then started the tasks: cancel them now,
            # or the job would wait for them in CANCELLING or FAILING for ever.
            self._cancel_tasks(record, attempt)

    def _deploy_failed(self, record: JobRecord, address: str, error: Exception) -> None:
        detail = error.details() if isinstance(error, grpc.RpcError) else str(error)
        where = f"to TaskManager {address}" if address else "(JobManager)"
        reason = f"could not deploy tasks {where}: {detail or repr(error)}"
        log.warning("job %s: %s", record.job_id, reason)
        with self.lock:
            decision = record.graph.fail(reason)
        self._apply(record, decision)

    def _cancel_tasks(self, record: JobRecord, attempt: int | None = None) -> None:
        """Tell every registered TaskManager running the job (``attempt`` of it, by default
        the current one) to cancel it, all at once: a lost TaskManager is not asked (and cannot
        hold up the others)."""
        with self.lock:
            registered = {tm.address for tm in self.jm.registry.all()}
        addresses = {a for _, a in record.placement.values() if a in registered}
        if attempt is None:  # every execution of a BATCH job
            attempt = record.graph.attempt if record.batch is None else -1
        request = pb.CancelTasksRequest(job_id=record.job_id, attempt=attempt)

        def cancel(address: str) -> None:
            try:
                self._stub(address).CancelTasks(request, timeout=5)
            except grpc.RpcError as error:
                log.info("could not cancel tasks on %s: %s", address, error.code())

        for address in addresses:
            threading.Thread(target=cancel, args=(address,), daemon=True).start()

    def _apply(self, record: JobRecord, decision: Decision) -> None:
        if decision.restart_after is not None:
            self.checkpointing.abort_pending(record, "the job is restarting")
            log.warning(
                "job %s failed (%s); restarting in %.1f s",
                record.job_id,
                record.graph.failure.strip().splitlines()[-1] if record.graph.failure else "",
                decision.restart_after,
            )
            timer = threading.Timer(decision.restart_after, self._restart, args=(record,))
            timer.daemon = True
            timer.start()
        if decision.cancel_tasks:
            threading.Thread(
                target=self._cancel_tasks, args=(record,), name="jm-cancel", daemon=True
            ).start()
        if decision.release_slots:
            with self.lock:
                self.jm.registry.release(record.job_id)
            self.wake()
        if decision.job_state_changed:
            terminated = False
            with self.lock:
                state = record.graph.state
                if state in TERMINAL_JOB_STATES and record.ended_at < 0:
                    terminated = True
                    record.ended_at = time.time()
                    self._clean_up_checkpoints(record)
                    if record.batch is not None:
                        self.batch.job_ended(record)
                    self._release(record)
                    self._expire_history(record.ended_at)
                self._job_state_changed.notify_all()
            log.info("job %s (%s) is %s", record.job_id, record.graph.name, state)
            if terminated:
                self.jm.job_terminated(record.job_id)  # hook: high availability forgets it

    def _restart(self, record: JobRecord) -> None:
        with self.lock:
            if record.graph.state != RESTARTING:
                return
            record.graph.begin_attempt()
            record.placement = {}
            if record.coordinator is not None:
                record.coordinator.tasks = set(record.graph.subtasks)
                latest = record.coordinator.latest()
                if latest is not None:
                    record.coordinator.counts["restored"] += 1
            self._pending.append(record.job_id)
        self.wake()

    def _release(self, record: JobRecord) -> None:
        """An ended job keeps what its history shows, not its code: the pickled graph and the
        job's files (50 MB for a job with a 50 MB collection) go now."""
        request = record.request
        record.request = pb.SubmitJobRequest(
            job_id=request.job_id, job_name=request.job_name, config=request.config
        )
        record.checkpoint_metadata.clear()
        record.placement = {}

    def _expire_history(self, now: float) -> None:
        """Keep ended jobs as Flink's job store does: at most ``jobstore.max-capacity`` of
        them, none ended more than ``jobstore.expiration-time`` ago. Caller holds the lock."""
        capacity = self.jm.config["jobstore.max-capacity"]
        expiration_s = self.jm.config["jobstore.expiration-time"] / 1000.0
        ended = sorted((r for r in self.jobs.values() if r.ended_at > 0), key=lambda r: r.ended_at)
        excess = max(0, len(ended) - capacity)
        for index, record in enumerate(ended):
            if index < excess or now - record.ended_at > expiration_s:
                del self.jobs[record.job_id]
                self.checkpointing.forget(record.job_id)

    def expire_history(self) -> None:
        """Drop ended jobs past ``jobstore.expiration-time`` (called periodically)."""
        with self.lock:
            self._expire_history(time.time())

    def _clean_up_checkpoints(self, record: JobRecord) -> None:
        """A finished job's checkpoints go; a cancelled one's as the retention setting says;
        a failed job keeps them (to resume from by hand)."""
        coordinator = record.coordinator
        if coordinator is None or not coordinator.completed or not self.jm.serves():
            return  # (a deposed leader leaves them: the new one may be restoring from them)
        retention = record.config["execution.checkpointing.externalized-checkpoint-retention"]
        state = record.graph.state
        if state == "FINISHED" or (state == "CANCELED" and retention == "DELETE_ON_CANCELLATION"):
            for checkpoint in coordinator.completed:
                record.storage.discard(checkpoint.external_path)

    def suspend_jobs(self, reason: str) -> None:
        """Leadership is lost: forget every job not ended, as Flink's JobMaster suspends them.
        Nothing is cancelled on the TaskManagers (the new leader owns those tasks now); the
        jobs stop being scheduled and checkpointed, and a deployment or restart under way
        finds them SUSPENDED and stops."""
        with self.lock:
            suspended = [r for r in self.jobs.values() if r.graph.state not in TERMINAL_JOB_STATES]
            for record in suspended:
                del self.jobs[record.job_id]
                record.graph.state = SUSPENDED
                self.checkpointing.abort_pending(record, reason)
                self.jm.registry.release(record.job_id)
            self._pending.clear()
            self._job_state_changed.notify_all()
        for record in suspended:
            log.warning("job %s (%s) is SUSPENDED: %s", record.job_id, record.graph.name, reason)

    def fail_job(self, record: JobRecord, reason: str) -> None:
        with self.lock:
            if record.batch is not None and record.graph.state == RUNNING:
                self.batch.stopping(record)
            decision = record.graph.fail(reason)
        self._apply(record, decision)

    def finish_after_savepoint(self, record: JobRecord, then: str) -> None:
        with self.lock:
            decision = record.graph.stop() if then == "stop" else record.graph.cancel()
        self._apply(record, decision)

    # -------------------------------------------------------------- savepoints

    def trigger_savepoint(
        self, job_id: str, target_dir: str | None = None, cancel_job: bool = False
    ) -> str:
        record = self._get(job_id)
        return self.checkpointing.trigger_savepoint(
            record, target_dir, "cancel" if cancel_job else ""
        )

    def stop_with_savepoint(
        self, job_id: str, target_dir: str | None = None, drain: bool = False
    ) -> str:
        record = self._get(job_id)
        return self.checkpointing.trigger_savepoint(record, target_dir, "stop")

    def savepoint_status(self, job_id: str, trigger_id: str) -> dict:
        status = self.checkpointing.savepoints.get(trigger_id)
        if status is None or status["job_id"] != job_id:
            raise KeyError(f"no savepoint {trigger_id} for job {job_id}")
        return {k: v for k, v in status.items() if k in ("status", "operation")}

    def checkpoint_stats(self, job_id: str) -> dict:
        with self.lock:
            return self.checkpointing.stats(self._get(job_id))

    def checkpoint_config(self, job_id: str) -> dict:
        record = self._get(job_id)
        config = record.config
        interval = config["execution.checkpointing.interval"]
        return {
            "mode": "exactly_once"
            if config["execution.checkpointing.mode"] == "exactly_once"
            else "at_least_once",
            "interval": interval if interval is not None else 0x7FFFFFFFFFFFFFFF,
            "timeout": config["execution.checkpointing.timeout"],
            "min_pause": config["execution.checkpointing.min-pause"],
            "max_concurrent": config["execution.checkpointing.max-concurrent-checkpoints"],
            "tolerable_failed_checkpoints": config[
                "execution.checkpointing.tolerable-failed-checkpoints"
            ],
            "externalization": {
                "enabled": True,
                "delete_on_cancellation": config[
                    "execution.checkpointing.externalized-checkpoint-retention"
                ]
                == "DELETE_ON_CANCELLATION",
            },
            "checkpoint_storage": f"FileSystemCheckpointStorage ({record.storage.base})",
            "state_backend": "HashMapStateBackend",
        }

    # -------------------------------------------------------------- events

    def task_state_changed(self, update: pb.TaskExecutionState) -> None:
        with self.lock:
            record = self.jobs.get(update.job_id)
            if record is None:
                return
            if record.batch is not None:  # executions of a BATCH job (batch_execution.py)
                decision = self.batch.task_state_changed(record, update)
            else:
                subtask = record.graph.subtasks.get((update.vertex_id, update.subtask))
                if subtask is not None and update.HasField("metrics"):
                    subtask.records_in = update.metrics.records_in
                    subtask.records_out = update.metrics.records_out
                    subtask.input_bytes_read = update.metrics.input_bytes_read
                    subtask.input_bytes_total = update.metrics.input_bytes_total
                decision = record.graph.task_state_changed(
                    update.vertex_id, update.subtask, update.attempt, update.state, update.failure
                )
        if (
            update.state == "FINISHED"
            and update.attempt == record.graph.attempt
            and record.batch is None
        ):
            self.checkpointing.task_finished(record)
        self._apply(record, decision)

    def update_metrics(self, metrics: list[pb.TaskMetrics]) -> None:
        with self.lock:
            for metric in metrics:
                record = self.jobs.get(metric.job_id)
                if record is not None and record.batch is not None:
                    self.batch.metrics(record, metric)
                    continue
                if record is None or record.graph.attempt != metric.attempt:
                    continue
                subtask = record.graph.subtasks.get((metric.vertex_id, metric.subtask))
                # A heartbeat may carry a slot process's sample taken before the subtask's
                # final report: that report's counts stand.
                if subtask is not None and subtask.state not in TERMINAL_TASK_STATES:
                    subtask.records_in = metric.records_in
                    subtask.records_out = metric.records_out
                    subtask.input_bytes_read = metric.input_bytes_read
                    subtask.input_bytes_total = metric.input_bytes_total

    def taskmanager_lost(self, tm: TaskManagerRecord, reason: str) -> None:
        affected = []
        with self.lock:
            for record in self.jobs.values():
                if record.batch is not None:
                    decision = self.batch.taskmanager_lost(record, tm, reason)
                else:
                    decision = record.graph.taskmanager_lost(tm.resource_id, reason)
                if decision.job_state_changed or decision.cancel_tasks:
                    affected.append((record, decision))
        for record, decision in affected:
            self._apply(record, decision)

    # -------------------------------------------------------------- views

    def summary(self, record: JobRecord) -> dict[str, Any]:
        now = time.time()
        start = record.started_at if record.started_at > 0 else record.submitted_at
        end = record.ended_at
        duration = int(((end if end > 0 else now) - start) * 1000)
        return {
            "jid": record.job_id,
            "name": record.graph.name,
            "state": record.graph.state,
            "start-time": int(start * 1000),
            "end-time": int(end * 1000) if end > 0 else -1,
            "duration": duration,
            "last-modification": int((end if end > 0 else now) * 1000),
            "tasks": {k.lower(): v for k, v in record.graph.task_counts().items()},
        }

    def summaries(self) -> list[dict[str, Any]]:
        with self.lock:
            records = sorted(self.jobs.values(), key=lambda r: r.submitted_at, reverse=True)
            return [self.summary(record) for record in records]

    def details(self, job_id: str) -> dict[str, Any]:
        with self.lock:
            record = self._get(job_id)
            graph = record.graph
            details = self.summary(record)
            details["status-message"] = graph.status_message
            details["failure"] = graph.failure
            details["attempt"] = graph.attempt
            details["restarts"] = graph.restarts
            details["restart-strategy"] = record.strategy.describe()
            details["exceptions"] = [
                {"exception": text, "location": where, "timestamp": at}
                for text, where, at in reversed(graph.failures)
            ]
            details["plan"] = record.plan
            vertices = []
            for vertex in graph.vertices:
                subtasks = [s for s in graph.subtasks.values() if s.vertex_id == vertex.id]
                vertices.append(
                    {
                        "id": vertex.id,
                        "name": vertex.name,
                        "parallelism": vertex.parallelism,
                        "status": graph.vertex_state(vertex.id),
                        "tasks": {k.lower(): v for k, v in graph.task_counts(vertex.id).items()},
                        "metrics": {
                            "read-records": sum(s.records_in for s in subtasks),
                            "write-records": sum(s.records_out for s in subtasks),
                            # Strom's: a file source's input read so far, and in all
                            "input-bytes-read": sum(s.input_bytes_read for s in subtasks),
                            "input-bytes-total": sum(s.input_bytes_total for s in subtasks),
                        },
                        "subtasks": [
                            {
                                "subtask": s.index,
                                "status": s.state,
                                "taskmanager-id": s.resource_id,
                                "host": s.location,
                            }
                            for s in sorted(subtasks, key=lambda s: s.index)
                        ],
                    }
                )
            details["vertices"] = vertices
            if record.batch is not None:
                for vertex in vertices:  # each stage's own times
                    vertex.update(self.batch.vertex_times(record, vertex["id"]))
                details["executions"] = {
                    f"{v}/{i}": n for (v, i), n in record.batch.executions.items()
                }
            return details

    def await_termination(self, job_id: str, timeout_s: float) -> None:
        """Block until the job has ended or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            record = self._get(job_id)
            while record.graph.state not in TERMINAL_JOB_STATES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._job_state_changed.wait(remaining)

    def counts(self) -> list[str]:
        with self.lock:
            return [record.graph.state for record in self.jobs.values()]
