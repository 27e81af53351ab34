"""Where a TaskManager runs its subtasks: in slot processes it supervises, or in-process.

A real TaskManager forks a fresh slot process per job attempt and slot from a warm template
(multiprocessing's forkserver, preloaded with Strom's runtime, DESIGN.md §2); it keeps one
started ahead for each free slot (a spare, ``taskmanager/slot_process.py``), which a
deployment then takes instead of waiting for a fork and a server to start. It forwards the
JobManager's commands to them, gathers their metrics for its heartbeats, and supervises them: a
slot process that dies fails its tasks, and one whose tasks ignore a cancel for
``task.cancellation.timeout`` is killed and its tasks reported CANCELED (Flink's watchdog).
The mini-cluster keeps its tasks in its own process (:class:`InProcessSlots`); both run tasks
through :class:`TaskDeployer`.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.spawn
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import psutil

from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc, observability_pb2_grpc, tls
from strom.rpc import observability_pb2 as obs
from strom.rpc.command_token import commanding, new_token
from taskmanager.deployment import TaskDeployer
from taskmanager.network import data_tokens, shared_rings
from taskmanager.network.result_partitions import ResultPartitions
from taskmanager.slot_process import SlotGateway, SlotProcessSpec, run_slot_process

log = logging.getLogger(__name__)

#: what the template process imports before it forks slot processes: everything a slot
#: process imports before it serves (grpc's server modules load on first use otherwise,
#: ~5 ms of every job's start-up; its client modules, for the channel to the JobManager,
#: ~1.5 ms more)
PRELOAD = [
    "taskmanager.slot_process",
    "strom.datastream",
    "cloudpickle",
    "grpc._server",
    "grpc._interceptor",
    "grpc._channel",
    "grpc.experimental",
]
_SPAWN_LOCK = threading.Lock()
READY_TIMEOUT_S = 60.0
#: after a spare failed to start, the next try waits this long (the deployments fork meanwhile)
SPARE_RETRY_S = 5.0
#: what a TaskManager's slot processes observe: their subtasks and their processes
Observed = tuple[list[obs.ObservedSubtask], list[obs.SlotProcessStatus]]
_FORWARD_TIMEOUT_S = 60.0
#: a slot process slower than this to describe itself is shown without its subtasks (the
#: JobManager waits 1 s for a TaskManager's live sample)
_OBSERVE_TIMEOUT_S = 0.8


class InProcessSlots:
    """The mini-cluster's slots: every subtask runs in this process (DESIGN.md §2 allows it)."""

    def __init__(self, deployer: TaskDeployer, address: Callable[[], str]) -> None:
        self.deployer = deployer
        self._address = address

    def prepare(self, request: pb.PrepareSlotsRequest) -> pb.PrepareSlotsResponse:
        return pb.PrepareSlotsResponse(
            ok=True,
            slots=[
                pb.PreparedSlot(slot=s.slot, address=self._address(), pid=os.getpid())
                for s in request.slots
            ],
        )

    def deploy(self, request: pb.DeployTasksRequest) -> pb.Ack:
        return self.deployer.deploy(request)

    def cancel(self, job_id: str, attempt: int) -> None:
        self.deployer.cancel(job_id, attempt)

    def trigger_checkpoint(self, request: pb.CheckpointTrigger) -> pb.Ack:
        return self.deployer.trigger_checkpoint(request)

    def notify_checkpoint_complete(self, request: pb.CheckpointNotice) -> pb.Ack:
        return self.deployer.notify_checkpoint_complete(request)

    def cancel_everything(self) -> int:
        return self.deployer.cancel_everything()

    def job_ids(self) -> set[str]:
        """The jobs with tasks here."""
        with self.deployer.lock:
            return {task_id.job_id for task_id in self.deployer.tasks}

    def metrics(self) -> list[pb.TaskMetrics]:
        return self.deployer.metrics()

    def observed(self, job_id: str) -> Observed:
        return [], []

    def close(self) -> None:
        self.deployer.close()


