"""Timers of a keyed operator: event-time and processing-time, scoped to keys.

Registered timers live in the operator's keyed state (tables ``__timers_event`` and
``__timers_processing``: key -> set of timestamps), so they are snapshotted by key group and
restored with the keys they belong to. A heap per time domain finds the next one due;
deleted timers are dropped from it lazily.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Any

from taskmanager.state.heap import HeapKeyedStateBackend

EVENT_TABLE = "__timers_event"
PROCESSING_TABLE = "__timers_processing"


class InternalTimerService:
    def __init__(self, backend: HeapKeyedStateBackend) -> None:
        self.backend = backend
        self.event = backend.table(EVENT_TABLE)
        self.processing = backend.table(PROCESSING_TABLE)
        self._event_heap: list[tuple[int, int, Any]] = []
        self._processing_heap: list[tuple[int, int, Any]] = []
        self._sequence = itertools.count()
        self.rebuild()

    def rebuild(self) -> None:
        """After a restore: the heaps from the timers in state."""
        self._event_heap = [
            (t, next(self._sequence), key) for key, times in self.event.items() for t in times
        ]
        self._processing_heap = [
            (t, next(self._sequence), key) for key, times in self.processing.items() for t in times
        ]
        heapq.heapify(self._event_heap)
        heapq.heapify(self._processing_heap)

    def register_event_time_timer(self, key: Any, timestamp: int) -> None:
        times = self.event.get(key)
        if times is None:
            times = self.event[key] = set()
        if timestamp not in times:
            times.add(timestamp)
            heapq.heappush(self._event_heap, (timestamp, next(self._sequence), key))

    def register_processing_time_timer(self, key: Any, timestamp: int) -> None:
        times = self.processing.get(key)
        if times is None:
            times = self.processing[key] = set()
        if timestamp not in times:
            times.add(timestamp)
            heapq.heappush(self._processing_heap, (timestamp, next(self._sequence), key))

    def delete_event_time_timer(self, key: Any, timestamp: int) -> None:
        _discard(self.event, key, timestamp)

    def delete_processing_time_timer(self, key: Any, timestamp: int) -> None:
        _discard(self.processing, key, timestamp)

    def due_event_timers(self, watermark: int) -> Iterator[tuple[int, Any]]:
        """Timers at or before ``watermark``, in time order; each is removed as it fires."""
        return _due(self._event_heap, self.event, watermark)

    def due_processing_timers(self, now: int) -> Iterator[tuple[int, Any]]:
        return _due(self._processing_heap, self.processing, now)

    def next_processing_time(self) -> int | None:
        heap = self._processing_heap
        while heap:
            timestamp, _, key = heap[0]
            if timestamp in self.processing.get(key, ()):
                return timestamp
            heapq.heappop(heap)
        return None


def _discard(table: dict, key: Any, timestamp: int) -> None:
    times = table.get(key)
    if times is not None:
        times.discard(timestamp)
        if not times:
            del table[key]


def _due(heap: list, table: dict, until: int) -> Iterator[tuple[int, Any]]:
    while heap and heap[0][0] <= until:
        timestamp, _, key = heapq.heappop(heap)
        times = table.get(key)
        if times is None or timestamp not in times:
            continue  # deleted
        _discard(table, key, timestamp)
        yield timestamp, key
