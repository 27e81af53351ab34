"""Deploying and cancelling a job's subtasks in this TaskManager, and reporting their states.

A job's own files arrive with its deployment and are unpacked into a folder of the job that
goes on ``sys.path``, so the user's modules import on a TaskManager that never saw them.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cloudpickle
import grpc

from strom.checkpoint_storage import MetadataFormatError, decode_metadata, storage_for
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc, tls
from taskmanager.network.gate_registry import GateRegistry
from taskmanager.network.input_gate import GateClosed
from taskmanager.network.result_partitions import ResultPartitions
from taskmanager.runtime.task import Task, TaskId
from taskmanager.state.heap import KeyedSnapshot

log = logging.getLogger(__name__)

#: how long a source task waits for the JobManager to answer a split request
_SPLIT_REQUEST_TIMEOUT_S = 30.0


class CheckpointServices:
    """Writes task snapshots off the task threads and acknowledges them to the JobManager."""

    def __init__(self, deployer: TaskDeployer, jobmanager_address: str) -> None:
        self.deployer = deployer
        self.jobmanager_address = jobmanager_address
        self.storage = storage_for(None)

    def attempt_is_current(self, job_id: str, attempt: int, subtask: str = "") -> bool:
        """Whether the JobManager still runs ``attempt`` of the job (False if unreachable);
        of a BATCH job, whether ``attempt`` is the current execution of ``subtask``
        ("vertex/index")."""
        try:
            details = self.deployer._stub(self.jobmanager_address).GetJob(
                pb.JobId(job_id=job_id), timeout=10
            )
        except grpc.RpcError:
            return False
        if details.summary.state != "RUNNING":
            return False
        if details.executions:
            return details.executions.get(subtask) == attempt
        return details.attempt == attempt

    def request_splits(
        self,
        task: Task,
        split_count: int,
        pool: list[tuple[int, int | None]] | None,
        count: int,
    ) -> Callable[[], list[tuple[int, int | None]]]:
        """Ask the JobManager for the next ``count`` splits (at most) of ``task``'s source
        (split_assignment.py), ``pool`` with the first request of the attempt; returns what
        waits for the answer: the splits as ``(index, offset)``, none when none is left. An
        error fails the task: splits whose answer was lost are read again only after a
        restart."""
        request = pb.SplitRequest(
            job_id=task.id.job_id,
            attempt=task.id.attempt,
            vertex_id=task.id.vertex_id,
            subtask=task.id.subtask,
            initial=pool is not None,
            split_count=split_count,
            pool=[
                pb.SplitRef(index=index, offset=offset or 0, resume=offset is not None)
                for index, offset in pool or ()
            ],
            count=count,
        )
        stub = self.deployer._stub(self.jobmanager_address)
        answer = stub.AssignSplit.future(request, timeout=_SPLIT_REQUEST_TIMEOUT_S)

        def result() -> list[tuple[int, int | None]]:
            return [
                (split.index, split.offset if split.resume else None)
                for split in answer.result().splits
            ]

        return result

    def write_snapshot(self, task: Task, checkpoint_id: int, options: dict, states: dict) -> Future:
        """Write and acknowledge the snapshot off the task's thread; done when acknowledged."""
        return self.deployer.snapshot_pool.submit(self._write, task, checkpoint_id, options, states)

    def _write(self, task: Task, checkpoint_id: int, options: dict, states: dict) -> None:
        stub = self.deployer._stub(self.jobmanager_address)
        try:
            for state in states.values():
                keyed = state.get("keyed") if isinstance(state, dict) else None
                if isinstance(keyed, KeyedSnapshot):
                    state["keyed"] = keyed.stored()  # serialized already, at the barrier
            try:
                data = pickle.dumps(states, protocol=5)
            except Exception:
                data = cloudpickle.dumps(states, protocol=5)
            name = f"{task.id.vertex_id}-{task.id.subtask}-a{task.id.attempt}.state"
            path = self.storage.write_state(options["location"], name, data)
            handle = pb.TaskStateHandle(
                path=path,
                operators=[str(uid) for uid in states],
                parallelism=task.vertex.parallelism,
                max_parallelism=task.vertex.max_parallelism,
            )
            stub.AcknowledgeCheckpoint(
                pb.CheckpointAck(
                    job_id=task.id.job_id,
                    attempt=task.id.attempt,
                    vertex_id=task.id.vertex_id,
                    subtask=task.id.subtask,
                    checkpoint_id=checkpoint_id,
                    handle=handle,
                    state_size=len(data),
                ),
                timeout=30,
            )
        except Exception as error:
            gone = isinstance(error, grpc.RpcError) and error.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.CANCELLED,
            )
            log.log(
                logging.INFO if gone else logging.WARNING,
                "snapshot %d of %s failed: %s",
                checkpoint_id,
                task.name,
                error,
            )
            try:
                stub.DeclineCheckpoint(
                    pb.CheckpointDecline(
                        job_id=task.id.job_id,
                        attempt=task.id.attempt,
                        vertex_id=task.id.vertex_id,
                        subtask=task.id.subtask,
                        checkpoint_id=checkpoint_id,
                        reason=repr(error),
                    ),
                    timeout=10,
                )
            except grpc.RpcError:
                pass


