"""State descriptors, TTL settings and state interfaces, as in ``pyflink.datastream.state``.

A descriptor names a state and describes its type; the runtime context turns it into a state
object (``runtime_context.get_state(descriptor)``) scoped to the current key. The state classes
here are interfaces the state backends implement.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Any, Generic, TypeVar

from strom.common.time import Time
from strom.common.typeinfo import TypeInformation, Types
from strom.datastream.functions import AggregateFunction, ReduceFunction

__all__ = [
    "AggregatingState",
    "AggregatingStateDescriptor",
    "AppendingState",
    "BroadcastState",
    "ListState",
    "ListStateDescriptor",
    "MapState",
    "MapStateDescriptor",
    "MergingState",
    "OperatorStateStore",
    "ReadOnlyBroadcastState",
    "ReducingState",
    "ReducingStateDescriptor",
    "State",
    "StateDescriptor",
    "StateTtlConfig",
    "ValueState",
    "ValueStateDescriptor",
]

# PyFlink's type variables of the state interfaces (``ValueState[int]``, ``MapState[str, int]``).
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
IN = TypeVar("IN")
OUT = TypeVar("OUT")


# ------------------------------------------------------------------ state interfaces


class State(ABC):
    """A state scoped to the current key (or to the operator for operator state)."""

    @abstractmethod
    def clear(self) -> None:
        """Remove the value of the current key."""


class ValueState(State, Generic[T]):
    """One value per key."""

    @abstractmethod
    def value(self) -> Any:
        """The value of the current key, or None when it has none."""

    @abstractmethod
    def update(self, value: Any) -> None:
        """Set the value of the current key (None clears it)."""


class AppendingState(State, Generic[IN, OUT]):
    """A state that values are added to and that is read as a whole."""

    @abstractmethod
    def get(self) -> Any:
        """The current contents."""

    @abstractmethod
    def add(self, value: Any) -> None:
        """Add ``value``."""


class MergingState(AppendingState[IN, OUT]):
    """An appending state whose contents can be merged (for merging windows)."""


class ReducingState(MergingState[T, T]):
    """One value per key, combined with each added value by a reduce function."""


class AggregatingState(MergingState[IN, OUT]):
    """An accumulator per key, fed by an ``AggregateFunction``; ``get`` returns its result."""


class ListState(MergingState[T, Iterable[T]]):
    """A list of values per key."""

    @abstractmethod
    def get(self) -> Iterable[Any]:
        """The values of the current key (empty when none)."""

    @abstractmethod
    def add(self, value: Any) -> None:
        """Append ``value``."""

    @abstractmethod
    def add_all(self, values: Iterable[Any]) -> None:
        """Append every value of ``values``."""

    @abstractmethod
    def update(self, values: Iterable[Any]) -> None:
        """Replace the values of the current key."""

    def __iter__(self) -> Iterator[Any]:
        return iter(self.get())


class MapState(State, Generic[K, V]):
    """A dict per key."""

    @abstractmethod
    def get(self, key: Any) -> Any:
        """The value of ``key`` in the current key's map, or None."""

    @abstractmethod
    def put(self, key: Any, value: Any) -> None:
        """Set ``key`` to ``value``."""

    @abstractmethod
    def put_all(self, dict_value: dict) -> None:
        """Set every entry of ``dict_value``."""

    @abstractmethod
    def remove(self, key: Any) -> None:
        """Remove ``key`` (no error when absent)."""

    @abstractmethod
    def contains(self, key: Any) -> bool:
        """Whether ``key`` is in the map."""

    @abstractmethod
    def items(self) -> Iterable[tuple[Any, Any]]:
        """The ``(key, value)`` entries."""

    @abstractmethod
    def keys(self) -> Iterable[Any]:
        """The keys."""

    @abstractmethod
    def values(self) -> Iterable[Any]:
        """The values."""

    @abstractmethod
    def is_empty(self) -> bool:
        """Whether the map has no entries."""

    def __getitem__(self, key: Any) -> Any:
        return self.get(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.remove(key)

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class ReadOnlyBroadcastState(State, Generic[K, V]):
    """Broadcast state as a non-broadcast input sees it: read-only."""

    @abstractmethod
    def get(self, key: Any) -> Any:
        """The value of ``key``, or None."""

    @abstractmethod
    def contains(self, key: Any) -> bool:
        """Whether ``key`` is present."""

    @abstractmethod
    def items(self) -> Iterable[tuple[Any, Any]]:
        """The ``(key, value)`` entries."""

    @abstractmethod
    def keys(self) -> Iterable[Any]:
        """The keys."""

    @abstractmethod
    def values(self) -> Iterable[Any]:
        """The values."""

    @abstractmethod
    def is_empty(self) -> bool:
        """Whether there are no entries."""

    def __getitem__(self, key: Any) -> Any:
        return self.get(key)

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class BroadcastState(ReadOnlyBroadcastState[K, V]):
    """Broadcast state as the broadcast input sees it: writable."""

    @abstractmethod
    def put(self, key: Any, value: Any) -> None:
        """Set ``key`` to ``value``."""

    @abstractmethod
    def put_all(self, dict_value: dict) -> None:
        """Set every entry of ``dict_value``."""

    @abstractmethod
    def remove(self, key: Any) -> None:
        """Remove ``key``."""

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.remove(key)


class OperatorStateStore(ABC):
    """Operator (non-keyed) state of a ``CheckpointedFunction``, and broadcast state."""

    @abstractmethod
    def get_broadcast_state(self, state_descriptor: MapStateDescriptor) -> BroadcastState:
        """The broadcast state of a ``MapStateDescriptor``."""

    @abstractmethod
    def get_list_state(self, state_descriptor: ListStateDescriptor) -> ListState:
        """A list state redistributed round-robin across subtasks on rescaling."""

    @abstractmethod
    def get_union_list_state(self, state_descriptor: ListStateDescriptor) -> ListState:
        """A list state of which every subtask gets the whole union on restore."""


# ------------------------------------------------------------------ TTL


class StateTtlConfig:
    """Time-to-live of keyed state; build it with ``StateTtlConfig.new_builder(Time)``.

    A value expires ``ttl`` after it was last written (``OnCreateAndWrite``, the default) or
    last read or written (``OnReadAndWrite``), in processing time. Each element of a
    ``ListState`` and each entry of a ``MapState`` expires on its own. Expired values are not
    returned (``NeverReturnExpired``, the default) or returned until they are cleaned up
    (``ReturnExpiredIfNotCleanedUp``); they are removed when a read finds them, a few keys at a
    time as the state is accessed (unless ``disable_cleanup_in_background()``), and before
    snapshots with ``cleanup_full_snapshot()``. Checkpoints keep the timestamps, so state
    restored after a failure expires when it would have. Operator and broadcast state have no
    TTL.

    Example::

        ttl = (
            StateTtlConfig.new_builder(Time.days(1))
            .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .build()
        )
        descriptor.enable_time_to_live(ttl)
    """

    class UpdateType(Enum):
        """When the TTL of an entry is refreshed."""

        Disabled = 0
        OnCreateAndWrite = 1
        OnReadAndWrite = 2

    class StateVisibility(Enum):
        """Whether an expired entry not yet cleaned up may be returned."""

        ReturnExpiredIfNotCleanedUp = 0
        NeverReturnExpired = 1

    class TtlTimeCharacteristic(Enum):
        """Which time TTL is measured in."""

        ProcessingTime = 0

    class CleanupStrategies:
        """How expired entries are removed, besides when a read finds them expired.

        ``get_incremental_cleanup_strategy()`` gives the default ``(5, False)`` strategy when
        cleanup in background is on (the default) and no incremental cleanup was configured,
        as in Flink, where the heap state backend then cleans up incrementally.
        """

        class Strategies(Enum):
            """The kinds of cleanup a ``StateTtlConfig`` can configure."""

            FULL_STATE_SCAN_SNAPSHOT = 0
            INCREMENTAL_CLEANUP = 1
            ROCKSDB_COMPACTION_FILTER = 2

        class CleanupStrategy:
            """Base of the settings of one cleanup strategy."""

            def __eq__(self, other: object) -> bool:
                return type(other) is type(self) and vars(other) == vars(self)

            def __hash__(self) -> int:
                return hash((type(self).__name__, tuple(sorted(vars(self).items()))))

            def __repr__(self) -> str:
                fields = ", ".join(f"{k.lstrip('_')}={v!r}" for k, v in vars(self).items())
                return f"{type(self).__name__}({fields})"

        class EmptyCleanupStrategy(CleanupStrategy):
            """A strategy without settings (cleanup in full snapshot)."""

        class IncrementalCleanupStrategy(CleanupStrategy):
            """Check ``cleanup_size`` entries of a state for expiry on every access of it."""

            def __init__(self, cleanup_size: int, run_cleanup_for_every_record: bool) -> None:
                if not isinstance(cleanup_size, int) or cleanup_size <= 0:
                    raise ValueError(
                        "cleanup_incrementally() needs a positive number of entries to check "
                        f"per access; got cleanup_size={cleanup_size!r}"
                    )
                self._cleanup_size = cleanup_size
                self._run_cleanup_for_every_record = bool(run_cleanup_for_every_record)

            def get_cleanup_size(self) -> int:
                return self._cleanup_size

            def run_cleanup_for_every_record(self) -> bool:
                return self._run_cleanup_for_every_record

        class RocksdbCompactFilterCleanupStrategy(CleanupStrategy):
            """Settings of cleanup in RocksDB compaction (kept for PyFlink compatibility; the
            heap state backend does not use them)."""

            def __init__(
                self,
                query_time_after_num_entries: int,
                periodic_compaction_time: Time | None = None,
            ) -> None:
                self._query_time_after_num_entries = query_time_after_num_entries
                self._periodic_compaction_time = (
                    Time.days(30) if periodic_compaction_time is None else periodic_compaction_time
                )

            def get_query_time_after_num_entries(self) -> int:
                return self._query_time_after_num_entries

            def get_periodic_compaction_time(self) -> Time:
                return self._periodic_compaction_time

        def __init__(
            self,
            strategies: dict[StateTtlConfig.CleanupStrategies.Strategies, Any],
            is_cleanup_in_background: bool,
        ) -> None:
            self._strategies = dict(strategies)
            self._is_cleanup_in_background = is_cleanup_in_background

        def is_cleanup_in_background(self) -> bool:
            return self._is_cleanup_in_background

        def in_full_snapshot(self) -> bool:
            """Whether expired entries are left out of full snapshots."""
            return _Strategies.FULL_STATE_SCAN_SNAPSHOT in self._strategies

        def get_incremental_cleanup_strategy(
            self,
        ) -> StateTtlConfig.CleanupStrategies.IncrementalCleanupStrategy | None:
            """The incremental cleanup to run: the configured one, else the default one when
            cleanup in background is on, else None."""
            default = _DEFAULT_INCREMENTAL_CLEANUP if self._is_cleanup_in_background else None
            return self._strategies.get(_Strategies.INCREMENTAL_CLEANUP, default)

        def get_rocksdb_compact_filter_cleanup_strategy(
            self,
        ) -> StateTtlConfig.CleanupStrategies.RocksdbCompactFilterCleanupStrategy | None:
            default = _DEFAULT_ROCKSDB_CLEANUP if self._is_cleanup_in_background else None
            return self._strategies.get(_Strategies.ROCKSDB_COMPACTION_FILTER, default)

        def __eq__(self, other: object) -> bool:
            return (
                isinstance(other, StateTtlConfig.CleanupStrategies)
                and other._strategies == self._strategies
                and other._is_cleanup_in_background == self._is_cleanup_in_background
            )

        def __repr__(self) -> str:
            names = ", ".join(strategy.name for strategy in self._strategies)
            return f"CleanupStrategies([{names}], in_background={self._is_cleanup_in_background})"

    def __init__(
        self,
        update_type: StateTtlConfig.UpdateType,
        state_visibility: StateTtlConfig.StateVisibility,
        ttl_time_characteristic: StateTtlConfig.TtlTimeCharacteristic,
        ttl: Time,
        cleanup_strategies: StateTtlConfig.CleanupStrategies,
    ) -> None:
        self._update_type = update_type
        self._state_visibility = state_visibility
        self._ttl_time_characteristic = ttl_time_characteristic
        self._ttl = ttl
        self._cleanup_strategies = cleanup_strategies

    @staticmethod
    def new_builder(ttl: Time) -> StateTtlConfig.Builder:
        """A builder of a TTL of ``ttl``."""
        return StateTtlConfig.Builder(ttl)

    def get_update_type(self) -> StateTtlConfig.UpdateType:
        return self._update_type

    def get_state_visibility(self) -> StateTtlConfig.StateVisibility:
        return self._state_visibility

    def get_ttl(self) -> Time:
        return self._ttl

    def get_ttl_time_characteristic(self) -> StateTtlConfig.TtlTimeCharacteristic:
        return self._ttl_time_characteristic

    def is_enabled(self) -> bool:
        return self._update_type != StateTtlConfig.UpdateType.Disabled

    def get_cleanup_strategies(self) -> StateTtlConfig.CleanupStrategies:
        return self._cleanup_strategies

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateTtlConfig) and vars(other) == vars(self)

    def __repr__(self) -> str:
        return (
            f"StateTtlConfig(ttl={self._ttl!r}, update_type={self._update_type.name}, "
            f"state_visibility={self._state_visibility.name})"
        )

    class Builder:
        """Builds a :class:`StateTtlConfig`; every setter returns the builder."""

        def __init__(self, ttl: Time) -> None:
            self._ttl = _check_ttl(ttl)
            self._update_type = StateTtlConfig.UpdateType.OnCreateAndWrite
            self._state_visibility = StateTtlConfig.StateVisibility.NeverReturnExpired
            self._ttl_time_characteristic = StateTtlConfig.TtlTimeCharacteristic.ProcessingTime
            self._strategies: dict[StateTtlConfig.CleanupStrategies.Strategies, Any] = {}
            self._is_cleanup_in_background = True

        def set_update_type(self, update_type: StateTtlConfig.UpdateType) -> StateTtlConfig.Builder:
            self._update_type = update_type
            return self

        def update_ttl_on_create_and_write(self) -> StateTtlConfig.Builder:
            return self.set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)

        def update_ttl_on_read_and_write(self) -> StateTtlConfig.Builder:
            return self.set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)

        def set_state_visibility(
            self, state_visibility: StateTtlConfig.StateVisibility
        ) -> StateTtlConfig.Builder:
            self._state_visibility = state_visibility
            return self

        def return_expired_if_not_cleaned_up(self) -> StateTtlConfig.Builder:
            return self.set_state_visibility(
                StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
            )

        def never_return_expired(self) -> StateTtlConfig.Builder:
            return self.set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)

        def set_ttl_time_characteristic(
            self, ttl_time_characteristic: StateTtlConfig.TtlTimeCharacteristic
        ) -> StateTtlConfig.Builder:
            self._ttl_time_characteristic = ttl_time_characteristic
            return self

        def use_processing_time(self) -> StateTtlConfig.Builder:
            return self.set_ttl_time_characteristic(
                StateTtlConfig.TtlTimeCharacteristic.ProcessingTime
            )

        def cleanup_full_snapshot(self) -> StateTtlConfig.Builder:
            """Leave expired entries out of full snapshots (checkpoints and savepoints)."""
            self._strategies[_Strategies.FULL_STATE_SCAN_SNAPSHOT] = _EMPTY_STRATEGY
            return self

        def cleanup_incrementally(
            self, cleanup_size: int, run_cleanup_for_every_record: bool
        ) -> StateTtlConfig.Builder:
            """Check ``cleanup_size`` entries of the state for expiry on each access of it.

            ``run_cleanup_for_every_record`` is accepted for PyFlink compatibility; Strom runs
            the check on state accesses only.
            """
            self._strategies[_Strategies.INCREMENTAL_CLEANUP] = (
                StateTtlConfig.CleanupStrategies.IncrementalCleanupStrategy(
                    cleanup_size, run_cleanup_for_every_record
                )
            )
            return self

        def cleanup_in_rocksdb_compact_filter(
            self, query_time_after_num_entries: int, periodic_compaction_time: Time | None = None
        ) -> StateTtlConfig.Builder:
            """Accepted for PyFlink compatibility; the heap state backend has no compaction."""
            self._strategies[_Strategies.ROCKSDB_COMPACTION_FILTER] = (
                StateTtlConfig.CleanupStrategies.RocksdbCompactFilterCleanupStrategy(
                    query_time_after_num_entries, periodic_compaction_time
                )
            )
            return self

        def disable_cleanup_in_background(self) -> StateTtlConfig.Builder:
            """No default incremental cleanup: only reads (and configured strategies) clean."""
            self._is_cleanup_in_background = False
            return self

        def set_ttl(self, ttl: Time) -> StateTtlConfig.Builder:
            self._ttl = _check_ttl(ttl)
            return self

        def build(self) -> StateTtlConfig:
            return StateTtlConfig(
                self._update_type,
                self._state_visibility,
                self._ttl_time_characteristic,
                self._ttl,
                StateTtlConfig.CleanupStrategies(self._strategies, self._is_cleanup_in_background),
            )


