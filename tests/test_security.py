"""Trust (DESIGN.md §10): the JobManager unpickles nothing a peer sends.

A crafted pickle whose ``__reduce__`` creates a folder is sent to every method of the
JobManager's gRPC service (as the whole request, in every bytes field, and where a checkpoint
acknowledgement used to carry a pickled handle), to its REST port, and as the ``_metadata`` of
a savepoint a job is started from. The folder must never appear, and the JobManager must keep
serving.
"""

from __future__ import annotations

import json
import os
import pickle
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from harness import LocalCluster, poll_for
from jobs_support import remote
from rest_support import bounded_job, running_job

from client.gateway import ClusterClient
from strom.checkpoint_storage import (
    METADATA_FILE,
    MetadataFormatError,
    convert_pickled_metadata,
    storage_for,
)
from strom.datastream import StreamExecutionEnvironment, execution_context
from strom.rpc import cluster_pb2 as pb


class _CreatesFolder:
    """Unpickling this runs ``os.mkdir(path)``: the proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def crafted_pickle(marker: Path) -> bytes:
    return pickle.dumps(_CreatesFolder(marker), protocol=5)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """One protobuf field of wire type 2, encoded by hand (whatever the schema says now)."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def populate(message, job_id: str, payload: bytes, depth: int = 0) -> None:
    """Name a real job in ``message`` and put ``payload`` in every bytes field."""
    for field in message.DESCRIPTOR.fields:
        if field.type == field.TYPE_BYTES:
            value = payload
        elif field.type == field.TYPE_STRING and field.name == "job_id":
            value = job_id
        elif field.type == field.TYPE_MESSAGE and depth < 2:
            if field.message_type.GetOptions().map_entry:
                continue
            if field.is_repeated:
                child = getattr(message, field.name).add()
            else:
                child = getattr(message, field.name)
            populate(child, job_id, payload, depth + 1)
            if not field.is_repeated and field.containing_oneof is None:
                child.SetInParent()
            continue
        else:
            continue
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)


def requests_for(method, job_id: str, payload: bytes) -> list[bytes]:
    """Serialized requests carrying the pickle every way a peer could send it."""
    request = message_factory.GetMessageClass(method.input_type)()
    populate(request, job_id, payload)
    message = request.SerializeToString()
    return [
        payload,  # the pickle as the whole request
        message,  # in every bytes field of a well-formed request
        message + length_delimited(6, payload),  # where an ack's pickled handle used to be
    ]


