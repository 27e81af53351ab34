"""Fuzzing, bounded in time: malformed gRPC and HTTP never crash or hang a process (issue 15).

Hypothesis sends every method of the JobManager's and a TaskManager's gRPC services random
bytes and random protobuf messages built from their descriptors (with the ids of a real job
mixed in, so that handlers get past their lookups), and sends the REST API random methods,
paths, headers and bodies, and raw garbage. No call may end UNKNOWN (an exception a handler did
not expect, gRPC's 500) or take longer than its deadline, no HTTP answer may be a 5xx, and the
cluster runs a job to its end afterwards. Each test stops generating after ``BUDGET_S``.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from harness import REPO_ROOT, LocalCluster, poll_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jobs_support import remote
from rest_support import bounded_job, first, parity

from client.gateway import ClusterClient
from strom.datastream import StreamExecutionEnvironment
from strom.datastream.connectors.number_seq import NumberSequenceSource
from strom.rpc import cluster_pb2, data_pb2, observability_pb2

#: how long each test generates inputs; the rest of its time is setup and the final checks
BUDGET_S = 15.0
TOKEN = "fuzz-token-0123456789"
FUZZ = settings(
    max_examples=1500,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
    # Generation only: shrinking a failure would replay it past the time budget.
    phases=[Phase.generate],
)
#: calls that may wait by design: a session stream, a job's end, a data connection
_MAY_WAIT = {"TaskManagerSession", "AwaitJob", "Exchange", "Connect", "Locate"}


def discard(value):
    pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = LocalCluster(
        tmp_path_factory.mktemp("fuzz"), slots=4, **{"security.rest.token": TOKEN}
    )
    try:
        with pytest.MonkeyPatch.context() as patch:
            # This test process submits with the cluster's configuration (and so its token).
            patch.setenv("STROM_CONF_DIR", str(cluster.conf_dir))
            cluster.start(taskmanagers=1)
            yield cluster
    except BaseException:
        print(cluster.log_tails(), file=sys.stderr)
        raise
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def job(cluster):
    """A running job: its ids seed the generated messages."""
    with remote(cluster.address):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        numbers = env.from_source(NumberSequenceSource(0, 10**12), None, "Numbers")
        numbers.map(parity).key_by(first).add_sink(discard)
        job_id = env.execute_async("fuzz target").get_job_id()
    with ClusterClient(cluster.address, token=TOKEN) as client:
        poll_for(lambda: client.job(job_id).summary.state == "RUNNING", what="the job to run")
        details = client.job(job_id)
    return {"job_id": job_id, "vertices": [v.id for v in details.vertices]}


# ---------------------------------------------------------------- messages


def _scalar(field: d.FieldDescriptor, seeds: dict) -> st.SearchStrategy:
    t = field.type
    if t == field.TYPE_STRING:
        known = []
        if field.name == "job_id":
            known = [seeds["job_id"], "0" * 32, ""]
        elif field.name == "vertex_id":
            known = seeds["vertices"]
        return (
            st.one_of(st.sampled_from(known), st.text(max_size=40))
            if known
            else (st.text(max_size=40))
        )
    if t == field.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == field.TYPE_BOOL:
        return st.booleans()
    if t in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        return st.floats(allow_nan=True, width=32 if t == field.TYPE_FLOAT else 64)
    if t == field.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    if t in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32):
        return st.one_of(st.integers(-3, 3), st.integers(-(2**31), 2**31 - 1))
    if t in (field.TYPE_UINT32, field.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (field.TYPE_UINT64, field.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return st.one_of(st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1))


@st.composite
def messages(draw, descriptor: d.Descriptor, seeds: dict, depth: int = 0):
    """A message of ``descriptor`` with random fields set (nested to depth 2)."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.type == field.TYPE_MESSAGE:
            if depth >= 2:
                continue
            if field.message_type.GetOptions().map_entry:
                key_field, value_field = field.message_type.fields
                entries = draw(
                    st.dictionaries(
                        _scalar(key_field, seeds), _scalar(value_field, seeds), max_size=3
                    )
                )
                target = getattr(message, field.name)
                for key, value in entries.items():
                    if value_field.type == value_field.TYPE_MESSAGE:
                        continue
                    target[key] = value
                continue
            count = draw(st.integers(0, 2)) if field.is_repeated else 1
            for _ in range(count):
                child = draw(messages(field.message_type, seeds, depth + 1))
                if field.is_repeated:
                    getattr(message, field.name).add().CopyFrom(child)
                else:
                    getattr(message, field.name).CopyFrom(child)
            continue
        if field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field, seeds), max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar(field, seeds)))
    return message