@dataclass
class SlotProcess:
    """The TaskManager's handle on one slot process."""

    spec: SlotProcessSpec
    process: Any  # multiprocessing's Process of the forkserver context
    connection: Connection
    tasks: set[tuple[str, int]]
    address: str = ""
    pid: int = 0
    jobmanager_address: str = ""
    deployed: bool = False
    ended_cleanly: bool = False
    cancel_deadline: float | None = None
    killed_by_watchdog: bool = False
    metrics: list[pb.TaskMetrics] = field(default_factory=list)
    channel: grpc.Channel | None = None
    #: the call that opened ``channel`` (kept: a collected call's future cancels it)
    opening: grpc.Future | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.spec.job_id, self.spec.attempt, self.spec.slot)

    def grpc_channel(self) -> grpc.Channel:
        if self.channel is None:
            token = self.spec.command_token
            self.channel = commanding(tls.channel(self.address), lambda: token)
        return self.channel

    def stub(self) -> cluster_pb2_grpc.TaskExecutorGatewayStub:
        return cluster_pb2_grpc.TaskExecutorGatewayStub(self.grpc_channel())


@dataclass(eq=False)  # one spare is not another with the same fields
class _Spare:
    """A slot process started ahead of any job: serving, and waiting on its pipe for one."""

    spec: SlotProcessSpec
    process: Any
    connection: Connection
    pid: int = 0


