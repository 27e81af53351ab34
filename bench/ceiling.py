"""What this machine itself gives a job's work in P processes against one: a speed-up's ceiling.

    python bench/ceiling.py [--job keyed|wordcount] [--processes 2] [--rounds 7] [--pin]

Issue 12's speed-up targets assume that two processes on this 2-core machine do twice the
work of one. Whether they do depends on the host: its other tenants, and whether the two
vCPUs share a physical core. This runs a job's own user functions in a plain loop (no Strom,
no exchange between the processes: each process keys and counts only its own share) in one
process, then split over P processes at once, and prints the wall times and their ratio. No
runtime that runs the job on P processes can beat that ratio in the same minutes; ``ab.py``
measures it in every round beside the jobs.

Each process reads its share of the input lines into memory, says it is ready, and starts on
a word from this process, so interpreter start-up and reading are not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

# Imported here, not in the timed loops: they import Strom's API for their sinks.
import keyed_cpu  # noqa: E402
import wordcount  # noqa: E402


def count_words(lines: list[str]) -> None:
    """wordcount.py's job as one loop over its user functions (its ``plain_loop``)."""
    split, word_of, add = wordcount.split, wordcount.word_of, wordcount.add
    counts: dict = {}
    sink = wordcount.Drop()
    for line in lines:
        for pair in split(line):
            key = word_of(pair)
            current = counts.get(key)
            result = pair if current is None else add(current, pair)
            counts[key] = result
            sink.invoke(result, None)


def _keyed_sums(lines: list[str]) -> None:
    """keyed_cpu.py's job as one loop over its user functions."""
    work, key_of, add = keyed_cpu.work, keyed_cpu.key_of, keyed_cpu.add
    sums: dict = {}
    sink = keyed_cpu.Drop()
    for line in lines:
        record = work(line)
        key = key_of(record)
        current = sums.get(key)
        result = record if current is None else add(current, record)
        sums[key] = result
        sink.invoke(result, None)


LOOPS = {"wordcount": count_words, "keyed": _keyed_sums}


def _share(path: Path, index: int, processes: int) -> list[str]:
    """Lines ``index``-th of ``processes`` contiguous shares of the file."""
    lines = path.read_text().splitlines()
    size = len(lines)
    return lines[index * size // processes : (index + 1) * size // processes]


def _worker(job: str, path: Path, index: int, processes: int) -> None:
    lines = _share(path, index, processes)
    loop = LOOPS[job]
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    loop(lines)
    print("done", flush=True)


def wall(job: str, path: Path, processes: int, pin: bool = False) -> float:
    """Seconds from the word go until the last of ``processes`` processes ran its share.
    With ``pin``, process k runs on CPU k only (as ``cluster.local_cluster(pin=True)`` pins
    TaskManager k)."""
    workers = []
    try:
        for index in range(processes):
            cpus = {index % (os.cpu_count() or 1)}
            workers.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", job, str(path), str(index)]
                    + [str(processes)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    preexec_fn=(lambda c=cpus: os.sched_setaffinity(0, c)) if pin else None,
                )
            )
        return go(workers)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def go(workers: list[subprocess.Popen]) -> float:
    """Seconds from the word go until every worker said it is done; each worker first says it
    is ready (its share read), so start-up and reading are not timed."""
    for worker in workers:
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("a ceiling worker failed before it was ready")
    started = time.perf_counter()
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        if worker.stdout.readline().strip() != "done":
            raise RuntimeError("a ceiling worker failed")
    return time.perf_counter() - started


def make_input(job: str, path: Path) -> None:
    if job == "wordcount":
        wordcount.make_input(path)
    else:
        path.write_text("".join(f"{i:>63}\n" for i in range(200_000)))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        job, path, index, processes = sys.argv[2:6]
        _worker(job, Path(path), int(index), int(processes))
        return
    parser = argparse.ArgumentParser(description="A job's work in P processes against one")
    parser.add_argument("--job", choices=sorted(LOOPS), default="keyed")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pin", action="store_true", help="process k on CPU k only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strom-ceiling-") as tmp:
        path = Path(tmp) / "input.txt"
        make_input(args.job, path)
        ones, manys = [], []
        for _ in range(args.rounds):
            ones.append(wall(args.job, path, 1, args.pin))
            manys.append(wall(args.job, path, args.processes, args.pin))
    one, many = statistics.median(ones), statistics.median(manys)
    print(f"{args.job}, plain loop, {args.rounds} rounds; median (least)")
    print(f"  1 process:   {one:.3f} s ({min(ones):.3f}); by round {_walls(ones)}")
    least = min(manys)
    print(f"  {args.processes} processes: {many:.3f} s ({least:.3f}); by round {_walls(manys)}")
    print(f"  speed-up {one / many:.2f} (of medians); by round {_ratios(ones, manys)}")


def _walls(walls: list[float]) -> str:
    return " ".join(f"{w:.2f}" for w in walls)


def _ratios(ones: list[float], manys: list[float]) -> str:
    return " ".join(f"{a / b:.2f}" for a, b in zip(ones, manys, strict=True))


if __name__ == "__main__":
    main()
