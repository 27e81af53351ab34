"""``NumberSequenceSource``, as in ``pyflink.datastream.connectors.number_seq``."""

from __future__ import annotations

from strom.datastream.connectors.base import (
    FINISHED_POSITION,
    Source,
    SourceReader,
    check_subtask,
)

__all__ = ["NumberSequenceSource"]


class NumberSequenceSource(Source):
    """The integers from ``start`` to ``end``, both included; bounded and parallel. Each
    subtask reads one contiguous range, in order.

    Example::

        ds = env.from_source(NumberSequenceSource(1, 1000), WatermarkStrategy.no_watermarks(),
                             "numbers")
    """

    def __init__(self, start: int, end: int) -> None:
        if isinstance(start, bool) or isinstance(end, bool):
            raise TypeError("NumberSequenceSource takes ints")
        start, end = int(start), int(end)
        if start > end:
            raise ValueError(f"NumberSequenceSource: start ({start}) must be <= end ({end})")
        self.start = start
        self.end = end

    def get_start(self) -> int:
        return self.start

    def get_end(self) -> int:
        return self.end

    def is_bounded(self) -> bool:
        return True

    def create_reader(self, subtask_index: int, parallelism: int) -> NumberSequenceReader:
        check_subtask(subtask_index, parallelism)
        count = self.end - self.start + 1
        low = self.start + count * subtask_index // parallelism
        high = self.start + count * (subtask_index + 1) // parallelism
        return NumberSequenceReader(low, high)

    def __repr__(self) -> str:
        return f"NumberSequenceSource({self.start}, {self.end})"


class NumberSequenceReader(SourceReader):
    """Reads ``range(low, high)``; its position is the next number."""

    def __init__(self, low: int, high: int) -> None:
        self._low = low
        self._next = low
        self._high = high

    def read_batch(self, max_records: int) -> list | None:
        current = self._next
        if current >= self._high:
            return None
        stop = min(current + max(1, max_records), self._high)
        self._next = stop
        return list(range(current, stop))

    def snapshot_position(self) -> int:
        return self._next

    def restore_position(self, position: object) -> None:
        if not isinstance(position, int) or not self._low <= position <= self._high:
            raise ValueError(
                f"position {position!r} is outside this reader's range [{self._low}, {self._high})"
            )
        self._next = position


class _RangesReader(SourceReader):
    """Reads several ranges in turn; made when a sequence is restored at a new parallelism.
    Its position is the list of ``(next, high)`` still to read."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        self._ranges = [(low, high) for low, high in ranges if low < high]

    def read_batch(self, max_records: int) -> list | None:
        while self._ranges and self._ranges[0][0] >= self._ranges[0][1]:
            self._ranges.pop(0)
        if not self._ranges:
            return None
        low, high = self._ranges[0]
        stop = min(low + max(1, max_records), high)
        self._ranges[0] = (stop, high)
        return list(range(low, stop))

    def snapshot_position(self) -> list[tuple[int, int]]:
        return list(self._ranges)

    def restore_position(self, position: object) -> None:
        self._ranges = [tuple(r) for r in position]  # type: ignore[union-attr]


def _remaining(source: NumberSequenceSource, old: int, parallelism: int, position) -> list:
    if position == FINISHED_POSITION:
        return []
    if isinstance(position, list):
        return [tuple(r) for r in position]
    count = source.end - source.start + 1
    high = source.start + count * (old + 1) // parallelism
    low = source.start + count * old // parallelism
    return [(low if position is None else int(position), high)]


def _restore_reader(
    self: NumberSequenceSource,
    positions: dict[int, object],
    old_parallelism: int,
    subtask_index: int,
    parallelism: int,
) -> SourceReader:
    """A reader of what old subtasks had left, for a restore at another parallelism: the old
    subtasks' remaining ranges are dealt round-robin to the new subtasks."""
    check_subtask(subtask_index, parallelism)
    if old_parallelism == parallelism:  # each subtask goes on with what it had left
        own = positions.get(subtask_index)
        return _RangesReader(_remaining(self, subtask_index, parallelism, own))
    ranges: list = []
    for old in range(old_parallelism):
        ranges.extend(_remaining(self, old, old_parallelism, positions.get(old)))
    return _RangesReader(ranges[subtask_index::parallelism])


NumberSequenceSource.restore_reader = _restore_reader
