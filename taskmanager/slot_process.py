"""A slot process: one job attempt's subtasks in one slot of a TaskManager (DESIGN.md §2).

The TaskManager forks it from a warm template (multiprocessing's forkserver, which has imported
Strom and started no threads). It unpacks the job's files into its own folder on its own
``sys.path``, so it runs exactly the code its job was submitted with; it serves its own data
endpoint and control service on port 0 of the TaskManager's host, reports task states and
checkpoint acknowledgements to the JobManager itself, and exits once its tasks have ended. It
tells the TaskManager its address and its tasks' metrics over a pipe; the end of that pipe
means the TaskManager is gone, and so is this process then.

A TaskManager keeps a *spare* started for each free slot (``taskmanager.slot-process.prestart``):
forked and serving before any job is known, it waits on the pipe for the job it is to run,
then goes on as if it had been forked for that job. Starting one (the fork and the gRPC
server) is most of what a job's deployment waited for (~12 ms of a p=1 job's ~37 ms,
bench/README.md "Session 16"). A spare has imported nothing of any job, so a job still runs
in a process of its own with the code it was submitted with.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import grpc

from strom.daemon import LineAtomicWriter, configure_logging
from strom.process_identity import (
    SPARE_NAME,
    TASK_SLOT,
    prctl,
    set_process_name,
    set_process_role,
)
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc, observability_pb2_grpc, tls
from strom.rpc.command_token import CommandGuard
from strom.rpc.roles import SLOT_PROCESS_POLICY, RoleGuard
from taskmanager import cpu_claims
from taskmanager.deployment import TaskDeployer
from taskmanager.network import data_tokens, shared_rings
from taskmanager.network.data_service import SERVER_OPTIONS, DataExchangeService
from taskmanager.network.result_partitions import ResultPartitions
from taskmanager.observability import ObservabilityService

log = logging.getLogger(__name__)

_MAX_RPC_THREADS = 2048
_GC_YOUNG_THRESHOLD = 50_000
_PR_SET_PDEATHSIG = 1
#: a slot process that is never deployed to (its job failed elsewhere first) ends by itself
DEPLOY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class SlotProcessSpec:
    """What a slot process needs to know; picklable, sent through the forkserver. A spare's
    has no job (``job_id`` empty): the job's fields come later, over the pipe
    (``SlotProcesses._for_job``); the TaskManager's are there from the start."""

    job_id: str
    attempt: int
    slot: int
    resource_id: str
    host: str
    bind_host: str
    folder: str
    log_file: str | None
    log_level: str
    metrics_interval_s: float
    config: dict
    #: (vertex id, subtask) of the tasks this process will run: producers wait for them
    subtasks: tuple[tuple[str, int], ...] = ()
    #: the secret the TaskManager's forwarded commands carry (strom/rpc/command_token.py)
    command_token: str = ""
    #: the job's data token: sent to peers, required of them (taskmanager/network/data_tokens.py)
    data_token: str = ""
    #: the TaskManager's folder of BATCH result partitions (it outlives this process), and
    #: the TaskManager's address, which serves them
    partitions_folder: str = ""
    taskmanager_address: str = ""
    #: the job's python.executable, when this process was started with it (not forked)
    python_executable: str = ""
    #: the JobManager this process's tasks report to
    jobmanager_address: str = ""

    @property
    def spare(self) -> bool:
        return not self.job_id


class _SlotView:
    """What :class:`ObservabilityService` reads of its process, for a slot process."""

    def __init__(self, spec: SlotProcessSpec, deployer: TaskDeployer) -> None:
        self.config = spec.config
        self.host = spec.host
        self.resource_id = spec.resource_id
        self.num_slots = 1
        self.deployer = deployer


