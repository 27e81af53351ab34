"""A CPU-bound keyed job at parallelism 2 against 1, on a local cluster, same run.

    python bench/keyed_cpu.py [--records 200000] [--repeat 3] [--shape 2x1] [--shape 1x2]

Issue 12's second speed-up target (>= 1.8x): a file of integers → ``map`` doing about 10 µs of
Python work per record → ``key_by`` (1,000 keys) → a running sum (``reduce``) → a sink that
drops every result. Each ``--shape`` (TaskManagers x slots, default both 2x1 and 1x2) gets its
own cluster, on which the job runs at p=1 and p=2 interleaved, ``--repeat`` times; the best
wall time of each counts. The work per record is calibrated once in this process and printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cluster import local_cluster  # noqa: E402

from strom.datastream import SinkFunction, StreamExecutionEnvironment  # noqa: E402
from strom.datastream.connectors.file_system import FileSource, StreamFormat  # noqa: E402

KEYS = 1_000
#: rounds of the busy loop in ``work``; about 10 µs on the machine the figures were taken on
ROUNDS = 210


def work(line: str) -> tuple[int, int]:
    """About 10 µs of pure Python per record: parse, then a short integer hash loop."""
    value = int(line)
    x = value
    for _ in range(ROUNDS):
        x = (x * 31 + 7) & 0xFFFFFF
    return (value % KEYS, x & 0xFF)


def key_of(record: tuple[int, int]) -> int:
    return record[0]


def add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0], a[1] + b[1])


class Drop(SinkFunction):
    def invoke(self, value, context):
        pass


def job(path: Path, parallelism: int) -> float:
    """Run the job once; its wall time in seconds."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(path)).build()
    env.from_source(source, None, "numbers").map(work).key_by(key_of).reduce(add).add_sink(Drop())
    started = time.perf_counter()
    env.execute("keyed-cpu-bench")
    return time.perf_counter() - started


def per_record_us(samples: int = 20_000) -> float:
    """What ``work`` costs a record here, in µs (best of 3)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(samples):
            work(str(i))
        best = min(best, time.perf_counter() - started)
    return best / samples * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU-bound keyed job, p=2 vs p=1")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shape", action="append", help="TaskManagers x slots, e.g. 2x1")
    args = parser.parse_args()
    shapes = args.shape or ["2x1", "1x2"]
    print(f"work per record: {per_record_us():.1f} µs; {args.records:,} records")
    with tempfile.TemporaryDirectory(prefix="strom-bench-") as tmp:
        work_dir = Path(tmp)
        path = work_dir / "numbers.txt"
        # 64-byte lines: the file source cuts files into splits of at least 1 MiB, and a small
        # file would make one or two unequal splits, so one reader would do most of the work.
        path.write_text("".join(f"{i:>63}\n" for i in range(args.records)))
        for shape in shapes:
            taskmanagers, slots = (int(part) for part in shape.split("x"))
            walls: dict[int, list[float]] = {1: [], 2: []}
            cpus: dict[int, list[float]] = {1: [], 2: []}
            with local_cluster(taskmanagers, work_dir, slots) as cluster:
                idle = cluster.process_count()
                for _ in range(args.repeat):
                    for parallelism in (1, 2):
                        before = cluster.settled_cpu_seconds(idle)
                        walls[parallelism].append(job(path, parallelism))
                        cpus[parallelism].append(cluster.settled_cpu_seconds(idle) - before)
            best = {p: min(w) for p, w in walls.items()}
            for parallelism in (1, 2):
                print(
                    f"{shape} p={parallelism}: best {best[parallelism]:.2f} s wall "
                    f"(runs {', '.join(f'{w:.2f}' for w in walls[parallelism])}), "
                    f"least {min(cpus[parallelism]):.2f} CPU-s in TaskManagers"
                )
            print(f"{shape} speed-up p=2 vs p=1: {best[1] / best[2]:.2f} (target >= 1.8)")


if __name__ == "__main__":
    main()