def _payloads(method: d.MethodDescriptor, seeds: dict) -> st.SearchStrategy[bytes]:
    structured = messages(method.input_type, seeds).map(lambda m: m.SerializeToString())
    return st.one_of(
        structured,
        st.binary(max_size=256),
        structured.flatmap(lambda b: st.binary(max_size=16).map(lambda tail: b + tail)),
        structured.flatmap(
            lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda n: b[:n])
        ),  # cut short
    )


def _fuzz_services(address: str, services: list, seeds: dict, skip: set[str]) -> int:
    """Send generated requests to every method of ``services`` at ``address``; returns how
    many were sent."""
    methods = [
        (service, method)
        for service in services
        for method in service.methods
        if method.name not in skip
    ]
    deadline = time.monotonic() + BUDGET_S
    sent = [0]
    channel = grpc.insecure_channel(address)

    @FUZZ
    @given(data=st.data())
    def run(data) -> None:
        service, method = data.draw(st.sampled_from(methods))
        payload = data.draw(_payloads(method, seeds))
        metadata = data.draw(st.sampled_from([(), (("authorization", f"Bearer {TOKEN}"),)]))
        if time.monotonic() > deadline:
            return
        path = f"/{service.full_name}/{method.name}"
        timeout = 1.0 if method.name in _MAY_WAIT else 10.0
        try:
            if method.client_streaming:
                call = channel.stream_stream(path)(iter([payload]), timeout=timeout)
                for _ in call:
                    pass
            elif method.server_streaming:
                for _ in channel.unary_stream(path)(payload, timeout=timeout, metadata=metadata):
                    pass
            else:
                channel.unary_unary(path)(payload, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            code = error.code()
            assert code != grpc.StatusCode.UNKNOWN, (method.name, payload, error.details())
            if method.name not in _MAY_WAIT:
                assert code != grpc.StatusCode.DEADLINE_EXCEEDED, (method.name, payload)
        sent[0] += 1

    try:
        run()
    finally:
        channel.close()
    return sent[0]


def _runs_a_job(cluster: LocalCluster, keep: str) -> None:
    """Cancel what the fuzzing submitted (all but ``keep``), then run a job to its end.

    ``keep`` itself may have ended: the fuzzing cancels it with its token, and without
    internal TLS a TaskManager takes commands from anyone (the README says so)."""
    with ClusterClient(cluster.address, token=TOKEN) as client:
        for summary in client.jobs():
            if summary.job_id != keep and summary.state not in ("FINISHED", "FAILED", "CANCELED"):
                client.cancel(summary.job_id)
        env = StreamExecutionEnvironment.get_execution_environment()
        bounded_job(env)
        with remote(cluster.address):
            job_id = env.execute_async("after the fuzzing").get_job_id()
        poll_for(
            lambda: client.job(job_id).summary.state == "FINISHED",
            timeout=60,
            what="a job to finish after the fuzzing",
        )


def test_fuzzed_jobmanager_grpc_methods_fail_cleanly(cluster, job):
    service = cluster_pb2.DESCRIPTOR.services_by_name["JobManagerGateway"]
    # Savepoints would be written wherever a generated target directory points.
    sent = _fuzz_services(cluster.address, [service], job, skip={"TriggerSavepoint"})
    assert sent > 20
    assert cluster.jobmanager.poll() is None
    _runs_a_job(cluster, job["job_id"])


def test_fuzzed_taskmanager_grpc_methods_fail_cleanly(cluster, job):
    with ClusterClient(cluster.address, token=TOKEN) as client:
        address = client.taskmanagers()[0].address
    services = [
        cluster_pb2.DESCRIPTOR.services_by_name["TaskExecutorGateway"],
        observability_pb2.DESCRIPTOR.services_by_name["TaskManagerObservability"],
        *data_pb2.DESCRIPTOR.services_by_name.values(),
    ]
    # PrepareSlots forks a slot process per generated slot: a few hundred would only measure
    # the machine. It is sent once with a well-formed request below.
    sent = _fuzz_services(address, services, job, skip={"PrepareSlots"})
    assert sent > 20
    assert all(p.poll() is None for p in cluster.taskmanagers)
    _runs_a_job(cluster, job["job_id"])


# ---------------------------------------------------------------- REST

_PATHS = [
    "/",
    "/overview",
    "/config",
    "/metrics",
    "/taskmanagers",
    "/taskmanagers/{tm}",
    "/taskmanagers/{tm}/metrics",
    "/taskmanagers/{tm}/log",
    "/taskmanagers/{tm}/stdout",
    "/jobmanager/config",
    "/jobmanager/log",
    "/jobs",
    "/jobs/overview",
    "/jobs/{job}",
    "/jobs/{job}/plan",
    "/jobs/{job}/config",
    "/jobs/{job}/exceptions",
    "/jobs/{job}/checkpoints",
    "/jobs/{job}/checkpoints/config",
    "/jobs/{job}/checkpoints/details/{any}",
    "/jobs/{job}/vertices/{vertex}",
    "/jobs/{job}/vertices/{vertex}/backpressure",
    "/jobs/{job}/vertices/{vertex}/watermarks",
    "/jobs/{job}/savepoints",
    "/jobs/{job}/savepoints/{any}",
    "/jobs/{job}/stop",
    "/web/{any}",
]
_SEGMENT = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="/?#"), min_size=0, max_size=20
).map(lambda s: urllib.request.quote(s, safe=""))
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=8,
)