_Cleanup = StateTtlConfig.CleanupStrategies
_Strategies = _Cleanup.Strategies
_EMPTY_STRATEGY = _Cleanup.EMPTY_STRATEGY = _Cleanup.EmptyCleanupStrategy()
_DEFAULT_INCREMENTAL_CLEANUP = _Cleanup.DEFAULT_INCREMENTAL_CLEANUP_STRATEGY = (
    _Cleanup.IncrementalCleanupStrategy(5, False)
)
_DEFAULT_ROCKSDB_CLEANUP = _Cleanup.DEFAULT_ROCKSDB_COMPACT_FILTER_CLEANUP_STRATEGY = (
    _Cleanup.RocksdbCompactFilterCleanupStrategy(1000)
)


def _check_ttl(ttl: Any) -> Time:
    if isinstance(ttl, Time):
        result = ttl
    elif callable(getattr(ttl, "to_milliseconds", None)):  # accept a Duration as well
        result = Time.milliseconds(ttl.to_milliseconds())
    else:
        raise TypeError(f"the TTL must be a Time such as Time.days(1); got {ttl!r}")
    if result.to_milliseconds() <= 0:
        raise ValueError(f"the TTL must be positive; got {ttl!r}")
    return result


# ------------------------------------------------------------------ descriptors


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a state name must be a non-empty str; got {name!r}")
    return name


