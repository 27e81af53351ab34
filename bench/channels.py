"""Micro-benchmark of the data plane: records per second through each kind of channel.

Run: ``.venv/bin/python bench/channels.py [--records N] [--batch N]``. A producer thread sends
1M int records in batches of 1024 (by default) and the consumer thread polls them from an
InputGate, as a task's mailbox loop would. Reported per path:

- the element codec alone (pickle a batch, unpickle it),
- LocalOutputChannel + InputGate (no serialisation),
- RecordWriter (forward; hash by key over 4 channels) + LocalOutputChannel + InputGate,
- RemoteOutputChannel over loopback gRPC to a DataExchangeService + InputGate, with the
  recommended server options and with gRPC's defaults.

Not a test: numbers depend on the machine; they show where the per-batch cost goes.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strom.graph.partitioning import ForwardPartitioner, KeyGroupPartitioner  # noqa: E402
from taskmanager.network import (  # noqa: E402
    END_OF_PARTITION,
    RECORDS,
    ChannelKey,
    DataExchangeService,
    GateRegistry,
    InputGate,
    LocalOutputChannel,
    RecordWriter,
    RemoteOutputChannel,
    close_all_channels,
    decode,
    encode,
)
from taskmanager.network.data_service import SERVER_OPTIONS  # noqa: E402

EOP = (END_OF_PARTITION,)


def batches_of(records: int, batch: int) -> list[list[int]]:
    return [list(range(start, min(start + batch, records))) for start in range(0, records, batch)]


def consume(gate: InputGate, producers: int) -> int:
    """Poll until every channel delivered end-of-partition; the number of records seen."""
    seen = 0
    finished = 0
    while finished < producers:
        _, element = gate.poll(None)
        if element[0] == RECORDS:
            seen += len(element[1])
        elif element[0] == END_OF_PARTITION:
            finished += 1
    return seen


def timed(produce: Callable[[], None], gate: InputGate, producers: int, records: int) -> float:
    """Records per second from the start of ``produce`` to the last end-of-partition polled."""
    start = time.perf_counter()
    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    seen = consume(gate, producers)
    elapsed = time.perf_counter() - start
    thread.join()
    assert seen == records, (seen, records)
    return records / elapsed


def bench_codec(batches: list[list[int]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        decode(encode((RECORDS, batch, None)))
    return sum(map(len, batches)) / (time.perf_counter() - start)


def bench_local(batches: list[list[int]], records: int) -> float:
    gate = InputGate(1)
    out = LocalOutputChannel(gate, 0)

    def produce() -> None:
        for batch in batches:
            out.send((RECORDS, batch, None))
        out.send(EOP)

    return timed(produce, gate, 1, records)


def bench_writer(batches: list[list[int]], records: int, batch: int, keyed: bool) -> float:
    n = 4 if keyed else 1
    gate = InputGate(n)
    channels = [LocalOutputChannel(gate, i) for i in range(n)]
    partitioner = KeyGroupPartitioner(lambda x: x, 128) if keyed else ForwardPartitioner()
    writer = RecordWriter(partitioner, channels, 0, 1, batch_size=batch)

    def produce() -> None:
        for values in batches:
            writer.emit(values, None)
        writer.broadcast(EOP)
        writer.close()

    return timed(produce, gate, n, records)


def bench_remote(batches: list[list[int]], records: int, options: list) -> float:
    registry = GateRegistry()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=options)
    DataExchangeService(registry).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        job = uuid.uuid4().hex
        gate = InputGate(1)
        registry.register(job, 0, "sink", 0, gate)
        out = RemoteOutputChannel(f"127.0.0.1:{port}", ChannelKey(job, 0, "sink", 0, 0))

        def produce() -> None:
            for batch in batches:
                out.send((RECORDS, batch, None))
            out.send(EOP)
            out.close()

        return timed(produce, gate, 1, records)
    finally:
        server.stop(grace=None).wait()
        close_all_channels()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()
    batches = batches_of(args.records, args.batch)
    records = args.records
    print(f"{records:,} int records in batches of {args.batch}, best of {args.repeat}")
    rows = [
        ("codec only (encode + decode)", lambda: bench_codec(batches)),
        ("LocalOutputChannel + InputGate", lambda: bench_local(batches, records)),
        (
            "RecordWriter(forward) + local",
            lambda: bench_writer(batches, records, args.batch, keyed=False),
        ),
        (
            "RecordWriter(hash, 4 channels) + local",
            lambda: bench_writer(batches, records, args.batch, keyed=True),
        ),
        (
            "RemoteOutputChannel, loopback (SERVER_OPTIONS)",
            lambda: bench_remote(batches, records, SERVER_OPTIONS),
        ),
        (
            "RemoteOutputChannel, loopback (gRPC defaults)",
            lambda: bench_remote(batches, records, []),
        ),
    ]
    for name, run in rows:
        rate = max(run() for _ in range(args.repeat))
        print(f"  {name:<48} {rate:>14,.0f} records/s")


if __name__ == "__main__":
    main()
