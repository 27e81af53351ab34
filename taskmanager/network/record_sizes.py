"""How many records make a batch: at most ``BATCH_SIZE``, and about ``BATCH_BYTES`` at most.

Batches were bounded by count only, so a batch of 1,024 records of 100 KB was 100 MB, and a
gate channel's sixteen of them 1.6 GB: a slow consumer of large records held gigabytes in its
TaskManager. Flink bounds in-flight data by bytes (its network buffers); a batch here is a
Python list, whose bytes are not known without serializing it, so its size is estimated from
a few sampled records (``estimated_size``), once per batch and never per record.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["BATCH_BYTES", "batch_limit", "estimated_size"]

#: about how many bytes of records a batch carries at most (records of up to 1 KB: no limit
#: below the count, 1,024)
BATCH_BYTES = 1 << 20

_FLAT = (str, bytes, bytearray)
_NUMBERS = (int, float, bool, type(None))
_OBJECT = 56  # a small container's own size, roughly
_SAMPLED_ITEMS = 8  # of a container, the first this many stand for the others


def estimated_size(value: Any, depth: int = 0) -> int:
    """The bytes ``value`` stands for, roughly: exact for str and bytes (their length), from
    the first few items for containers (two levels deep), ``sys.getsizeof`` for the rest."""
    kind = type(value)
    if kind in _FLAT:
        return _OBJECT + len(value)
    if kind in _NUMBERS:
        return 32
    if kind is tuple or kind is list or kind is dict:
        n = len(value)
        if n == 0 or depth >= 2:
            return _OBJECT + 16 * n
        if kind is dict:
            items = [item for pair in list(value.items())[:_SAMPLED_ITEMS] for item in pair]
            sampled = len(items) // 2
        else:
            items = value if n <= _SAMPLED_ITEMS else value[:_SAMPLED_ITEMS]
            sampled = len(items)
        inner = sum(estimated_size(item, depth + 1) for item in items)
        return _OBJECT + 8 * n + inner * n // sampled
    fields = getattr(value, "_values", None)  # strom.common.Row
    if isinstance(fields, list) and depth < 2:
        return estimated_size(fields, depth + 1)
    nbytes = getattr(value, "nbytes", None)  # memoryview, array, numpy
    if isinstance(nbytes, int):
        return _OBJECT + nbytes
    try:
        return sys.getsizeof(value)
    except TypeError:  # pragma: no cover - an object that refuses getsizeof
        return _OBJECT


def batch_limit(values: list, most: int) -> int:
    """How many records of ``values``' kind a batch may hold: ``most``, or fewer when the
    records are large. Samples the first, middle and last record."""
    n = len(values)
    if n == 0:
        return most
    sampled = (values[0], values[n // 2], values[-1])
    try:
        largest = max(estimated_size(value) for value in sampled)
    except Exception:  # a user's object whose attributes raise: no estimate, no limit
        return most
    return max(1, min(most, BATCH_BYTES // max(1, largest)))
