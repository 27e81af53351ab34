"""Tumbling event-time windows with a reduce or an AggregateFunction: their per-record loop
(and, for a plain reduce, their firing) run in C (``strom/_speedups.c``) where the install
built it. They must do exactly what the Python loops
of ``taskmanager/runtime/windows.py`` do, and a job gives the same results with them and
without."""

from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jobs_support import CountedCalls, Mode

from strom.common import Time
from strom.common.watermark_strategy import Watermark
from strom.datastream import (
    AggregateFunction,
    OutputTag,
    ProcessWindowFunction,
    SourceFunction,
    StreamExecutionEnvironment,
)
from strom.datastream.window import TumblingEventTimeWindows
from taskmanager.runtime import windows

_speedups = windows._speedups


def needs_compiled() -> None:
    if _speedups is None:
        pytest.skip("strom._speedups is not built here (no C compiler at install)")


def add(a, b):
    return (a[0], a[1] + b[1])


def reference(records, keys, size, offset, watermark, reduce=add):
    """``WindowOperator._tumbling_records``' loop for a reduce: contents, the keys of each
    window start, the heap of starts, and the indexes of the late records."""
    contents: dict = {}
    keys_by_start: dict = {}
    starts: list = []
    late = []
    state = (contents, keys_by_start, starts, late)
    for index in range(len(records)):
        put(records, keys, index, (size, offset, watermark, reduce), state)
    return contents, keys_by_start, starts, late


def put(records, keys, index, window, state):
    """The Python loop's body for record ``index``: ``window`` is (size, offset, watermark,
    reduce), ``state`` (contents, keys_by_start, starts, late)."""
    size, offset, watermark, reduce = window
    contents, keys_by_start, starts, late = state
    value, stamp = records[index]
    start = stamp - (stamp - offset) % size
    if start + size - 1 <= watermark:
        late.append(index)
        return
    key = value[0] if keys is None else keys[index]
    per_key = contents.setdefault(key, {})
    if start not in per_key:
        if start not in keys_by_start:
            heapq.heappush(starts, start)
        keys_by_start.setdefault(start, []).append(key)
        per_key[start] = value
    else:
        per_key[start] = reduce(per_key[start], value)


def tumble(
    records,
    keys,
    function,
    contents,
    *aggregate,
    state=None,
    size=100,
    offset=0,
    watermark=-1,
    index=0,
):
    """One call of the C loop over ``records`` ((value, timestamp) pairs); ``state`` is the
    windows' ``(keys_by_start, starts)``, fresh when None."""
    keys_by_start, starts = state if state is not None else ({}, [])
    return _speedups.tumbling_reduce(
        [value for value, _ in records],
        [stamp for _, stamp in records],
        keys,
        lambda value: value[0],
        function,
        contents,
        keys_by_start,
        starts,
        heapq.heappush,
        size,
        offset,
        watermark,
        index,
        *aggregate,
    )


def compiled(records, keys, size, offset, watermark, reduce=add):
    """The C loop, driven as ``_process_tumbling`` drives it: a record it leaves (late, or a
    timestamp that is not a 64-bit int) is done by the Python loop, then it goes on."""
    contents: dict = {}
    keys_by_start: dict = {}
    starts: list = []
    late = []
    state = (contents, keys_by_start, starts, late)
    index = 0
    while True:
        index = tumble(
            records,
            keys,
            reduce,
            contents,
            state=(keys_by_start, starts),
            size=size,
            offset=offset,
            watermark=watermark,
            index=index,
        )
        if index >= len(records):
            return contents, keys_by_start, starts, late
        # The Python loop's part: one record.
        put(records, keys, index, (size, offset, watermark, reduce), state)
        index += 1


