"""What a slow consumer costs in memory: a source as fast as it is let, a sink that sleeps.

    python bench/memory.py [--size 100000 ...] [--seconds 15] [--local]

For each ``--size`` (bytes a record), on a fresh cluster of 1 TaskManager x 2 slots: a source
of random records of that size → a sink sleeping 10 ms a record, in the other slot process
(``--local``: in the same one). Prints the TaskManager's resident memory, slot processes
included, once the source is held back: back pressure must bound it whatever the records'
size. Before batches were bounded by bytes (``taskmanager/network/record_sizes.py``) a batch was
1,024 records of any size, and 100 KB records held 4.3 GB here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cluster import local_cluster  # noqa: E402

from strom.datastream import SinkFunction, SourceFunction, StreamExecutionEnvironment  # noqa: E402


class RandomRecords(SourceFunction):
    def __init__(self, size: int) -> None:
        self.size = size
        self.running = True

    def run(self, ctx):
        while self.running:
            ctx.collect(os.urandom(8) * (self.size // 8))

    def cancel(self):
        self.running = False


class Slow(SinkFunction):
    def invoke(self, value, context):
        time.sleep(0.01)


def taskmanager_rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description="memory under back pressure")
    parser.add_argument("--size", type=int, action="append", help="bytes a record")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the job runs")
    parser.add_argument("--local", action="store_true", help="sink in the source's process")
    args = parser.parse_args()
    where = "the same slot process" if args.local else "another slot process"
    for size in args.size or [1_000, 100_000, 1_000_000]:
        with tempfile.TemporaryDirectory(prefix="strom-bench-") as tmp:
            with local_cluster(1, Path(tmp), slots=2) as cluster:
                env = StreamExecutionEnvironment.get_execution_environment()
                records = env.add_source(RandomRecords(size)).set_parallelism(1)
                sink = records.rebalance().add_sink(Slow()).set_parallelism(1)
                if not args.local:
                    sink.slot_sharing_group("apart")
                client = env.execute_async("memory-bench")
                started, peak = time.monotonic(), 0
                while time.monotonic() - started < args.seconds:
                    peak = max(peak, taskmanager_rss(cluster.taskmanager_pids))
                    time.sleep(0.5)  # a sampling interval, not a wait for something
                client.cancel()
        peak_mib = peak / 2**20
        print(f"{size:>9,} B records, sink in {where}: TaskManager RSS peak {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