def _check_type(type_info: Any, what: str) -> TypeInformation:
    if not isinstance(type_info, TypeInformation):
        raise TypeError(f"{what} must be a TypeInformation such as Types.LONG(); got {type_info!r}")
    return type_info


class StateDescriptor(ABC):  # noqa: B024 - a base of concrete descriptors only
    """The name and type of a state; the same name in one operator is the same state."""

    def __init__(self, name: str, type_info: TypeInformation | None) -> None:
        self.name = _check_name(name)
        self.type_info = type_info
        self.ttl_config: StateTtlConfig | None = None

    def get_name(self) -> str:
        return self.name

    def get_type_info(self) -> TypeInformation | None:
        return self.type_info

    def enable_time_to_live(self, ttl_config: StateTtlConfig) -> None:
        """Expire values of this (keyed) state as ``ttl_config`` says; a config whose update
        type is ``Disabled`` leaves the state without TTL."""
        if not isinstance(ttl_config, StateTtlConfig):
            raise TypeError(
                "enable_time_to_live() takes a StateTtlConfig "
                f"(StateTtlConfig.new_builder(Time.days(1)).build()); got {ttl_config!r}"
            )
        self.ttl_config = ttl_config

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.type_info!r})"


class ValueStateDescriptor(StateDescriptor):
    """Describes a ``ValueState``.

    Example::

        count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))
    """

    def __init__(self, name: str, value_type_info: TypeInformation) -> None:
        super().__init__(name, _check_type(value_type_info, "value_type_info"))


