"""Would a codec for a declared record type beat pickling the batch? (issue 12)

    python bench/codecs.py [--repeat 7]

A batch of 1,024 word-count records ``(str, int)`` (Zipf words from ``wordcount.py``'s
vocabulary): Strom's wire codec (``taskmanager.network.encode``/``decode``: the batch pickled
at once, protocol 5, no memo) against a columnar codec such a declared type
(``Types.TUPLE([Types.STRING(), Types.INT()])``) allows: the strings joined into one UTF-8 block,
the integers as one array, zipped back into tuples. Nanoseconds a record, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from wordcount import VOCABULARY  # noqa: E402

from taskmanager.network import RECORDS, decode, encode  # noqa: E402


def columnar_encode(batch: list[tuple[str, int]]) -> tuple[bytes, bytes]:
    words, counts = zip(*batch, strict=True)
    return "\x00".join(words).encode(), array("q", counts).tobytes()


def columnar_decode(data: tuple[bytes, bytes]) -> list[tuple[str, int]]:
    counts = array("q")
    counts.frombytes(data[1])
    return list(zip(data[0].decode().split("\x00"), counts, strict=True))


def per_record_ns(call: Callable[[], object], records: int, repeat: int) -> float:
    rounds = 500
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(rounds):
            call()
        best = min(best, time.perf_counter() - started)
    return best / rounds / records * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(42)
    vocabulary = [f"w{i:05d}" for i in range(VOCABULARY)]
    weights = [1.0 / (rank + 1) for rank in range(VOCABULARY)]
    # Fresh str objects, as the job's line.split() makes them.
    words = " ".join(rng.choices(vocabulary, weights=weights, k=1024)).split()
    batch = [(word, 1) for word in words]
    element = (RECORDS, batch, None)
    wire = encode(element)
    columns = columnar_encode(batch)
    assert decode(wire)[1] == batch and columnar_decode(columns) == batch
    n = len(batch)
    ways = {
        "pickled batch (Strom)": (lambda: encode(element), lambda: decode(wire), len(wire)),
        "columnar (typed)": (
            lambda: columnar_encode(batch),
            lambda: columnar_decode(columns),
            len(columns[0]) + len(columns[1]),
        ),
    }
    print(f"1,024 (str, int) records; ns a record, best of {args.repeat}")
    for name, (encoding, decoding, size) in ways.items():
        print(
            f"{name:22} encode {per_record_ns(encoding, n, args.repeat):5.1f}"
            f"  decode {per_record_ns(decoding, n, args.repeat):5.1f}  {size / n:5.1f} bytes"
        )


if __name__ == "__main__":
    main()
