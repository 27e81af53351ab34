"""BATCH jobs on a cluster: stage-by-stage deployment and region failover, for the dispatcher.

The decisions are :class:`BatchScheduler`'s (``batch_scheduling.py``, pure); this module
carries them out with the dispatcher's slots, TaskManager stubs and execution graph:

- **Stage by stage.** A BATCH job does not wait for as many slots as its parallelism. Each
  subtask is a pipelined region of its own (every exchange is blocking, see
  ``taskmanager/network/result_partitions.py``) and is deployed, into a slot of its own, as
  soon as every partition it reads is finished and a slot is free; its slot is given back
  when it ends. A job of parallelism 4 thus runs on one TaskManager with 2 slots, two
  subtasks at a time.
- **Executions.** Every deployment of a subtask is a new *execution*, numbered job-wide; the
  number travels as the deployment's ``attempt`` (slot process, task, state reports), so a
  late report of an execution that was replaced is told apart from the current one.
- **Region failover.** A failed subtask re-runs alone, reading its inputs again from the
  partitions the TaskManagers keep. A lost TaskManager re-runs what ran there and the
  finished producers whose partitions it kept that a consumer still needs; consumers that were
  reading those are cancelled and re-run too. Each failover counts as one failure for the
  job's restart strategy; when that says no more, the job fails as a whole.
- A producer's result partitions are released as soon as every consumer of them finished,
  and the rest on every TaskManager that ran one of the job's subtasks when the job ends.

The execution graph's subtasks mirror the scheduler's states, so the REST API and dashboard
show which stage runs and which finished with no BATCH case of their own. Every method runs
on the dispatcher's loop except the blocking calls to TaskManagers (deploy, cancel, release
partitions), which run on its bounded executor.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from jobmanager.batch_scheduling import BatchScheduler, Failover, SubtaskId
from jobmanager.execution_graph import CREATED, RUNNING, TERMINAL_TASK_STATES, Decision
from jobmanager.taskmanager_registry import SlotId
from strom.rpc import cluster_pb2 as pb

if TYPE_CHECKING:
    from jobmanager.dispatcher import Dispatcher, JobRecord
    from jobmanager.taskmanager_registry import TaskManagerRecord

log = logging.getLogger(__name__)

_RPC_TIMEOUT_S = 30.0
#: every execution of a BATCH job has its own number, from this one up (a job's attempts of
#: the STREAMING kind count from 0; these never meet, but distinct numbers read better in logs)
_FIRST_EXECUTION = 1


@dataclass
class BatchExecution:
    """The stage-by-stage run of one BATCH job: its scheduler and where its executions are."""

    scheduler: BatchScheduler
    plan: dict[str, Any]
    #: the job attempt (whole-job restarts) this run belongs to
    attempt: int = 0
    #: the current execution number of each deployed subtask
    executions: dict[SubtaskId, int] = field(default_factory=dict)
    #: the slot each live execution holds, by execution number, released at its end
    slots: dict[int, SlotId] = field(default_factory=dict)
    #: TaskManager address by resource id, of every TaskManager the job ran on
    addresses: dict[str, str] = field(default_factory=dict)
    #: no deployment before this time (a failover's restart delay)
    hold_until: float = 0.0
    #: how many region failovers the job went through
    failovers: int = 0
    #: per vertex (stage), when its first subtask was deployed and when its last finished
    #: (epoch seconds; a failover that re-runs part of a finished stage reopens it)
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    numbers: Any = field(default_factory=lambda: itertools.count(_FIRST_EXECUTION))

    @classmethod
    def for_plan(cls, plan: dict[str, Any], attempt: int = 0) -> BatchExecution:
        """A run from the first stage of the job ``plan`` (``JobGraph.plan()``)."""
        return cls(BatchScheduler.from_plan(plan), plan, attempt)


@dataclass
class _Deployment:
    subtask: SubtaskId
    execution: int
    slot: SlotId
    address: str
    #: where each partition the subtask reads is kept: (vertex, subtask) -> TaskManager address
    inputs: dict[SubtaskId, str]


def _subtask_id(name: str) -> SubtaskId | None:
    """``"vertex/subtask"`` as a subtask id (None if malformed)."""
    vertex, _, index = name.rpartition("/")
    return (vertex, int(index)) if vertex and index.isdigit() else None


class BatchJobs:
    """The dispatcher's BATCH hook: schedules, deploys and fails over its BATCH jobs."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    @property
    def registry(self) -> Any:
        """The JobManager's TaskManager registry (its slots)."""
        return self.dispatcher.jm.registry

    # -------------------------------------------------------------- scheduling

    def submitted(self, record: JobRecord) -> None:
        """A BATCH job arrived: it runs stage by stage."""
        graph = record.graph
        record.batch = run = BatchExecution.for_plan(record.plan, graph.attempt)
        # a recovered job's first attempt is above every number an earlier leader deployed
        run.numbers = itertools.count(max(_FIRST_EXECUTION, graph.attempt))

    def schedule(self, record: JobRecord, now: float) -> Decision | None:
        """Deploy what can run now into free slots; a decision if the job must fail (no slot
        for its first stage within ``slot.request.timeout``). Caller holds the lock."""
        run, graph = record.batch, record.graph
        if graph.state not in (CREATED, RUNNING) or run is None:
            return None
        if run.attempt != graph.attempt:  # restarted as a whole: start from the first stage
            numbers = run.numbers  # execution numbers stay unique over the job's life
            record.batch = run = BatchExecution.for_plan(run.plan, graph.attempt)
            run.numbers = numbers
        if now < run.hold_until:
            return None
        ready = run.scheduler.schedulable()
        if not ready:
            return None
        available = self.registry.slots_available - self._reserved_for_streaming()
        free = max(0, min(len(ready), available))
        slots = self.registry.allocate(record.job_id, free) if free else None
        if not slots:
            if graph.state == CREATED:
                return self._waiting_for_slots(record, now)
            return None
        deployments = run.scheduler.deploy([slot.resource_id for slot in slots])
        for slot in slots[len(deployments) :]:
            self.registry.release_slot(slot)
        planned = []
        for deployment, slot in zip(deployments, slots, strict=False):
            taskmanager = self.registry.get(slot.resource_id)
            address = taskmanager.address if taskmanager else ""
            run.addresses[slot.resource_id] = address
            execution = next(run.numbers)
            run.executions[deployment.subtask] = execution
            run.slots[execution] = slot
            subtask = graph.subtasks[deployment.subtask]
            subtask.state, subtask.resource_id, subtask.location = (
                "DEPLOYING",
                slot.resource_id,
                address,
            )
            record.placement[deployment.subtask] = (slot.resource_id, address)
            run.started.setdefault(deployment.subtask[0], now)
            inputs = {p: run.addresses.get(rid, "") for p, rid in deployment.inputs.items()}
            planned.append(_Deployment(deployment.subtask, execution, slot, address, inputs))
        if graph.state == CREATED:
            graph.state = RUNNING
            record.started_at = now  # the clock of its subtasks' start times
        graph.status_message = self._stage_message(record)
        for deployment in planned:
            self.dispatcher.run_io(self._deploy, record, deployment)
        return None

    def _reserved_for_streaming(self) -> int:
        """Free slots a BATCH job must leave alone: those the first STREAMING job waiting for
        slots needs (of those the cluster has slots enough for). A BATCH job takes slots one
        subtask at a time and gives them back as its subtasks end; a STREAMING job needs all
        of its slots at once. Without this, a long BATCH job would take every slot that came
        free and the STREAMING job would wait until it ended (or time out); with it, the
        slots given back collect until the STREAMING job can start."""
        dispatcher = self.dispatcher
        for job_id in dispatcher.waiting_for_slots():  # in the order the jobs came
            record = dispatcher.jobs.get(job_id)
            if record is None or record.batch is not None or record.graph.state != CREATED:
                continue
            needed = record.graph.slots_required()
            if needed <= self.registry.slots_total:  # else it cannot run here at all
                return needed
        return 0

    def _waiting_for_slots(self, record: JobRecord, now: float) -> Decision | None:
        graph = record.graph
        total, free = self.registry.slots_total, self.registry.slots_available
        graph.status_message = (
            f"waiting for a free slot for the first stage; the cluster has {free} free of {total}"
        )
        timeout_s = record.config["slot.request.timeout"] / 1000.0
        if graph.restarts == 0 and now - record.submitted_at > timeout_s:
            return graph.fail(
                f"Could not acquire a slot for the BATCH job's first stage within "
                f"slot.request.timeout ({int(timeout_s * 1000)} ms): the cluster has {free} free "
                f"of {total}. Start a TaskManager or free a slot."
            )
        return None

    @staticmethod
    def _stage_message(record: JobRecord) -> str:
        stages = record.batch.scheduler.stages()
        running = [s["name"] for s in stages if s["state"] == "RUNNING"]
        done = sum(s["state"] == "FINISHED" for s in stages)
        return f"BATCH: {done} of {len(stages)} stage(s) finished" + (
            f"; running: {', '.join(running)}" if running else ""
        )

    def _deploy(self, record: JobRecord, deployment: _Deployment) -> None:
        """Start one subtask (its own slot process, on its slot's TaskManager)."""
        dispatcher = self.dispatcher
        vertex_id, index = deployment.subtask
        task = pb.TaskSpec(vertex_id=vertex_id, subtask=index)
        try:
            try:  # recorded before any command for it goes out (high availability)
                dispatcher.jm.attempt_deploying(record.job_id, deployment.execution)
            except Exception as error:
                raise RuntimeError(
                    f"could not record the execution in HA storage: {error}"
                ) from None
            request = record.request
            stub = dispatcher.taskmanager_stub(deployment.address)
            prepared = stub.PrepareSlots(
                pb.PrepareSlotsRequest(
                    job_id=record.job_id,
                    attempt=deployment.execution,
                    jobmanager_address=dispatcher.jm.advertised_address,
                    slots=[pb.SlotAssignment(slot=deployment.slot.index, tasks=[task])],
                ),
                timeout=_RPC_TIMEOUT_S,
            )
            if not prepared.ok:
                raise RuntimeError(prepared.message)
            answer = stub.DeployTasks(
                pb.DeployTasksRequest(
                    job_id=record.job_id,
                    attempt=deployment.execution,
                    job_name=record.graph.name,
                    job_graph=request.job_graph,
                    files=request.files,
                    tasks=[task],
                    locations=[
                        pb.TaskLocation(vertex_id=v, subtask=i, address=address)
                        for (v, i), address in deployment.inputs.items()
                    ],
                    config=request.config,
                    jobmanager_address=dispatcher.jm.advertised_address,
                ),
                timeout=_RPC_TIMEOUT_S,
            )
            if not answer.ok:
                raise RuntimeError(answer.message)
        except (grpc.RpcError, RuntimeError) as error:
            detail = error.details() if isinstance(error, grpc.RpcError) else str(error)
            reason = (
                f"could not deploy {vertex_id}[{index}] to TaskManager {deployment.address}: "
                f"{detail}"
            )
            log.warning("job %s: %s", record.job_id, reason)
            update = pb.TaskExecutionState(
                job_id=record.job_id,
                attempt=deployment.execution,
                vertex_id=vertex_id,
                subtask=index,
                state="FAILED",
                failure=reason,
            )
            dispatcher.task_state_changed(update)
            return
        with dispatcher.lock:
            superseded = record.graph.state != RUNNING
        if superseded:  # cancelled or failed while this deployment was under way
            self._cancel_execution(deployment.address, record.job_id, deployment.execution)

    # -------------------------------------------------------------- events

    def task_state_changed(self, record: JobRecord, update: pb.TaskExecutionState) -> Decision:
        """A report of one execution. Caller holds the lock."""
        run, graph = record.batch, record.graph
        subtask_id = (update.vertex_id, update.subtask)
        if update.state in TERMINAL_TASK_STATES:
            slot = run.slots.pop(update.attempt, None)
            if slot is not None:
                self.registry.release_slot(slot)
                self.dispatcher.wake()
        if run.executions.get(subtask_id) != update.attempt or subtask_id not in graph.subtasks:
            return Decision()  # an execution that was replaced (or never current)
        subtask = graph.subtasks[subtask_id]
        if update.HasField("metrics"):
            subtask.records_in = update.metrics.records_in
            subtask.records_out = update.metrics.records_out
            subtask.input_bytes_read = update.metrics.input_bytes_read
            subtask.input_bytes_total = update.metrics.input_bytes_total
        if graph.state != RUNNING:  # the job is cancelled or fails as a whole: it settles
            return graph.task_state_changed(
                update.vertex_id,
                update.subtask,
                graph.attempt,
                update.state,
                update.failure,
                update.consequential,
            )
        if update.state == "RUNNING":
            run.scheduler.running(subtask_id)
            subtask.state = "RUNNING"
            graph.status_message = self._stage_message(record)
            return Decision()
        if update.state == "FINISHED":
            for producer, resource_id in run.scheduler.finished(subtask_id):
                self._release_partition(record, producer, run.addresses.get(resource_id, ""))
            run.executions.pop(subtask_id, None)
            decision = graph.task_state_changed(
                update.vertex_id, update.subtask, graph.attempt, "FINISHED"
            )
            if graph.vertex_state(update.vertex_id) == "FINISHED":
                run.ended[update.vertex_id] = record.master.now  # as the job's end
            graph.status_message = self._stage_message(record)
            self.dispatcher.wake()  # the next stage may be ready
            return decision
        if update.state in ("FAILED", "CANCELED"):
            where = f"{update.vertex_id}[{update.subtask}]"
            cause = update.failure or f"task {where} {update.state.lower()}"
            lost = [_subtask_id(p) for p in update.lost_partitions]
            if lost:  # its inputs are gone: their producers run again too (as in Flink)
                failover = run.scheduler.partitions_lost(subtask_id, [p for p in lost if p])
            else:
                failover = run.scheduler.failed(subtask_id)
            return self._failover(record, failover, cause, where)
        subtask.state = update.state
        return Decision()

    def taskmanager_lost(self, record: JobRecord, tm: TaskManagerRecord, reason: str) -> Decision:
        """A TaskManager is gone with what ran there and the partitions it kept. Caller holds
        the lock."""
        run, graph = record.batch, record.graph
        for execution, slot in list(run.slots.items()):
            if slot.resource_id == tm.resource_id:
                del run.slots[execution]  # gone with its TaskManager
        if graph.state != RUNNING:
            return graph.taskmanager_lost(tm.resource_id, reason)
        failover = run.scheduler.taskmanager_lost(tm.resource_id)
        if not failover.rerun:
            return Decision()
        cause = f"TaskManager {tm.resource_id} was lost ({reason})"
        return self._failover(record, failover, cause, tm.resource_id)

    def _failover(self, record: JobRecord, failover: Failover, cause: str, where: str) -> Decision:
        """Re-run the failed region (or fail the job, when its restart strategy says so)."""
        run, graph = record.batch, record.graph
        delay = graph.restart_policy() if graph.restart_policy else None
        if delay is None:
            for subtask_id in failover.rerun:
                if graph.subtasks[subtask_id].state not in TERMINAL_TASK_STATES:
                    graph.subtasks[subtask_id].state = "FAILED"
            return graph.fail(cause, restartable=False)
        graph._record_failure(cause, where)
        graph.failure = cause
        graph.restarts += 1
        run.failovers += 1
        for subtask_id in failover.cancel:
            execution = run.executions.get(subtask_id)
            address = record.placement.get(subtask_id, ("", ""))[1]
            if execution is not None and address:
                self.dispatcher.run_io(self._cancel_execution, address, record.job_id, execution)
        for subtask_id in failover.rerun:
            run.ended.pop(subtask_id[0], None)
            run.executions.pop(subtask_id, None)
            record.placement.pop(subtask_id, None)
            subtask = graph.subtasks[subtask_id]
            subtask.state, subtask.resource_id, subtask.location = "CREATED", "", ""
        run.hold_until = time.time() + delay
        log.warning(
            "job %s: region failover %d (%s): re-running %s in %.1f s",
            record.job_id,
            run.failovers,
            cause.strip().splitlines()[-1] if cause.strip() else cause,
            ", ".join(f"{v}[{i}]" for v, i in failover.rerun),
            delay,
        )
        graph.status_message = f"BATCH region failover: re-running {len(failover.rerun)} subtask(s)"
        self.dispatcher.call_later(delay, self.dispatcher.wake)
        return Decision()

    def _release_partition(self, record: JobRecord, producer: SubtaskId, address: str) -> None:
        """Every consumer of ``producer``'s partitions finished: free their disk now."""
        if not address:
            return
        request = pb.ReleasePartitionsRequest(
            job_id=record.job_id, producer_vertex=producer[0], producer_subtask=producer[1]
        )

        def release() -> None:
            try:
                self.dispatcher.taskmanager_stub(address).ReleasePartitions(request, timeout=10)
            except grpc.RpcError as error:
                log.info("could not release a partition on %s: %s", address, error.code())

        self.dispatcher.run_io(release)

    def _cancel_execution(self, address: str, job_id: str, execution: int) -> None:
        try:
            self.dispatcher.taskmanager_stub(address).CancelTasks(
                pb.CancelTasksRequest(job_id=job_id, attempt=execution), timeout=5
            )
        except grpc.RpcError as error:
            log.info("could not cancel execution %d on %s: %s", execution, address, error.code())

    def stopping(self, record: JobRecord) -> None:
        """The job is cancelled or fails as a whole: subtasks never deployed end CANCELED, so
        the job settles once the deployed ones have ended. Caller holds the lock."""
        run = record.batch
        for subtask_id, subtask in record.graph.subtasks.items():
            if subtask.state == "CREATED" and subtask_id not in run.executions:
                subtask.state = "CANCELED"

    def job_ended(self, record: JobRecord) -> None:
        """Release the job's result partitions on every TaskManager it ran on."""
        request = pb.ReleasePartitionsRequest(job_id=record.job_id)
        registered = {tm.address for tm in self.registry.all()}

        def release(address: str) -> None:
            try:
                self.dispatcher.taskmanager_stub(address).ReleasePartitions(request, timeout=10)
            except grpc.RpcError as error:
                log.info("could not release partitions on %s: %s", address, error.code())

        for address in set(record.batch.addresses.values()) & registered:
            self.dispatcher.run_io(release, address)

    @staticmethod
    def vertex_times(record: JobRecord, vertex_id: str) -> dict[str, int]:
        """When a stage started and ended (epoch ms, -1 if not yet), for the REST API."""
        run = record.batch
        started, ended = run.started.get(vertex_id), run.ended.get(vertex_id)
        return {
            "start-time": int(started * 1000) if started else -1,
            "end-time": int(ended * 1000) if ended else -1,
        }

    def metrics(self, record: JobRecord, metric: pb.TaskMetrics) -> None:
        """A heartbeat's sample of one execution. Caller holds the lock."""
        subtask_id = (metric.vertex_id, metric.subtask)
        if record.batch.executions.get(subtask_id) != metric.attempt:
            return
        subtask = record.graph.subtasks.get(subtask_id)
        if subtask is not None and subtask.state not in TERMINAL_TASK_STATES:
            subtask.records_in = metric.records_in
            subtask.records_out = metric.records_out
            subtask.input_bytes_read = metric.input_bytes_read
            subtask.input_bytes_total = metric.input_bytes_total
