"""The heap keyed state backend: per-state dicts keyed by the record key.

The hot path is one dict lookup: nothing tracks key groups per access. A subtask only holds
keys of the key groups it owns (its records come through a key-group partitioner), so a
snapshot is the subtask's tables as they are, and the key group of every entry follows from its
key (DESIGN.md §4). A restore takes a snapshot whole when all of the key groups its subtask
owned are now its own (always, at the same parallelism), skips it when none are, and otherwise
keeps the entries of its own key groups one by one, which is what lets state be restored at
another parallelism.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cloudpickle

from strom.datastream import state as api
from strom.graph.partitioning import key_group_of, key_group_range

_MISSING = object()


def _function(function: Any, method: str) -> Callable[..., Any]:
    bound = getattr(function, method, None)
    return bound if callable(bound) else function


class HeapKeyedStateBackend:
    """All keyed state of one operator in one subtask; ``current_key`` scopes every access."""

    def __init__(
        self, max_parallelism: int, ttl_time_provider: Callable[[], int] | None = None
    ) -> None:
        self.max_parallelism = max_parallelism
        self.current_key: Any = None
        #: the clock of state TTL in epoch ms; None is processing time (see ttl.py)
        self.ttl_time_provider = ttl_time_provider
        self.tables: dict[str, dict[Any, Any]] = {}
        self._states: dict[str, api.State] = {}

    def table(self, name: str) -> dict[Any, Any]:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = {}
        return table

    def get_state(self, descriptor: api.StateDescriptor) -> api.State:
        """The state object for a descriptor; the same object for the same name. A descriptor
        with an enabled ``StateTtlConfig`` gets a state that enforces it (``ttl.py``)."""
        name = descriptor.get_name()
        existing = self._states.get(name)
        if existing is not None:
            return existing
        table = self.table(name)
        ttl_config = descriptor.ttl_config
        if ttl_config is not None and ttl_config.is_enabled():
            from taskmanager.state.ttl import ttl_state  # ttl.py builds on this module

            state: api.State = ttl_state(self, descriptor, table)
        elif isinstance(descriptor, api.ValueStateDescriptor):
            state = HeapValueState(self, table)
        elif isinstance(descriptor, api.ListStateDescriptor):
            state = HeapListState(self, table)
        elif isinstance(descriptor, api.MapStateDescriptor):
            state = HeapMapState(self, table)
        elif isinstance(descriptor, api.ReducingStateDescriptor):
            state = HeapReducingState(self, table, descriptor)
        elif isinstance(descriptor, api.AggregatingStateDescriptor):
            state = HeapAggregatingState(self, table, descriptor)
        else:
            raise TypeError(f"unsupported state descriptor {type(descriptor).__name__}")
        self._states[name] = state
        return state

    # -------------------------------------------------------------- snapshots

    def snapshot(self) -> KeyedSnapshot:
        """The state as it is at the barrier, serialized here on the task thread.

        Pickling holds the GIL, so it stops every task thread of the process for as long
        wherever it runs; doing it here costs the stream no more than in the writer thread, and
        saves copying the tables first. It also makes the snapshot exact: values that change in
        place later (lists, maps, timers, window contents) cannot reach it. If no way of
        serializing works, the snapshot carries the error: the checkpoint is declined and the
        stream goes on."""
        error: Exception | None = None
        for serialize in _SERIALIZERS:
            try:
                return KeyedSnapshot(serialize(self.tables), self.max_parallelism)
            except Exception as failure:
                error = failure
        return KeyedSnapshot(None, self.max_parallelism, error)

    def restore(self, snapshots: Iterable[StoredKeyedState], groups: range) -> None:
        """Load the entries of the key groups in ``groups`` from earlier subtasks' snapshots."""
        for snapshot in snapshots:
            stored = snapshot.stored
            if isinstance(stored, tuple) and stored[:1] == (SNAPSHOT_FORMAT,):
                self._restore_tables(stored, snapshot.owned_key_groups(), groups)
                continue
            # The form before SNAPSHOT_FORMAT: {state name: {key group: {key: value}}}
            for name, by_group in stored.items():
                table = self.table(name)
                for group, entries in by_group.items():
                    if group in groups:
                        table.update(entries)

    def _restore_tables(self, stored: tuple, owned: range | None, groups: range) -> None:
        _, max_parallelism, data = stored
        known = owned is not None and max_parallelism == self.max_parallelism
        if known and (owned.stop <= groups.start or owned.start >= groups.stop):
            return  # none of its key groups is ours: not even unpickled
        tables: dict[str, dict[Any, Any]] = pickle.loads(data)
        whole = known and groups.start <= owned.start and owned.stop <= groups.stop
        for name, entries in tables.items():
            table = self.table(name)
            if whole:
                table.update(entries)
                continue
            maxp = self.max_parallelism
            table.update(
                {key: value for key, value in entries.items() if key_group_of(key, maxp) in groups}
            )


