"""State TTL: ``StateTtlConfig`` enforced on keyed state, as in Flink.

The state classes are tested against a fake clock the test moves by hand (no waiting); a job
runs a ``KeyedProcessFunction`` with TTL'd state embedded and on a real cluster, on the real
clock.
"""

from __future__ import annotations

import pickle
import time

import pytest

from strom.common import Duration, Time, Types
from strom.datastream import (
    AggregateFunction,
    AggregatingStateDescriptor,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    RuntimeContext,
    StateTtlConfig,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from taskmanager.state.heap import (
    HeapKeyedStateBackend,
    HeapListState,
    HeapMapState,
    HeapValueState,
    StoredKeyedState,
)
from taskmanager.state.ttl import CLEANUP_EVERY, TtlValueState

MAX_PARALLELISM = 128
TTL = 100  # ms
T0 = 1_700_000_000_000


class FakeClock:
    """A TTL time provider the test moves by hand: epoch ms."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def ttl_config(ttl_ms: int = TTL, *options: str) -> StateTtlConfig:
    """A TTL of ``ttl_ms`` with builder methods named in ``options`` applied; background
    cleanup off unless asked for, so a test sees only what it is about."""
    builder = StateTtlConfig.new_builder(Time.milliseconds(ttl_ms))
    if "background" not in options:
        builder.disable_cleanup_in_background()
    for option in options:
        if option != "background":
            getattr(builder, option)()
    return builder.build()


def with_ttl(descriptor, config: StateTtlConfig | None = None):
    descriptor.enable_time_to_live(config or ttl_config())
    return descriptor


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock) -> HeapKeyedStateBackend:
    backend = HeapKeyedStateBackend(MAX_PARALLELISM, ttl_time_provider=clock)
    backend.current_key = "k"
    return backend


def checkpoint_and_restore(backend: HeapKeyedStateBackend, clock) -> HeapKeyedStateBackend:
    """What a failover does to keyed state: snapshot, store (pickled), load into a new backend
    (of the one subtask of a job at parallelism 1)."""
    stored = pickle.loads(pickle.dumps(backend.snapshot().stored()))
    restored = HeapKeyedStateBackend(MAX_PARALLELISM, ttl_time_provider=clock)
    restored.restore([StoredKeyedState(0, 1, stored)], range(MAX_PARALLELISM))
    return restored


class Average(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value, accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


# ---------------------------------------------------------------- which state a descriptor gets


def test_states_without_ttl_are_the_plain_heap_states(backend):
    assert type(backend.get_state(ValueStateDescriptor("v", Types.INT()))) is HeapValueState
    assert type(backend.get_state(ListStateDescriptor("l", Types.INT()))) is HeapListState
    disabled = (
        StateTtlConfig.new_builder(Time.seconds(1))
        .set_update_type(StateTtlConfig.UpdateType.Disabled)
        .build()
    )
    map_state = backend.get_state(
        with_ttl(MapStateDescriptor("m", Types.STRING(), Types.INT()), disabled)
    )
    assert type(map_state) is HeapMapState
    map_state.put("a", 1)
    assert backend.tables["m"] == {"k": {"a": 1}}  # stored without timestamps


def test_a_ttl_state_stores_its_value_with_the_write_time(backend, clock):
    state = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT())))
    assert isinstance(state, TtlValueState)
    assert backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT()))) is state
    state.update(7)
    assert backend.tables["v"] == {"k": (7, T0)}


# ---------------------------------------------------------------- value state


def test_value_expires_ttl_after_it_was_written(backend, clock):
    state = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT())))
    assert state.value() is None
    state.update(1)
    clock.advance(TTL - 1)
    assert state.value() == 1
    clock.advance(1)
    assert state.value() is None
    assert backend.tables["v"] == {}  # the read that found it expired removed it


def test_on_create_and_write_reads_do_not_extend_the_ttl_but_writes_do(backend, clock):
    state = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT())))
    state.update(1)
    clock.advance(TTL - 10)
    assert state.value() == 1  # a read: the TTL still counts from the write
    clock.advance(10)
    assert state.value() is None
    state.update(2)
    clock.advance(TTL - 10)
    state.update(3)  # a write: the TTL starts again
    clock.advance(TTL - 10)
    assert state.value() == 3


def test_on_read_and_write_reads_extend_the_ttl(backend, clock):
    config = ttl_config(TTL, "update_ttl_on_read_and_write")
    state = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT()), config))
    state.update(1)
    for _ in range(5):
        clock.advance(TTL - 1)
        assert state.value() == 1
    clock.advance(TTL)
    assert state.value() is None


def test_return_expired_if_not_cleaned_up_returns_an_expired_value_once(backend, clock):
    config = ttl_config(TTL, "return_expired_if_not_cleaned_up")
    state = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT()), config))
    state.update(1)
    clock.advance(TTL)
    assert state.value() == 1  # expired but not cleaned up yet: returned, and cleaned up
    assert state.value() is None


def test_keys_expire_independently(backend, clock):
    state = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT())))
    backend.current_key = "a"
    state.update(1)
    clock.advance(TTL // 2)
    backend.current_key = "b"
    state.update(2)
    clock.advance(TTL // 2)
    assert state.value() == 2
    backend.current_key = "a"
    assert state.value() is None
    backend.current_key = "b"
    clock.advance(TTL // 2)
    assert state.value() is None


def test_update_none_and_clear_remove_the_value(backend, clock):
    state = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT())))
    state.update(1)
    state.update(None)
    assert state.value() is None and backend.tables["v"] == {}
    state.update(2)
    state.clear()
    assert state.value() is None and backend.tables["v"] == {}


# ---------------------------------------------------------------- list state


def test_list_elements_expire_one_by_one(backend, clock):
    state = backend.get_state(with_ttl(ListStateDescriptor("l", Types.INT())))
    state.add(1)
    clock.advance(10)
    state.add_all([2, 3])
    clock.advance(TTL - 10)
    assert list(state) == [2, 3]
    assert backend.tables["l"] == {"k": [(2, T0 + 10), (3, T0 + 10)]}
    state.add(4)
    clock.advance(10)
    assert state.get() == [4]
    clock.advance(TTL)
    assert state.get() == []
    assert backend.tables["l"] == {}


def test_list_update_replaces_with_fresh_elements_and_refuses_none(backend, clock):
    state = backend.get_state(with_ttl(ListStateDescriptor("l", Types.INT())))
    state.add(1)
    clock.advance(TTL - 1)
    state.update([5, 6])
    clock.advance(TTL - 1)
    assert state.get() == [5, 6]
    with pytest.raises(ValueError):
        state.add(None)
    with pytest.raises(ValueError):
        state.add_all([7, None])
    assert state.get() == [5, 6]
    state.update([])
    assert state.get() == [] and backend.tables["l"] == {}


def test_list_read_refreshes_every_element_on_read_and_write(backend, clock):
    config = ttl_config(TTL, "update_ttl_on_read_and_write")
    state = backend.get_state(with_ttl(ListStateDescriptor("l", Types.INT()), config))
    state.add(1)
    clock.advance(TTL - 1)
    state.add(2)
    assert state.get() == [1, 2]  # the read refreshes both
    clock.advance(TTL - 1)
    assert state.get() == [1, 2]
    clock.advance(TTL)
    assert state.get() == []


def test_list_returns_expired_elements_once_when_asked_to(backend, clock):
    config = ttl_config(TTL, "return_expired_if_not_cleaned_up")
    state = backend.get_state(with_ttl(ListStateDescriptor("l", Types.INT()), config))
    state.add(1)
    clock.advance(TTL)
    state.add(2)
    assert state.get() == [1, 2]
    assert state.get() == [2]


# ---------------------------------------------------------------- map state


def test_map_entries_expire_one_by_one(backend, clock):
    state = backend.get_state(with_ttl(MapStateDescriptor("m", Types.STRING(), Types.INT())))
    assert state.is_empty()
    state.put("a", 1)
    clock.advance(10)
    state.put_all({"b": 2, "c": None})
    clock.advance(TTL - 10)
    assert state.get("a") is None and not state.contains("a") and "a" not in state
    assert state.contains("c") and state.get("c") is None  # a None value is still an entry
    assert sorted(state.items(), key=repr) == [("b", 2), ("c", None)]
    assert sorted(state.keys()) == ["b", "c"] and sorted(state.values(), key=repr) == [2, None]
    assert not state.is_empty()
    clock.advance(10)
    assert state.is_empty() and list(state) == []
    assert backend.tables["m"] == {}


def test_map_put_and_read_and_write_refresh_an_entry(backend, clock):
    config = ttl_config(TTL, "update_ttl_on_read_and_write")
    state = backend.get_state(
        with_ttl(MapStateDescriptor("m", Types.STRING(), Types.INT()), config)
    )
    state.put("read", 1)
    state.put("written", 2)
    state.put("untouched", 3)
    clock.advance(TTL - 1)
    assert state.get("read") == 1
    state["written"] = 20
    clock.advance(TTL - 1)
    assert dict(state.items()) == {"read": 1, "written": 20}
    state.remove("read")
    assert dict(state.items()) == {"written": 20}


def test_map_returns_expired_entries_once_when_asked_to(backend, clock):
    config = ttl_config(TTL, "return_expired_if_not_cleaned_up")
    state = backend.get_state(
        with_ttl(MapStateDescriptor("m", Types.STRING(), Types.INT()), config)
    )
    state.put("old", 1)
    clock.advance(TTL)
    state.put("new", 2)
    assert dict(state.items()) == {"old": 1, "new": 2}
    assert dict(state.items()) == {"new": 2}
    state.put("x", 3)
    clock.advance(TTL)
    assert state.get("x") == 3
    assert state.get("x") is None


# ---------------------------------------------------------------- reducing, aggregating


def test_reducing_state_starts_anew_after_expiry(backend, clock):
    descriptor = with_ttl(ReducingStateDescriptor("r", lambda a, b: a + b, Types.INT()))
    state = backend.get_state(descriptor)
    state.add(1)
    clock.advance(TTL - 1)
    state.add(2)  # a write: refreshes the sum
    clock.advance(TTL - 1)
    assert state.get() == 3
    clock.advance(1)
    assert state.get() is None
    state.add(5)
    clock.advance(TTL)
    state.add(10)  # the expired 5 does not count
    assert state.get() == 10


def test_aggregating_state_starts_a_new_accumulator_after_expiry(backend, clock):
    descriptor = with_ttl(
        AggregatingStateDescriptor("avg", Average(), Types.TUPLE([Types.INT(), Types.INT()]))
    )
    state = backend.get_state(descriptor)
    assert state.get() is None
    state.add(2)
    state.add(4)
    assert state.get() == 3.0
    clock.advance(TTL)
    assert state.get() is None
    state.add(10)
    clock.advance(TTL - 1)
    assert state.get() == 10.0
    clock.advance(1)
    state.add(1)
    assert state.get() == 1.0


# ---------------------------------------------------------------- cleanup


def fill(backend, state, keys, write) -> None:
    for key in keys:
        backend.current_key = key
        write(state)


def test_incremental_cleanup_removes_expired_keys_nobody_reads(backend, clock):
    config = ttl_config(TTL, "background")  # the default: 5 keys per access
    values = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT()), config))
    fill(backend, values, range(200), lambda s: s.update(1))
    clock.advance(TTL)
    backend.current_key = "reader"
    sizes = [len(backend.tables["v"])]
    for _ in range(8 * CLEANUP_EVERY):
        assert values.value() is None
        sizes.append(len(backend.tables["v"]))
    removed = [before - after for before, after in zip(sizes, sizes[1:], strict=False)]
    # One cleanup every CLEANUP_EVERY accesses, checking 5 keys for each of them.
    assert max(removed) == 5 * CLEANUP_EVERY
    assert len([r for r in removed if r]) <= 200 // (5 * CLEANUP_EVERY) + 2
    cleanups = [i for i, r in enumerate(removed) if r]
    assert all((i - cleanups[0]) % CLEANUP_EVERY == 0 for i in cleanups)
    assert backend.tables["v"] == {}
    assert backend.current_key == "reader"


def test_incremental_cleanup_of_lists_and_maps_keeps_live_elements(backend, clock):
    config = (
        StateTtlConfig.new_builder(Time.milliseconds(TTL)).cleanup_incrementally(100, False).build()
    )
    lists = backend.get_state(with_ttl(ListStateDescriptor("l", Types.INT()), config))
    maps = backend.get_state(with_ttl(MapStateDescriptor("m", Types.INT(), Types.INT()), config))
    fill(backend, lists, range(10), lambda s: s.add(1))
    fill(backend, maps, range(10), lambda s: s.put("old", 1))
    clock.advance(TTL - 1)
    fill(backend, lists, range(5), lambda s: s.add(2))
    fill(backend, maps, range(5), lambda s: s.put("new", 2))
    clock.advance(1)
    backend.current_key = "reader"
    for _ in range(CLEANUP_EVERY):
        lists.get()
        maps.get("x")
    assert {k: [v for v, _ in e] for k, e in backend.tables["l"].items()} == {
        k: [2] for k in range(5)
    }
    assert {k: set(e) for k, e in backend.tables["m"].items()} == {k: {"new"} for k in range(5)}


def test_without_background_cleanup_only_reads_remove_expired_entries(backend, clock):
    values = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT())))
    fill(backend, values, range(10), lambda s: s.update(1))
    clock.advance(TTL)
    backend.current_key = "reader"
    for _ in range(10):
        values.value()
    assert len(backend.tables["v"]) == 10


def test_full_snapshot_cleanup_leaves_expired_entries_out_of_snapshots(backend, clock):
    config = ttl_config(TTL, "cleanup_full_snapshot")
    values = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT()), config))
    lists = backend.get_state(with_ttl(ListStateDescriptor("l", Types.INT()), config))
    kept = backend.get_state(with_ttl(ValueStateDescriptor("kept", Types.INT())))
    fill(backend, values, range(6), lambda s: s.update(1))
    fill(backend, lists, range(6), lambda s: s.add(1))
    fill(backend, kept, range(6), lambda s: s.update(1))
    clock.advance(TTL - 1)
    fill(backend, values, range(2), lambda s: s.update(2))
    fill(backend, lists, range(2), lambda s: s.add(2))
    clock.advance(1)
    backend.current_key = "current"
    snapshot = checkpoint_and_restore(backend, clock).tables
    assert backend.current_key == "current"
    assert snapshot["v"] == {0: (2, T0 + TTL - 1), 1: (2, T0 + TTL - 1)}
    assert snapshot["l"] == {0: [(2, T0 + TTL - 1)], 1: [(2, T0 + TTL - 1)]}
    assert len(snapshot["kept"]) == 6  # no cleanup_full_snapshot(): left as they are


def test_restored_state_keeps_its_timestamps(backend, clock):
    values = backend.get_state(with_ttl(ValueStateDescriptor("v", Types.INT())))
    maps = backend.get_state(with_ttl(MapStateDescriptor("m", Types.STRING(), Types.INT())))
    values.update(1)
    maps.put("a", 1)
    clock.advance(TTL // 2)
    maps.put("b", 2)
    restored = checkpoint_and_restore(backend, clock)
    restored.current_key = "k"
    values = restored.get_state(with_ttl(ValueStateDescriptor("v", Types.INT())))
    maps = restored.get_state(with_ttl(MapStateDescriptor("m", Types.STRING(), Types.INT())))
    clock.advance(TTL // 2 - 1)
    assert values.value() == 1 and dict(maps.items()) == {"a": 1, "b": 2}
    clock.advance(1)  # TTL after the writes before the failover, not after the restore
    assert values.value() is None and dict(maps.items()) == {"b": 2}


def test_ttl_of_a_duration_and_bad_settings():
    config = StateTtlConfig.new_builder(Duration.of_seconds(2)).build()
    assert config.get_ttl() == Time.seconds(2)
    with pytest.raises(ValueError, match="positive"):
        StateTtlConfig.new_builder(Time.milliseconds(0))
    with pytest.raises(ValueError, match="cleanup_size"):
        StateTtlConfig.new_builder(Time.seconds(1)).cleanup_incrementally(0, False)
    strategies = config.get_cleanup_strategies()
    incremental = strategies.get_incremental_cleanup_strategy()
    assert (incremental.get_cleanup_size(), incremental.run_cleanup_for_every_record()) == (
        5,
        False,
    )
    assert not strategies.in_full_snapshot()
    off = StateTtlConfig.new_builder(Time.seconds(1)).disable_cleanup_in_background().build()
    assert off.get_cleanup_strategies().get_incremental_cleanup_strategy() is None


# ---------------------------------------------------------------- in a job

JOB_TTL_MS = 500


class ShortAndLongTtl(KeyedProcessFunction):
    """Per key, a "write" record sets a value with a short TTL and one with a long TTL; a later
    "read" record first waits, on the clock TTL uses, until the short TTL has passed since
    that write, then reports what both states return."""

    def open(self, runtime_context: RuntimeContext):
        short = ValueStateDescriptor("short", Types.STRING())
        short.enable_time_to_live(StateTtlConfig.new_builder(Time.milliseconds(JOB_TTL_MS)).build())
        long = ValueStateDescriptor("long", Types.STRING())
        long.enable_time_to_live(StateTtlConfig.new_builder(Time.hours(1)).build())
        self.short = runtime_context.get_state(short)
        self.long = runtime_context.get_state(long)
        self.written_at = runtime_context.get_state(ValueStateDescriptor("at", Types.LONG()))

    def process_element(self, value, ctx):
        key, action = value
        timer_service = ctx.timer_service()
        if action == "write":
            self.short.update(f"{key}-short")
            self.long.update(f"{key}-long")
            self.written_at.update(timer_service.current_processing_time())
            yield (key, action, self.short.value(), self.long.value())
        else:
            expires_at = self.written_at.value() + JOB_TTL_MS
            while timer_service.current_processing_time() < expires_at:
                time.sleep(0.01)  # polls the clock; waits at most JOB_TTL_MS
            yield (key, action, self.short.value(), self.long.value())


def test_a_job_never_sees_expired_values(mode):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    keys = [f"k{i}" for i in range(6)]
    records = [(k, "write") for k in keys] + [(k, "read") for k in keys]
    out = env.from_collection(records).key_by(lambda r: r[0]).process(ShortAndLongTtl())
    results = sorted(mode.collect(out))
    assert results == sorted(
        [(k, "write", f"{k}-short", f"{k}-long") for k in keys]
        + [(k, "read", None, f"{k}-long") for k in keys]
    )