@st.composite
def http_requests(draw, seeds: dict):
    template = draw(st.sampled_from(_PATHS))
    path = template.format(
        job=draw(st.sampled_from([seeds["job_id"], "0" * 32]) | _SEGMENT),
        vertex=draw(st.sampled_from(seeds["vertices"]) | _SEGMENT),
        tm=draw(st.sampled_from(seeds["taskmanagers"]) | _SEGMENT),
        any=draw(_SEGMENT),
    )
    if draw(st.booleans()):
        query = draw(st.dictionaries(_SEGMENT, _SEGMENT, max_size=3))
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    method = draw(st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "HEAD"]))
    body = draw(
        st.none() | _JSONISH.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200)
    )
    headers = {}
    if body is not None or draw(st.booleans()):
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "text/plain", "application/octet-stream", ""])
        )
    if draw(st.booleans()):
        headers["Origin"] = draw(st.sampled_from(["http://evil.example", "null"]))
    # Never the token: a generated savepoint or stop would write wherever it points.
    return method, path, body, headers


def test_fuzzed_rest_requests_never_get_a_5xx(cluster, job):
    with ClusterClient(cluster.address, token=TOKEN) as client:
        seeds = dict(job, taskmanagers=[tm.id for tm in client.taskmanagers()])
        before = client.job(job["job_id"]).summary.state
    deadline = time.monotonic() + BUDGET_S
    sent = [0]

    @FUZZ
    @given(request=http_requests(seeds))
    def run(request) -> None:
        if time.monotonic() > deadline:
            return
        method, path, body, headers = request
        call = urllib.request.Request(cluster.rest_url + path, data=body, method=method)
        for name, value in headers.items():
            call.add_header(name, value)
        try:
            urllib.request.urlopen(call, timeout=10).close()
        except urllib.error.HTTPError as error:
            assert error.code < 500, (method, path, body, headers, error.code)
        sent[0] += 1

    run()
    assert sent[0] > 20
    assert cluster.jobmanager.poll() is None
    with ClusterClient(cluster.address, token=TOKEN) as client:
        # Without the token, nothing the fuzzing sent changed the job.
        assert client.job(job["job_id"]).summary.state == before


def test_rest_operations_of_the_openapi_description_never_get_a_5xx(cluster, job):
    """Schemathesis generates requests for every operation of ``openapi.yaml``: valid ones,
    and (its negative mode) ones that break the described schema."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_path(REPO_ROOT / "jobmanager" / "web" / "openapi.yaml")
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(generation_mode=mode))
    deadline = time.monotonic() + BUDGET_S
    sent = [0]

    # Drawing a schemathesis case costs far more than the request: fewer examples, so that
    # the ones past the time budget cost little.
    @settings(FUZZ, max_examples=200)
    @given(data=st.data())
    def run(data) -> None:
        case = data.draw(st.sampled_from(strategies).flatmap(lambda s: s))
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=cluster.rest_url, timeout=10)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        sent[0] += 1

    run()
    assert sent[0] > 20
    assert cluster.jobmanager.poll() is None


def test_raw_garbage_on_the_rest_port_is_answered_or_dropped_in_time(cluster, job):
    deadline = time.monotonic() + BUDGET_S
    sent = [0]

    @FUZZ
    @given(
        data=st.one_of(
            st.binary(min_size=1, max_size=300),
            st.builds(
                lambda line, headers: line + b"\r\n" + headers + b"\r\n\r\n",
                st.sampled_from(
                    [b"GET / HTTP/1.1", b"POST /jobs HTTP/1.1", b"GET /overview HTTP/9.9"]
                )
                | st.binary(max_size=60),
                st.binary(max_size=200),
            ),
        )
    )
    def run(data: bytes) -> None:
        if time.monotonic() > deadline:
            return
        with socket.create_connection(("127.0.0.1", cluster.rest_port), timeout=15) as conn:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := conn.recv(65536):  # the server answers or closes, in time
                answer += chunk
        if answer.startswith(b"HTTP/"):
            status = int(answer.split(b" ", 2)[1])
            assert status < 500, (data, answer[:200])
        sent[0] += 1

    run()
    assert sent[0] > 20
    assert cluster.jobmanager.poll() is None
    assert cluster.overview()["taskmanagers"] == 1