class TaskDeployer:
    """Runs the subtasks deployed to one process: a slot process, or the mini-cluster's
    TaskManager, which keeps them in-process (one code path for both)."""

    def __init__(
        self,
        resource_id_source,
        address_source,
        work_dir: Path | None = None,
        partitions: ResultPartitions | None = None,
    ) -> None:
        self._resource_id = resource_id_source
        self._address = address_source
        self.gates = GateRegistry()
        self.tasks: dict[TaskId, Task] = {}
        self.lock = threading.Lock()
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="strom-tm-"))
        #: the TaskManager's result partitions, which BATCH tasks write and read
        self.partitions = partitions or ResultPartitions(
            self.work_dir / "partitions", address_source
        )
        #: set once tasks were deployed here and every one of them has ended and reported
        self.all_ended = threading.Event()
        #: whether tasks were deployed here
        self.deployed = False
        self._channels: dict[str, grpc.Channel] = {}
        #: the JobManager's secret for this TaskManager's registration, sent with every report
        self.report_token = ""
        self.snapshot_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tm-snapshot")
        #: sends the tasks' RUNNING reports (see ``_reporter``)
        self._report_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tm-report")
        self._opening: grpc.Future | None = None  # see ``connect``

    # -------------------------------------------------------------- deploy

    def deploy(self, request: pb.DeployTasksRequest) -> pb.Ack:
        try:
            if request.files:
                self._unpack_files(request.job_id, request.files)
            graphs = [cloudpickle.loads(request.job_graph) for _ in request.tasks]
        except Exception as error:  # a job that cannot load fails with its reason
            log.exception("cannot load job %s", request.job_id)
            return pb.Ack(ok=False, message=f"cannot load the job graph: {error!r}")
        locations = {(loc.vertex_id, loc.subtask): loc.address for loc in request.locations}
        checkpoints = CheckpointServices(self, request.jobmanager_address)
        try:
            restore = decode_metadata(request.restore) if request.restore else None
        except MetadataFormatError:  # a pickle, which is never unpickled, or another version
            restore = None
        if request.restore and restore is None:
            return pb.Ack(ok=False, message="the restore point sent with the job is not readable")
        created = []
        with self.lock:
            # Every subtask gets its own copy of the user's functions, as in Flink.
            for spec, graph in zip(request.tasks, graphs, strict=True):
                parameters = dict(graph.settings.get("job_parameters") or {})
                task_id = TaskId(request.job_id, request.attempt, spec.vertex_id, spec.subtask)
                task = Task(
                    task_id,
                    graph,
                    locations,
                    self._address(),
                    self.gates,
                    self._reporter(request.jobmanager_address),
                    parameters,
                    checkpoints,
                    dict(restore) if restore else None,
                    checkpointing=request.checkpointing,
                    partitions=self.partitions,
                )
                self.tasks[task_id] = task
                created.append(task)
            self.deployed = True
        for task in created:
            task.start()
        log.info(
            "deployed %d task(s) of job %s attempt %d",
            len(created),
            request.job_id,
            request.attempt,
        )
        return pb.Ack(ok=True)

    def _unpack_files(self, job_id: str, files) -> None:
        root = self.work_dir / job_id
        if not root.exists():
            staging = Path(tempfile.mkdtemp(dir=self.work_dir))
            for job_file in files:
                target = (staging / job_file.path).resolve()
                if not str(target).startswith(str(staging.resolve())):
                    raise ValueError(f"job file path escapes the job folder: {job_file.path}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(job_file.content)
            try:
                os.replace(staging, root)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))

    # -------------------------------------------------------------- cancel

    def cancel(self, job_id: str, attempt: int) -> None:
        with self.lock:
            tasks = [
                task
                for task_id, task in self.tasks.items()
                if task_id.job_id == job_id and (attempt < 0 or task_id.attempt == attempt)
            ]
        for task in tasks:
            task.cancel()

    def _check_all_ended(self) -> None:
        with self.lock:
            if self.deployed and not self.tasks:
                self.all_ended.set()

    def _tasks_of(self, job_id: str, attempt: int) -> list[Task]:
        with self.lock:
            return [
                task
                for task_id, task in self.tasks.items()
                if task_id.job_id == job_id and task_id.attempt == attempt
            ]

    def trigger_checkpoint(self, request: pb.CheckpointTrigger) -> pb.Ack:
        """Post the checkpoint into the mailbox of this job's tasks here: sources take their
        snapshot at once, other tasks when their inputs end without its barrier."""
        options = {
            "location": request.location,
            "savepoint": request.is_savepoint,
            "exactly_once": request.exactly_once,
            "timestamp": request.timestamp,
        }
        tasks = self._tasks_of(request.job_id, request.attempt)
        for task in tasks:
            try:
                task.gate.post(
                    lambda task=task: task.trigger_checkpoint(request.checkpoint_id, options)
                )
            except GateClosed:
                pass
        return pb.Ack(ok=True, message=str(len(tasks)))

    def notify_checkpoint_complete(self, request: pb.CheckpointNotice) -> pb.Ack:
        for task in self._tasks_of(request.job_id, request.attempt):
            try:
                task.gate.post(
                    lambda task=task: task.notify_checkpoint_complete(request.checkpoint_id)
                )
            except GateClosed:
                pass
        return pb.Ack(ok=True)

    def cancel_everything(self) -> int:
        """Cancel every task without waiting; returns how many there were."""
        with self.lock:
            tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        return len(tasks)

    def cancel_all(self) -> None:
        with self.lock:
            tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            task.thread.join(timeout=5)

    # -------------------------------------------------------------- reporting

    def connect(self, address: str, job_id: str) -> None:
        """Open the connection to the JobManager at ``address`` now, without waiting for
        it: the first report and split request of the tasks deployed later find it made.
        (A question without consequence opens it: its answer is not needed.)"""
        # Kept: a call's future that is collected cancels the call.
        self._opening = self._stub(address).GetJob.future(pb.JobId(job_id=job_id), timeout=10)

    def _stub(self, address: str) -> cluster_pb2_grpc.JobManagerGatewayStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = tls.reporting_channel(
                tls.channel(address), lambda: self.report_token
            )
        return cluster_pb2_grpc.JobManagerGatewayStub(channel)

    def _reporter(self, jobmanager_address: str):
        #: each task's RUNNING report while it is under way
        running: dict[TaskId, Future] = {}

        def send(update: pb.TaskExecutionState, name: str) -> None:
            for _ in range(3):
                try:
                    self._stub(jobmanager_address).UpdateTaskExecutionState(update, timeout=10)
                    return
                except grpc.RpcError as error:
                    log.warning("could not report %s of %s: %s", update.state, name, error.code())

        def send_running(update: pb.TaskExecutionState, name: str) -> None:
            try:
                send(update, name)
            except Exception:  # as a report on the task's own thread is
                log.exception("could not report state RUNNING of task %s", name)

        def report(task: Task, state: str, failure: str) -> None:
            update = pb.TaskExecutionState(
                job_id=task.id.job_id,
                attempt=task.id.attempt,
                vertex_id=task.id.vertex_id,
                subtask=task.id.subtask,
                state=state,
                failure=failure,
                resource_id=self._resource_id(),
                metrics=self._metrics(task),
                pid=os.getpid(),
                lost_partitions=task.partition_reader.lost if task.partition_reader else [],
                consequential=task.consequential,
            )
            if state == "RUNNING":
                # As in Flink, a task goes on while the JobManager learns that it runs: the
                # round trip (the process's first, which opens the connection) is off its
                # start-up path. Its next report waits for this one, so they arrive in order.
                running[task.id] = self._report_pool.submit(send_running, update, task.name)
                return
            earlier = running.pop(task.id, None)
            if earlier is not None:
                earlier.result()
            send(update, task.name)
            if state in ("FINISHED", "FAILED", "CANCELED"):
                # Forgotten only once reported: a slot process ends when its last task is
                # forgotten, and would cut off a report still under way (the job then waited
                # for that task for ever).
                with self.lock:
                    self.tasks.pop(task.id, None)
                self._check_all_ended()

        return report

    @staticmethod
    def _metrics(task: Task) -> pb.TaskMetrics:
        read, total = _input_progress(task)
        return pb.TaskMetrics(
            job_id=task.id.job_id,
            attempt=task.id.attempt,
            vertex_id=task.id.vertex_id,
            subtask=task.id.subtask,
            records_in=task.records_in,
            records_out=task.records_out
            if task.vertex.is_source
            else max(task.records_out, sum(w.records_out for w in task.writers)),
            input_bytes_read=read,
            input_bytes_total=total,
        )

    def metrics(self) -> list[pb.TaskMetrics]:
        with self.lock:
            return [self._metrics(task) for task in self.tasks.values()]

    def close(self) -> None:
        self.cancel_all()
        self.snapshot_pool.shutdown(wait=False)
        self._report_pool.shutdown(wait=False)
        for channel in self._channels.values():
            channel.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _input_progress(task: Task) -> tuple[int, int]:
    """``(bytes read, bytes in all)`` of a source task whose reader knows its input's size
    (files); ``(0, 0)`` otherwise."""
    reader = getattr(task.source, "reader", None)
    progress = getattr(reader, "input_progress", None)
    if not callable(progress):
        return (0, 0)
    try:
        answer = progress()
    except Exception:  # a progress figure is never worth failing a heartbeat for
        return (0, 0)
    if not answer:
        return (0, 0)
    read, total = answer
    return (max(0, int(read)), max(0, int(total)))
