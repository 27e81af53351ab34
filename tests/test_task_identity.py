"""A task's state, checkpoint acks and metrics are taken only from the TaskManager that runs it.

A hostile client that knows a running job's id, attempt and tasks (all visible through the
REST API) forges a FAILED task state, a checkpoint acknowledgement, a decline and a request
for a source's split: each is
refused (PERMISSION_DENIED), logged, and the job runs on, taking checkpoints from its real
TaskManagers. With internal TLS, a peer holding a certificate of the cluster CA but not the
TaskManager's cannot register in its place, nor with a client's certificate, nor report for
another TaskManager's tasks with its own registration.
"""

from __future__ import annotations

import queue
import sys
import threading
from concurrent import futures

import grpc
import pytest
from harness import LocalCluster, http_json, poll_for
from jobs_support import remote
from rest_support import first, parity
from test_internal_tls import tls_config, tls_of

from client.certs import make_cluster_certificates, make_node_certificate
from client.gateway import ClusterClient
from strom.datastream import StreamExecutionEnvironment
from strom.datastream.connectors.number_seq import NumberSequenceSource
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc
from strom.rpc.registration_proof import registration_proof
from strom.rpc.tls import INTERNAL_SERVER_NAME, REPORT_TOKEN_METADATA, add_port


def discard(value):
    pass


def _start_job(cluster: LocalCluster) -> tuple[str, pb.JobDetails]:
    with remote(cluster.address):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.enable_checkpointing(300)
        env.get_checkpoint_config().set_checkpoint_storage_dir(
            str(cluster.conf_dir.parent / "checkpoints")
        )
        env.set_parallelism(2)
        numbers = env.from_source(NumberSequenceSource(0, 10**12), None, "Numbers")
        numbers.map(parity).key_by(first).add_sink(discard).name("Discard")
        job = env.execute_async("target of forgeries")
    job_id = job.get_job_id()
    with ClusterClient(cluster.address) as client:
        poll_for(
            lambda: (
                client.job(job_id).summary.state == "RUNNING"
                and all(v.status == "RUNNING" for v in client.job(job_id).vertices)
            ),
            what="the job to run",
        )
        return job_id, client.job(job_id)


def _completed_checkpoints(cluster: LocalCluster, job_id: str) -> int:
    return http_json(f"{cluster.rest_url}/jobs/{job_id}/checkpoints")["counts"]["completed"]


def _goes_on_then_cancel(cluster: LocalCluster, job_id: str, attempt: int) -> None:
    """The job completes two more checkpoints and still runs its ``attempt`` (nothing a
    hostile peer sent disturbed it); then it is cancelled."""
    with ClusterClient(cluster.address) as client:
        before = _completed_checkpoints(cluster, job_id)
        poll_for(
            lambda: _completed_checkpoints(cluster, job_id) >= before + 2,
            timeout=30,
            what="the job to go on checkpointing",
        )
        assert client.job(job_id).summary.state == "RUNNING"
        assert client.job(job_id).attempt == attempt
        client.cancel(job_id)


def _forge_all(stub, job_id: str, details: pb.JobDetails, metadata=()) -> list[grpc.StatusCode]:
    """Forged reports about every task of the job; the status code each got."""
    codes = []
    for vertex in details.vertices:
        for index in range(vertex.parallelism):
            forgeries = [
                (
                    stub.UpdateTaskExecutionState,
                    pb.TaskExecutionState(
                        job_id=job_id,
                        attempt=details.attempt,
                        vertex_id=vertex.id,
                        subtask=index,
                        state="FAILED",
                        failure="forged by a hostile client",
                    ),
                ),
                (
                    stub.AcknowledgeCheckpoint,
                    pb.CheckpointAck(
                        job_id=job_id,
                        attempt=details.attempt,
                        vertex_id=vertex.id,
                        subtask=index,
                        checkpoint_id=1,
                        handle=pb.TaskStateHandle(path="/etc/passwd"),
                    ),
                ),
                (
                    stub.DeclineCheckpoint,
                    pb.CheckpointDecline(
                        job_id=job_id,
                        attempt=details.attempt,
                        vertex_id=vertex.id,
                        subtask=index,
                        checkpoint_id=1,
                        reason="forged",
                    ),
                ),
                (  # would take a source's splits, or set an empty pool for the attempt
                    stub.AssignSplit,
                    pb.SplitRequest(
                        job_id=job_id,
                        attempt=details.attempt,
                        vertex_id=vertex.id,
                        subtask=index,
                        initial=True,
                        split_count=1,
                    ),
                ),
            ]
            for method, request in forgeries:
                try:
                    method(request, timeout=5, metadata=metadata)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
    return codes


