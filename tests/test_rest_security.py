"""The REST port as an attacker and a browser see it: token, CORS, bodies, limits, TLS.

One real cluster with ``security.rest.token`` set runs a job; requests that would change it
without the token, from a foreign web page, with a non-JSON or oversized body are refused and
leave it running. Slow and idle connections are closed on time, connections over the limit at
once, and the REST server goes on answering.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import REPO_ROOT, LocalCluster, http_json, poll_for, python_env
from jobs_support import remote
from rest_support import running_job

from client.gateway import ClusterClient
from strom.datastream import StreamExecutionEnvironment
from strom.errors import StromError

TOKEN = "s3cret-token-for-tests"
FRIEND = "https://ops.example.com"
FOE = "https://evil.example.net"


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rest-security")
    cluster = LocalCluster(
        tmp,
        slots=2,
        **{
            "security.rest.token": TOKEN,
            "web.access-control-allow-origin": FRIEND,
            "rest.server.max-content-length": 4096,
            "rest.server.header-timeout": "1 s",
            "rest.server.idle-timeout": "2 s",
            "rest.server.max-connections": 40,
            "state.savepoints.dir": str(tmp / "savepoints"),
        },
    )
    try:
        cluster.start(taskmanagers=1)
        yield cluster  # a failing test's report shows the logs' ends (conftest.py)
    finally:
        cluster.stop()


@contextlib.contextmanager
def configured_by(cluster: LocalCluster) -> Iterator[None]:
    """Clients in this process read the cluster's configuration (and so its token)."""
    before = os.environ.get("STROM_CONF_DIR")
    os.environ["STROM_CONF_DIR"] = str(cluster.conf_dir)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("STROM_CONF_DIR")
        else:
            os.environ["STROM_CONF_DIR"] = before


@pytest.fixture(scope="module")
def job(cluster) -> str:
    with configured_by(cluster), remote(cluster.address):
        env = StreamExecutionEnvironment.get_execution_environment()
        running_job(env)
        job_id = env.execute_async("rest security job").get_job_id()
    poll_for(lambda: state(cluster, job_id) == "RUNNING", what="the job to run")
    return job_id


def state(cluster: LocalCluster, job_id: str) -> str:
    return http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"]


def test_changes_need_the_token_and_reads_do_not(cluster, job):
    base = f"{cluster.rest_url}/jobs/{job}"
    assert call(base).status == 200
    for method, path, body in [
        ("PATCH", "", None),
        ("POST", "/stop", b"{}"),
        ("POST", "/savepoints", b"{}"),
    ]:
        headers = {"Content-Type": "application/json"}
        refused = call(base + path, method, body, headers)
        assert refused.status == 401, (method, path, refused.body)
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in " ".join(refused.json["errors"])
        wrong = call(base + path, method, body, {**headers, **bearer("not-the-token")})
        assert wrong.status == 401
    assert state(cluster, job) == "RUNNING"
    assert http_json(f"{base}/checkpoints")["counts"]["total"] == 0, "no savepoint was taken"

    def trigger() -> Reply | None:  # accepted once every task runs
        reply = call(
            base + "/savepoints", "POST", b"{}", {"Content-Type": "application/json", **bearer()}
        )
        assert reply.status in (202, 400), reply.body
        return reply if reply.status == 202 else None

    savepoint = poll_for(trigger, what="the savepoint to be accepted with the token")
    assert savepoint.json["request-id"]


def test_no_wildcard_cors_and_no_changes_from_foreign_pages(cluster, job):
    overview = call(f"{cluster.rest_url}/overview", headers={"Origin": FOE})
    assert overview.status == 200
    assert "Access-Control-Allow-Origin" not in overview.headers
    assert overview.headers["X-Frame-Options"] == "DENY"
    friendly = call(f"{cluster.rest_url}/overview", headers={"Origin": FRIEND})
    assert friendly.headers["Access-Control-Allow-Origin"] == FRIEND

    preflight = call(
        f"{cluster.rest_url}/jobs/{job}",
        "OPTIONS",
        headers={"Origin": FOE, "Access-Control-Request-Method": "PATCH"},
    )
    assert preflight.status == 403 and "Access-Control-Allow-Origin" not in preflight.headers
    preflight = call(
        f"{cluster.rest_url}/jobs/{job}",
        "OPTIONS",
        headers={"Origin": FRIEND, "Access-Control-Request-Method": "PATCH"},
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == FRIEND
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]

    # A form or no-cors fetch from another site sends no preflight; it is refused anyway.
    forged = call(f"{cluster.rest_url}/jobs/{job}/stop", "POST", None, {"Origin": FOE, **bearer()})
    assert forged.status == 403, forged.body
    assert state(cluster, job) == "RUNNING"


