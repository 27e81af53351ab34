"""With internal TLS a certificate's roles say what its holder may do (strom/rpc/roles.py).

On a real cluster over mutual TLS, certificates of the cluster CA that lack the role are
refused PERMISSION_DENIED before the method runs: a client's cannot register as a TaskManager
or report a task state; a TaskManager host's cannot command another TaskManager (a crafted
DeployTasks is not unpickled) nor submit or cancel jobs; one made before roles existed is
refused with a message naming ``bin/strom certs``, and a TaskManager given one stops at start
saying so. The cluster stays as it was and runs a job afterwards.
"""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import REPO_ROOT, LocalCluster, python_env
from test_internal_tls import WORDS, final_word_counts, tls_config
from test_task_identity import _channel

from client.certs import make_cluster_certificates, make_node_certificate
from client.gateway import ClusterClient
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc


class _CreatesFolder:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def make_roleless_certificate(folder: Path, name: str) -> None:
    """A certificate of the cluster CA as ``strom certs`` made them before roles."""
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("strom-internal")]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def certs(tmp_path) -> Path:
    folder = tmp_path / "certs"
    make_cluster_certificates(folder, ["127.0.0.1"], ["127.0.0.1"])
    make_node_certificate(folder, "worker", ["taskmanager"])
    make_roleless_certificate(folder, "old")
    return folder


@pytest.fixture
def tls_cluster(tmp_path, certs, monkeypatch):
    cluster = LocalCluster(tmp_path / "cluster", slots=1, **tls_config(certs, "127.0.0.1"))
    monkeypatch.setenv("STROM_CONF_DIR", str(cluster.conf_dir))
    try:
        cluster.start(taskmanagers=2)
        yield cluster  # a failing test's report shows the logs' ends (conftest.py)
    finally:
        cluster.stop()


def _code(call, request) -> grpc.StatusCode:
    try:
        call(request, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _register(channel: grpc.Channel) -> tuple[grpc.StatusCode, str]:
    registration = pb.TaskManagerMessage(
        register=pb.RegisterTaskManager(
            resource_id="rogue", address="127.0.0.1:1", num_slots=1000, nonce="1" * 32
        )
    )
    stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
    try:
        for _ in stub.TaskManagerSession(iter([registration]), timeout=10):
            pass
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def test_a_certificate_may_do_only_what_its_role_allows(tls_cluster, certs, tmp_path):
    marker = tmp_path / "pwned"
    with ClusterClient(tls_cluster.address) as client:
        before = {tm.id for tm in client.taskmanagers()}
        taskmanager = client.taskmanagers()[0].address
    state = pb.TaskExecutionState(job_id="a" * 32, vertex_id="v", state="FAILED")
    deploy = pb.DeployTasksRequest(job_id="a" * 32, job_graph=pickle.dumps(_CreatesFolder(marker)))

    # A client's certificate: may look and submit, may not register nor report.
    with _channel(certs, "client", tls_cluster.address) as channel:
        stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
        assert _code(stub.ListJobs, pb.Empty()) == grpc.StatusCode.OK
        assert _register(channel)[0] == grpc.StatusCode.PERMISSION_DENIED
        assert _code(stub.UpdateTaskExecutionState, state) == grpc.StatusCode.PERMISSION_DENIED
        # a client may cancel (this job does not exist): NOT_FOUND, not refused
        assert _code(stub.CancelJob, pb.JobId(job_id="a" * 32)) == grpc.StatusCode.NOT_FOUND

    # A TaskManager host's certificate: may not command a TaskManager, nor submit or cancel.
    with _channel(certs, "worker", taskmanager) as channel:
        stub = cluster_pb2_grpc.TaskExecutorGatewayStub(channel)
        assert _code(stub.Ping, pb.Empty()) == grpc.StatusCode.OK
        for call, request in (
            (stub.DeployTasks, deploy),
            (stub.CancelTasks, pb.CancelTasksRequest(job_id="a" * 32)),
            (stub.ConfirmRegistration, pb.RegistrationChallenge(resource_id="x")),
        ):
            assert _code(call, request) == grpc.StatusCode.PERMISSION_DENIED, call
    with _channel(certs, "worker", tls_cluster.address) as channel:
        stub = cluster_pb2_grpc.JobManagerGatewayStub(channel)
        for call, request in (
            (stub.SubmitJob, pb.SubmitJobRequest(job_id="b" * 32)),
            (stub.CancelJob, pb.JobId(job_id="a" * 32)),
        ):
            assert _code(call, request) == grpc.StatusCode.PERMISSION_DENIED, call

    # A certificate made before roles: refused everywhere, with what to do about it.
    with _channel(certs, "old", tls_cluster.address) as channel:
        code, details = _register(channel)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "bin/strom certs" in details

    assert not marker.exists()
    with ClusterClient(tls_cluster.address) as client:
        assert {tm.id for tm in client.taskmanagers()} == before
    assert "needs a certificate with the role taskmanager" in tls_cluster.logs()

    final = final_word_counts(tls_cluster.address, "word count with roles")
    assert final == dict(Counter(WORDS))


def test_a_daemon_with_a_certificate_without_its_role_says_so_at_start(tmp_path, certs):
    for name, what in (("old", "bin/strom certs"), ("client", "not taskmanager")):
        conf = tmp_path / f"conf-{name}"
        conf.mkdir()
        config = {"jobmanager.rpc.address": "127.0.0.1", **tls_config(certs, name)}
        (conf / "strom-conf.yaml").write_text(yaml.safe_dump(config))
        result = subprocess.run(
            [sys.executable, "-m", "taskmanager", "--conf-dir", str(conf)],
            capture_output=True,
            text=True,
            env=python_env(STROM_CONF_DIR=str(conf)),
            cwd=str(REPO_ROOT),
            timeout=60,
        )
        assert result.returncode != 0
        assert what in result.stdout + result.stderr, result.stdout + result.stderr
