"""Word-count throughput: Strom against a plain Python loop doing the same work, same run.

    python bench/wordcount.py                 # embedded, parallelism 1 (target: >= 0.50 of inline)
    python bench/wordcount.py --cluster 2     # also a 2-TaskManager cluster at parallelism 2

The input is 2,000,000 words (a 10,000-word vocabulary, Zipf-skewed, 10 words a line) made
from a fixed seed and written to a file. The job reads the file, splits lines (flat_map),
keys by word, keeps a running count (reduce) and hands every result to a sink that drops it.
Two baselines run in this process: the work written inline by hand (the target's baseline)
and the very same user functions called in one loop. The script prints the throughputs and
the ratios; machines are noisy, so only the ratios count.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from strom.datastream import (  # noqa: E402
    SinkFunction,
    StreamExecutionEnvironment,
    execution_context,  # noqa: E402
)
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster_run(path: Path, taskmanagers: int, work: Path) -> float:
    """Start a JobManager and TaskManagers as processes; run the job at that parallelism."""
    conf = work / "conf"
    conf.mkdir()
    rpc, rest = _free_port(), _free_port()
    (conf / "strom-conf.yaml").write_text(
        f"jobmanager.rpc.address: 127.0.0.1\njobmanager.rpc.port: {rpc}\nrest.port: {rest}\n"
        "taskmanager.numberOfTaskSlots: 1\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), STROM_CONF_DIR=str(conf))
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "jobmanager"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        from client.gateway import ClusterClient

        deadline = time.monotonic() + 30
        for _ in range(taskmanagers):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "taskmanager"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with ClusterClient(f"127.0.0.1:{rpc}") as cluster:
            while True:
                try:
                    if cluster.overview().taskmanagers == taskmanagers:
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not come up")
                time.sleep(0.05)
        context = execution_context.ExecutionContext(
            target="remote", jobmanager=f"127.0.0.1:{rpc}", parallelism=taskmanagers
        )
        previous = execution_context.set_current(context)
        try:
            return strom_job(path, taskmanagers)
        finally:
            execution_context.set_current(previous)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description="Strom word-count benchmark")
    parser.add_argument("--cluster", type=int, default=0, help="also run on N TaskManagers")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strom-bench-") as tmp:
        work = Path(tmp)
        path = work / "words.txt"
        make_input(path)
        # Interleave the runs so that a machine slowing down or speeding up (these are
        # shared machines) affects both sides alike; the best run of each counts.
        plain = inline = embedded = float("inf")
        for _ in range(args.repeat):
            plain = min(plain, plain_loop(path))
            inline = min(inline, inline_loop(path))
            embedded = min(embedded, strom_job(path, 1))
        print(f"words: {WORDS:,}")
        print(f"plain loop (same functions): {WORDS / plain:12,.0f} words/s")
        print(f"inline loop (by hand):       {WORDS / inline:12,.0f} words/s")
        print(f"strom embedded p=1:          {WORDS / embedded:12,.0f} words/s")
        print(f"ratio strom/inline (p=1): {inline / embedded:.2f}  (target >= 0.50)")
        print(f"ratio strom/plain  (p=1): {plain / embedded:.2f}")
        if args.cluster:
            clustered = cluster_run(path, args.cluster, work)
            print(
                f"strom cluster p={args.cluster} ({args.cluster} TaskManagers): "
                f"{WORDS / clustered:12,.0f} words/s; ratio to inline {inline / clustered:.2f}, "
                f"to embedded p=1 {embedded / clustered:.2f}"
            )


if __name__ == "__main__":
    main()
