"""Fixed cost of a job on a local cluster: a word count of 10 lines, end to end, by parallelism.

    python bench/startup.py [--taskmanagers 2] [--slots 1] [--repeat 7]

A job's time is submission to result; with almost no input it is the cost of starting and
ending the job (scheduling, slot processes, deployment, connections, completion). What a
bigger job at parallelism N gains over parallelism 1 is bounded by this cost at N, so issue
12's speed-up figures depend on it. Prints the median and least of ``--repeat`` runs per
parallelism, runs interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cluster import local_cluster  # noqa: E402
from wordcount import Drop, add, split, word_of  # noqa: E402

from strom.datastream import StreamExecutionEnvironment  # noqa: E402
from strom.datastream.connectors.file_system import FileSource, StreamFormat  # noqa: E402


def tiny_job(path: Path, parallelism: int) -> float:
    """Seconds from ``execute()`` to its return for the word count of ``path``."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(path)).build()
    (
        env.from_source(source, None, "words")
        .flat_map(split)
        .key_by(word_of)
        .reduce(add)
        .add_sink(Drop())
    )
    started = time.perf_counter()
    env.execute("startup-bench")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description="Strom job start-up cost")
    parser.add_argument("--taskmanagers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    parallelisms = sorted({1, args.taskmanagers * args.slots})
    with tempfile.TemporaryDirectory(prefix="strom-bench-") as tmp:
        work = Path(tmp)
        path = work / "words.txt"
        path.write_text("the quick brown fox jumps over the lazy dog\n" * 10)
        times: dict[int, list[float]] = {p: [] for p in parallelisms}
        with local_cluster(args.taskmanagers, work, args.slots) as _:
            tiny_job(path, 1)  # warm up: the first job loads more
            for _ in range(args.repeat):
                for parallelism in parallelisms:
                    times[parallelism].append(tiny_job(path, parallelism))
    shape = f"{args.taskmanagers} TaskManagers x {args.slots} slots"
    for parallelism, runs in times.items():
        print(
            f"p={parallelism} ({shape}): median {statistics.median(runs) * 1000:6.0f} ms, "
            f"least {min(runs) * 1000:6.0f} ms over {len(runs)} jobs"
        )


if __name__ == "__main__":
    main()