class ListStateDescriptor(StateDescriptor):
    """Describes a ``ListState`` of elements of one type.

    Example::

        seen = runtime_context.get_list_state(ListStateDescriptor("seen", Types.STRING()))
    """

    def __init__(self, name: str, elem_type_info: TypeInformation) -> None:
        self.element_type_info = _check_type(elem_type_info, "elem_type_info")
        super().__init__(name, Types.LIST(elem_type_info))


class MapStateDescriptor(StateDescriptor):
    """Describes a ``MapState`` (or broadcast state) of one key type and one value type.

    Example::

        totals = runtime_context.get_map_state(
            MapStateDescriptor("totals", Types.STRING(), Types.LONG()))
    """

    def __init__(
        self, name: str, key_type_info: TypeInformation, value_type_info: TypeInformation
    ) -> None:
        self.key_type_info = _check_type(key_type_info, "key_type_info")
        self.value_type_info = _check_type(value_type_info, "value_type_info")
        super().__init__(name, Types.MAP(key_type_info, value_type_info))


class _CallableReduceFunction(ReduceFunction):
    """A plain callable ``(a, b) -> c`` as a ``ReduceFunction``."""

    def __init__(self, function: Callable[[Any, Any], Any]) -> None:
        self.function = function

    def reduce(self, value1: Any, value2: Any) -> Any:
        return self.function(value1, value2)


