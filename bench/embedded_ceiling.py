"""How fast can anything that calls word count's user functions run, against the inline loop?

    python bench/embedded_ceiling.py [--repeat 5]

Issue 12 asks embedded Strom at p=1 for >= 0.50 of the word count written inline by hand
(``wordcount.inline_loop``). Strom has to call the job's functions (``split``, ``word_of``,
``add``, the sink's ``invoke``) for every line or word. This measures, in one process and the
same run, over the words of ``wordcount.py`` held in memory (no file, no Strom):

- the inline loop;
- the plain loop: the same functions called record by record (``wordcount.plain_loop``);
- the same functions run batch at a time, as Strom's operators run them (a flat_map over a
  batch of lines into a list, the keys of that list, ``_speedups.reduce_batch``, the sink over
  the results), at several batch sizes, and nothing else: no task, channel or thread.

Each is printed as a share of the inline loop's speed: what an engine calling these functions
could reach at best.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import wordcount  # noqa: E402
from ceiling import count_words as plain  # noqa: E402  (the plain loop, over lines in memory)
from wordcount import Drop, add, split, word_of  # noqa: E402

from strom import _speedups  # noqa: E402

#: words a batch holds, the record writer's (1,024) and a reader's most (4,096) among them
BATCH_WORDS = (100, 400, 1_000, 4_000, 16_000)


def make_lines() -> list[str]:
    """``wordcount.make_input``'s lines, in memory."""
    rng = random.Random(wordcount.SEED)
    vocabulary = [f"w{i:05d}" for i in range(wordcount.VOCABULARY)]
    weights = [1.0 / (rank + 1) for rank in range(wordcount.VOCABULARY)]
    words = rng.choices(vocabulary, weights=weights, k=wordcount.WORDS)
    step = wordcount.WORDS_PER_LINE
    return [" ".join(words[start : start + step]) for start in range(0, len(words), step)]


def inline(lines: list[str]) -> None:
    counts: dict[str, int] = {}
    for line in lines:
        for word in line.split():
            count = counts.get(word, 0) + 1
            counts[word] = count
            _ = (word, count)


def batched(lines: list[str], batch_lines: int) -> None:
    table: dict = {}
    invoke = Drop().invoke
    for start in range(0, len(lines), batch_lines):
        pairs: list = []
        for line in lines[start : start + batch_lines]:
            pairs.extend(split(line))
        keys = [word_of(pair) for pair in pairs]
        for result in _speedups.reduce_batch(add, table, pairs, keys):
            invoke(result, None)


def timed(run, *args) -> float:
    started = time.perf_counter()
    run(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description="word count's ceiling for an engine")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if _speedups is None:
        sys.exit("strom._speedups is not built (pip install -e .)")
    lines = make_lines()
    runs = [("inline loop (by hand)", inline, ()), ("plain loop (same functions)", plain, ())]
    per_line = wordcount.WORDS_PER_LINE
    runs += [(f"batches of {w:,} words", batched, (w // per_line,)) for w in BATCH_WORDS]
    # Interleaved rounds: a machine slowing down or speeding up affects all alike.
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for _ in range(args.repeat):
        for name, run, extra in runs:
            times[name].append(timed(run, lines, *extra))
    inline_s = min(times["inline loop (by hand)"])
    print(f"words: {wordcount.WORDS:,}, in memory; best of {args.repeat}")
    for name, _, _ in runs:
        seconds = min(times[name])
        print(f"{name:30s} {seconds:6.3f} s  {inline_s / seconds:5.2f} of the inline loop")


if __name__ == "__main__":
    main()
