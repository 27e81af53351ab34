"""The heap keyed state backend: per-state dicts keyed by the record key.

Key groups are computed when state is snapshotted, not on every access, so the hot path is
one dict lookup. A snapshot groups entries by key group, which is what lets state be restored
at another parallelism (DESIGN.md §4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from strom.datastream import state as api
from strom.graph.partitioning import key_group_of

_MISSING = object()


def _function(function: Any, method: str) -> Callable[..., Any]:
    bound = getattr(function, method, None)
    return bound if callable(bound) else function


class HeapKeyedStateBackend:
    """All keyed state of one operator in one subtask; ``current_key`` scopes every access."""

    def __init__(self, max_parallelism: int) -> None:
        self.max_parallelism = max_parallelism
        self.current_key: Any = None
        self.tables: dict[str, dict[Any, Any]] = {}
        self._states: dict[str, api.State] = {}
        #: key -> key group, filled while snapshots are written (never on the hot path)
        self._key_groups: dict[Any, int] = {}

    def table(self, name: str) -> dict[Any, Any]:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = {}
        return table

    def get_state(self, descriptor: api.StateDescriptor) -> api.State:
        """The state object for a descriptor; the same object for the same name."""
        name = descriptor.get_name()
        existing = self._states.get(name)
        if existing is not None:
            return existing
        table = self.table(name)
        if isinstance(descriptor, api.ValueStateDescriptor):
            state: api.State = HeapValueState(self, table)
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
        """A copy of the state as it is now, cheap on the task thread; grouping the entries
        by key group happens later, off the task thread (``KeyedSnapshot.by_key_group``)."""
        tables: dict[str, dict[Any, Any]] = {}
        for name, table in self.tables.items():
            copied = dict(table)
            for key, value in copied.items():
                kind = type(value)
                if kind is list:  # list, map state and timers change in place: copy them
                    copied[key] = list(value)
                elif kind is dict:  # window contents hold lists that grow in place
                    copied[key] = {k: list(v) if type(v) is list else v for k, v in value.items()}
                elif kind is set:
                    copied[key] = set(value)
            tables[name] = copied
        return KeyedSnapshot(tables, self.max_parallelism, self._key_groups)

    def restore(self, snapshots: Iterable[dict[str, dict[int, dict[Any, Any]]]], groups: range):
        """Load the entries of the key groups in ``groups`` from one or more snapshots."""
        for snapshot in snapshots:
            for name, by_group in snapshot.items():
                table = self.table(name)
                for group, entries in by_group.items():
                    if group in groups:
                        table.update(entries)


class KeyedSnapshot:
    """Keyed state copied at a barrier, grouped by key group when it is written."""

    def __init__(self, tables: dict, max_parallelism: int, memo: dict[Any, int]) -> None:
        self.tables, self.max_parallelism, self._memo = tables, max_parallelism, memo

    def by_key_group(self) -> dict[str, dict[int, dict[Any, Any]]]:
        """``{state name: {key group: {key: value}}}``, the stored form."""
        memo, maxp = self._memo, self.max_parallelism
        result: dict[str, dict[int, dict[Any, Any]]] = {}
        for name, table in self.tables.items():
            groups: dict[int, dict[Any, Any]] = {}
            for key, value in table.items():
                group = memo.get(key)
                if group is None:
                    group = memo[key] = key_group_of(key, maxp)
                entries = groups.get(group)
                if entries is None:
                    entries = groups[group] = {}
                entries[key] = value
            result[name] = groups
        return result


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
