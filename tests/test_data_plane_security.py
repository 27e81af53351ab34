"""The data plane takes records (pickles) only from the job's own peers (issue 15).

Without TLS, anyone who reached a slot process's data port could send it a record batch, and
the slot process unpickled it: code run. Now a connection must carry the job's data token,
which the JobManager hands out with the job's deployments only; a hostile client that sends a
crafted pickle to the data endpoint of every slot process of a running job is refused before
anything is read, no marker file appears, and the job goes on checkpointing. A BATCH
partition fetch from a TaskManager without the job's token is refused the same way.
"""

from __future__ import annotations

import queue
import re

import grpc
import pytest
from harness import LocalCluster, http_json
from test_security import _CreatesFolder
from test_task_identity import _goes_on_then_cancel, _start_job

from strom.rpc import data_pb2 as pb
from strom.rpc import data_pb2_grpc
from taskmanager.network.elements import RECORDS, encode


@pytest.fixture
def cluster(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", slots=2)
    try:
        cluster.start(taskmanagers=1)
        yield cluster  # a failing test's report shows the logs' ends (conftest.py)
    finally:
        cluster.stop()


def _send_crafted_records(address: str, headers: list[pb.ChannelHeader], payload: bytes, token):
    """As a hostile peer: open a channel to each of ``headers`` at the data endpoint of the
    process at ``address``, and send ``payload`` on each channel given credit. Returns the
    status code the stream ended with (OK: it ended without an error)."""
    metadata = (("strom-data-token", token),) if token is not None else ()
    with grpc.insecure_channel(address) as main:
        port = data_pb2_grpc.DataExchangeStub(main).Locate(pb.LocateRequest(), timeout=10).port
    host = address.rsplit(":", 1)[0]
    frames: queue.Queue = queue.Queue()
    frames.put(
        pb.ConnectionFrame(
            messages=[pb.ChannelMessage(channel_id=i, open=h) for i, h in enumerate(headers)]
        )
    )
    with grpc.insecure_channel(f"{host}:{port}") as data:
        call = data_pb2_grpc.DataConnectionStub(data).Connect(
            iter(frames.get, None), timeout=15, metadata=metadata
        )
        try:
            for frame in call:
                for message in frame.messages:
                    if message.credit:  # a consumer's gate took the channel: send
                        frames.put(
                            pb.ConnectionFrame(
                                messages=[
                                    pb.ChannelMessage(
                                        channel_id=message.channel_id, payloads=[payload]
                                    )
                                ]
                            )
                        )
                        frames.put(None)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_a_crafted_pickle_sent_to_a_slot_process_data_port_is_never_unpickled(cluster, tmp_path):
    marker = tmp_path / "pwned"
    payload = encode((RECORDS, [_CreatesFolder(marker)], None))
    job_id, details = _start_job(cluster)
    slot_processes = re.findall(rf"job {job_id} attempt \d+ slot \d+ serves (\S+)", cluster.logs())
    assert len(slot_processes) == 2, "no slot process addresses in the TaskManager's log"
    consumer = details.vertices[-1]  # the keyed sink: its inputs come from both slots
    headers = [
        pb.ChannelHeader(
            job_id=job_id, attempt=details.attempt, vertex_id=consumer.id, subtask=i, channel=0
        )
        for i in range(consumer.parallelism)
    ]
    codes = [
        _send_crafted_records(address, headers, payload, token)
        for address in slot_processes
        for token in (None, "0" * 64)
    ]
    assert not marker.exists()
    assert set(codes) == {grpc.StatusCode.PERMISSION_DENIED}, codes
    assert "refused a data connection" in cluster.logs()
    _goes_on_then_cancel(cluster, job_id, details.attempt)


def test_a_partition_fetch_without_the_jobs_data_token_is_refused(cluster):
    taskmanager = http_json(f"{cluster.rest_url}/taskmanagers")["taskmanagers"][0]["address"]
    request = pb.PartitionRequest(job_id="a" * 32, producer_vertex="v", edge=0)
    with grpc.insecure_channel(taskmanager) as channel:
        stub = data_pb2_grpc.DataExchangeStub(channel)
        for metadata in ((), (("strom-data-token", "0" * 64),)):
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.FetchPartition(request, timeout=10, metadata=metadata))
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "refused a partition fetch" in cluster.logs()
