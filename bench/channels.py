"""Micro-benchmark of the data plane: records per second through each kind of channel.

Run: ``.venv/bin/python bench/channels.py [--records N] [--batch N]``. A producer thread sends
1M int records in batches of 1024 (by default) and the consumer thread polls them from an
InputGate, as a task's mailbox loop would. Reported per path:

- the element codec alone (pickle a batch, unpickle it),
- LocalOutputChannel + InputGate (no serialisation),
- RecordWriter (forward; hash by key over 4 channels) + LocalOutputChannel + InputGate,
- RemoteOutputChannel over loopback gRPC to a DataExchangeService + InputGate in this process,
- RemoteOutputChannel to a consumer in another process (``--serve`` mode of this script), over
  1, 16 and 64 channels multiplexed on the one connection between the two processes, with
  batches of 1024 records and of 1 record (the per-element cost of the transport), and the
  latency of single records sent at 1,000 a second (median and 99th percentile).

Not a test: numbers depend on the machine; they show where the per-batch cost goes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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
    data_tokens,  # noqa: E402
    decode,
    decoded,
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
        element = decoded(element)  # a batch from another process: its task decodes it
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
    service = DataExchangeService(registry, bind_host="127.0.0.1")
    service.add_to_server(server)
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
        service.stop()
        close_all_channels()


def serve(channels: int) -> None:
    """The consumer process: one gate of ``channels`` channels; for each ``go`` line on stdin,
    consume until every channel ended and print the records, the seconds since the first one,
    and the median and 99th percentile of how long a record whose value is its send time (a
    float, from ``time.time()``) took to arrive, in ms (0 when there were none)."""
    registry = GateRegistry()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=SERVER_OPTIONS)
    DataExchangeService(registry, bind_host="127.0.0.1").add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    for attempt, _ in enumerate(sys.stdin):
        gate = InputGate(channels, int(os.environ.get("BENCH_GATE_CAPACITY", "8")))
        registry.register("bench", attempt, "sink", 0, gate)
        print("ready", flush=True)
        start = None
        seen = finished = 0
        delays = []
        while finished < channels:
            _, element = gate.poll(None)
            element = decoded(element)
            if start is None:
                start = time.perf_counter()
            if element[0] == RECORDS:
                seen += len(element[1])
                if type(element[1][0]) is float:
                    delays.append(time.time() - element[1][0])
            elif element[0] == END_OF_PARTITION:
                finished += 1
        delays = sorted(delays[len(delays) // 10 :]) or [0.0]  # from when the connection is up
        p50, p99 = (1000 * delays[int(len(delays) * q)] for q in (0.5, 0.99))
        print(seen, time.perf_counter() - start, p50, p99, flush=True)
        gate.close()
        registry.unregister("bench", attempt, "sink", 0)


class CrossProcess:
    """A consumer process (this script with ``--serve``) and the producer side in this one."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(channels)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.address = f"127.0.0.1:{int(self.process.stdout.readline())}"
        self.attempt = 0

    def run(self, batches: list[list[int]], records: int) -> float:
        """Records per second from the first send to the consumer's last end-of-partition."""
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ready"
        outs = [
            RemoteOutputChannel(self.address, ChannelKey("bench", self.attempt, "sink", 0, c))
            for c in range(self.channels)
        ]
        self.attempt += 1
        sends = [out.send for out in outs]
        n = len(sends)
        for i, batch in enumerate(batches):
            sends[i % n]((RECORDS, batch, None))
        for out in outs:
            out.send(EOP)
        for out in outs:
            out.close()
        seen, seconds, _, _ = self.process.stdout.readline().split()
        assert int(seen) == records, (seen, records)
        return records / float(seconds)

    def latency(self, rate: int, seconds: float) -> tuple[float, float]:
        """Median and 99th percentile, in ms, of one-record elements sent at ``rate`` a second
        over channel 0 (``execution.buffer-timeout`` 0)."""
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ready"
        outs = [
            RemoteOutputChannel(self.address, ChannelKey("bench", self.attempt, "sink", 0, c))
            for c in range(self.channels)
        ]
        self.attempt += 1
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            outs[0].send((RECORDS, [time.time()], None))
        for out in outs:
            out.send(EOP)
            out.close()
        _, _, p50, p99 = self.process.stdout.readline().split()
        return float(p50), float(p99)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


def main() -> None:
    # Both ends are of one "job": they share its data token (taskmanager/network/data_tokens.py).
    data_tokens.admit("bench", "bench-data-token")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
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
    ]
    for name, run in rows:
        rate = max(run() for _ in range(args.repeat))
        print(f"  {name:<48} {rate:>14,.0f} records/s")
    singles = batches_of(min(records, 50_000), 1)
    for channels in (1, 16, 64):
        peer = CrossProcess(channels)
        try:
            for label, data, count in [
                (f"batch {args.batch}", batches, records),
                ("batch 1", singles, len(singles)),
            ]:
                rate = max(peer.run(data, count) for _ in range(args.repeat))
                name = f"other process, {channels} channel(s), {label}"
                print(f"  {name:<48} {rate:>14,.0f} records/s")
        finally:
            peer.stop()
    peer = CrossProcess(1)
    try:
        for _ in range(args.repeat):
            p50, p99 = peer.latency(1000, 3.0)
            name = "other process, 1,000 records/s one by one"
            print(f"  {name:<48} p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    finally:
        peer.stop()


if __name__ == "__main__":
    main()
