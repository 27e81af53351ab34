"""Word-count throughput: Strom against a plain Python loop doing the same work, same run.

    python bench/wordcount.py                 # embedded, parallelism 1 (target: >= 0.50 of inline)
    python bench/wordcount.py --cluster 2     # also a 2-TaskManager cluster at parallelism 2
    python bench/wordcount.py --cluster 1 --slots 2   # 1 TaskManager x 2 slots
    python bench/wordcount.py --cluster 2 --cluster-only   # the loops once, no embedded run
    python bench/wordcount.py --cluster 2 --tls   # that cluster with internal TLS on and off

The input is 2,000,000 words (a 10,000-word vocabulary, Zipf-skewed, 10 words a line) made
from a fixed seed and written to a file. The job reads the file, splits lines (flat_map),
keys by word, keeps a running count (reduce) and hands every result to a sink that drops it.
Two baselines run in this process: the work written inline by hand (the target's baseline)
and the very same user functions called in one loop. The script prints the throughputs and
the ratios; machines are noisy, so only the ratios count.
"""

from __future__ import annotations

import argparse
import random
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

WORDS = 2_000_000
VOCABULARY = 10_000
WORDS_PER_LINE = 10
SEED = 42


def make_input(path: Path) -> None:
    rng = random.Random(SEED)
    vocabulary = [f"w{i:05d}" for i in range(VOCABULARY)]
    weights = [1.0 / (rank + 1) for rank in range(VOCABULARY)]
    words = rng.choices(vocabulary, weights=weights, k=WORDS)
    with open(path, "w") as handle:
        for start in range(0, WORDS, WORDS_PER_LINE):
            handle.write(" ".join(words[start : start + WORDS_PER_LINE]))
            handle.write("\n")


# The user functions: the job and the baseline call exactly these.
def split(line):
    return [(word, 1) for word in line.split()]


def word_of(pair):
    return pair[0]


def add(a, b):
    return (a[0], a[1] + b[1])


class Drop(SinkFunction):
    def invoke(self, value, context):
        pass


def plain_loop(path: Path) -> float:
    """The same functions in one Python loop; returns seconds."""
    started = time.perf_counter()
    counts = {}
    sink = Drop()
    with open(path) as handle:
        for line in handle:
            for pair in split(line.rstrip("\n")):
                key = word_of(pair)
                current = counts.get(key)
                result = pair if current is None else add(current, pair)
                counts[key] = result
                sink.invoke(result, None)
    elapsed = time.perf_counter() - started
    assert sum(count for _, count in counts.values()) == WORDS
    return elapsed


def inline_loop(path: Path) -> float:
    """The same work written inline, as a user would write it by hand: split, count, and make
    each running result ``(word, count)`` (the job hands every one to a sink). The target's
    baseline (issue 12)."""
    started = time.perf_counter()
    counts: dict[str, int] = {}
    result = None
    with open(path) as handle:
        for line in handle:
            for word in line.split():
                count = counts.get(word, 0) + 1
                counts[word] = count
                result = (word, count)
    elapsed = time.perf_counter() - started
    assert result is not None and sum(counts.values()) == WORDS
    return elapsed


def strom_job(path: Path, parallelism: int) -> float:
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
    env.execute("wordcount-bench")
    return time.perf_counter() - started


