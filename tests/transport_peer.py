"""The other process of the transport tests (tests/test_transport.py): a consumer or a producer.

``python transport_peer.py consumer CHANNELS CAPACITY`` serves a data endpoint with one input
gate of ``CHANNELS`` channels registered as (job "peer", attempt 0, vertex "v", subtask 0),
prints its address, and answers commands read from stdin, one JSON line each:
``counts`` (elements taken per channel), ``threads`` (this process's thread count),
``block N`` / ``unblock N`` (stop or resume taking from channel N). With a fourth argument
``TOKEN`` it takes records only from peers with that data token, not the tests' shared one.

``python transport_peer.py producer ADDRESS JOB`` sends records of 64 KiB over channel 0 of
(JOB, 0, "v", 0) at ADDRESS until it is killed, printing ``sending`` after its first send.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent import futures
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from taskmanager.network import (  # noqa: E402
    RECORDS,
    ChannelKey,
    DataExchangeService,
    GateClosed,
    GateRegistry,
    InputGate,
    RemoteOutputChannel,
    data_tokens,  # noqa: E402
)
from taskmanager.network.data_service import SERVER_OPTIONS  # noqa: E402


def consumer(channels: int, capacity: int) -> None:
    registry = GateRegistry()
    gate = InputGate(channels, capacity)
    registry.register("peer", 0, "v", 0, gate)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=SERVER_OPTIONS)
    DataExchangeService(registry, bind_host="127.0.0.1").add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    counts = [0] * channels

    def consume() -> None:
        try:
            while True:
                item = gate.poll(None)
                if item is not None and item[0] >= 0:
                    counts[item[0]] += 1
        except GateClosed:
            pass

    threading.Thread(target=consume, daemon=True).start()
    print(json.dumps({"address": f"127.0.0.1:{port}"}), flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "counts":
            print(json.dumps(counts), flush=True)
        elif command == "threads":
            print(json.dumps(threading.active_count()), flush=True)
        elif command == "block":
            gate.block(int(args[0]))
            print("{}", flush=True)
        elif command == "unblock":
            gate.unblock(int(args[0]))
            print("{}", flush=True)


def producer(address: str, job: str) -> None:
    out = RemoteOutputChannel(address, ChannelKey(job, 0, "v", 0, 0))
    payload = b"x" * 65536
    out.send((RECORDS, [payload], None))
    print("sending", flush=True)
    while True:
        out.send((RECORDS, [payload], None))


if __name__ == "__main__":
    # The data token tests/test_transport.py's process admits too, unless another is given:
    # both ends of a connection are of one "job" (taskmanager/network/data_tokens.py).
    token = sys.argv[4] if len(sys.argv) > 4 else "transport-test-data-token"
    data_tokens.admit("peer", token)
    if sys.argv[1] == "consumer":
        consumer(int(sys.argv[2]), int(sys.argv[3]))
    else:
        producer(sys.argv[2], sys.argv[3])