@pytest.fixture
def cluster(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", slots=2)
    try:
        cluster.start(taskmanagers=1)
        yield cluster  # a failing test's report shows the logs' ends (conftest.py)
    finally:
        cluster.stop()


def test_a_crafted_pickle_sent_to_every_jobmanager_port_and_method_is_never_unpickled(
    cluster, tmp_path
):
    marker = tmp_path / "pwned"
    payload = crafted_pickle(marker)
    with remote(cluster.address):
        env = StreamExecutionEnvironment.get_execution_environment()
        running_job(env)
        job = env.execute_async("target job")
    job_id = job.get_job_id()
    with ClusterClient(cluster.address) as client:
        poll_for(lambda: client.job(job_id).summary.state == "RUNNING", what="the job to run")

    service = pb.DESCRIPTOR.services_by_name["JobManagerGateway"]
    sent = 0
    with grpc.insecure_channel(cluster.address) as channel:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            for request in requests_for(method, job_id, payload):
                if method.client_streaming:
                    call = channel.stream_stream(path)
                    try:
                        for _ in call(iter([request]), timeout=2):
                            pass
                    except grpc.RpcError:
                        pass
                else:
                    try:
                        channel.unary_unary(path)(request, timeout=2)
                    except grpc.RpcError:
                        pass
                sent += 1
    assert sent == 3 * len(service.methods)

    for method in ("POST", "PATCH", "PUT"):
        for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/savepoints", f"/jobs/{job_id}/stop"):
            request = urllib.request.Request(cluster.rest_url + path, data=payload, method=method)
            request.add_header("Content-Type", "application/octet-stream")
            try:
                urllib.request.urlopen(request, timeout=5).close()
            except urllib.error.HTTPError as error:
                assert error.code < 500, (method, path, error.code)

    assert not marker.exists(), "the JobManager unpickled bytes a peer sent"
    assert cluster.jobmanager.poll() is None
    assert cluster.overview()["taskmanagers"] >= 1


def test_a_savepoint_with_pickled_metadata_is_refused_with_a_clear_message(cluster, tmp_path):
    marker = tmp_path / "pwned"
    savepoint = tmp_path / "savepoint-old"
    savepoint.mkdir()
    (savepoint / METADATA_FILE).write_bytes(crafted_pickle(marker))
    env = StreamExecutionEnvironment.get_execution_environment()
    bounded_job(env)
    with remote(cluster.address):
        execution_context.current().savepoint_path = str(savepoint)
        with pytest.raises(Exception, match="pickled by an older Strom") as refused:
            env.execute_async("restore from a pickle")
    assert "python -m strom.checkpoint_storage convert" in str(refused.value)
    assert not marker.exists(), "the JobManager unpickled a savepoint's _metadata"
    assert cluster.overview()["jobs-running"] == 0


def test_checkpoint_metadata_is_versioned_json_and_round_trips(tmp_path):
    storage = storage_for(str(tmp_path))
    location = storage.checkpoint_location("b" * 32, 7)
    metadata = {
        "job_id": "b" * 32,
        "job_name": "j",
        "checkpoint_id": 7,
        "timestamp": 1,
        "is_savepoint": False,
        "operators": {
            "op": {
                "parallelism": 2,
                "max_parallelism": 128,
                "vertex": "v",
                "files": {0: "/x/a.state", 1: "/x/b.state"},
                "finished": [3],
            }
        },
    }
    storage.write_metadata(location, metadata)
    document = json.loads((Path(location) / METADATA_FILE).read_text())
    assert document["format"] == "strom-checkpoint-metadata" and document["version"] == 1
    assert storage.read_metadata(location) == metadata  # subtask numbers are ints again

    document["version"] = 99
    (Path(location) / METADATA_FILE).write_text(json.dumps(document))
    with pytest.raises(MetadataFormatError, match="version 99"):
        storage.read_metadata(location)


def test_trusted_pickled_metadata_converts_to_json(tmp_path):
    folder = tmp_path / "chk-3"
    folder.mkdir()
    old = {"checkpoint_id": 3, "operators": {"op": {"files": {0: "/s"}, "finished": []}}}
    (folder / METADATA_FILE).write_bytes(pickle.dumps(old))
    storage = storage_for(str(tmp_path))
    with pytest.raises(MetadataFormatError, match="pickled by an older Strom"):
        storage.read_metadata(str(folder))
    convert_pickled_metadata(str(folder))
    assert storage.read_metadata(str(folder))["operators"]["op"]["files"] == {0: "/s"}


def test_daemons_warn_at_start_that_their_ports_run_code_without_internal_tls(cluster):
    jobmanager = poll_for(
        lambda: [p for p in cluster.log_dir.glob("jobmanager-*.log") if "TLS" in p.read_text()],
        what="the JobManager's warning",
    )[0].read_text()
    assert "Internal TLS is off" in jobmanager and str(cluster.rpc_port) in jobmanager
    assert "can run code" in jobmanager
    taskmanager = poll_for(
        lambda: [p for p in cluster.log_dir.glob("taskmanager-*.log") if "TLS" in p.read_text()],
        what="the TaskManager's warning",
    )[0].read_text()
    assert "Internal TLS is off" in taskmanager and "can run code" in taskmanager


def test_a_taskmanager_reads_its_restore_point_as_json_and_never_unpickles_it(tmp_path):
    from taskmanager.deployment import TaskDeployer

    marker = tmp_path / "pwned"
    deployer = TaskDeployer(lambda: "tm", lambda: "127.0.0.1:1", work_dir=tmp_path / "work")
    try:
        request = pb.DeployTasksRequest(
            job_id="c" * 32,
            attempt=1,
            job_graph=pickle.dumps(None),
            tasks=[pb.TaskSpec(vertex_id="v", subtask=0)],
            restore=crafted_pickle(marker),
        )
        answer = deployer.deploy(request)
    finally:
        deployer.close()
    assert not answer.ok and "restore point" in answer.message
    assert not marker.exists(), "the TaskManager unpickled the restore bytes"
