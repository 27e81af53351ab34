"""A source far faster than its sink is held back: memory stays bounded, nothing is lost."""

from __future__ import annotations

import threading
import time

import psutil
import pytest
from harness import http_json, poll_for
from jobs_support import remote

from strom.datastream import SinkFunction, SourceFunction, StreamExecutionEnvironment
from strom.datastream.connectors.base import Source, SourceReader

RELEASE = threading.Event()
PRODUCED = [0]
CONSUMED = [0]


class FastSource(SourceFunction):
    def __init__(self, records: int, size: int) -> None:
        self.records = records
        self.payload = "x" * size

    def run(self, ctx):
        for i in range(self.records):
            PRODUCED[0] += 1
            ctx.collect(self.payload + str(i))

    def cancel(self):
        pass


class BlockedSink(SinkFunction):
    def invoke(self, value, context):
        RELEASE.wait()
        CONSUMED[0] += 1


@pytest.mark.parametrize(
    "size, records",
    [
        (1000, 300_000),  # ~300 MB if everything were buffered
        # ~1 GB: a batch of 1,024 such records alone was 256 MB; batches are bounded by bytes
        # too (record_sizes.BATCH_BYTES)
        (256 * 1024, 4_000),
    ],
    ids=["1KB", "256KB"],
)
def test_fast_source_and_stalled_sink_stay_within_bounded_memory(size, records):
    RELEASE.clear()
    PRODUCED[0] = CONSUMED[0] = 0
    process = psutil.Process()
    baseline = process.memory_info().rss
    env = StreamExecutionEnvironment.get_execution_environment()
    env.add_source(FastSource(records, size)).rebalance().add_sink(BlockedSink())
    client = env.execute_async("backpressure")
    try:
        last = [-1]

        def stalled() -> bool:
            now, previous = PRODUCED[0], last[0]
            last[0] = now
            return now > 0 and now == previous

        poll_for(stalled, timeout=60, interval=0.3, what="the source to be held back")
        held_bytes = PRODUCED[0] * size
        grown = process.memory_info().rss - baseline
        # Bounded buffers: a channel's batches, the writer's and the source's pending batch.
        assert held_bytes < 40_000_000, f"source ran ahead by {held_bytes / 1e6:.0f} MB"
        assert grown < 150 * 2**20, f"memory grew by {grown / 2**20:.0f} MiB"
    finally:
        RELEASE.set()
    client.get_job_execution_result()
    assert PRODUCED[0] == records and CONSUMED[0] == records


ASKED: list[int] = []
LARGE = b"x" * (256 * 1024)


class LargeRecords(Source):
    """A connector source (a reader polled by the task) of 256 KB records."""

    def is_bounded(self) -> bool:
        return True

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return _LargeReader()


class _LargeReader(SourceReader):
    def __init__(self) -> None:
        self.left = 1_100

    def read_batch(self, max_records: int) -> list | None:
        ASKED.append(max_records)
        if not self.left:
            return None
        count = min(self.left, max_records)
        self.left -= count
        return [LARGE] * count

    def snapshot_position(self) -> int:
        return self.left

    def restore_position(self, position) -> None:
        self.left = position


def test_a_reader_of_large_records_is_asked_for_about_a_mebibyte_at_a_time():
    # Asked for 1,024 records every time, a reader of 1 MB records would hold a gigabyte per
    # read; after its first read it is asked for as many as make about BATCH_BYTES.
    ASKED.clear()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    lengths = env.from_source(LargeRecords(), None, "large").map(len)
    with lengths.execute_and_collect() as results:
        assert sum(1 for _ in results) == 1_100
    assert ASKED[0] == 1024 and ASKED[1:] and max(ASKED[1:]) <= 4, ASKED


# ---------------------------------------------------------------- reported, across processes

BIG = b"x" * 8192  # a batch of 1,024 is 8 MB: more than a burst


class BigTicker(SourceFunction):
    """8 KB records as fast as it is let."""

    def __init__(self) -> None:
        self.running = True

    def run(self, ctx):
        while self.running:
            ctx.collect(BIG)

    def cancel(self):
        self.running = False


class CrawlingSink(SinkFunction):
    def invoke(self, value, context):
        time.sleep(0.001)


def test_a_producer_waiting_for_credit_from_another_process_is_reported_back_pressured(
    local_cluster,
):
    # Batches of 8 MB: the receiver grants credit a burst (channels.BURST_BYTES) at a time, so
    # the producer waits for it while the consumer's gate holds a few elements of its sixteen;
    # the consumer alone would call that "ok". The producer knows it waits.
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    with remote(cluster.address):
        env = StreamExecutionEnvironment.get_execution_environment()
        ticker = env.add_source(BigTicker()).name("Big Ticker").set_parallelism(1)
        ticker.add_sink(CrawlingSink()).name("Crawl").set_parallelism(1).slot_sharing_group("apart")
        client = env.execute_async("held back by credit")
    job_id = client.get_job_id()
    try:

        def ticker_held_back() -> dict | None:
            job = http_json(f"{cluster.rest_url}/jobs/{job_id}")
            ticker = {v["name"]: v for v in job["vertices"]}["Big Ticker"]
            return ticker if ticker["metrics"]["backpressure-level"] == "high" else None

        ticker = poll_for(ticker_held_back, timeout=60, what="the ticker to be reported held back")
        assert ticker["metrics"]["backpressured-ratio"] > 0.5
        pressure = http_json(
            f"{cluster.rest_url}/jobs/{job_id}/vertices/{ticker['id']}/backpressure"
        )
        assert pressure["backpressure-level"] == "high"
    finally:
        client.cancel()
