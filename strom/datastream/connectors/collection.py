"""``CollectionSource``: the bounded source behind ``env.from_collection``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cloudpickle

from strom.datastream.connectors.base import Source, SourceReader, check_subtask

__all__ = ["CollectionSource"]


class CollectionSource(Source):
    """The given values, in order. Subtask ``i`` of ``n`` reads elements ``i, i+n, i+2n, ...``
    (``from_collection`` runs it with parallelism 1, as Flink does).

    Example::

        ds = env.from_source(CollectionSource([1, 2, 3]), source_name="numbers")
    """

    def __init__(self, values: Iterable[Any]) -> None:
        self._values: list | None = list(values)
        self._blob: bytes | None = None

    @property
    def values(self) -> list:
        if self._values is None:
            self._values = cloudpickle.loads(self._blob)
        return self._values

    # A job graph is loaded once per subtask on a TaskManager: the values travel as one blob
    # that only the reading subtask unpickles (a large collection once, not once a subtask).

    def __getstate__(self) -> dict[str, Any]:
        if self._blob is None:
            self._blob = cloudpickle.dumps(self._values, protocol=5)
        return {"_values": None, "_blob": self._blob}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

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