class SlotGateway(cluster_pb2_grpc.TaskExecutorGatewayServicer):
    """The TaskManager's commands, forwarded to this slot process."""

    #: the answer to a deployment that came after a cancel: nothing was started
    CANCELLED = "cancelled before deployment"

    def __init__(self, deployer: TaskDeployer) -> None:
        self.deployer = deployer
        self._lock = threading.Lock()
        self._cancelled = False

    def Ping(self, request: pb.Empty, context) -> pb.Ack:
        return pb.Ack(ok=True, message=str(os.getpid()))

    def DeployTasks(self, request: pb.DeployTasksRequest, context) -> pb.Ack:
        sent = dict(context.invocation_metadata()).get(tls.REPORT_TOKEN_METADATA)
        if sent:  # the TaskManager's registration: this process reports in its name
            self.deployer.report_token = sent
        with self._lock:
            if self._cancelled:
                return pb.Ack(ok=True, message=self.CANCELLED)
            return self.deployer.deploy(request)

    def CancelTasks(self, request: pb.CancelTasksRequest, context) -> pb.Ack:
        with self._lock:
            self._cancelled = True
            self.deployer.cancel(request.job_id, request.attempt)
            with self.deployer.lock:
                nothing_runs = not self.deployer.tasks
            if nothing_runs:  # cancelled before (or instead of) its deployment
                self.deployer.all_ended.set()
        return pb.Ack(ok=True)

    def TriggerCheckpoint(self, request: pb.CheckpointTrigger, context) -> pb.Ack:
        return self.deployer.trigger_checkpoint(request)

    def NotifyCheckpointComplete(self, request: pb.CheckpointNotice, context) -> pb.Ack:
        return self.deployer.notify_checkpoint_complete(request)


def _die_with_parent() -> None:
    """Have the kernel kill this process when its parent (the forkserver) ends: the forkserver
    ends with its TaskManager, so a killed TaskManager leaves no slot process running."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _line_buffered_stdout() -> None:
    """User ``print()`` lands in the TaskManager's ``.out`` file (inherited), whole lines."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, f"__{name}__", None)
        if stream is None:
            continue
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    sys.stdout = LineAtomicWriter(sys.__stdout__)  # type: ignore[assignment]


def _add_own_site_packages() -> None:
    """A slot process started with the job's python.executable: the TaskManager's path came
    with it (Strom and its dependencies); that interpreter's own packages (a virtualenv's,
    say) are added after them, as PyFlink's workers see the packages of -pyexec."""
    import site

    own = [*site.getsitepackages(), site.getusersitepackages()]
    sys.path.extend(p for p in own if p not in sys.path and os.path.isdir(p))


