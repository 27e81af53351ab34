"""Is a Unix socket a faster local transport than loopback TCP for the data plane? (issue 12)

    python bench/local_transport.py [--bytes 48000000] [--size 12000 --size 48000] [--repeat 3]

A consumer process serves one gRPC aio stream (the data plane's transport) on loopback TCP or on
a Unix socket; this process writes ``--bytes`` of payload to it in messages of ``--size`` bytes
(a word-count batch of 1,024 records pickles to about 12 KB), the consumer answering one credit
per 8 messages as the data plane does. Prints per transport and size: wall time, and the CPU
microseconds one message costs the writer and the reader (both processes' CPU, the reader's
start-up left out). Interleaved runs; machines are noisy, compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc import aio

_METHOD = "/bench.Sink/Stream"


def _same(data: bytes) -> bytes:
    return data


async def _serve(address: str) -> None:
    async def stream(requests, context):
        count = 0
        async for _ in requests:
            count += 1
            if count % 8 == 0:
                yield b"c"
        yield b"done"

    handler = grpc.method_handlers_generic_handler(
        "bench.Sink", {"Stream": grpc.stream_stream_rpc_method_handler(stream, _same, _same)}
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(address)
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _write(target: str, messages: int, size: int) -> tuple[float, float]:
    channel = aio.insecure_channel(target)
    call = channel.stream_stream(_METHOD, request_serializer=_same, response_deserializer=_same)()
    payload = b"x" * size

    async def read() -> None:
        async for answer in call:
            if answer == b"done":
                return

    reader = asyncio.ensure_future(read())
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(messages):
        await call.write(payload)
    await call.done_writing()
    await reader
    result = time.perf_counter() - wall, time.process_time() - cpu
    await channel.close()
    return result


def run_once(transport: str, messages: int, size: int, folder: str) -> tuple[float, float, float]:
    """(wall s, writer CPU s, reader CPU s) of one run."""
    if transport == "tcp":
        listen = "127.0.0.1:0"
    else:
        listen = f"unix:{folder}/sink-{time.monotonic_ns()}.sock"
    reader = subprocess.Popen(
        [sys.executable, __file__, "--serve", listen], stdout=subprocess.PIPE, text=True
    )
    try:
        port = reader.stdout.readline().strip()
        target = f"127.0.0.1:{port}" if transport == "tcp" else listen
        idle = _cpu_seconds(reader.pid)
        wall, writer_cpu = asyncio.run(_write(target, messages, size))
        return wall, writer_cpu, _cpu_seconds(reader.pid) - idle
    finally:
        reader.kill()
        reader.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=48_000_000)
    parser.add_argument("--size", type=int, action="append")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    sizes = args.size or [12_000, 48_000]
    with tempfile.TemporaryDirectory(prefix="strom-bench-") as folder:
        runs: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        for _ in range(args.repeat):
            for size in sizes:
                for transport in ("tcp", "unix"):
                    messages = args.bytes // size
                    runs.setdefault((transport, size), []).append(
                        run_once(transport, messages, size, folder)
                    )
    for (transport, size), results in runs.items():
        messages = args.bytes // size
        wall = statistics.median(r[0] for r in results)
        writer = statistics.median(r[1] for r in results) / messages * 1e6
        reader = statistics.median(r[2] for r in results) / messages * 1e6
        print(
            f"{transport:4} {size:>7,} B x {messages:>6,}: wall {wall:.3f} s, CPU a message "
            f"{writer:5.1f} µs writing + {reader:5.1f} µs reading (medians of {len(results)})"
        )


if __name__ == "__main__":
    main()
