"""CommandGuard on a real gRPC server: a command that overtakes the registration acceptance
carrying its token is let through once the token is known; other tokens are refused."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest

from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc
from strom.rpc.command_token import METADATA_KEY, CommandGuard


class _Gateway(cluster_pb2_grpc.TaskExecutorGatewayServicer):
    def CancelTasks(self, request, context):
        return pb.Ack(ok=True)


class _Session:
    """A TaskManager's side of registration, reduced to what the guard reads."""

    def __init__(self) -> None:
        self.token = ""
        self.registered = threading.Event()

    def accept(self, token: str) -> None:
        self.token = token
        self.registered.set()

    def settle(self, timeout: float) -> None:
        if not self.registered.is_set():
            self.registered.wait(timeout)


@pytest.fixture
def serve():
    servers = []

    def start(guard: CommandGuard) -> cluster_pb2_grpc.TaskExecutorGatewayStub:
        server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[guard])
        cluster_pb2_grpc.add_TaskExecutorGatewayServicer_to_server(_Gateway(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        return cluster_pb2_grpc.TaskExecutorGatewayStub(channel)

    yield start
    for server in servers:
        server.stop(None)


def _cancel(stub, token: str) -> pb.Ack:
    return stub.CancelTasks(
        pb.CancelTasksRequest(job_id="j"), metadata=[(METADATA_KEY, token)], timeout=10
    )


def test_a_command_that_overtakes_the_acceptance_waits_for_its_token(serve):
    session = _Session()
    stub = serve(CommandGuard(lambda: session.token, "its JobManager", settle=session.settle))
    # The acceptance is read a moment after the JobManager's first command left.
    threading.Timer(0.3, session.accept, args=("the-token",)).start()
    assert _cancel(stub, "the-token").ok


def test_without_the_wait_that_command_is_refused(serve):
    session = _Session()
    stub = serve(CommandGuard(lambda: session.token, "its JobManager"))
    threading.Timer(0.3, session.accept, args=("the-token",)).start()
    with pytest.raises(grpc.RpcError) as refused:
        _cancel(stub, "the-token")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_wrong_token_is_refused_at_once_while_registered(serve):
    session = _Session()
    session.accept("the-token")
    stub = serve(CommandGuard(lambda: session.token, "its JobManager", settle=session.settle))
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        _cancel(stub, "another-token")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert time.monotonic() - started < 2.0  # no wait: the session's token is known


def test_a_wrong_token_is_refused_after_the_bounded_wait_when_unregistered(serve):
    session = _Session()
    guard = CommandGuard(
        lambda: session.token, "its JobManager", settle=session.settle, settle_timeout_s=0.2
    )
    stub = serve(guard)
    with pytest.raises(grpc.RpcError) as refused:
        _cancel(stub, "any-token")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
