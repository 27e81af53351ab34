"""Mutual TLS on every internal gRPC connection (security.ssl.internal.*, DESIGN.md §10).

A real cluster runs with certificates made by ``strom certs``: a job crosses two TaskManagers
(their slot processes exchange records over TLS) and collects its results to the client over
TLS. Peers without a certificate of the cluster CA (plaintext, or one of another CA) are
refused at the handshake by the JobManager, the TaskManagers, the slot processes and the
client's collect receiver, and leave no trace in the cluster's state.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import pytest
import yaml
from harness import REPO_ROOT, LocalCluster, poll_for, python_env
from jobs_support import remote

from client.certs import make_cluster_certificates, make_node_certificate
from client.gateway import ClusterClient
from strom.configuration import load_configuration
from strom.datastream import StreamExecutionEnvironment
from strom.errors import ClusterUnreachableError
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc
from strom.rpc.roles import certificate_roles
from strom.rpc.tls import INTERNAL_SERVER_NAME, InternalTls, internal_tls

WORDS = ["to", "be", "or", "not", "to", "be", "that", "is", "the", "question"] * 30


def split_words(line):
    return [(word, 1) for word in line.split()]


def word_of(pair):
    return pair[0]


def add_counts(a, b):
    return (a[0], a[1] + b[1])


def final_word_counts(address: str, name: str) -> dict[str, int]:
    """Run a word count of ``WORDS`` at parallelism 2 on the cluster at ``address``; the
    final count of each word."""
    with remote(address):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        counts = (
            env.from_collection(WORDS)
            .flat_map(split_words)
            .key_by(word_of)
            .reduce(add_counts)
            .execute_and_collect(name)
        )
        with counts:
            final: dict[str, int] = {}
            for word, count in counts:
                final[word] = max(final.get(word, 0), count)
    return final


def tls_of(folder: Path, name: str) -> InternalTls:
    return InternalTls(
        (folder / f"{name}.pem").read_bytes(),
        (folder / f"{name}.key").read_bytes(),
        (folder / "ca.pem").read_bytes(),
    )


def tls_config(folder: Path, name: str) -> dict:
    return {
        "security.ssl.internal.enabled": True,
        "security.ssl.internal.cert": str(folder / f"{name}.pem"),
        "security.ssl.internal.key": str(folder / f"{name}.key"),
        "security.ssl.internal.trust-cert": str(folder / "ca.pem"),
    }


@pytest.fixture
def certs(tmp_path) -> Path:
    folder = tmp_path / "certs"
    make_cluster_certificates(folder, ["127.0.0.1"], ["127.0.0.1"])
    return folder


@pytest.fixture
def tls_cluster(tmp_path, certs, monkeypatch):
    cluster = LocalCluster(tmp_path / "cluster", slots=1, **tls_config(certs, "127.0.0.1"))
    # This test process is the cluster's client: it reads the same configuration.
    monkeypatch.setenv("STROM_CONF_DIR", str(cluster.conf_dir))
    try:
        cluster.start(taskmanagers=2)
        yield cluster
    except BaseException:
        print(cluster.logs(), file=sys.stderr)
        raise
    finally:
        cluster.stop()


def _refused(address: str, channel: grpc.Channel) -> grpc.StatusCode:
    """The status of a Ping (TaskManager) or overview (JobManager) call on ``channel``."""
    with channel:
        try:
            cluster_pb2_grpc.JobManagerGatewayStub(channel).GetClusterOverview(
                pb.Empty(), timeout=3
            )
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_a_job_runs_across_taskmanagers_over_mutual_tls(tls_cluster, certs):
    assert final_word_counts(tls_cluster.address, "word count over TLS") == dict(Counter(WORDS))
    with ClusterClient(tls_cluster.address) as client:
        taskmanagers = client.taskmanagers()
    assert len(taskmanagers) == 2
    # The JobManager asks TaskManagers for their logs and metrics over TLS too.
    for tm in taskmanagers:
        for what in ("metrics", "log"):
            url = f"{tls_cluster.rest_url}/taskmanagers/{tm.id}/{what}"
            with urllib.request.urlopen(url, timeout=10) as answer:  # 503 if unreachable
                assert answer.status == 200, (what, answer.status)
    log = tls_cluster.logs()
    assert "Internal TLS is off" not in log


def test_peers_without_a_certificate_of_the_cluster_ca_are_refused(tls_cluster, tmp_path):
    stranger = tmp_path / "stranger"
    make_cluster_certificates(stranger, ["127.0.0.1"], ["127.0.0.1"])  # a CA of its own
    with ClusterClient(tls_cluster.address) as client:
        taskmanager = client.taskmanagers()[0].address
    for address in (tls_cluster.address, taskmanager):
        plain = _refused(address, grpc.insecure_channel(address))
        assert plain == grpc.StatusCode.UNAVAILABLE, (address, plain)
        foreign = tls_of(stranger, "127.0.0.1")
        code = _refused(
            address,
            grpc.secure_channel(
                address,
                foreign.channel_credentials(),
                options=[("grpc.ssl_target_name_override", INTERNAL_SERVER_NAME)],
            ),
        )
        assert code == grpc.StatusCode.UNAVAILABLE, (address, code)
        # A client that presents no certificate but trusts the cluster's CA: refused too.
        ca = (tls_cluster.conf_dir.parent.parent / "certs" / "ca.pem").read_bytes()
        code = _refused(
            address,
            grpc.secure_channel(
                address,
                grpc.ssl_channel_credentials(root_certificates=ca),
                options=[("grpc.ssl_target_name_override", INTERNAL_SERVER_NAME)],
            ),
        )
        assert code == grpc.StatusCode.UNAVAILABLE, (address, code)

    # A TaskManager with a stranger's certificate cannot register.
    intruder_conf = tmp_path / "intruder-conf"
    intruder_conf.mkdir()
    config = dict(tls_cluster.config)
    config.update(tls_config(stranger, "127.0.0.1"))
    (intruder_conf / "strom-conf.yaml").write_text(yaml.safe_dump(config))
    intruder = subprocess.Popen(
        [sys.executable, "-m", "taskmanager", "--conf-dir", str(intruder_conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=python_env(STROM_CONF_DIR=str(intruder_conf)),
        cwd=str(REPO_ROOT),
    )
    try:
        with ClusterClient(tls_cluster.address) as client:
            # It keeps trying to register, and is refused every time.
            poll_for(
                lambda: intruder.poll() is None and len(client.taskmanagers()) == 2,
                timeout=3,
                what="the cluster to be unchanged",
            )
            assert len(client.taskmanagers()) == 2
    finally:
        intruder.kill()
        intruder.wait(10)

    # A client without the CA's certificate learns why it cannot connect.
    with ClusterClient(tls_cluster.address, tls=None) as plain_client:
        with pytest.raises(ClusterUnreachableError):
            plain_client.overview()
    assert tls_cluster.jobmanager.poll() is None
    assert tls_cluster.overview()["taskmanagers"] == 2


def test_strom_certs_makes_a_ca_and_certificates_and_prints_the_config(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "masters").write_text("host1:8081\n")
    (conf / "slaves").write_text("host2\nhost3\nhost3\n")
    folder = tmp_path / "certs"
    result = subprocess.run(
        [sys.executable, "-m", "client.cli", "certs", str(folder)],
        capture_output=True,
        text=True,
        env=python_env(STROM_CONF_DIR=str(conf)),
        cwd=str(REPO_ROOT),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in ("host1", "host2", "host3", "client", socket.gethostname()):
        assert (folder / f"{name}.pem").exists()
        assert (folder / f"{name}.key").stat().st_mode & 0o077 == 0
    # Each certificate has the roles of its host: masters JobManagers, slaves TaskManagers.
    roles = {n: certificate_roles((folder / f"{n}.pem").read_bytes()) for n in ("host1", "host2")}
    assert roles == {"host1": {"jobmanager"}, "host2": {"taskmanager"}}
    assert certificate_roles((folder / "client.pem").read_bytes()) == {"client"}
    assert "client" in certificate_roles((folder / f"{socket.gethostname()}.pem").read_bytes())
    # One configuration for every host: {host} is each one's name.
    lines = result.stdout.splitlines()
    shared = lines[lines.index(next(x for x in lines if "of every host" in x)) + 1 :][:4]
    assert shared == [
        "security.ssl.internal.enabled: true",
        f"security.ssl.internal.cert: {folder.resolve()}/{{host}}.pem",
        f"security.ssl.internal.key: {folder.resolve()}/{{host}}.key",
        f"security.ssl.internal.trust-cert: {folder.resolve()}/ca.pem",
    ]
    config = load_configuration(overrides=yaml.safe_load("\n".join(shared)))
    assert internal_tls(config).certificate == (folder / f"{socket.gethostname()}.pem").read_bytes()
    assert f"security.ssl.internal.cert: {(folder / 'client.pem').resolve()}" in result.stdout
    # A second run keeps the CA: certificates made before stay valid.
    ca = (folder / "ca.pem").read_bytes()
    make_node_certificate(folder, "host4", ["taskmanager"])
    assert (folder / "ca.pem").read_bytes() == ca
