"""Fixed cost of a job on a local cluster: a word count of 10 lines, end to end, by parallelism.

    python bench/startup.py [--taskmanagers 2] [--slots 1] [--repeat 7]

A job's time is submission to result; with almost no input it is the cost of starting and
ending the job (scheduling, slot processes, deployment, connections, completion). What a
bigger job at parallelism N gains over parallelism 1 is bounded by this cost at N, so issue
12's speed-up figures depend on it. Prints the median and least of ``--repeat`` runs per
parallelism, runs interleaved, each on a settled cluster (the previous job's slot processes
ended, and the spares that replace them started).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cluster import local_cluster  # noqa: E402
from wordcount import strom_job  # noqa: E402


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
        with local_cluster(args.taskmanagers, work, args.slots) as cluster:
            idle = cluster.process_count()
            strom_job(path, 1)  # warm up: the first job loads more
            for _ in range(args.repeat):
                for parallelism in parallelisms:
                    # A job as one submitted to a quiet cluster meets it: the last job's
                    # processes gone, their slots' spares started.
                    cluster.settled_cpu_seconds(idle)
                    times[parallelism].append(strom_job(path, parallelism))
    shape = f"{args.taskmanagers} TaskManagers x {args.slots} slots"
    for parallelism, runs in times.items():
        print(
            f"p={parallelism} ({shape}): median {statistics.median(runs) * 1000:6.0f} ms, "
            f"least {min(runs) * 1000:6.0f} ms over {len(runs)} jobs"
        )


if __name__ == "__main__":
    main()
