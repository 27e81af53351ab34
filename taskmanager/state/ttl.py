"""State time-to-live: ``StateTtlConfig`` enforced on the heap keyed state backend, as Flink does.

``HeapKeyedStateBackend.get_state`` picks a class of this module once, when a state whose
descriptor has an enabled TTL is created; states without TTL never reach this module and pay
nothing for it. Each class wraps the heap state of its kind and stores every value with its
last-access time as a plain ``(value, timestamp)`` tuple: one per key for value, reducing and
aggregating state, one per element of a list state and one per entry of a map state, so that
elements and entries expire one by one, as in Flink. The tuples sit in the backend's tables like
any other value, so snapshots store them and restores load them as they are: after a failover,
state keeps the timestamps it was checkpointed with and expires on time.

Time is processing time in epoch milliseconds, the clock of
``timer_service().current_processing_time()``, taken from the backend's ``ttl_time_provider``
when one is set (tests move a fake clock by hand). A value written at ``t`` (or read at ``t``
under ``OnReadAndWrite``) is expired from ``t + ttl`` on. Expired entries are removed

- when an access finds them: they are not returned under ``NeverReturnExpired``, and returned
  this one last time under ``ReturnExpiredIfNotCleanedUp``;
- incrementally (``cleanup_incrementally``, and by default unless
  ``disable_cleanup_in_background``): accesses of a state check the next keys of its table for
  expired entries, ``cleanup_size`` keys per access (in batches), going round the table;
- before each snapshot (``cleanup_full_snapshot``): every expired entry of the state is removed
  right before the backend takes the snapshot, so checkpoints and savepoints hold none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from strom.datastream import state as api
from taskmanager.state.heap import (
    HeapKeyedStateBackend,
    HeapListState,
    HeapMapState,
    HeapValueState,
)

__all__ = [
    "TtlAggregatingState",
    "TtlListState",
    "TtlMapState",
    "TtlReducingState",
    "TtlValueState",
    "processing_time_ms",
    "ttl_state",
]

#: state accesses per incremental cleanup (each checks ``cleanup_size`` keys per access)
CLEANUP_EVERY = 16
_MISSING = object()
_ON_READ_AND_WRITE = api.StateTtlConfig.UpdateType.OnReadAndWrite
_RETURN_EXPIRED = api.StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp


def processing_time_ms() -> int:
    """The wall clock in epoch milliseconds: the clock of processing-time timers."""
    return int(time.time() * 1000)


def ttl_state(
    backend: HeapKeyedStateBackend, descriptor: api.StateDescriptor, table: dict[Any, Any]
) -> api.State:
    """The state of ``descriptor`` with its TTL enforced, storing into ``table``."""
    config = descriptor.ttl_config
    assert config is not None and config.is_enabled()
    state: _TtlState
    if isinstance(descriptor, api.ValueStateDescriptor):
        state = TtlValueState(backend, table, config)
    elif isinstance(descriptor, api.ListStateDescriptor):
        state = TtlListState(backend, table, config)
    elif isinstance(descriptor, api.MapStateDescriptor):
        state = TtlMapState(backend, table, config)
    elif isinstance(descriptor, api.ReducingStateDescriptor):
        state = TtlReducingState(backend, table, config, descriptor.get_reduce_function())
    elif isinstance(descriptor, api.AggregatingStateDescriptor):
        state = TtlAggregatingState(backend, table, config, descriptor.get_agg_function())
    else:
        raise TypeError(f"unsupported state descriptor {type(descriptor).__name__}")
    if config.get_cleanup_strategies().in_full_snapshot():
        _purge_before_snapshots(backend, state)
    return state


class _TtlState:
    """What every TTL'd state shares: its settings, its clock, and cleanup of whole keys.

    Subclasses name the heap state that stores their ``(value, timestamp)`` entries
    (``storage``), and say which keys hold expired entries (``_expired_keys``) and how to
    remove them (``_drop_expired``, for the current key).
    """

    storage: type = HeapValueState

    def __init__(
        self, backend: HeapKeyedStateBackend, table: dict[Any, Any], config: api.StateTtlConfig
    ) -> None:
        self._backend, self._table = backend, table
        self._inner = self.storage(backend, table)
        self._ttl = config.get_ttl().to_milliseconds()
        self._clock: Callable[[], int] = backend.ttl_time_provider or processing_time_ms
        self._update_on_read = config.get_update_type() is _ON_READ_AND_WRITE
        self._return_expired = config.get_state_visibility() is _RETURN_EXPIRED
        incremental = config.get_cleanup_strategies().get_incremental_cleanup_strategy()
        #: keys checked by one incremental cleanup: ``cleanup_size`` per access, in batches
        self._cleanup_batch = (
            0 if incremental is None else (incremental.get_cleanup_size() * CLEANUP_EVERY)
        )
        #: accesses until the next incremental cleanup; without one it starts below zero and
        #: never reaches zero, so an access pays one decrement and one test either way
        self._cleanup_in = CLEANUP_EVERY if incremental is not None else -1
        self._cleanup_keys: list[Any] = []
        self._cleanup_position = 0

    def _clean_some(self) -> None:
        """Incremental cleanup: check the next keys of the table, going round it.

        It runs every ``CLEANUP_EVERY`` accesses and checks as many keys as that many accesses
        would one by one: the rate Flink's ``cleanup_size`` asks for, with the fixed cost of a
        cleanup paid once per batch. The keys of one round are a copy of the table's keys taken
        when the round starts, so keys added or removed meanwhile cannot break it (a ``dict``
        iterator would)."""
        self._cleanup_in = CLEANUP_EVERY
        keys, start = self._cleanup_keys, self._cleanup_position
        if start >= len(keys):
            keys = self._cleanup_keys = list(self._table)
            start = 0
        end = start + self._cleanup_batch
        self._cleanup_position = end
        self._purge(keys[start:end])

    def purge_expired(self) -> None:
        """Remove every expired entry of every key (before a full snapshot)."""
        self._purge(list(self._table))

    def _purge(self, keys: list[Any]) -> None:
        now = self._clock()
        expired = self._expired_keys(keys, now - self._ttl)
        if not expired:
            return
        backend, table = self._backend, self._table
        current = backend.current_key
        try:
            for key in expired:
                backend.current_key = key
                self._drop_expired(table[key], now)
        finally:
            backend.current_key = current

    def _expired_keys(self, keys: list[Any], written_by: int) -> list[Any]:
        """The keys of ``keys`` with an entry written at or before ``written_by``."""
        raise NotImplementedError

    def _drop_expired(self, stored: Any, now: int) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        self._inner.clear()


class _TtlSingleValue(_TtlState):
    """A state holding one ``(value, timestamp)`` per key in a ``HeapValueState``."""

    def _expired_keys(self, keys: list[Any], written_by: int) -> list[Any]:
        get, expired = self._table.get, []
        for key in keys:
            stored = get(key)
            if stored is not None and stored[1] <= written_by:
                expired.append(key)
        return expired

    def _drop_expired(self, stored: tuple[Any, int], now: int) -> None:
        self._inner.clear()

    def _read(self, default: Any) -> Any:
        """The current key's value for a read: refreshed under ``OnReadAndWrite``; when
        expired, removed, and returned only under ``ReturnExpiredIfNotCleanedUp``."""
        stored = self._inner.value()
        if stored is None:
            return default
        value, stamp = stored
        now = self._clock()
        if stamp + self._ttl <= now:
            self._inner.clear()
            return value if self._return_expired else default
        if self._update_on_read:
            self._inner.update((value, now))
        return value

    def _base(self, now: int, default: Any) -> Any:
        """The current key's value for a write that builds on it (reduce, aggregate): an
        expired value counts only under ``ReturnExpiredIfNotCleanedUp``, as in Flink."""
        stored = self._inner.value()
        if stored is None or (stored[1] + self._ttl <= now and not self._return_expired):
            return default
        return stored[0]


class TtlValueState(_TtlSingleValue, api.ValueState):
    """A ``ValueState`` whose value expires ``ttl`` after it was last written (or read)."""

    def value(self) -> Any:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        return self._read(None)

    def update(self, value: Any) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        if value is None:
            self._inner.clear()
        else:
            self._inner.update((value, self._clock()))


class TtlReducingState(_TtlSingleValue, api.ReducingState):
    """A ``ReducingState`` whose value expires; adding to an expired value starts anew."""

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        table: dict[Any, Any],
        config: api.StateTtlConfig,
        reduce_function: Any,
    ) -> None:
        super().__init__(backend, table, config)
        self._reduce: Callable[[Any, Any], Any] = reduce_function.reduce

    def get(self) -> Any:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        return self._read(None)

    def add(self, value: Any) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        now = self._clock()
        current = self._base(now, _MISSING)
        self._inner.update((value if current is _MISSING else self._reduce(current, value), now))


class TtlAggregatingState(_TtlSingleValue, api.AggregatingState):
    """An ``AggregatingState`` whose accumulator expires; adding to an expired one starts a
    new accumulator."""

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        table: dict[Any, Any],
        config: api.StateTtlConfig,
        agg_function: Any,
    ) -> None:
        super().__init__(backend, table, config)
        self._function = agg_function

    def get(self) -> Any:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        accumulator = self._read(_MISSING)
        return None if accumulator is _MISSING else self._function.get_result(accumulator)

    def add(self, value: Any) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        now = self._clock()
        accumulator = self._base(now, _MISSING)
        if accumulator is _MISSING:
            accumulator = self._function.create_accumulator()
        self._inner.update((self._function.add(value, accumulator), now))


class TtlListState(_TtlState, api.ListState):
    """A ``ListState`` whose elements expire one by one, each ``ttl`` after it was added (or
    the list was last read, under ``OnReadAndWrite``)."""

    storage = HeapListState

    def _expired_keys(self, keys: list[Any], written_by: int) -> list[Any]:
        table = self._table
        return [
            k
            for k in keys
            if (stored := table.get(k)) and min(entry[1] for entry in stored) <= written_by
        ]

    def _drop_expired(self, stored: list[tuple[Any, int]], now: int) -> None:
        ttl = self._ttl
        self._inner.update([entry for entry in stored if entry[1] + ttl > now])

    def get(self) -> Iterable[Any]:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        stored = self._inner.get()
        if not stored:
            return []
        now, ttl = self._clock(), self._ttl
        live = [entry for entry in stored if entry[1] + ttl > now]
        if self._update_on_read:
            self._inner.update([(value, now) for value, _ in live])
        elif len(live) != len(stored):
            self._inner.update(live)
        return [value for value, _ in (stored if self._return_expired else live)]

    def add(self, value: Any) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        if value is None:
            raise ValueError("ListState.add(None) is not allowed")
        self._inner.add((value, self._clock()))

    def add_all(self, values: Iterable[Any]) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        now = self._clock()
        entries = []
        for value in values:
            if value is None:
                raise ValueError("ListState.add_all() with a None element is not allowed")
            entries.append((value, now))
        self._inner.add_all(entries)

    def update(self, values: Iterable[Any]) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        now = self._clock()
        self._inner.update([(value, now) for value in values or ()])


class TtlMapState(_TtlState, api.MapState):
    """A ``MapState`` whose entries expire one by one, each ``ttl`` after it was put (or
    last read, under ``OnReadAndWrite``)."""

    storage = HeapMapState

    def _expired_keys(self, keys: list[Any], written_by: int) -> list[Any]:
        table = self._table
        return [
            k
            for k in keys
            if (stored := table.get(k)) and min(e[1] for e in stored.values()) <= written_by
        ]

    def _drop_expired(self, stored: dict[Any, tuple[Any, int]], now: int) -> None:
        ttl = self._ttl
        for key in [key for key, (_, stamp) in stored.items() if stamp + ttl <= now]:
            self._inner.remove(key)

    def _lookup(self, key: Any) -> Any:
        """The value of ``key`` for a read (``_MISSING`` when absent or invisible)."""
        stored = self._inner.get(key)
        if stored is None:
            return _MISSING
        value, stamp = stored
        now = self._clock()
        if stamp + self._ttl <= now:
            self._inner.remove(key)
            return value if self._return_expired else _MISSING
        if self._update_on_read:
            self._inner.put(key, (value, now))
        return value

    def _visible(self, refresh: bool) -> list[tuple[Any, Any]]:
        """The ``(key, value)`` entries a read sees; expired ones are removed on the way."""
        stored = self._inner.items()
        if not stored:
            return []
        now, ttl = self._clock(), self._ttl
        live = [(key, entry[0]) for key, entry in stored if entry[1] + ttl > now]
        if len(live) != len(stored):
            for key, (_, stamp) in stored:
                if stamp + ttl <= now:
                    self._inner.remove(key)
        if refresh and self._update_on_read and live:
            self._inner.put_all({key: (value, now) for key, value in live})
        if self._return_expired:
            return [(key, value) for key, (value, _) in stored]
        return live

    def get(self, key: Any) -> Any:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        value = self._lookup(key)
        return None if value is _MISSING else value

    def put(self, key: Any, value: Any) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        self._inner.put(key, (value, self._clock()))

    def put_all(self, dict_value: dict) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        now = self._clock()
        self._inner.put_all({key: (value, now) for key, value in dict_value.items()})

    def remove(self, key: Any) -> None:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        self._inner.remove(key)

    def contains(self, key: Any) -> bool:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        return self._lookup(key) is not _MISSING

    def items(self) -> Iterable[tuple[Any, Any]]:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        return self._visible(refresh=True)

    def keys(self) -> Iterable[Any]:
        return [key for key, _ in self.items()]

    def values(self) -> Iterable[Any]:
        return [value for _, value in self.items()]

    def is_empty(self) -> bool:
        self._cleanup_in -= 1
        if not self._cleanup_in:
            self._clean_some()
        return not self._visible(refresh=False)


class _PurgeBeforeSnapshot:
    """Stands in for one backend's ``snapshot`` method: removes the expired entries of the
    states configured with ``cleanup_full_snapshot()``, then takes the snapshot as usual.

    Installed on the backend instance (not its class) by the first such state, so backends
    without one, and the snapshot code itself, are untouched."""

    def __init__(self, take_snapshot: Callable[..., Any]) -> None:
        self.take_snapshot = take_snapshot
        self.states: list[_TtlState] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for state in self.states:
            state.purge_expired()
        return self.take_snapshot(*args, **kwargs)


def _purge_before_snapshots(backend: HeapKeyedStateBackend, state: _TtlState) -> None:
    hook = vars(backend).get("snapshot")
    if not isinstance(hook, _PurgeBeforeSnapshot):
        hook = _PurgeBeforeSnapshot(backend.snapshot)
        backend.snapshot = hook  # type: ignore[method-assign]
    hook.states.append(state)