def run_slot_process(spec: SlotProcessSpec, connection: Connection) -> None:
    """The body of a forked slot process; never returns (ends the process)."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the forkserver ended before PDEATHSIG was armed
        os._exit(1)
    if not spec.spare:  # a spare takes its name once it serves
        set_process_role(TASK_SLOT)
    if spec.python_executable:
        _add_own_site_packages()
    _line_buffered_stdout()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    configure_logging(spec.log_file, spec.log_level)
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], _GC_YOUNG_THRESHOLD), *threshold[1:])
    code = 0
    try:
        _serve(spec, connection)
    except BaseException:
        log.exception("slot process of job %s failed", spec.job_id)
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.__stderr__.flush()
        except (OSError, ValueError):
            pass
    # Not a normal interpreter exit: that would join gRPC's worker threads.
    os._exit(code)


def _serve(spec: SlotProcessSpec, connection: Connection) -> None:
    # Only the TaskManager's fields of ``spec`` are read before a spare has its job.
    tls.use_for_process(spec.config)
    shared_rings.configure(spec.config)
    folder = Path(spec.folder)
    address = [""]
    partitions = ResultPartitions(
        Path(spec.partitions_folder or folder / "partitions"), lambda: spec.taskmanager_address
    )
    deployer = TaskDeployer(
        lambda: spec.resource_id, lambda: address[0], work_dir=folder, partitions=partitions
    )
    executor = futures.ThreadPoolExecutor(
        max_workers=_MAX_RPC_THREADS, thread_name_prefix="slot-rpc"
    )
    server = grpc.server(
        executor,
        options=[
            *SERVER_OPTIONS,
            ("grpc.max_send_message_length", 512 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
        interceptors=[
            RoleGuard(SLOT_PROCESS_POLICY),
            CommandGuard(lambda: spec.command_token, "this slot's TaskManager"),
        ],
    )
    cluster_pb2_grpc.add_TaskExecutorGatewayServicer_to_server(SlotGateway(deployer), server)
    data_service = DataExchangeService(deployer.gates, bind_host=spec.bind_host)
    data_service.add_to_server(server)
    observability = ObservabilityService(_SlotView(spec, deployer))  # type: ignore[arg-type]
    observability_pb2_grpc.add_TaskManagerObservabilityServicer_to_server(observability, server)
    port = tls.add_port(server, f"{spec.bind_host}:0")
    server.start()
    address[0] = f"{spec.host}:{port}"
    if spec.spare:
        set_process_name(SPARE_NAME)
        connection.send(("spare", address[0], os.getpid()))
        job = _await_job(connection)
        if job is None:  # the TaskManager stops, or let this spare go
            server.stop(0).wait()
            data_service.stop()
            observability.close()
            return
        spec = job
        set_process_role(TASK_SLOT)
    if spec.config.get("taskmanager.cpu-affinity", True):
        cpu_claims.claim_cpu()  # before any task thread starts: they pin themselves
    data_tokens.admit(spec.job_id, spec.data_token)
    folder.mkdir(parents=True, exist_ok=True)
    deployer.gates.expect(spec.job_id, spec.attempt, list(spec.subtasks))
    log.info(
        "slot process %d for job %s attempt %d slot %d serves %s",
        os.getpid(),
        spec.job_id,
        spec.attempt,
        spec.slot,
        address[0],
    )
    if spec.jobmanager_address:
        deployer.connect(spec.jobmanager_address, spec.job_id)
    connection.send(("ready", address[0], os.getpid()))
    taskmanager_gone = False
    try:
        taskmanager_gone = _supervise(spec, deployer, connection)
    finally:
        deployer.close()
        server.stop(0.5).wait()
        data_service.stop()
        observability.close()
        if not taskmanager_gone:
            try:
                connection.send(("ended", deployer.deployed))
            except OSError:
                pass
        log.info("slot process %d of job %s ended", os.getpid(), spec.job_id)


def _await_job(connection: Connection) -> SlotProcessSpec | None:
    """A spare's wait for its job: the spec the TaskManager sends, or None when the pipe
    ends (the TaskManager stops, or lets this spare go: it has more than free slots)."""
    try:
        message = connection.recv()
    except (EOFError, OSError):
        return None
    if message[0] != "job":
        return None
    return message[1]


def _supervise(spec: SlotProcessSpec, deployer: TaskDeployer, connection: Connection) -> bool:
    """Until this process's tasks have all ended: send their metrics to the TaskManager once
    a metrics interval, and watch for the TaskManager's end. Wakes only for those (not on a
    short poll: a long-running job's slot process stays asleep in between). Answers whether
    the TaskManager is gone."""
    started = time.monotonic()
    next_metrics = started
    while True:
        try:
            while connection.poll(0):
                connection.recv()  # nothing is sent this way yet; EOF matters
        except (EOFError, OSError):
            # The kernel's parent-death signal (_die_with_parent) usually tells first.
            log.warning("the TaskManager is gone; slot process %d ends", os.getpid())
            return True
        now = time.monotonic()
        if not deployer.deployed and now - started > DEPLOY_TIMEOUT_S:
            log.warning("slot process %d was never deployed to; it ends", os.getpid())
            return False
        if now >= next_metrics:
            next_metrics = now + spec.metrics_interval_s
            metrics = [m.SerializeToString() for m in deployer.metrics()]
            try:
                connection.send(("metrics", metrics))
            except OSError:
                return True
        if deployer.all_ended.wait(max(0.0, next_metrics - time.monotonic())):
            return False
