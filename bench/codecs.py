"""What a record batch costs on the wire, by codec (issue 12).

    python bench/codecs.py [--repeat 7]

A batch of 1,024 word-count records ``(str, int)`` (Zipf words from ``wordcount.py``'s
vocabulary), with their keys (the word, as the hash edge's partitioner hands them on):

- Strom's wire codec (``taskmanager.network.encode``/``decode``): the compact layout of
  ``strom/_records.c``, keys included (each a one-byte reference to its record's field);
- the same batch pickled at once (protocol 5, no memo), as Strom sends records the compact
  layout does not hold, and as it sent every batch before (keys left out: the consumer then
  calls its key selector once more per record, which the figure does not include);
- a columnar codec such a declared type (``Types.TUPLE([Types.STRING(), Types.INT()])``)
  would allow: the strings joined into one UTF-8 block, the integers as one array, zipped back
  into tuples.

Nanoseconds a record, best of ``--repeat``, and bytes a record.
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
from taskmanager.network.elements import _encode_records  # noqa: E402


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
    element = (RECORDS, batch, None, [word for word, _ in batch])
    wire = encode(element)
    pickled = _encode_records((batch, None))
    columns = columnar_encode(batch)
    assert wire[0] == 6, "strom._records is not built: the batch was pickled"
    assert decode(wire) == element and decode(pickled)[1] == batch
    assert columnar_decode(columns) == batch
    n = len(batch)
    ways = {
        "compact + keys (Strom)": (lambda: encode(element), lambda: decode(wire), len(wire)),
        "pickled batch": (
            lambda: _encode_records((batch, None)),
            lambda: decode(pickled),
            len(pickled),
        ),
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