def _pickle_without_memo(tables: dict[str, dict[Any, Any]]) -> bytes:
    """Pickle without remembering every object written: about three times as fast on many
    small values. Each entry is written on its own, as Flink serializes state per entry (two
    entries sharing one object get a copy each when restored); a cycle raises ValueError."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True
    pickler.dump(tables)
    return buffer.getvalue()


_SERIALIZERS: tuple[Callable[[Any], bytes], ...] = (
    _pickle_without_memo,
    lambda tables: pickle.dumps(tables, protocol=5),  # cycles in state
    lambda tables: cloudpickle.dumps(tables, protocol=5),  # e.g. a lambda in state
)

#: Tags the stored form of a keyed snapshot, ``(SNAPSHOT_FORMAT, max parallelism, data)``,
#: where ``data`` is the pickle of ``{state name: {key: value}}``.
SNAPSHOT_FORMAT = "strom.heap-keyed/2"


class KeyedSnapshot:
    """Keyed state serialized at a barrier, waiting to be written with the task's snapshot."""

    def __init__(
        self, data: bytes | None, max_parallelism: int, error: Exception | None = None
    ) -> None:
        self.data, self.max_parallelism, self.error = data, max_parallelism, error

    def stored(self) -> tuple[str, int, bytes]:
        """The form kept in the checkpoint; raises what made serializing the state fail."""
        if self.error is not None:
            raise self.error
        return (SNAPSHOT_FORMAT, self.max_parallelism, self.data)


@dataclass(frozen=True)
class StoredKeyedState:
    """One earlier subtask's keyed snapshot, as a restore finds it in a checkpoint."""

    subtask: int
    parallelism: int
    stored: Any

    def owned_key_groups(self) -> range | None:
        """The key groups the subtask owned, which are all its snapshot can hold."""
        stored = self.stored
        if not (isinstance(stored, tuple) and stored[:1] == (SNAPSHOT_FORMAT,)):
            return None
        return key_group_range(self.subtask, self.parallelism, stored[1])


class HeapValueState(api.ValueState):
    def __init__(self, backend: HeapKeyedStateBackend, table: dict) -> None:
        self._backend, self._table = backend, table

    def value(self) -> Any:
        return self._table.get(self._backend.current_key)

    def update(self, value: Any) -> None:
        if value is None:
            self._table.pop(self._backend.current_key, None)
        else:
            self._table[self._backend.current_key] = value

    def clear(self) -> None:
        self._table.pop(self._backend.current_key, None)


class HeapListState(api.ListState):
    def __init__(self, backend: HeapKeyedStateBackend, table: dict) -> None:
        self._backend, self._table = backend, table

    def get(self) -> Iterable[Any]:
        return list(self._table.get(self._backend.current_key, ()))

    def add(self, value: Any) -> None:
        if value is None:
            raise ValueError("ListState.add(None) is not allowed")
        self._table.setdefault(self._backend.current_key, []).append(value)

    def add_all(self, values: Iterable[Any]) -> None:
        for value in values:
            self.add(value)

    def update(self, values: Iterable[Any]) -> None:
        items = list(values or ())
        if items:
            self._table[self._backend.current_key] = items
        else:
            self.clear()

    def clear(self) -> None:
        self._table.pop(self._backend.current_key, None)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.get())


class HeapMapState(api.MapState):
    def __init__(self, backend: HeapKeyedStateBackend, table: dict) -> None:
        self._backend, self._table = backend, table

    def _map(self, create: bool = False) -> dict:
        key = self._backend.current_key
        entries = self._table.get(key)
        if entries is None:
            entries = {}
            if create:
                self._table[key] = entries
        return entries

    def get(self, key: Any) -> Any:
        return self._map().get(key)

    def put(self, key: Any, value: Any) -> None:
        self._map(create=True)[key] = value

    def put_all(self, dict_value: dict) -> None:
        self._map(create=True).update(dict_value)

    def remove(self, key: Any) -> None:
        entries = self._map()
        entries.pop(key, None)
        if not entries:
            self.clear()

    def contains(self, key: Any) -> bool:
        return key in self._map()

    def items(self) -> Iterable[tuple[Any, Any]]:
        return list(self._map().items())

    def keys(self) -> Iterable[Any]:
        return list(self._map().keys())

    def values(self) -> Iterable[Any]:
        return list(self._map().values())

    def is_empty(self) -> bool:
        return not self._map()

    def clear(self) -> None:
        self._table.pop(self._backend.current_key, None)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class HeapReducingState(api.ReducingState):
    def __init__(self, backend: HeapKeyedStateBackend, table: dict, descriptor: Any) -> None:
        self._backend, self._table = backend, table
        self._reduce = _function(descriptor.get_reduce_function(), "reduce")

    def get(self) -> Any:
        return self._table.get(self._backend.current_key)

    def add(self, value: Any) -> None:
        key = self._backend.current_key
        current = self._table.get(key, _MISSING)
        self._table[key] = value if current is _MISSING else self._reduce(current, value)

    def clear(self) -> None:
        self._table.pop(self._backend.current_key, None)


class HeapAggregatingState(api.AggregatingState):
    def __init__(self, backend: HeapKeyedStateBackend, table: dict, descriptor: Any) -> None:
        self._backend, self._table = backend, table
        self._function = descriptor.get_agg_function()

    def get(self) -> Any:
        key = self._backend.current_key
        if key not in self._table:
            return None
        return self._function.get_result(self._table[key])

    def add(self, value: Any) -> None:
        key = self._backend.current_key
        accumulator = self._table.get(key, _MISSING)
        if accumulator is _MISSING:
            accumulator = self._function.create_accumulator()
        self._table[key] = self._function.add(value, accumulator)

    def clear(self) -> None:
        self._table.pop(self._backend.current_key, None)