def test_json_bodies_only_and_a_size_limit(cluster, job):
    url = f"{cluster.rest_url}/jobs/{job}/savepoints"
    plain = call(url, "POST", b'{"cancel-job": true}', {"Content-Type": "text/plain", **bearer()})
    assert plain.status == 415, plain.body
    big = json.dumps({"target-directory": "x" * 10_000}).encode()
    too_big = call(url, "POST", big, {"Content-Type": "application/json", **bearer()})
    assert too_big.status == 413, too_big.body

    # A Content-Length far beyond memory is refused before anything is read.
    with socket.create_connection(("127.0.0.1", cluster.rest_port), timeout=10) as sock:
        sock.sendall(
            f"POST /jobs/{job}/savepoints HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
            "\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")
    # A body that never arrives in full is given up after the header timeout (1 s).
    with socket.create_connection(("127.0.0.1", cluster.rest_port), timeout=10) as sock:
        sock.sendall(
            f"POST /jobs/{job}/savepoints HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
            "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 408")
    assert state(cluster, job) == "RUNNING"
    assert cluster.jobmanager.poll() is None


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_slow_idle_and_surplus_connections_are_closed(cluster, job):
    started = time.monotonic()
    slow = socket.create_connection(("127.0.0.1", cluster.rest_port), timeout=0.2)
    slow.sendall(b"GET /overview HTTP/1.1\r\nHost: x\r\n")  # and the rest never comes
    idle = socket.create_connection(("127.0.0.1", cluster.rest_port), timeout=0.2)
    idle.sendall(b"GET /overview HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    poll_for(lambda: closed_by_server(slow), timeout=10, what="the slow connection to close")
    assert time.monotonic() - started < 5, "closed by the header timeout (1 s), not later"
    poll_for(lambda: closed_by_server(idle), timeout=10, what="the idle connection to close")
    slow.close()
    idle.close()

    # Connections over rest.server.max-connections (40) are closed at once; the server recovers.
    held = [socket.create_connection(("127.0.0.1", cluster.rest_port)) for _ in range(60)]
    try:
        for sock in held:
            sock.settimeout(0.5)
        surplus = [sock for sock in held[40:] if closed_by_server(sock)]
        assert len(surplus) >= 15, f"only {len(surplus)} of 20 surplus connections were closed"
    finally:
        for sock in held:
            sock.close()
    poll_for(lambda: cluster.overview()["taskmanagers"] == 1, what="REST to answer again")
    assert state(cluster, job) == "RUNNING"


def test_the_grpc_port_wants_the_token_too_and_the_cli_sends_it_from_its_config(cluster, job):
    """Else the REST token is bypassed by cancelling through the JobManager's gRPC port."""
    with ClusterClient(cluster.address, token="") as anonymous:
        assert [j.job_id for j in anonymous.jobs()] == [job]  # reading needs no token
        for attempt in (
            lambda: anonymous.cancel(job),
            lambda: anonymous.trigger_savepoint(job, None),
        ):
            with pytest.raises(StromError, match="access token"):
                attempt()
    with ClusterClient(cluster.address, token="wrong") as wrong:
        with pytest.raises(StromError, match="access token"):
            wrong.cancel(job)
    assert state(cluster, job) == "RUNNING"

    cancel = subprocess.run(
        [sys.executable, "-m", "client.cli", "cancel", job],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
    )
    assert cancel.returncode == 0, cancel.stderr
    poll_for(lambda: state(cluster, job) == "CANCELED", what="the CLI's cancel to take effect")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key in one PEM file; and the cert."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    key, cert = folder / "rest.key", folder / "rest.crt"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    keystore = folder / "rest.pem"
    keystore.write_text(cert.read_text() + key.read_text())
    return keystore, cert


class TlsCluster(LocalCluster):
    """A cluster whose REST API answers over HTTPS only."""

    def __init__(self, tmp_path: Path, trust: Path, **config: Any) -> None:
        super().__init__(tmp_path, **config)
        self.context = ssl.create_default_context(cafile=str(trust))

    @property
    def rest_url(self) -> str:
        return f"https://127.0.0.1:{self.rest_port}"

    def overview(self) -> dict[str, Any]:
        return json.loads(call(self.rest_url + "/overview", context=self.context).body)

    def start_jobmanager(self):
        self.jobmanager = self._spawn("jobmanager", "jobmanager")
        poll_for(self.overview, what="the JobManager's HTTPS REST")
        return self.jobmanager


def test_rest_over_tls(tmp_path):
    keystore, cert = make_certificate(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    cluster = TlsCluster(
        tmp_path / "cluster",
        trust=cert,
        **{
            "security.ssl.rest.enabled": True,
            "security.ssl.rest.keystore": str(keystore),
            "security.rest.token-file": str(token_file),
        },
    )
    try:
        cluster.start(taskmanagers=0)
        assert cluster.overview()["taskmanagers"] == 0
        missing = f"{cluster.rest_url}/jobs/{'0' * 32}"
        unauthorized = call(missing, "PATCH", context=cluster.context)
        assert unauthorized.status == 401
        assert call(missing, "PATCH", headers=bearer(), context=cluster.context).status == 404
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            call(f"http://127.0.0.1:{cluster.rest_port}/overview")
        with pytest.raises(urllib.error.URLError):  # a client that does not trust the cert
            call(cluster.rest_url + "/overview", context=ssl.create_default_context())
    except BaseException:
        print(cluster.logs(), file=sys.stderr)
        raise
    finally:
        cluster.stop()


def test_rest_security_settings_are_checked_with_messages_naming_the_key(tmp_path):
    from jobmanager.rest_transport import RestPolicy
    from strom.configuration import StromConfig
    from strom.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="web.access-control-allow-origin"):
        StromConfig({"web.access-control-allow-origin": "*"})
    with pytest.raises(ConfigurationError, match="security.ssl.rest.keystore"):
        RestPolicy.from_config(StromConfig({"security.ssl.rest.enabled": True}))
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="is empty"):
        RestPolicy.from_config(StromConfig({"security.rest.token-file": str(empty)}))
    with pytest.raises(ConfigurationError, match="not both"):
        RestPolicy.from_config(
            StromConfig({"security.rest.token": "a", "security.rest.token-file": str(empty)})
        )
    policy = RestPolicy.from_config(
        StromConfig({"web.access-control-allow-origin": f"{FRIEND}, http://localhost:3000"})
    )
    assert policy.allowed_origins == {FRIEND, "http://localhost:3000"} and policy.token is None
