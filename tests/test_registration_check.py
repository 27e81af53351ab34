"""A TaskManager's registration counts only once the JobManager reached it at its address.

A hostile client that reaches the JobManager registers "TaskManagers" with 1,000 slots each:
at a dead address, at a real TaskManager's address under another name, and in a real
TaskManager's own name (to take its place). The JobManager calls each address back and finds
no process that made the registration: every one is refused, no slot is offered, the real
TaskManagers keep their sessions and a real job runs on them. A hostile TaskManager that does
run a server of its own is accepted, but the command token it gets is good for itself only.
"""

from __future__ import annotations

from collections import Counter

import grpc
import pytest
from harness import LocalCluster, free_port, poll_for
from test_internal_tls import WORDS, final_word_counts
from test_task_identity import ProvingServer, _FakeTaskManager

from client.gateway import ClusterClient
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc


@pytest.fixture
def cluster(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", slots=1)
    try:
        cluster.start(taskmanagers=2)
        yield cluster  # a failing test's report shows the logs' ends (conftest.py)
    finally:
        cluster.stop()


def _register(cluster: LocalCluster, resource_id: str, address: str, nonce: str = "9" * 32):
    with grpc.insecure_channel(cluster.address) as channel:
        fake = _FakeTaskManager(channel, resource_id, address, nonce)
        assert fake.answered.wait(20), "the JobManager did not answer the registration"
        fake.close()
    assert fake.first is not None
    return fake.first


def _word_count(cluster: LocalCluster) -> dict[str, int]:
    return final_word_counts(cluster.address, "word count after hostile registrations")


def test_registrations_of_dead_or_foreign_addresses_are_refused(cluster):
    with ClusterClient(cluster.address) as client:
        real = {tm.id: tm.address for tm in client.taskmanagers()}
    victim_id, victim_address = next(iter(real.items()))
    attempts = {
        "dead address": ("hostile-dead", f"127.0.0.1:{free_port()}"),
        "foreign address": ("hostile-foreign", victim_address),
        "a real TaskManager's name": (victim_id, victim_address),
        "not host:port": ("hostile-target", "unix:/tmp/nothing"),
    }
    for what, (resource_id, address) in attempts.items():
        answer = _register(cluster, resource_id, address)
        assert answer.WhichOneof("kind") == "rejected", (what, answer)
        assert address in answer.rejected.reason or "host:port" in answer.rejected.reason

    overview = cluster.overview()
    assert overview["taskmanagers"] == 2 and overview["slots-total"] == 2, overview
    with ClusterClient(cluster.address) as client:
        assert {tm.id: tm.address for tm in client.taskmanagers()} == real
    log = cluster.logs()
    assert "registered anew" not in log  # the victim's session was never replaced
    assert "refused the registration of TaskManager hostile-dead" in log
    assert _word_count(cluster) == dict(Counter(WORDS))


def test_a_registered_taskmanager_cannot_command_another(cluster):
    with ClusterClient(cluster.address) as client:
        victim = client.taskmanagers()[0].address
    own = ProvingServer("5" * 32)
    try:
        with grpc.insecure_channel(cluster.address) as channel:
            fake = _FakeTaskManager(channel, "hostile-with-a-server", own.address, own.nonce)
            assert fake.answered.wait(20)
            assert fake.first.WhichOneof("kind") == "accepted", fake.first
            token = fake.first.accepted.command_token
            with grpc.insecure_channel(victim) as to_victim:
                stub = cluster_pb2_grpc.TaskExecutorGatewayStub(to_victim)
                with pytest.raises(grpc.RpcError) as refused:
                    stub.TriggerCheckpoint(
                        pb.CheckpointTrigger(job_id="x" * 32, checkpoint_id=1),
                        timeout=5,
                        metadata=(("strom-command-token", token),),
                    )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            fake.close()
    finally:
        own.close()
    with ClusterClient(cluster.address) as client:
        poll_for(
            lambda: len(client.taskmanagers()) == 2,
            timeout=20,
            what="the hostile TaskManager's session to end",
        )
    assert _word_count(cluster) == dict(Counter(WORDS))