def cpu_timed(run, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``run(*args)``."""
    cpu = time.process_time()
    wall = run(*args)
    return wall, time.process_time() - cpu


def cluster_runs(
    path: Path, taskmanagers: int, work: Path, slots: int, repeat: int
) -> dict[int, tuple[float, float]]:
    """Start a JobManager and TaskManagers as processes; run the job at parallelism 1 and on
    all their slots, ``repeat`` times each, interleaved. Per parallelism, the best wall time
    and the least CPU seconds the TaskManagers (slot processes included) used in a run."""
    parallelisms = sorted({1, taskmanagers * slots})
    walls: dict[int, list[float]] = {p: [] for p in parallelisms}
    cpus: dict[int, list[float]] = {p: [] for p in parallelisms}
    with local_cluster(taskmanagers, work, slots) as cluster:
        idle = cluster.process_count()
        for _ in range(repeat):
            for parallelism in parallelisms:
                before = cluster.settled_cpu_seconds(idle)
                walls[parallelism].append(strom_job(path, parallelism))
                cpus[parallelism].append(cluster.settled_cpu_seconds(idle) - before)
    return {p: (min(walls[p]), min(cpus[p])) for p in parallelisms}


def main() -> None:
    parser = argparse.ArgumentParser(description="Strom word-count benchmark")
    parser.add_argument("--cluster", type=int, default=0, help="also run on N TaskManagers")
    parser.add_argument("--slots", type=int, default=1, help="slots per TaskManager")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the best counts")
    parser.add_argument(
        "--cluster-only", action="store_true", help="skip the embedded run and the loops"
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="run the cluster job at full parallelism with internal mutual TLS off and on, "
        "interleaved, instead of at parallelism 1 and all slots",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strom-bench-") as tmp:
        work = Path(tmp)
        path = work / "words.txt"
        make_input(path)
        # Interleave the runs so that a machine slowing down or speeding up (these are
        # shared machines) affects both sides alike; the best run of each counts.
        runs: dict[str, list[tuple[float, float]]] = {"plain": [], "inline": [], "embedded": []}
        for _ in range(1 if args.cluster_only else args.repeat):
            runs["plain"].append(cpu_timed(plain_loop, path))
            runs["inline"].append(cpu_timed(inline_loop, path))
            if not args.cluster_only:
                runs["embedded"].append(cpu_timed(strom_job, path, 1))
        if args.cluster_only:
            runs["embedded"] = runs["plain"]  # not run; its lines below are left out
        wall = {name: min(w for w, _ in values) for name, values in runs.items()}
        cpu = {name: min(c for _, c in values) for name, values in runs.items()}
        print(f"words: {WORDS:,}   best of {args.repeat}; wall time, and CPU time of the process")
        measured = [("inline", "inline loop (by hand)"), ("plain", "plain loop (same functions)")]
        if not args.cluster_only:
            measured.append(("embedded", "strom embedded p=1"))
        for name, label in measured:
            print(
                f"{label:28s} {WORDS / wall[name]:12,.0f} words/s  "
                f"{wall[name]:6.2f} s wall  {cpu[name]:6.2f} s CPU"
            )
        if not args.cluster_only:
            print(
                f"ratio strom/inline (p=1): {wall['inline'] / wall['embedded']:.2f} wall, "
                f"{cpu['inline'] / cpu['embedded']:.2f} CPU  (target >= 0.50)"
            )
            print(
                f"ratio strom/plain  (p=1): {wall['plain'] / wall['embedded']:.2f} wall, "
                f"{cpu['plain'] / cpu['embedded']:.2f} CPU"
            )
        if args.cluster and args.tls:
            tls_comparison(path, args.cluster, work, args.slots, args.repeat)
        elif args.cluster:
            shape = f"{args.cluster} TaskManagers x {args.slots} slots"
            results = cluster_runs(path, args.cluster, work, args.slots, args.repeat)
            for p, (clustered, cluster_cpu) in results.items():
                print(
                    f"strom cluster p={p} ({shape}): {WORDS / clustered:12,.0f} words/s  "
                    f"{clustered:6.2f} s wall  {cluster_cpu:6.2f} s CPU in TaskManagers; "
                    f"ratio to inline {wall['inline'] / clustered:.2f}"
                )
            if len(results) == 2:
                (w1, c1), (wp, cp) = results.values()
                print(
                    f"cluster speed-up p={max(results)} vs p=1: {w1 / wp:.2f} wall; "
                    f"CPU {cp / c1:.2f}x as much"
                )


def tls_comparison(path: Path, taskmanagers: int, work: Path, slots: int, repeat: int) -> None:
    """The job on all slots of a cluster without and of one with internal mutual TLS,
    started one after the other and run in turns; prints the best of each and the ratio."""
    parallelism = taskmanagers * slots
    walls: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeat):
        for tls in (False, True):
            with local_cluster(taskmanagers, work, slots, tls=tls):
                walls[tls].append(strom_job(path, parallelism))
    shape = f"{taskmanagers} TaskManagers x {slots} slots, p={parallelism}"
    for tls in (False, True):
        best = min(walls[tls])
        label = "TLS on " if tls else "TLS off"
        runs = ", ".join(f"{w:.2f}" for w in walls[tls])
        print(f"{label} ({shape}): {WORDS / best:12,.0f} words/s  best {best:6.2f} s ({runs})")
    print(f"throughput TLS on / off: {min(walls[False]) / min(walls[True]):.2f}")


if __name__ == "__main__":
    main()