class ReducingStateDescriptor(StateDescriptor):
    """Describes a ``ReducingState``: added values are combined by ``reduce_function``.

    Example::

        total = runtime_context.get_reducing_state(
            ReducingStateDescriptor("total", lambda a, b: a + b, Types.LONG()))
    """

    def __init__(self, name: str, reduce_function: Any, type_info: TypeInformation) -> None:
        super().__init__(name, _check_type(type_info, "type_info"))
        if isinstance(reduce_function, ReduceFunction):
            self._reduce_function: ReduceFunction = reduce_function
        elif callable(reduce_function):
            self._reduce_function = _CallableReduceFunction(reduce_function)
        else:
            raise TypeError(
                "ReducingStateDescriptor takes a ReduceFunction or a function (a, b) -> c; "
                f"got {reduce_function!r}"
            )

    def get_reduce_function(self) -> ReduceFunction:
        return self._reduce_function


class AggregatingStateDescriptor(StateDescriptor):
    """Describes an ``AggregatingState`` fed by an ``AggregateFunction``.

    Example::

        average = runtime_context.get_aggregating_state(
            AggregatingStateDescriptor("avg", Average(), Types.TUPLE([Types.LONG(), Types.LONG()])))
    """

    def __init__(
        self, name: str, agg_function: AggregateFunction, state_type_info: TypeInformation
    ) -> None:
        super().__init__(name, _check_type(state_type_info, "state_type_info"))
        missing = [
            method
            for method in ("create_accumulator", "add", "get_result")
            if not callable(getattr(agg_function, method, None))
        ]
        if missing:
            raise TypeError(
                "AggregatingStateDescriptor takes an AggregateFunction; "
                f"{agg_function!r} lacks {', '.join(missing)}"
            )
        self._agg_function = agg_function

    def get_agg_function(self) -> AggregateFunction:
        return self._agg_function