stamps = st.one_of(
    st.integers(-5_000, 5_000),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**70, -(2**70), 7.0, True]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.tuples(st.sampled_from("abc"), st.integers(0, 9)), stamps), max_size=40),
    st.integers(1, 2_000),
    st.integers(-1_000, 1_000),
    st.one_of(st.integers(-3_000, 3_000), st.just(-(2**63))),
    st.booleans(),
)
def test_the_compiled_tumbling_loop_does_what_the_python_loop_does(
    records, size, offset, watermark, with_keys
):
    needs_compiled()
    keys = [f"k{value[0]}" for value, _ in records] if with_keys else None
    expected = reference(records, keys, size, offset, watermark)
    got = compiled(records, keys, size, offset, watermark)
    assert repr(got[0]) == repr(expected[0])  # the same contents, in the same order
    assert got[1] == expected[1] and sorted(got[2]) == sorted(expected[2])
    assert got[3] == expected[3]
    assert all(got[2][(i - 1) // 2] <= got[2][i] for i in range(1, len(got[2])))  # a heap


def test_the_compiled_tumbling_loop_stops_where_the_python_loop_does():
    needs_compiled()

    def fails_on_three(a, b):
        if b[1] == 3:
            raise RuntimeError("user code failed")
        return add(a, b)

    records = [(("a", n), 10 + n) for n in range(5)]
    with pytest.raises(RuntimeError, match="user code failed"):
        compiled(records, None, 100, 0, -1, fails_on_three)
    contents: dict = {}
    with pytest.raises(RuntimeError, match="user code failed"):
        tumble(records, None, fails_on_three, contents)
    assert contents == {"a": {0: ("a", 3)}}  # the records before the failing one: 0 + 1 + 2
    with pytest.raises(TypeError):  # an unhashable key, as dict.get raises it
        tumble([(("a", 1), 5)], [["unhashable"]], add, {})


class Backend:
    current_key = None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.tuples(st.sampled_from("abc"), st.integers(0, 9)), st.integers(0, 500)),
        max_size=40,
    ),
    st.booleans(),
)
def test_the_compiled_tumbling_loop_aggregates_as_the_python_loop_does(records, with_keys):
    """An AggregateFunction: ``add(value, accumulator)``, the accumulator new from
    ``create_accumulator()`` for a new window, and the backend's current key the record's while
    they run (a function may read keyed state through its runtime context)."""
    needs_compiled()
    keys = [f"k{value[0]}" for value, _ in records] if with_keys else None
    backend = Backend()
    seen: list = []

    def create():
        seen.append(("create", backend.current_key))
        return [0, 0]

    def aggregate_add(value, accumulator):
        seen.append(("add", backend.current_key))
        return [accumulator[0] + 1, accumulator[1] + value[1]]

    expected_contents: dict = {}
    expected_seen = []
    for index, (value, stamp) in enumerate(records):
        key = value[0] if keys is None else keys[index]
        per_key = expected_contents.setdefault(key, {})
        start = stamp - stamp % 100
        if start not in per_key:
            expected_seen.append(("create", key))
            per_key[start] = [0, 0]
        expected_seen.append(("add", key))
        per_key[start] = [per_key[start][0] + 1, per_key[start][1] + value[1]]
    contents: dict = {}
    assert tumble(records, keys, aggregate_add, contents, create, backend) == len(records)
    assert contents == expected_contents and seen == expected_seen


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from([0, 10, 20])), max_size=30))
def test_the_compiled_firing_does_what_the_python_loop_does(entries):
    needs_compiled()

    def build():
        contents: dict = {}
        for key, start in entries:
            contents.setdefault(key, {})[start] = (key, start)
        return contents

    keys = [key for key, _ in entries] + ["absent"]
    expected_contents, expected = build(), []
    for key in keys:  # _fire_tumbling's loop for a plain reduce, window 10
        per_key = expected_contents.get(key)
        if per_key is None:
            continue
        accumulated = per_key.pop(10, None)
        if not per_key:
            del expected_contents[key]
        if accumulated is not None:
            expected.append(accumulated)
    contents, out = build(), ["before"]
    assert _speedups.fire_tumbling(keys, contents, 10, out) == len(expected)
    assert out == ["before", *expected] and contents == expected_contents


LATE = OutputTag("late")


class Scripted(SourceFunction):
    """3,000 events out of order by up to 250 ms, and a watermark 50 ms behind the newest
    every 50 events, in a fixed order: a fifth of the events are late, and always the same."""

    def run(self, ctx):
        newest = 0
        for n in range(3_000):
            stamp = (n * 37) % 251 + n * 3
            newest = max(newest, stamp)
            ctx.collect_with_timestamp((f"k{n % 7}", 1, stamp), stamp)
            if n % 50 == 49:
                ctx.emit_watermark(Watermark(newest - 50))

    def cancel(self):
        pass


class Labelled(ProcessWindowFunction):
    def process(self, key, context, elements):
        yield (key, context.window().start, sum(count for _, count, _ in elements))


def _window_job(parallelism: int, function=None):
    """Counts per key and 100 ms window; the late events to a side output."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    windowed = (
        env.add_source(Scripted())
        .set_parallelism(1)
        .key_by(lambda event: event[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
        .side_output_late_data(LATE)
    )
    add = lambda a, b: (a[0], a[1] + b[1], max(a[2], b[2]))  # noqa: E731
    if function == "aggregate":
        counted = windowed.aggregate(CountAndLatest())
    elif function is None:
        counted = windowed.reduce(add)
    else:
        counted = windowed.reduce(add, function)
    return counted, counted.get_side_output(LATE)


class CountAndLatest(AggregateFunction):
    def create_accumulator(self):
        return ["", 0, 0]

    def add(self, value, accumulator):
        return [value[0], accumulator[1] + value[1], max(accumulator[2], value[2])]

    def get_result(self, accumulator):
        return tuple(accumulator)

    def merge(self, a, b):
        return [a[0] or b[0], a[1] + b[1], max(a[2], b[2])]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_window_job_gives_the_same_results_with_the_compiled_loops_and_without(
    monkeypatch, parallelism
):
    needs_compiled()

    def run(function=None) -> tuple[list, list]:
        counted, late = _window_job(parallelism, function)
        mode = Mode("embedded")
        return sorted(mode.collect(counted)), sorted(mode.collect(late))

    counting = CountedCalls(_speedups)
    monkeypatch.setattr(windows, "_speedups", counting)
    with_c = run()
    assert counting.calls > 0
    monkeypatch.setattr(windows, "_speedups", None)
    without = run()
    assert with_c == without
    counts, late = with_c
    assert 300 < len(late) < 1_000
    assert sum(count for _, count, _ in counts) + len(late) == 3_000
    # With a window function the firing stays in Python; the records' loop does not.
    monkeypatch.setattr(windows, "_speedups", counting)
    labelled, late_again = run(Labelled())
    assert late_again == late
    assert sum(count for _, _, count in labelled) == sum(c for _, c, _ in counts)
    # An AggregateFunction takes the compiled loop as well, with the same results.
    calls = counting.calls
    aggregated = run("aggregate")
    assert counting.calls > calls
    assert aggregated == with_c
    monkeypatch.setattr(windows, "_speedups", None)
    assert run("aggregate") == with_c
