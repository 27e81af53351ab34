"""A source far faster than its sink is held back: memory stays bounded, nothing is lost."""

from __future__ import annotations

import threading

import psutil
from harness import poll_for

from strom.datastream import SinkFunction, SourceFunction, StreamExecutionEnvironment

RECORDS = 300_000
PAYLOAD = "x" * 1000  # ~300 MB if everything were buffered
RELEASE = threading.Event()
PRODUCED = [0]
CONSUMED = [0]


class FastSource(SourceFunction):
    def run(self, ctx):
        for i in range(RECORDS):
            PRODUCED[0] += 1
            ctx.collect(PAYLOAD + str(i))

    def cancel(self):
        pass


class BlockedSink(SinkFunction):
    def invoke(self, value, context):
        RELEASE.wait()
        CONSUMED[0] += 1


def test_fast_source_and_stalled_sink_stay_within_bounded_memory():
    process = psutil.Process()
    baseline = process.memory_info().rss
    env = StreamExecutionEnvironment.get_execution_environment()
    env.add_source(FastSource()).rebalance().add_sink(BlockedSink())
    client = env.execute_async("backpressure")
    try:
        last = [-1]

        def stalled() -> bool:
            now, previous = PRODUCED[0], last[0]
            last[0] = now
            return now > 0 and now == previous

        poll_for(stalled, timeout=60, interval=0.3, what="the source to be held back")
        held_at = PRODUCED[0]
        grown = process.memory_info().rss - baseline
        # Bounded buffers: a channel's batches, the writer's and the source's pending batch.
        assert held_at < 40_000, f"source ran ahead by {held_at} records"
        assert grown < 150 * 1024 * 1024, f"memory grew by {grown / 2**20:.0f} MiB"
    finally:
        RELEASE.set()
    client.get_job_execution_result()
    assert PRODUCED[0] == RECORDS and CONSUMED[0] == RECORDS
