"""What two threads under one GIL cost a keyed job, against one thread doing the same steps.

    python bench/handoff.py [--repeat 3]

Word count's per-record work (``wordcount.py``'s input and user functions) in the shape of
Strom's p=1 runtime: a *source step* (split a batch of lines with the user's ``split``, compute
the keys with ``word_of``) and a *keyed step* (running count with ``add``, every result to the
sink). Run four ways in this process, interleaved, best and median of ``--repeat``:

- ``one thread``: the steps one after the other on one thread, batch by batch (the floor for any
  runtime that keeps batches);
- ``two threads``: the source step on one thread, the keyed step on another, a bounded queue of
  16 batches between them (Strom's two tasks of one slot process and their input gate);
- ``two threads, yield``: the same, the producer giving up the GIL (``time.sleep(0)``) after
  each put, so the consumer takes each batch while its records are in cache;
- ``two threads, 1,024 lines``: batches ten times larger (what a source read is).

Issue 12: why Strom's p=1 costs about twice the plain loop while its Python work is the same.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wordcount import Drop, add, make_input, split, word_of  # noqa: E402

_MISSING = object()


def source_step(lines: list[str]) -> tuple[list, list]:
    out: list = []
    extend = out.extend
    for line in lines:
        extend(split(line))
    return out, [word_of(value) for value in out]


def keyed_step(values: list, keys: list, table: dict, sink: Drop, reduce=add) -> None:
    """A running ``reduce`` per key over a batch, every result to ``sink``: what Strom's keyed
    reduce and sink operators do (``exchange_ceiling.py`` uses it too)."""
    get = table.get
    results = []
    append = results.append
    for value, key in zip(values, keys, strict=True):
        current = get(key, _MISSING)
        if current is not _MISSING:
            value = reduce(current, value)
        table[key] = value
        append(value)
    invoke = sink.invoke
    for value in results:
        invoke(value, None)


def one_thread(lines: list[str], batch: int) -> None:
    table: dict = {}
    sink = Drop()
    for start in range(0, len(lines), batch):
        keyed_step(*source_step(lines[start : start + batch]), table, sink)


def two_threads(lines: list[str], batch: int, yield_after_put: bool) -> None:
    batches: queue.Queue = queue.Queue(16)
    table: dict = {}
    sink = Drop()

    def consume() -> None:
        while (item := batches.get()) is not None:
            keyed_step(*item, table, sink)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for start in range(0, len(lines), batch):
        batches.put(source_step(lines[start : start + batch]))
        if yield_after_put:
            time.sleep(0)
    batches.put(None)
    consumer.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strom-bench-") as folder:
        path = Path(folder) / "words.txt"
        make_input(path)
        lines = path.read_text().splitlines()
    ways: dict[str, Callable[[], None]] = {
        "one thread, 102 lines a batch": lambda: one_thread(lines, 102),
        "two threads": lambda: two_threads(lines, 102, False),
        "two threads, yield after put": lambda: two_threads(lines, 102, True),
        "two threads, 1,024 lines a batch": lambda: two_threads(lines, 1024, False),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeat):
        for name, way in ways.items():
            started = time.process_time()
            way()
            seconds[name].append(time.process_time() - started)
    base = min(seconds["one thread, 102 lines a batch"])
    for name, runs in seconds.items():
        print(
            f"{name:34} best {min(runs):.3f} CPU-s, median {statistics.median(runs):.3f} "
            f"({min(runs) / base:.2f}x one thread)"
        )


if __name__ == "__main__":
    main()