class SlotProcesses:
    """A TaskManager's slot processes: started per job attempt and slot (or taken from the
    spares kept for free slots), supervised here."""

    def __init__(
        self,
        config: Any,
        resource_id: Callable[[], str],
        host: str,
        work_dir: Path,
        partitions: ResultPartitions | None = None,
    ) -> None:
        self.config = config
        self._resource_id = resource_id
        self.host = host
        self.bind_host = config["taskmanager.bind-host"] or host
        self.work_dir = work_dir
        #: the TaskManager's BATCH result partitions, written and read by its slot processes
        self.partitions = partitions
        self.cancellation_timeout_s = config["task.cancellation.timeout"] / 1000.0
        self.metrics_interval_s = min(config["heartbeat.interval"] / 1000.0, 1.0)
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        #: slot processes of jobs with their own python.executable start fresh (spawn)
        self._spawning = multiprocessing.get_context("spawn")
        self._versions: dict[str, str] = {}  # python.executable -> its "major.minor"
        self.lock = threading.Lock()
        self._ended_condition = threading.Condition(self.lock)
        self.processes: dict[tuple[str, int, int], SlotProcess] = {}
        self._jobmanager_channels: dict[str, grpc.Channel] = {}
        #: the JobManager's secret for this TaskManager's registration (see TaskDeployer)
        self.report_token = ""
        #: what this TaskManager's commands to its slot processes carry
        self.command_token = new_token()
        self._stopped = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="tm-slot-rpc")
        #: spares for free slots (``taskmanager.slot-process.prestart``), once ``warm_up`` ran
        self._prestart = bool(config["taskmanager.slot-process.prestart"])
        self._slots = int(config["taskmanager.numberOfTaskSlots"])
        self._spares: list[_Spare] = []
        self._spares_starting = False
        self._spare_retry_at = float("inf")  # until warm_up
        #: slot processes a deployment is starting or taking, not yet in ``processes``
        self._preparing = 0
        self._closing = False
        self._supervisor = threading.Thread(
            target=self._supervise, name="tm-slot-supervisor", daemon=True
        )
        self._supervisor.start()

    def warm_up(self) -> None:
        """Start the template process now, so the first deployment does not wait for it."""
        from multiprocessing import forkserver

        forkserver.ensure_running()
        with self.lock:
            self._spare_retry_at = 0.0
        self._wake()  # the supervisor starts the spares

    # -------------------------------------------------------------- phase 1: prepare

    def prepare(self, request: pb.PrepareSlotsRequest) -> pb.PrepareSlotsResponse:
        """Fork one slot process per slot of the request; answer their data addresses."""
        gate = self.config["taskmanager.testing.prepare-slots-gate"]
        if gate:
            _hold_at_gate(gate)
        started: list[SlotProcess] = []
        with self.lock:
            self._preparing += len(request.slots)
        try:
            interpreter = self._interpreter(request.python_executable)
            for assignment in request.slots:
                key = (request.job_id, request.attempt, assignment.slot)
                with self.lock:
                    existing = self.processes.get(key)
                    if existing is not None and existing.cancel_deadline is not None:
                        # Not a repeated request: the same attempt deployed anew (a new leader
                        # recovering the job) while the old one's slot process is still being
                        # cancelled. Tasks deployed into it would die with it: wait for its end.
                        self._ended_condition.wait_for(
                            lambda k=key, e=existing: self.processes.get(k) is not e,
                            timeout=self.cancellation_timeout_s + 5.0,
                        )
                        if self.processes.get(key) is existing:
                            raise RuntimeError(
                                f"slot process {existing.pid} of an earlier deployment of this "
                                "attempt is still ending"
                            )
                        existing = self.processes.get(key)
                if existing is not None:  # a repeated request
                    started.append(existing)
                    continue
                spare = self._take_spare(request, assignment) if interpreter is None else None
                started.append(spare or self._start(request, assignment, interpreter))
            for slot in started:
                if slot.address:
                    continue
                if not slot.connection.poll(READY_TIMEOUT_S):
                    raise RuntimeError(f"slot process {slot.process.pid} did not start in time")
                message = slot.connection.recv()
                slot.address, slot.pid = message[1], message[2]
                # Open the connection the deployment will take while the JobManager hears
                # from the other TaskManagers; the answer itself is not needed.
                slot.opening = slot.stub().Ping.future(pb.Empty(), timeout=_FORWARD_TIMEOUT_S)
                with self.lock:
                    self.processes[slot.key] = slot
                self._wake()
        except (OSError, EOFError, RuntimeError) as error:
            log.warning("cannot start the slot processes of job %s: %s", request.job_id, error)
            for slot in started:
                if slot.key not in self.processes:
                    slot.process.kill()
                    slot.process.join(5)
                    shutil.rmtree(slot.spec.folder, ignore_errors=True)
            return pb.PrepareSlotsResponse(
                ok=False, message=f"cannot start slot processes: {error}"
            )
        finally:
            with self.lock:
                self._preparing -= len(request.slots)
        return pb.PrepareSlotsResponse(
            ok=True,
            slots=[
                pb.PreparedSlot(slot=s.spec.slot, address=s.address, pid=s.pid) for s in started
            ],
        )

    def _spec(self, folder: Path, interpreter: str | None = None) -> SlotProcessSpec:
        """A slot process's spec with this TaskManager's fields and no job (a spare's)."""
        return SlotProcessSpec(
            job_id="",
            attempt=-1,
            slot=-1,
            resource_id=self._resource_id(),
            host=self.host,
            bind_host=self.bind_host,
            folder=str(folder),
            log_file=os.environ.get("STROM_LOG_FILE"),
            log_level=os.environ.get("STROM_LOG_LEVEL", "INFO"),
            metrics_interval_s=self.metrics_interval_s,
            config=dict(self.config),
            command_token=self.command_token,
            partitions_folder=str(self.partitions.root) if self.partitions else "",
            taskmanager_address=self.partitions.address if self.partitions else "",
            python_executable=interpreter or "",
        )

    @staticmethod
    def _for_job(
        spec: SlotProcessSpec, request: pb.PrepareSlotsRequest, assignment: pb.SlotAssignment
    ) -> SlotProcessSpec:
        """``spec`` with the job's fields: its slot's share of the deployment."""
        return replace(
            spec,
            job_id=request.job_id,
            attempt=request.attempt,
            slot=assignment.slot,
            subtasks=tuple(sorted((t.vertex_id, t.subtask) for t in assignment.tasks)),
            data_token=data_tokens.token_of_job(request.job_id),
            jobmanager_address=request.jobmanager_address,
        )

    def _start(
        self,
        request: pb.PrepareSlotsRequest,
        assignment: pb.SlotAssignment,
        interpreter: str | None = None,
    ) -> SlotProcess:
        folder = self.work_dir / f"{request.job_id}-a{request.attempt}-s{assignment.slot}"
        spec = self._for_job(self._spec(folder, interpreter), request, assignment)
        context = self._context if interpreter is None else self._spawning
        ours, theirs = context.Pipe()
        process = context.Process(
            target=run_slot_process,
            args=(spec, theirs),
            name=f"slot-{request.job_id[:8]}-{assignment.slot}",
        )
        if interpreter is None:
            process.start()
        else:
            # The job's python.executable: a fresh process of that interpreter, not a fork
            # of the template (spawn's interpreter is a global of multiprocessing).
            with _SPAWN_LOCK:
                before = multiprocessing.spawn.get_executable()
                multiprocessing.spawn.set_executable(interpreter)
                try:
                    process.start()
                finally:
                    multiprocessing.spawn.set_executable(before)
        theirs.close()
        tasks = {(t.vertex_id, t.subtask) for t in assignment.tasks}
        slot = SlotProcess(
            spec, process, ours, tasks, jobmanager_address=request.jobmanager_address
        )
        log.info(
            "started slot process %d for job %s attempt %d slot %d (%d task(s))",
            process.pid,
            request.job_id,
            request.attempt,
            assignment.slot,
            len(tasks),
        )
        return slot

    def _take_spare(
        self, request: pb.PrepareSlotsRequest, assignment: pb.SlotAssignment
    ) -> SlotProcess | None:
        """A spare, sent the job's share of this slot; None when none is ready."""
        while True:
            with self.lock:
                if not self._spares:
                    return None
                spare = self._spares.pop(0)
            spec = self._for_job(spare.spec, request, assignment)
            try:
                spare.connection.send(("job", spec))
            except OSError:  # it ended meanwhile
                self._let_go(spare)
                continue
            log.info(
                "slot process %d (started ahead) runs job %s attempt %d slot %d (%d task(s))",
                spare.pid,
                request.job_id,
                request.attempt,
                assignment.slot,
                len(assignment.tasks),
            )
            tasks = {(t.vertex_id, t.subtask) for t in assignment.tasks}
            return SlotProcess(
                spec,
                spare.process,
                spare.connection,
                tasks,
                jobmanager_address=request.jobmanager_address,
            )

    def _keep_spares(self) -> None:
        """Have a spare started for each free slot without one: in the background, one
        after another (not a burst of forks at a TaskManager's start)."""
        with self.lock:
            if (
                not self._prestart
                or self._closing
                or self._spares_starting
                or time.monotonic() < self._spare_retry_at
                or self._free_without_spare() <= 0
            ):
                return
            self._spares_starting = True
        self._pool.submit(self._start_spares)

    def _free_without_spare(self) -> int:
        # With the lock held.
        return self._slots - len(self.processes) - self._preparing - len(self._spares)

    def _start_spares(self) -> None:
        try:
            while True:
                with self.lock:
                    if self._closing or self._free_without_spare() <= 0:
                        return
                spare = self._start_spare()
                with self.lock:
                    if spare is None:
                        self._spare_retry_at = time.monotonic() + SPARE_RETRY_S
                        return
                    keep = not self._closing and self._free_without_spare() > 0
                    if keep:
                        self._spares.append(spare)
                if not keep:
                    self._let_go(spare)
                    return
                self._wake()  # the supervisor watches it from now on
        finally:
            with self.lock:
                self._spares_starting = False

    def _start_spare(self) -> _Spare | None:
        """Fork a spare and wait until it serves; None if it could not start."""
        spec = self._spec(self.work_dir / f"slot-{uuid.uuid4().hex[:12]}")
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=run_slot_process, args=(spec, theirs), name="slot-spare"
        )
        try:
            process.start()
        except OSError as error:
            log.warning("cannot start a spare slot process: %s", error)
            ours.close()
            return None
        finally:
            theirs.close()
        spare = _Spare(spec, process, ours)
        try:
            if ours.poll(READY_TIMEOUT_S):
                message = ours.recv()
                if message[0] == "spare":
                    spare.pid = message[2]
                    return spare
        except (EOFError, OSError):
            pass
        log.warning("a spare slot process (pid %d) did not start", process.pid)
        self._let_go(spare)
        return None

    def _let_go(self, spare: _Spare) -> None:
        """End a spare: its pipe's end tells it to, a kill if it does not within seconds."""
        with self.lock:
            if spare in self._spares:
                self._spares.remove(spare)
        spare.connection.close()
        spare.process.join(5)
        if spare.process.exitcode is None:
            spare.process.kill()
            spare.process.join(5)
        if spare.process.exitcode is not None:
            shared_rings.remove_rings_of(spare.process.pid)
            spare.process.close()
        shutil.rmtree(spare.spec.folder, ignore_errors=True)

    def _interpreter(self, executable: str) -> str | None:
        """The job's python.executable to start its slot processes with; None for the
        TaskManager's own. Raises RuntimeError, with what is wrong, for one that cannot run
        the job: not an absolute path of an executable here, or another Python version (the
        client pickled the job's functions with its own, the TaskManager's)."""
        if not executable or executable == sys.executable:
            return None
        name = f"python.executable (-pyexec) '{executable}'"
        if not os.path.isabs(executable):
            raise RuntimeError(
                f"{name} is not an absolute path: Strom runs a job's functions in an "
                "interpreter installed on the TaskManagers, not in one shipped with the job"
            )
        if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
            raise RuntimeError(f"{name} is not an executable on TaskManager {self.host}")
        mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if self._versions.get(executable) is None:
            try:
                probe = subprocess.run(
                    [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                self._versions[executable] = probe.stdout.strip() if probe.returncode == 0 else "?"
            except (OSError, subprocess.TimeoutExpired):
                self._versions[executable] = "?"
        version = self._versions[executable]
        if version != mine:
            raise RuntimeError(
                f"{name} runs Python {version}; the TaskManager runs {mine}, and a job's "
                "functions are pickled by a client of that version"
            )
        return executable

    # -------------------------------------------------------------- phase 2: deploy

    def deploy(self, request: pb.DeployTasksRequest) -> pb.Ack:
        """Hand each prepared slot process its share of the deployment."""
        with self.lock:
            slots = [
                s
                for s in self.processes.values()
                if s.spec.job_id == request.job_id and s.spec.attempt == request.attempt
            ]
        shares: list[tuple[SlotProcess, pb.DeployTasksRequest]] = []
        placed: set[tuple[str, int]] = set()
        for slot in slots:
            tasks = [t for t in request.tasks if (t.vertex_id, t.subtask) in slot.tasks]
            if not tasks:
                continue
            share = pb.DeployTasksRequest()
            share.CopyFrom(request)
            del share.tasks[:]
            share.tasks.extend(tasks)
            shares.append((slot, share))
            placed.update((t.vertex_id, t.subtask) for t in tasks)
        missing = [t for t in request.tasks if (t.vertex_id, t.subtask) not in placed]
        if missing:
            return pb.Ack(
                ok=False,
                message=f"no slot process was prepared for {len(missing)} task(s) of job "
                f"{request.job_id} attempt {request.attempt} (was it cancelled?)",
            )

        def forward(slot: SlotProcess, share: pb.DeployTasksRequest) -> pb.Ack:
            slot.jobmanager_address = request.jobmanager_address
            try:
                answer = slot.stub().DeployTasks(
                    share,
                    timeout=_FORWARD_TIMEOUT_S,
                    metadata=((tls.REPORT_TOKEN_METADATA, self.report_token),),
                )
            except grpc.RpcError as error:
                return pb.Ack(ok=False, message=f"slot process {slot.pid}: {error.details()}")
            slot.deployed = answer.ok and answer.message != SlotGateway.CANCELLED
            return answer

        answers = list(self._pool.map(lambda pair: forward(*pair), shares))
        failures = [a.message for a in answers if not a.ok]
        if failures:
            return pb.Ack(ok=False, message=failures[0])
        return pb.Ack(ok=True)

    # -------------------------------------------------------------- commands

    def _of(self, job_id: str, attempt: int) -> list[SlotProcess]:
        with self.lock:
            return [
                s
                for s in self.processes.values()
                if s.spec.job_id == job_id and (attempt < 0 or s.spec.attempt == attempt)
            ]

    def cancel(self, job_id: str, attempt: int) -> None:
        """Cancel the job's tasks here; the watchdog kills a slot process that outlasts
        ``task.cancellation.timeout``."""
        self._cancel(self._of(job_id, attempt))

    def _cancel(self, slots: list[SlotProcess]) -> None:
        now = time.monotonic()
        for slot in slots:
            if slot.cancel_deadline is None and self.cancellation_timeout_s > 0:
                slot.cancel_deadline = now + self.cancellation_timeout_s
            request = pb.CancelTasksRequest(job_id=slot.spec.job_id, attempt=slot.spec.attempt)
            self._pool.submit(self._forward_cancel, slot, request)
        if slots:
            self._wake()

    @staticmethod
    def _forward_cancel(slot: SlotProcess, request: pb.CancelTasksRequest) -> None:
        try:
            slot.stub().CancelTasks(request, timeout=5)
        except grpc.RpcError as error:
            log.info("could not cancel slot process %d: %s", slot.pid, error.code())

    def trigger_checkpoint(self, request: pb.CheckpointTrigger) -> pb.Ack:
        """Forward to the job's slot processes here, all at once (one slow to answer does
        not hold up the others); answers how many tasks took the trigger."""

        def forward(slot: SlotProcess) -> int:
            try:
                return int(slot.stub().TriggerCheckpoint(request, timeout=10).message or 0)
            except (grpc.RpcError, ValueError) as error:
                log.info("checkpoint trigger to slot process %d failed: %s", slot.pid, error)
                return 0

        count = sum(self._pool.map(forward, self._of(request.job_id, request.attempt)))
        return pb.Ack(ok=True, message=str(count))

    def notify_checkpoint_complete(self, request: pb.CheckpointNotice) -> pb.Ack:
        def forward(slot: SlotProcess) -> None:
            try:
                slot.stub().NotifyCheckpointComplete(request, timeout=10)
            except grpc.RpcError as error:
                log.info("checkpoint notice to slot process %d failed: %s", slot.pid, error)

        list(self._pool.map(forward, self._of(request.job_id, request.attempt)))
        return pb.Ack(ok=True)

    def cancel_everything(self) -> int:
        """Cancel every slot process's tasks without waiting; returns how many tasks."""
        with self.lock:
            slots = list(self.processes.values())
        self._cancel(slots)
        return sum(len(s.tasks) for s in slots if s.deployed)

    def job_ids(self) -> set[str]:
        """The jobs with slot processes here."""
        with self.lock:
            return {s.spec.job_id for s in self.processes.values()}

    def metrics(self) -> list[pb.TaskMetrics]:
        with self.lock:
            return [m for s in self.processes.values() for m in s.metrics]

    def observed(self, job_id: str) -> Observed:
        """Every slot process's own view of its subtasks (of ``job_id`` if set), and its
        process status, for the TaskManager's metrics answer."""
        with self.lock:
            slots = [s for s in self.processes.values() if not job_id or s.spec.job_id == job_id]

        def ask(slot: SlotProcess) -> tuple[SlotProcess, obs.ObservedMetrics | None]:
            try:
                stub = observability_pb2_grpc.TaskManagerObservabilityStub(slot.grpc_channel())
                request = obs.ObservedMetricsRequest(job_id=job_id)
                return slot, stub.GetMetrics(request, timeout=_OBSERVE_TIMEOUT_S)
            except grpc.RpcError:
                return slot, None

        subtasks, statuses = [], []
        for slot, answer in self._pool.map(ask, slots):
            rss, threads = 0, 0
            if answer is not None:
                rss, threads = answer.process.rss_bytes, answer.process.threads
                for subtask in answer.subtasks:
                    subtask.pid = slot.pid
                    subtask.rss_bytes = rss
                    subtasks.append(subtask)
            else:
                try:
                    rss = psutil.Process(slot.pid).memory_info().rss
                except psutil.Error:
                    pass
            statuses.append(
                obs.SlotProcessStatus(
                    pid=slot.pid,
                    job_id=slot.spec.job_id,
                    attempt=slot.spec.attempt,
                    slot=slot.spec.slot,
                    address=slot.address,
                    rss_bytes=rss,
                    threads=threads,
                    tasks=len(answer.subtasks) if answer is not None else 0,
                )
            )
        return subtasks, statuses

    # -------------------------------------------------------------- supervision

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass

    def _supervise(self) -> None:
        while not self._stopped.is_set():
            self._keep_spares()
            with self.lock:
                slots = list(self.processes.values())
                spares = list(self._spares)
            waitables: dict[Any, tuple[str, Any]] = {self._wake_read: ("wake", None)}
            for slot in slots:
                waitables[slot.connection] = ("message", slot)
                waitables[slot.process.sentinel] = ("exit", slot)
            for spare in spares:
                waitables[spare.process.sentinel] = ("spare-exit", spare)
            try:
                ready = multiprocessing.connection.wait(list(waitables), timeout=0.5)
            except OSError:
                ready = []
            for item in ready:
                kind, slot = waitables[item]
                if kind == "wake":
                    os.read(self._wake_read, 4096)
                elif kind == "message":
                    self._receive(slot)
                elif kind == "exit":
                    self._ended(slot)
                elif kind == "spare-exit":
                    self._spare_ended(slot)
            self._enforce_cancellation_timeout()

    def _spare_ended(self, spare: _Spare) -> None:
        with self.lock:
            if spare not in self._spares:
                return  # a deployment took it: its exit is a slot process's now
            self._spares.remove(spare)
        log.warning("spare slot process %d ended (exit code %s)", spare.pid, spare.process.exitcode)
        self._let_go(spare)

    def _receive(self, slot: SlotProcess) -> None:
        try:
            while slot.connection.poll():
                message = slot.connection.recv()
                if message[0] == "metrics":
                    slot.metrics = [pb.TaskMetrics.FromString(m) for m in message[1]]
                elif message[0] == "ended":
                    slot.ended_cleanly = True
                    slot.deployed = slot.deployed or message[1]
        except (EOFError, OSError):
            slot.process.join(5)
            self._ended(slot)

    def _enforce_cancellation_timeout(self) -> None:
        now = time.monotonic()
        with self.lock:
            overdue = [
                s
                for s in self.processes.values()
                if s.cancel_deadline is not None
                and now > s.cancel_deadline
                and not s.killed_by_watchdog
            ]
        for slot in overdue:
            log.warning(
                "slot process %d of job %s did not end within task.cancellation.timeout "
                "(%.0f ms) after a cancel; killing it",
                slot.pid,
                slot.spec.job_id,
                self.cancellation_timeout_s * 1000,
            )
            slot.killed_by_watchdog = True
            slot.process.kill()

    def _ended(self, slot: SlotProcess) -> None:
        with self.lock:
            if self.processes.get(slot.key) is not slot:
                return
            del self.processes[slot.key]
            self._ended_condition.notify_all()
        slot.process.join(5)
        code = slot.process.exitcode
        # Rings it offered that no consumer took (it was killed, say) would stay in /dev/shm.
        if code is not None:
            shared_rings.remove_rings_of(slot.process.pid)
        try:
            while slot.connection.poll():  # its last words may come after its exit is seen
                message = slot.connection.recv()
                if message[0] == "ended":
                    slot.ended_cleanly = True
                    slot.deployed = slot.deployed or message[1]
        except (EOFError, OSError):
            pass
        slot.connection.close()
        try:
            slot.process.close()  # its sentinel's file descriptor
        except ValueError:
            pass  # still running: join timed out
        if slot.channel is not None:
            self._pool.submit(slot.channel.close)
        shutil.rmtree(slot.spec.folder, ignore_errors=True)
        if slot.killed_by_watchdog:
            state = "CANCELED"
            reason = (
                f"the slot process {slot.pid} was killed: its tasks did not end within "
                f"task.cancellation.timeout ({self.cancellation_timeout_s * 1000:.0f} ms) "
                "after a cancel"
            )
        elif code == 0 and slot.ended_cleanly and slot.deployed:
            log.info("slot process %d of job %s ended", slot.pid, slot.spec.job_id)
            return
        elif code == 0 and slot.cancel_deadline is not None:
            state = "CANCELED"
            reason = "cancelled before its deployment"
        else:
            state = "FAILED"
            how = (
                f"killed by {signal.Signals(-code).name}"
                if code is not None and code < 0
                else f"exited with code {code}"
            )
            reason = (
                f"the slot process {slot.pid} of TaskManager {self._resource_id()} running "
                f"this task died ({how})"
            )
        log.warning("job %s: %s", slot.spec.job_id, reason)
        if slot.jobmanager_address:
            self._pool.submit(self._report, slot, state, reason)

    def _report(self, slot: SlotProcess, state: str, reason: str) -> None:
        channel = self._jobmanager_channels.get(slot.jobmanager_address)
        if channel is None:
            channel = tls.reporting_channel(
                tls.channel(slot.jobmanager_address), lambda: self.report_token
            )
            self._jobmanager_channels[slot.jobmanager_address] = channel
        stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
        for vertex_id, subtask in sorted(slot.tasks):
            update = pb.TaskExecutionState(
                job_id=slot.spec.job_id,
                attempt=slot.spec.attempt,
                vertex_id=vertex_id,
                subtask=subtask,
                state=state,
                failure=reason,
                resource_id=self._resource_id(),
                pid=slot.pid,
            )
            for _ in range(3):
                try:
                    stub.UpdateTaskExecutionState(update, timeout=10)
                    break
                except grpc.RpcError as error:
                    log.warning("could not report %s of a task: %s", state, error.code())

    def close(self) -> None:
        """Cancel every slot process, kill those still there after a grace period (the
        TaskManager stops), end the spares, and stop supervising. The supervisor sees each
        end."""
        with self.lock:
            self._closing = True
            slots = list(self.processes.values())
            spares, self._spares = self._spares, []
        for spare in spares:
            spare.connection.close()  # they end at once; joined below
        self._cancel(slots)
        with self._ended_condition:
            self._ended_condition.wait_for(lambda: not self.processes, timeout=5)
            leftovers = list(self.processes.values())
        for slot in leftovers:
            slot.process.kill()
        with self._ended_condition:
            self._ended_condition.wait_for(lambda: not self.processes, timeout=5)
        for spare in spares:
            self._let_go(spare)
        self._stopped.set()
        self._wake()
        self._supervisor.join(5)
        self._pool.shutdown(wait=False)
        for channel in self._jobmanager_channels.values():
            channel.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def _hold_at_gate(gate: str, timeout_s: float = 60.0) -> None:
    """``taskmanager.testing.prepare-slots-gate``: say that a deployment reached this point,
    then wait until the test opens the gate (creates the file)."""
    log.warning("holding PrepareSlots until %s exists (a testing key)", gate)
    Path(gate + ".reached").touch()
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
