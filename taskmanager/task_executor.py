"""The TaskExecutor: a TaskManager's slots, its gRPC server and its session with the JobManager.

The TaskManager keeps one session stream open to the JobManager: the first message registers it,
heartbeats follow every ``heartbeat.interval``. When the JobManager is not reachable yet, went
away, or stops acknowledging heartbeats for ``heartbeat.timeout``, the TaskManager backs off and
registers anew, so a restarted JobManager finds its TaskManagers again by itself.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import socket
import threading
import time
import uuid
from concurrent import futures

import grpc
import psutil

from jobmanager.ha.fencing import FencingTokenServerInterceptor
from jobmanager.ha.services import create_ha_services
from strom.addresses import address_reaching
from strom.configuration import StromConfig
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc, tls
from strom.rpc.command_token import CommandGuard
from strom.rpc.registration_proof import new_nonce, registration_proof
from strom.rpc.roles import TASKMANAGER, TASKMANAGER_POLICY, RoleGuard, check_own_certificate
from taskmanager.deployment import TaskDeployer
from taskmanager.network import data_tokens
from taskmanager.network.data_service import SERVER_OPTIONS, DataExchangeService
from taskmanager.network.result_partitions import ResultPartitions
from taskmanager.observability import ObservabilityService
from taskmanager.slots import InProcessSlots, SlotProcesses
from taskmanager.work_dirs import claim_work_dir, release_work_dir

log = logging.getLogger(__name__)

# Every incoming data channel holds a server thread while it lives; threads start lazily.
_MAX_RPC_THREADS = 2048
_GC_YOUNG_THRESHOLD = 50_000
#: the longest time between two reports of running tasks' metrics (they ride on heartbeats)
METRICS_INTERVAL_S = 1.0


class TaskExecutorGateway(cluster_pb2_grpc.TaskExecutorGatewayServicer):
    def __init__(self, executor: TaskExecutor) -> None:
        self.executor = executor

    def Ping(self, request: pb.Empty, context) -> pb.Ack:
        return pb.Ack(ok=True, message=self.executor.resource_id)

    def ConfirmRegistration(
        self, request: pb.RegistrationChallenge, context
    ) -> pb.RegistrationProof:
        """The JobManager checks that this TaskManager made the registration it received."""
        nonce = self.executor.registration_nonce
        if not nonce or request.resource_id != self.executor.resource_id:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this is TaskManager {self.executor.resource_id}, not {request.resource_id}",
            )
        return pb.RegistrationProof(
            proof=registration_proof(nonce, request.challenge, request.resource_id)
        )

    def PrepareSlots(self, request: pb.PrepareSlotsRequest, context) -> pb.PrepareSlotsResponse:
        _admit_data_token(request.job_id, context)
        return self.executor.slots.prepare(request)

    def DeployTasks(self, request: pb.DeployTasksRequest, context) -> pb.Ack:
        _admit_data_token(request.job_id, context)
        return self.executor.slots.deploy(request)

    def CancelTasks(self, request: pb.CancelTasksRequest, context) -> pb.Ack:
        self.executor.slots.cancel(request.job_id, request.attempt)
        return pb.Ack(ok=True)

    def TriggerCheckpoint(self, request: pb.CheckpointTrigger, context) -> pb.Ack:
        return self.executor.slots.trigger_checkpoint(request)

    def NotifyCheckpointComplete(self, request: pb.CheckpointNotice, context) -> pb.Ack:
        return self.executor.slots.notify_checkpoint_complete(request)

    def ReleasePartitions(self, request: pb.ReleasePartitionsRequest, context) -> pb.Ack:
        self.executor.partitions.release(
            request.job_id, request.producer_vertex, request.producer_subtask
        )
        return pb.Ack(ok=True)


def _admit_data_token(job_id: str, context: grpc.ServicerContext) -> None:
    """The job's data token, which the JobManager's command carries: its slot processes
    send it to their peers and take records only from peers that do (data_tokens.py)."""
    for key, value in context.invocation_metadata():
        if key == data_tokens.METADATA_KEY:
            data_tokens.admit(job_id, value)


class TaskExecutor:
    """One TaskManager process's services; also embedded by the mini-cluster.

    With ``slot_processes`` (a TaskManager daemon) each job's subtasks run in slot processes
    this TaskManager forks and supervises; without (the mini-cluster) they run in-process.
    """

    def __init__(self, config: StromConfig, slot_processes: bool = True) -> None:
        self.config = config
        self.num_slots: int = config["taskmanager.numberOfTaskSlots"]
        self.jobmanager_host: str = config["jobmanager.rpc.address"]
        self.jobmanager_port: int = config["jobmanager.rpc.port"]
        self.host = config["taskmanager.host"] or address_reaching(
            self.jobmanager_host, self.jobmanager_port
        )
        self.resource_id: str = config["taskmanager.resource-id"] or ""
        self.registered = threading.Event()
        self.jobmanager_id: str | None = None
        self.instance_id: str | None = None
        self.registrations = 0
        #: the jobs whose tasks were cancelled when the session with ``jobmanager_id`` was
        #: lost, told to the next JobManager this TaskManager registers at
        self._jobs_of_lost_session: set[str] = set()
        #: with high-availability.type: zookeeper, where the leading JobManager is published
        self._ha = create_ha_services(config)
        self._leader = None
        #: refuses commands of a deposed JobManager (with high availability)
        self.fencing = FencingTokenServerInterceptor() if self._ha is not None else None
        #: the command token of the current JobManager session ("" before registering)
        self.command_token = ""
        #: the secret of the latest registration, proven when the JobManager calls back
        self.registration_nonce = ""
        self._stopped = threading.Event()
        self._server: grpc.Server | None = None
        self._session_thread: threading.Thread | None = None
        self._current_call: grpc.Future | None = None
        self._outgoing: queue.Queue[pb.TaskManagerMessage | None] | None = None
        self.port = 0
        self._executor: futures.ThreadPoolExecutor | None = None
        self._gc_threshold = gc.get_threshold()
        self.work_dir = claim_work_dir()
        #: BATCH result partitions: kept here, outliving the slot processes that wrote them
        self.partitions = ResultPartitions(self.work_dir / "partitions", lambda: self.address)
        self.deployer = TaskDeployer(
            lambda: self.resource_id,
            lambda: self.address,
            work_dir=self.work_dir,
            partitions=self.partitions,
        )
        self.slots: InProcessSlots | SlotProcesses = InProcessSlots(
            self.deployer, lambda: self.address
        )
        self._slot_processes = slot_processes
        self.observability = ObservabilityService(self)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        # Tasks allocate many short-lived records in batches; collecting the young generation
        # every 700 allocations (CPython's default) costs a large share of the run time.
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(max(self._gc_threshold[0], _GC_YOUNG_THRESHOLD), *self._gc_threshold[1:])
        own = tls.use_for_process(self.config)
        check_own_certificate(
            own and own.certificate, TASKMANAGER, self.config["security.ssl.internal.cert"]
        )
        bind_host = self.config["taskmanager.bind-host"] or self.host
        self._executor = futures.ThreadPoolExecutor(
            max_workers=_MAX_RPC_THREADS, thread_name_prefix="tm-rpc"
        )
        server = grpc.server(
            self._executor,
            options=[
                *SERVER_OPTIONS,
                ("grpc.max_send_message_length", 512 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
            interceptors=[
                RoleGuard(TASKMANAGER_POLICY),
                *([self.fencing] if self.fencing is not None else []),
                CommandGuard(
                    lambda: self.command_token,
                    "this TaskManager's JobManager",
                    settle=self._await_registration,
                ),
            ],
        )
        cluster_pb2_grpc.add_TaskExecutorGatewayServicer_to_server(
            TaskExecutorGateway(self), server
        )
        self._data_service = DataExchangeService(
            self.deployer.gates, bind_host=bind_host, partitions=self.partitions
        )
        self._data_service.add_to_server(server)
        self.observability.add_to_server(server)
        target = f"{bind_host}:{self.config['taskmanager.rpc.port']}"
        try:
            self.port = tls.add_port(server, target)
        except RuntimeError as error:
            raise OSError(
                f"cannot bind the TaskManager's gRPC server to {target}: {error}"
            ) from None
        server.start()
        self._server = server
        if not self.resource_id:
            self.resource_id = f"{self.address}-{uuid.uuid4().hex[:6]}"
        if self._slot_processes:
            slots = SlotProcesses(
                self.config, lambda: self.resource_id, self.host, self.work_dir, self.partitions
            )
            slots.warm_up()
            self.slots = slots
        self._session_thread = threading.Thread(
            target=self._session_loop, name="tm-jobmanager-session", daemon=True
        )
        self._session_thread.start()
        log.info(
            "TaskManager %s started on %s with %d slot(s); JobManager at %s:%d",
            self.resource_id,
            self.address,
            self.num_slots,
            self.jobmanager_host,
            self.jobmanager_port,
        )

    def stop(self) -> None:
        self._stopped.set()
        self.deployer.cancel_all()
        self._end_session()
        if self._session_thread is not None:
            self._session_thread.join(timeout=5)
        if self._ha is not None:
            self._ha.stop()
        if isinstance(self.slots, SlotProcesses):
            self.slots.close()
        self.deployer.close()
        self.partitions.release_all()
        release_work_dir(self.work_dir)
        self.observability.close()
        if self._server is not None:
            self._server.stop(0.5).wait()
            self._executor.shutdown(wait=False)
            self._data_service.stop()
        log.info("TaskManager %s stopped", self.resource_id)

    # -------------------------------------------------------------- JobManager session

    def _end_session(self) -> None:
        outgoing, call = self._outgoing, self._current_call
        if outgoing is not None:
            outgoing.put(None)
        if call is not None:
            call.cancel()

    def _session_loop(self) -> None:
        initial = self.config["cluster.registration.initial-timeout"] / 1000.0
        maximum = self.config["cluster.registration.max-timeout"] / 1000.0
        backoff = initial
        while not self._stopped.is_set():
            try:
                if self._run_session():
                    backoff = initial
            except grpc.RpcError as error:
                code = error.code() if hasattr(error, "code") else None
                if not self._stopped.is_set():
                    log.debug("JobManager session ended: %s", code)
            except Exception:  # keep retrying whatever happened
                log.exception("JobManager session failed")
            self.registered.clear()
            if not self._stopped.is_set():
                # The JobManager has declared us lost (or is gone): it restarts our tasks
                # elsewhere, so ours must stop before we register anew, as in Flink.
                self._jobs_of_lost_session.update(self.slots.job_ids())
                cancelled = self.slots.cancel_everything()
                if cancelled:
                    log.warning(
                        "lost the JobManager session: cancelled %d running task(s)", cancelled
                    )
            if self._stopped.wait(backoff):
                break
            backoff = min(backoff * 2, maximum)

    def _registration(self) -> pb.TaskManagerMessage:
        memory = psutil.virtual_memory()
        self.registration_nonce = new_nonce()
        return pb.TaskManagerMessage(
            register=pb.RegisterTaskManager(
                resource_id=self.resource_id,
                address=self.address,
                hostname=socket.gethostname(),
                num_slots=self.num_slots,
                hardware=pb.Hardware(
                    cpu_cores=psutil.cpu_count() or 1,
                    physical_memory=memory.total,
                    free_memory=memory.available,
                ),
                pid=os.getpid(),
                previous_jobmanager_id=self.jobmanager_id or "",
                jobs_of_previous_session=sorted(self._jobs_of_lost_session),
                nonce=self.registration_nonce,
            )
        )

    def _jobmanager_target(self) -> str | None:
        """The JobManager to register at: the configured one, or with high availability the
        leader ZooKeeper names (None while there is none)."""
        if self._ha is None:
            return f"{self.jobmanager_host}:{self.jobmanager_port}"
        if self._leader is None:
            self._ha.start()
            self._leader = self._ha.leader_retrieval()
            self._leader.add_listener(
                lambda leader: leader is not None and self.fencing.leader_seen(leader.token)
            )
            if self._leader.leader is not None:
                self.fencing.leader_seen(self._leader.leader.token)
        leader = self._leader.wait_for_leader(timeout=self.config["heartbeat.timeout"] / 1000.0)
        return leader.address if leader is not None else None

    def _await_registration(self, timeout: float) -> None:
        """Return once a session with the JobManager is registered (its command token known),
        or after ``timeout`` seconds: a command can overtake the acceptance it follows."""
        if not self.registered.is_set():
            self.registered.wait(timeout)

    def _run_session(self) -> bool:
        """One session with the JobManager; True if it got as far as being registered."""
        target = self._jobmanager_target()
        if target is None:
            log.info("no leading JobManager is published in ZooKeeper yet")
            return False
        outgoing: queue.Queue[pb.TaskManagerMessage | None] = queue.Queue()
        outgoing.put(self._registration())

        def requests():
            while True:
                message = outgoing.get()
                if message is None:
                    return
                yield message

        interval = self.config["heartbeat.interval"] / 1000.0
        timeout = self.config["heartbeat.timeout"] / 1000.0
        with tls.channel(target) as channel:
            stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
            call = stub.TaskManagerSession(requests())
            self._outgoing, self._current_call = outgoing, call
            if self._stopped.is_set():
                call.cancel()
            last_answer = [time.monotonic()]
            watchdog_done = threading.Event()

            def watchdog() -> None:
                sequence = 0
                last_sent = time.monotonic()
                # Task metrics ride on heartbeats: while tasks run, they go at least every
                # METRICS_INTERVAL_S even when heartbeat.interval is Flink's 10 s.
                while not watchdog_done.wait(min(interval, METRICS_INTERVAL_S)):
                    now = time.monotonic()
                    if now - last_answer[0] > timeout:
                        log.warning("JobManager silent for %.1f s; reconnecting", timeout)
                        call.cancel()
                        return
                    if not self.registered.is_set():
                        continue
                    metrics = self.slots.metrics()
                    if metrics or now - last_sent >= interval:
                        sequence += 1
                        last_sent = now
                        heartbeat = pb.TaskManagerHeartbeat(sequence=sequence, metrics=metrics)
                        outgoing.put(pb.TaskManagerMessage(heartbeat=heartbeat))

            watcher = threading.Thread(target=watchdog, name="tm-heartbeat", daemon=True)
            watcher.start()
            registered = False
            try:
                for message in call:
                    last_answer[0] = time.monotonic()
                    kind = message.WhichOneof("kind")
                    if kind == "accepted":
                        registered = True
                        self.instance_id = message.accepted.instance_id
                        self.deployer.report_token = message.accepted.report_token
                        self.command_token = message.accepted.command_token
                        if isinstance(self.slots, SlotProcesses):
                            self.slots.report_token = message.accepted.report_token
                        if self.jobmanager_id != message.accepted.jobmanager_id:
                            self.jobmanager_id = message.accepted.jobmanager_id
                        self.registrations += 1
                        self._jobs_of_lost_session.clear()
                        self.registered.set()
                        log.info(
                            "registered at JobManager %s as instance %s",
                            self.jobmanager_id,
                            self.instance_id,
                        )
                    elif kind == "rejected":
                        log.warning("JobManager rejected us: %s", message.rejected.reason)
                        break
            finally:
                watchdog_done.set()
                outgoing.put(None)
                call.cancel()
                self.registered.clear()
                self._outgoing, self._current_call = None, None
            return registered