@pytest.fixture
def cluster(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", slots=2)
    try:
        cluster.start(taskmanagers=1)
        yield cluster  # a failing test's report shows the logs' ends (conftest.py)
    finally:
        cluster.stop()


def test_forged_task_states_and_checkpoint_acks_are_refused(cluster):
    job_id, details = _start_job(cluster)
    with grpc.insecure_channel(cluster.address) as channel:
        stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
        codes = _forge_all(stub, job_id, details)
        guessed = _forge_all(stub, job_id, details, ((REPORT_TOKEN_METADATA, "0" * 32),))
    assert codes and set(codes + guessed) == {grpc.StatusCode.PERMISSION_DENIED}
    with ClusterClient(cluster.address) as client:
        assert client.job(job_id).summary.state == "RUNNING"
        assert client.job(job_id).attempt == details.attempt
        # The real TaskManager's reports are still taken: checkpoints complete.
        before = _completed_checkpoints(cluster, job_id)
        poll_for(
            lambda: _completed_checkpoints(cluster, job_id) >= before + 2,
            timeout=30,
            what="checkpoints acknowledged by the real TaskManager",
        )
        assert client.job(job_id).summary.state == "RUNNING"
        assert not client.job(job_id).exceptions
        client.cancel(job_id)
    assert "refused a task state from" in cluster.logs()
    assert "refused a checkpoint acknowledgement from" in cluster.logs()


def test_forged_states_of_a_batch_jobs_executions_are_refused(cluster):
    # A BATCH job's reports carry execution numbers, not the job's attempt: they are checked
    # against the execution's TaskManager just the same.
    from strom.datastream import RuntimeExecutionMode

    with remote(cluster.address):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_runtime_mode(RuntimeExecutionMode.BATCH)
        numbers = env.from_source(NumberSequenceSource(0, 10**9), None, "Numbers")
        numbers.map(parity).add_sink(discard).name("Discard")
        job_id = env.execute_async("batch target of forgeries").get_job_id()
    with ClusterClient(cluster.address) as client:
        details = poll_for(
            lambda: (d := client.job(job_id)).executions and d, what="the job to run"
        )
        codes = []
        with grpc.insecure_channel(cluster.address) as channel:
            stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
            for name, execution in details.executions.items():
                vertex, _, index = name.rpartition("/")
                forged = pb.TaskExecutionState(
                    job_id=job_id,
                    attempt=execution,
                    vertex_id=vertex,
                    subtask=int(index),
                    state="FAILED",
                    failure="forged by a hostile client",
                )
                try:
                    stub.UpdateTaskExecutionState(forged, timeout=5)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
        assert codes and set(codes) == {grpc.StatusCode.PERMISSION_DENIED}
        assert client.job(job_id).summary.state == "RUNNING"
        assert not client.job(job_id).exceptions
        client.cancel(job_id)
    assert "refused a task state from" in cluster.logs()


class _FakeTaskManager:
    """A registration over ``channel`` that holds its session open."""

    def __init__(
        self,
        channel: grpc.Channel,
        resource_id: str,
        address: str = "127.0.0.1:1",
        nonce: str = "0" * 32,
    ) -> None:
        self.outgoing: queue.Queue = queue.Queue()
        self.outgoing.put(
            pb.TaskManagerMessage(
                register=pb.RegisterTaskManager(
                    resource_id=resource_id,
                    address=address,
                    hostname="nowhere",
                    num_slots=1000,
                    nonce=nonce,
                )
            )
        )
        stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
        self.call = stub.TaskManagerSession(iter(self.outgoing.get, None))
        self.first: pb.JobManagerMessage | None = None
        self.error: grpc.StatusCode | None = None
        self.answered = threading.Event()

        def read() -> None:
            try:
                for message in self.call:
                    if self.first is None:
                        self.first = message
                        self.answered.set()
            except grpc.RpcError as error:
                self.error = error.code()
            self.answered.set()

        threading.Thread(target=read, daemon=True).start()

    def close(self) -> None:
        self.outgoing.put(None)
        self.call.cancel()


class ProvingServer(cluster_pb2_grpc.TaskExecutorGatewayServicer):
    """A hostile TaskManager's own server: it answers the JobManager's call back for its own
    registration (``nonce``), so that registration is accepted."""

    def __init__(self, nonce: str, tls=None) -> None:
        self.nonce = nonce
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        cluster_pb2_grpc.add_TaskExecutorGatewayServicer_to_server(self, self.server)
        port = add_port(self.server, "127.0.0.1:0", tls=tls)
        self.server.start()
        self.address = f"127.0.0.1:{port}"

    def ConfirmRegistration(self, request, context):
        return pb.RegistrationProof(
            proof=registration_proof(self.nonce, request.challenge, request.resource_id)
        )

    def close(self) -> None:
        self.server.stop(0)


def _channel(folder, name: str, address: str) -> grpc.Channel:
    tls = tls_of(folder, name)
    return grpc.secure_channel(
        address,
        tls.channel_credentials(),
        options=[("grpc.ssl_target_name_override", INTERNAL_SERVER_NAME)],
    )


def test_with_tls_a_certificate_is_an_identity_no_other_peer_can_take(tmp_path, monkeypatch):
    certs = tmp_path / "certs"
    make_cluster_certificates(certs, ["127.0.0.1"], ["127.0.0.1"])
    # signed by the cluster CA, a TaskManager's, but not that TaskManager's
    make_node_certificate(certs, "intruder", ["taskmanager"])
    cluster = LocalCluster(tmp_path / "cluster", slots=2, **tls_config(certs, "127.0.0.1"))
    monkeypatch.setenv("STROM_CONF_DIR", str(cluster.conf_dir))
    try:
        cluster.start(taskmanagers=1)
        job_id, details = _start_job(cluster)
        with ClusterClient(cluster.address) as client:
            real = client.taskmanagers()[0].id

        # Taking the real TaskManager's place, with another TaskManager's certificate:
        with _channel(certs, "intruder", cluster.address) as channel:
            fake = _FakeTaskManager(channel, real)
            assert fake.answered.wait(10)
            fake.close()
            assert fake.first is not None and fake.first.WhichOneof("kind") == "rejected"
            assert "certificate" in fake.first.rejected.reason
        # A client's certificate has not the role to register at all.
        with _channel(certs, "client", cluster.address) as channel:
            fake = _FakeTaskManager(channel, real)
            assert fake.answered.wait(10)
            fake.close()
            assert fake.first is None and fake.error == grpc.StatusCode.PERMISSION_DENIED

        # Registering as itself (at a server of its own that proves the registration) gives
        # the intruder a token, good for its own tasks only.
        own = ProvingServer("1" * 32, tls=tls_of(certs, "intruder"))
        with _channel(certs, "intruder", cluster.address) as channel:
            fake = _FakeTaskManager(channel, "intruder-tm", own.address, own.nonce)
            assert fake.answered.wait(10)
            assert fake.first.WhichOneof("kind") == "accepted", fake.first
            token = fake.first.accepted.report_token
            stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
            codes = _forge_all(stub, job_id, details, ((REPORT_TOKEN_METADATA, token),))
            fake.close()
        own.close()
        assert codes and set(codes) == {grpc.StatusCode.PERMISSION_DENIED}

        with ClusterClient(cluster.address) as client:
            assert client.job(job_id).summary.state == "RUNNING"
            assert client.job(job_id).attempt == details.attempt
            poll_for(
                lambda: [tm.id for tm in client.taskmanagers()] == [real],
                timeout=10,
                what="only the real TaskManager to remain",
            )
            before = _completed_checkpoints(cluster, job_id)
            poll_for(
                lambda: _completed_checkpoints(cluster, job_id) > before,
                timeout=30,
                what="a checkpoint acknowledged over TLS",
            )
            client.cancel(job_id)
    except BaseException:
        print(cluster.logs(), file=sys.stderr)
        raise
    finally:
        cluster.stop()


def test_only_the_jobmanager_commands_a_taskmanager_and_only_it_its_slot_processes(
    cluster, tmp_path
):
    # A job graph is a pickle: a DeployTasks from anyone who reaches a TaskManager's (or a slot
    # process's) port ran its code. Every command needs the session's token now; a crafted
    # pickle is refused before it is read, and the running job is not disturbed.
    import os
    import pickle
    import re

    marker = tmp_path / "pwned"

    class Crafted:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    job_id, details = _start_job(cluster)
    taskmanager = http_json(f"{cluster.rest_url}/taskmanagers")["taskmanagers"][0]["address"]
    slot_process = re.search(rf"job {job_id} attempt \d+ slot \d+ serves (\S+)", cluster.logs())
    assert slot_process, "no slot process address in the TaskManager's log"
    tasks = [pb.TaskSpec(vertex_id=v.id, subtask=0) for v in details.vertices]
    commands = [
        ("PrepareSlots", pb.PrepareSlotsRequest(job_id="x" * 32, slots=[pb.SlotAssignment()])),
        ("DeployTasks", pb.DeployTasksRequest(job_id=job_id, job_graph=pickle.dumps(Crafted()))),
        ("DeployTasks", pb.DeployTasksRequest(job_id=job_id, tasks=tasks, job_graph=b"\x80")),
        ("CancelTasks", pb.CancelTasksRequest(job_id=job_id, attempt=-1)),
        ("TriggerCheckpoint", pb.CheckpointTrigger(job_id=job_id, checkpoint_id=99)),
        ("NotifyCheckpointComplete", pb.CheckpointNotice(job_id=job_id, checkpoint_id=99)),
    ]
    codes = []
    for address in (taskmanager, slot_process.group(1)):
        with grpc.insecure_channel(address) as channel:
            stub = cluster_pb2_grpc.TaskExecutorGatewayStub(channel)
            assert stub.Ping(pb.Empty(), timeout=5).ok  # says nothing, runs nothing: open
            for method, request in commands:
                for metadata in ((), (("strom-command-token", "0" * 32),)):
                    try:
                        getattr(stub, method)(request, timeout=5, metadata=metadata)
                        codes.append((address, method, grpc.StatusCode.OK))
                    except grpc.RpcError as error:
                        codes.append((address, method, error.code()))
    assert {code for _, _, code in codes} == {grpc.StatusCode.PERMISSION_DENIED}, codes
    assert not marker.exists()
    _goes_on_then_cancel(cluster, job_id, details.attempt)
    assert "refused a command: DeployTasks needs the token" in cluster.logs()
