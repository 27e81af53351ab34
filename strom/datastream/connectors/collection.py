"""``CollectionSource``: the bounded source behind ``env.from_collection``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strom.datastream.connectors.base import Source, SourceReader, check_subtask

__all__ = ["CollectionSource"]


class CollectionSource(Source):
    """The given values, in order. Subtask ``i`` of ``n`` reads elements ``i, i+n, i+2n, ...``
    (``from_collection`` runs it with parallelism 1, as Flink does).

    Example::

        ds = env.from_source(CollectionSource([1, 2, 3]), source_name="numbers")
    """

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = list(values)

    def is_bounded(self) -> bool:
        return True

    def create_reader(self, subtask_index: int, parallelism: int) -> CollectionReader:
        check_subtask(subtask_index, parallelism)
        return CollectionReader(self.values[subtask_index::parallelism])

    def __repr__(self) -> str:
        return f"CollectionSource({len(self.values)} values)"


class CollectionReader(SourceReader):
    """Reads a list; its position is the number of values read."""

    def __init__(self, values: list) -> None:
        self._values = values
        self._next = 0

    def read_batch(self, max_records: int) -> list | None:
        start = self._next
        if start >= len(self._values):
            return None
        end = start + max(1, max_records)
        self._next = min(end, len(self._values))
        return self._values[start:end]

    def snapshot_position(self) -> int:
        return self._next

    def restore_position(self, position: object) -> None:
        if not isinstance(position, int) or not 0 <= position <= len(self._values):
            raise ValueError(f"invalid CollectionSource position {position!r}")
        self._next = position
