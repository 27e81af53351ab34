"""Redis stream -> map -> Redis stream through Strom, against a plain redis-py loop.

    python bench/connectors.py [--records N] [--rounds N] [--port P]

Starts its own ``redis-server`` on a free port (or uses the one on ``--port``), fills an
input stream with N entries, and measures records/s of:

1. a plain redis-py read-transform-write loop in one process (``XREAD`` batches of 1,000,
   the same map, pipelined ``XADD``s): the baseline;
2. Strom embedded at parallelism 1, ``RedisStreamSource`` (bounded) -> ``map`` ->
   ``RedisStreamSink`` with ``AT_LEAST_ONCE`` (target >= 0.5 of the baseline);
3. the same with ``EXACTLY_ONCE`` and a checkpoint every second.

Each round runs all three back to back on the same server and prints their ratios to the
baseline; the summary gives the median and best ratio over the rounds (a loaded machine makes
single runs swing).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from strom.datastream import StreamExecutionEnvironment  # noqa: E402
from strom.datastream.connectors.base import DeliveryGuarantee  # noqa: E402
from strom.datastream.connectors.redis import RedisStreamSink, RedisStreamSource  # noqa: E402


def transform(fields: dict) -> dict:
    """The map of every variant: parse, compute, format."""
    n = int(fields["n"])
    return {"n": n, "square": n * n, "tag": fields["tag"].upper()}


def start_redis() -> tuple[subprocess.Popen, int, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="strom-bench-redis-")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
        + ["--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return process, port, directory


def fill(client: redis.Redis, stream: str, records: int) -> None:
    client.delete(stream)
    pipeline = client.pipeline(transaction=False)
    for n in range(records):
        pipeline.xadd(stream, {"n": n, "tag": "event"})
        if n % 10_000 == 9_999:
            pipeline.execute()
    pipeline.execute()


def plain_loop(port: int, records: int) -> float:
    client = redis.Redis(port=port, decode_responses=True)
    client.delete("out")
    started = time.perf_counter()
    last = "0-0"
    done = 0
    while done < records:
        reply = client.xread({"in": last}, count=1000)
        if not reply:
            break
        pipeline = client.pipeline(transaction=False)
        for entry_id, fields in reply[0][1]:
            pipeline.xadd("out", transform(fields))
            last = entry_id
            done += 1
        pipeline.execute()
    elapsed = time.perf_counter() - started
    assert client.xlen("out") == records
    return records / elapsed


def through_strom(port: int, records: int, guarantee: DeliveryGuarantee) -> float:
    client = redis.Redis(port=port)
    client.delete("out", "strom:sink:out:0")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    if guarantee == DeliveryGuarantee.EXACTLY_ONCE:
        env.enable_checkpointing(1000)
        env.get_checkpoint_config().set_checkpoint_storage_dir(tempfile.mkdtemp())
    source = (
        RedisStreamSource.builder()
        .set_host("127.0.0.1")
        .set_port(port)
        .set_streams(["in"])
        .set_deserializer(lambda entry: entry.fields)
        .set_bounded()
        .build()
    )
    sink = (
        RedisStreamSink.builder()
        .set_host("127.0.0.1")
        .set_port(port)
        .set_stream("out")
        .set_delivery_guarantee(guarantee)
        .set_batch_size(1000)
        .build()
    )
    env.from_source(source, None, "in").map(transform).sink_to(sink)
    started = time.perf_counter()
    env.execute(f"redis bench {guarantee.name}")
    elapsed = time.perf_counter() - started
    assert client.xlen("out") == records, client.xlen("out")
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=None, help="use a running redis-server")
    args = parser.parse_args()
    process = directory = None
    port = args.port
    if port is None:
        process, port, directory = start_redis()
    try:
        fill(redis.Redis(port=port), "in", args.records)
        ratios: dict[str, list[float]] = {"AT_LEAST_ONCE": [], "EXACTLY_ONCE": []}
        for round_number in range(1, args.rounds + 1):
            baseline = plain_loop(port, args.records)
            line = f"round {round_number}: redis-py loop {baseline:,.0f}/s"
            for guarantee in (DeliveryGuarantee.AT_LEAST_ONCE, DeliveryGuarantee.EXACTLY_ONCE):
                rate = through_strom(port, args.records, guarantee)
                ratios[guarantee.name].append(rate / baseline)
                line += f", Strom {guarantee.name} {rate:,.0f}/s ({rate / baseline:.2f})"
            print(line, flush=True)
        for name, values in ratios.items():
            print(
                f"{name}: ratio to the plain loop median {statistics.median(values):.2f}, "
                f"best {max(values):.2f} over {len(values)} rounds"
            )
    finally:
        if process is not None:
            process.terminate()
            process.wait()
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
