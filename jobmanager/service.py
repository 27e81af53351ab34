"""The JobManager: its gRPC server, REST server and the TaskManager registry behind them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import uuid
from concurrent import futures
from typing import Any

import grpc

import strom
from jobmanager.dispatcher import Dispatcher
from jobmanager.gateway import JobManagerGateway
from jobmanager.ha.leadership import Leadership
from jobmanager.ha.services import create_ha_services
from jobmanager.registration_check import RegistrationCheck
from jobmanager.rest import RestServer
from jobmanager.taskmanager_registry import Hardware, TaskManagerRecord, TaskManagerRegistry
from strom.addresses import resolve_bind_host
from strom.configuration import StromConfig, rest_token
from strom.rpc import cluster_pb2_grpc, tls
from strom.rpc.command_token import commanding, new_token
from strom.rpc.roles import JOBMANAGER, JOBMANAGER_POLICY, RoleGuard, check_own_certificate

log = logging.getLogger(__name__)

# Each TaskManager session holds a server thread for its lifetime.
_MAX_RPC_THREADS = 512


class JobManager:
    """One JobManager process's services; also embedded by the mini-cluster."""

    def __init__(self, config: StromConfig) -> None:
        self.config = config
        self.jobmanager_id = uuid.uuid4().hex
        #: the secret this JobManager's command tokens are made from (command_token_for)
        self.command_token = new_token()
        #: calls a registering TaskManager back at its address (jobmanager/registration_check.py)
        # Bounded below the heartbeat timeout: the registering TaskManager gives up on a
        # JobManager silent for that long.
        self.registration_check = RegistrationCheck(
            min(10.0, config["heartbeat.timeout"] / 1000.0 * 0.75)
        )
        #: what clients must send to submit, cancel or savepoint (gRPC and REST); None: nothing
        self.client_token = rest_token(config)
        self.registry = TaskManagerRegistry(config["heartbeat.timeout"] / 1000.0)
        self.lock = threading.RLock()
        self._sessions: dict[tuple[str, str], grpc.ServicerContext] = {}
        self._stopped = threading.Event()
        self._server: grpc.Server | None = None
        self._rest: RestServer | None = None
        self._expiry_thread: threading.Thread | None = None
        self.rpc_port: int = 0
        self.rest_port: int = 0
        self._executor: futures.ThreadPoolExecutor | None = None
        self.dispatcher = Dispatcher(self)
        #: with high-availability.type: zookeeper, the election and HA stores (else None)
        ha_services = create_ha_services(config)
        self.leadership = Leadership(self, ha_services) if ha_services is not None else None
        #: jobs that ran under an earlier JobManager and were lost with it: job id → its id
        self.lost_jobs: dict[str, str] = {}

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        own = tls.use_for_process(self.config)
        check_own_certificate(
            own and own.certificate, JOBMANAGER, self.config["security.ssl.internal.cert"]
        )
        rpc_host = self.config["jobmanager.bind-host"] or self.config["jobmanager.rpc.address"]
        self._executor = futures.ThreadPoolExecutor(
            max_workers=_MAX_RPC_THREADS, thread_name_prefix="jm-rpc"
        )
        server = grpc.server(
            self._executor,
            options=[
                ("grpc.max_receive_message_length", 512 * 1024 * 1024),
                ("grpc.max_send_message_length", 512 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
            interceptors=[RoleGuard(JOBMANAGER_POLICY)],
        )
        cluster_pb2_grpc.add_JobManagerGatewayServicer_to_server(JobManagerGateway(self), server)
        target = f"{resolve_bind_host(rpc_host)}:{self.config['jobmanager.rpc.port']}"
        try:
            self.rpc_port = tls.add_port(server, target)
        except RuntimeError as error:
            raise OSError(
                f"cannot bind the JobManager's gRPC server to {target}: {error}"
            ) from None
        server.start()
        self._server = server
        self.dispatcher.start()

        rest_host = (
            self.config["rest.bind-address"]
            or self.config["rest.address"]
            or self.config["jobmanager.rpc.address"]
        )
        try:
            self._rest = RestServer(self, resolve_bind_host(rest_host), self.config["rest.port"])
        except OSError:
            server.stop(0)
            raise
        self.rest_port = self._rest.port
        self._rest.start()

        self._expiry_thread = threading.Thread(
            target=self._expire_loop, name="jm-heartbeat-monitor", daemon=True
        )
        self._expiry_thread.start()
        if self.leadership is not None:
            try:
                self.leadership.start(
                    self.advertised_address,
                    f"{self.config['rest.address'] or self.config['jobmanager.rpc.address']}"
                    f":{self.rest_port}",
                )
            except Exception as error:
                self._rest.stop()
                server.stop(0)
                raise OSError(f"cannot reach ZooKeeper for high availability: {error}") from None
        log.info(
            "JobManager %s started: gRPC on %s:%d, REST on %s:%d",
            self.jobmanager_id,
            rpc_host,
            self.rpc_port,
            rest_host,
            self.rest_port,
        )

    @property
    def advertised_address(self) -> str:
        return f"{self.config['jobmanager.rpc.address']}:{self.rpc_port}"

    def stop(self, grace: float = 1.0) -> None:
        self._stopped.set()
        if self.leadership is not None:
            self.leadership.stop()
        self.dispatcher.stop()
        if self._rest is not None:
            self._rest.stop()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._executor.shutdown(wait=False)
        log.info("JobManager stopped")

    def wait(self) -> None:
        self._stopped.wait()

    def _expire_loop(self) -> None:
        interval = max(0.05, self.config["heartbeat.interval"] / 1000.0 / 2)
        while not self._stopped.wait(interval):
            with self.lock:
                lost = self.registry.expire(time.time())
                sessions = [self._sessions.pop((r.resource_id, r.instance_id), None) for r in lost]
            for record, session in zip(lost, sessions, strict=True):
                log.warning(
                    "TaskManager %s at %s timed out: no heartbeat for %d ms",
                    record.resource_id,
                    record.address,
                    self.config["heartbeat.timeout"],
                )
                if session is not None:
                    session.cancel()
                self.taskmanager_lost(record, "heartbeat timeout")

    # -------------------------------------------------------------- TaskManagers

    def register_taskmanager(
        self,
        resource_id: str,
        address: str,
        hostname: str,
        num_slots: int,
        hardware: Hardware,
        pid: int,
        session: grpc.ServicerContext,
    ) -> TaskManagerRecord:
        with self.lock:
            record, previous = self.registry.register(
                resource_id, address, hostname, num_slots, hardware, pid, time.time()
            )
            old_session = None
            if previous is not None:
                old_session = self._sessions.pop((previous.resource_id, previous.instance_id), None)
            self._sessions[(resource_id, record.instance_id)] = session
        if previous is not None:
            log.info("TaskManager %s registered anew; dropping its earlier instance", resource_id)
            if old_session is not None:
                old_session.cancel()
            self.taskmanager_lost(previous, "re-registered")
        log.info(
            "TaskManager %s registered from %s with %d slot(s)", resource_id, address, num_slots
        )
        self.dispatcher.wake()
        return record

    def note_jobs_of_previous_session(
        self, resource_id: str, previous_jobmanager_id: str, job_ids: list[str]
    ) -> None:
        """A TaskManager says which jobs it was running for a JobManager it lost.

        Without high availability a restarted JobManager knows nothing of the jobs of the run
        before it: they are lost. Say so, once per job, and remember them so that a client
        asking for one is told what happened instead of "no such job".
        """
        if self.leadership is not None:
            return  # with high availability the leader recovers them
        if not previous_jobmanager_id or previous_jobmanager_id == self.jobmanager_id:
            return
        known = {summary["jid"] for summary in self.dispatcher.summaries()}
        with self.lock:
            new = [j for j in job_ids if j not in known and j not in self.lost_jobs]
            for job_id in new:
                self.lost_jobs[job_id] = previous_jobmanager_id
        for job_id in new:
            log.warning(
                "Job %s of the previous JobManager run (%s) was lost: TaskManager %s had been "
                "running it. Without high-availability (high-availability.type: zookeeper) a "
                "restarted JobManager does not recover the jobs of its previous run; resume it "
                "from its last retained checkpoint with `strom run -s <checkpoint> ...`.",
                job_id,
                previous_jobmanager_id,
                resource_id,
            )

    def lost_job_message(self, job_id: str) -> str | None:
        """Why ``job_id`` is unknown, when it was lost with an earlier JobManager."""
        previous = self.lost_jobs.get(job_id)
        if previous is None:
            return None
        return (
            f"Job {job_id} was lost: it ran under the previous JobManager ({previous}), which "
            f"went away; without high-availability the restarted JobManager "
            f"({self.jobmanager_id}) does not recover the jobs of its previous run"
        )

    # ------------------------------------------------------- high availability

    def serves(self) -> bool:
        """Whether this JobManager takes TaskManagers and jobs: always without high
        availability, only while leading with it."""
        return self.leadership is None or self.leadership.is_leader()

    def standby_message(self) -> str:
        if self.leadership is not None and self.leadership.suspended():
            return (
                f"this JobManager ({self.advertised_address}) leads, but its connection to "
                "ZooKeeper is suspended: it serves again when the connection is back"
            )
        leader = self.leadership.leader_address() if self.leadership is not None else ""
        where = f"the leader is at {leader}" if leader else "no leader is elected yet"
        return f"this JobManager ({self.advertised_address}) stands by; {where}"

    def command_token_for(self, address: str) -> str:
        """The command token of the TaskManager at ``address``: each TaskManager gets its own,
        so one that registered (anyone who runs a server can) cannot command the others."""
        return hmac.new(self.command_token.encode(), address.encode(), hashlib.sha256).hexdigest()

    def data_token_for(self, job_id: str) -> str:
        """The data token of ``job_id``: its slot processes send it to each other and take
        records only from peers that do (taskmanager/network/data_tokens.py). Its deployments
        carry it, to the TaskManagers that run the job and no others."""
        message = f"data:{job_id}".encode()
        return hmac.new(self.command_token.encode(), message, hashlib.sha256).hexdigest()

    def command_channel(self, address: str) -> grpc.Channel:
        """A channel for commands to a TaskManager; with high availability they carry this
        JobManager's fencing token. They all carry the TaskManager's command token, without
        which it takes no command (strom/rpc/command_token.py)."""
        token = self.command_token_for(address)
        if self.leadership is None:
            return commanding(tls.channel(address), lambda: token, self.data_token_for)
        from jobmanager.ha.fencing import fenced_channel

        channel = fenced_channel(address, self.leadership.token)
        return commanding(channel, lambda: token, self.data_token_for)

    def standby_rest_redirect(self, path: str) -> str | None:
        """Where a standby's REST API sends a request: the same path on the leader's REST
        address (None when this JobManager serves, or no leader is known yet)."""
        if self.leadership is None or self.leadership.is_leader():
            return None
        leader = self.leadership.retrieval.leader if self.leadership.retrieval else None
        if leader is None or not leader.rest_address or leader.address == self.advertised_address:
            return None  # none known, or this JobManager just deposed and ZooKeeper not read yet
        return f"http://{leader.rest_address}{path}"

    def leadership_revoked(self) -> None:
        """This JobManager no longer leads: suspend its jobs (the new leader recovers them)
        and close its TaskManagers' sessions, so that they register with the new leader."""
        self.dispatcher.suspend_jobs("this JobManager lost its leadership")
        with self.lock:
            records = self.registry.all()
            sessions = [self._sessions.pop((r.resource_id, r.instance_id), None) for r in records]
            for record in records:
                self.registry.unregister(record.resource_id, record.instance_id)
        for session in sessions:
            if session is not None:
                session.cancel()

    def job_terminated(self, job_id: str) -> None:
        """Hook: a job reached a final state (high availability forgets it)."""
        if self.leadership is not None:
            try:
                self.leadership.job_terminated(job_id)
            except Exception as error:
                log.warning("could not remove job %s from HA storage: %s", job_id, error)

    def attempt_deploying(self, job_id: str, attempt: int) -> None:
        """Hook: ``attempt`` of a job is about to be deployed. With high availability it is
        recorded first, so a later leader numbers its attempts above it; raises when that
        fenced write fails (this JobManager was deposed): the attempt must not go out."""
        if self.leadership is not None:
            self.leadership.attempt_deploying(job_id, attempt)

    def checkpoint_completed(self, job_id: str, checkpoint_id: int, path: str) -> bool:
        """Hook: a checkpoint of a job completed. With high availability the pointer store
        must take it (a fenced write) before it counts: False when it did not — this
        JobManager was deposed — and then nothing older may be deleted, since the new
        leader may be restoring from it."""
        if self.leadership is None:
            return True
        try:
            self.leadership.checkpoint_completed(job_id, checkpoint_id, path)
        except Exception as error:
            log.warning("checkpoint %d of %s not in HA storage: %s", checkpoint_id, job_id, error)
            return False
        return True

    def taskmanager_heartbeat(self, resource_id: str, instance_id: str) -> bool:
        with self.lock:
            return self.registry.heartbeat(resource_id, instance_id, time.time())

    def session_closed(self, resource_id: str, instance_id: str) -> None:
        with self.lock:
            self._sessions.pop((resource_id, instance_id), None)
            record = self.registry.unregister(resource_id, instance_id)
        if record is not None:
            level = logging.INFO if self._stopped.is_set() else logging.WARNING
            log.log(level, "TaskManager %s at %s disconnected", resource_id, record.address)
            self.taskmanager_lost(record, "connection closed")

    def taskmanager_lost(self, record: TaskManagerRecord, reason: str) -> None:
        """Fail (later: restart) the jobs that had subtasks on a lost TaskManager."""
        self.dispatcher.taskmanager_lost(record, reason)

    # -------------------------------------------------------------- status

    def overview(self) -> dict[str, Any]:
        with self.lock:
            states = self.dispatcher.counts()
            return {
                "taskmanagers": len(self.registry.all()),
                "slots-total": self.registry.slots_total,
                "slots-available": self.registry.slots_available,
                "jobs-running": sum(s not in ("FINISHED", "CANCELED", "FAILED") for s in states),
                "jobs-finished": states.count("FINISHED"),
                "jobs-cancelled": states.count("CANCELED"),
                "jobs-failed": states.count("FAILED"),
                "strom-version": strom.__version__,
            }

    def taskmanagers(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "id": record.resource_id,
                    "address": record.address,
                    "hostname": record.hostname,
                    "pid": record.pid,
                    "slotsNumber": record.num_slots,
                    "freeSlots": record.free_slots,
                    "timeSinceLastHeartbeat": int(record.last_heartbeat * 1000),
                    "hardware": {
                        "cpuCores": record.hardware.cpu_cores,
                        "physicalMemory": record.hardware.physical_memory,
                        "freeMemory": record.hardware.free_memory,
                    },
                }
                for record in self.registry.all()
            ]
