"""Batch word count: Strom in BATCH mode against a plain ``collections.Counter`` loop.

    python bench/batch.py               # embedded, parallelism 1 (the target: >= 0.50)
    python bench/batch.py --repeat 7
    python bench/batch.py --no-stages   # without the run on a 2-slot TaskManager

The input is the 2,000,000 words of ``bench/wordcount.py`` (a 10,000-word vocabulary,
Zipf-skewed, 10 words a line, fixed seed), written to a file. The job reads the file, turns
each line into ``(word, 1)`` pairs (flat_map), keys by the word and sums, in BATCH execution
mode, so only the 10,000 final counts come back (``execute_and_collect``). The baseline
counts the same file with a ``Counter`` in one loop in this process; both results are
compared. For reference the script also times the shape of PyFlink's word_count example
(Python functions to split and to add, ``reduce``), whose own functions cost about as much as
the whole Counter loop. Runs are interleaved and the best of each counts (the machines are
shared and noisy); the script prints throughputs and ratios Strom/plain.

Then the same job runs at parallelism 4 on a cluster of one TaskManager with 2 slots (real
processes, ``bench/cluster.py``): BATCH runs it stage by stage (the reading stage, then the
counting one, two subtasks at a time, over blocking result partitions), and its counts must
be the Counter's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from itertools import repeat  # noqa: E402
from operator import itemgetter  # noqa: E402

from cluster import local_cluster  # noqa: E402
from wordcount import WORDS, add, make_input, split, word_of  # noqa: E402

from strom.datastream import RuntimeExecutionMode, StreamExecutionEnvironment  # noqa: E402
from strom.datastream.connectors.file_system import FileSource, StreamFormat  # noqa: E402

#: CPU seconds (all threads of this process) of the last run of each kind
cpu_seconds: dict[str, float] = {}


def counter_loop(path: Path) -> tuple[float, Counter]:
    """The plain baseline: a Counter over the words of every line; returns seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    counts: Counter = Counter()
    with open(path) as handle:
        for line in handle:
            for word in line.split():
                counts[word] += 1
    cpu_seconds["plain"] = time.process_time() - cpu
    return time.perf_counter() - started, counts


def pairs(line: str):
    """The words of a line as ``(word, 1)`` pairs."""
    return zip(line.split(), repeat(1))


def strom_batch_job(
    path: Path, pyflink_shape: bool = False, parallelism: int = 1
) -> tuple[float, dict]:
    """The BATCH word count (embedded, or on the cluster of the current execution context);
    seconds and the counts it returned."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.set_parallelism(parallelism)
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(path)).build()
    lines = env.from_source(source, None, "words")
    if pyflink_shape:
        counts = lines.flat_map(split).key_by(word_of).reduce(add)
    else:
        counts = lines.flat_map(pairs).key_by(itemgetter(0)).sum(1)
    started, cpu = time.perf_counter(), time.process_time()
    with counts.execute_and_collect("batch-wordcount-bench") as results:
        finals = dict(results)  # the 10,000 final counts come back to this process
    cpu_seconds["strom"] = time.process_time() - cpu  # embedded: the whole mini-cluster's
    return time.perf_counter() - started, finals


def main() -> None:
    parser = argparse.ArgumentParser(description="Strom BATCH word-count benchmark")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the best counts")
    parser.add_argument(
        "--no-stages", action="store_true", help="skip the p=4 run on one 2-slot TaskManager"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strom-bench-") as tmp:
        path = Path(tmp) / "words.txt"
        make_input(path)
        plain = embedded = shaped = float("inf")
        plain_cpu = embedded_cpu = float("inf")
        for _ in range(args.repeat):
            seconds, expected = counter_loop(path)
            plain = min(plain, seconds)
            plain_cpu = min(plain_cpu, cpu_seconds["plain"])
            for pyflink_shape in (False, True):
                seconds, counts = strom_batch_job(path, pyflink_shape)
                if counts != dict(expected):
                    raise SystemExit("the BATCH job's counts differ from the Counter's")
                if pyflink_shape:
                    shaped = min(shaped, seconds)
                else:
                    embedded = min(embedded, seconds)
                    embedded_cpu = min(embedded_cpu, cpu_seconds["strom"])
        print(f"words: {WORDS:,}")
        print(f"Counter loop:                  {WORDS / plain:12,.0f} words/s ({plain:.3f} s)")
        print(
            f"strom BATCH embedded p=1:      {WORDS / embedded:12,.0f} words/s "
            f"({embedded:.3f} s)  ratio {plain / embedded:.2f} (target >= 0.50)"
        )
        print(
            f"  CPU seconds (every thread of the process): Counter {plain_cpu:.3f}, strom "
            f"{embedded_cpu:.3f}, ratio {plain_cpu / embedded_cpu:.2f} (steadier on a busy "
            "machine than wall time)"
        )
        print(
            f"  PyFlink example's shape:     {WORDS / shaped:12,.0f} words/s "
            f"({shaped:.3f} s)  ratio {plain / shaped:.2f} (reference)"
        )
        if not args.no_stages:
            with local_cluster(1, Path(tmp), slots=2):
                staged = float("inf")
                for _ in range(max(1, args.repeat // 2)):
                    seconds, counts = strom_batch_job(path, parallelism=4)
                    if counts != dict(expected):
                        raise SystemExit("the stage-by-stage run's counts differ")
                    staged = min(staged, seconds)
            print(
                f"strom BATCH p=4 on 1 TaskManager x 2 slots, stage by stage: "
                f"{WORDS / staged:12,.0f} words/s ({staged:.3f} s), same counts"
            )


if __name__ == "__main__":
    main()
