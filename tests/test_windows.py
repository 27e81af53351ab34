"""Windows over out-of-order timestamped input, embedded and across TaskManagers, checked
against results computed by plain Python in the test."""

from __future__ import annotations

import random
import time
from collections import defaultdict

from strom.common import Duration, Time, WatermarkStrategy
from strom.common.watermark_strategy import Watermark
from strom.datastream import (
    AggregateFunction,
    ProcessWindowFunction,
    SourceFunction,
    StreamExecutionEnvironment,
    WindowFunction,
)
from strom.datastream.window import (
    CountTrigger,
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
)

DISORDER = 20


def events(count: int = 800, keys: int = 3, seed: int = 5) -> list[tuple[str, int, int]]:
    """(key, timestamp ms, value), each at most DISORDER ms behind the newest so far."""
    rng = random.Random(seed)
    return [
        (f"k{rng.randrange(keys)}", t * 3 + rng.randrange(DISORDER), rng.randrange(100))
        for t in range(count)
    ]


def stamped(env, data):
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(DISORDER)
    ).with_timestamp_assigner(lambda event, _: event[1])
    env.get_config().set_auto_watermark_interval(5)
    return env.from_collection(data).assign_timestamps_and_watermarks(strategy)


def env_with(parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


class SumWithWindow(WindowFunction):
    def apply(self, key, window, inputs):
        yield (key, window.start, window.end, sum(e[2] for e in inputs), len(list(inputs)))


def test_tumbling_event_time_windows_reduce_and_apply(mode):
    data = events()
    env = env_with(2)
    keyed = stamped(env, data).key_by(lambda e: e[0])
    size = 50
    reduced = keyed.window(TumblingEventTimeWindows.of(Time.milliseconds(size))).reduce(
        lambda a, b: (a[0], max(a[1], b[1]), a[2] + b[2])
    )
    applied = keyed.window(TumblingEventTimeWindows.of(Time.milliseconds(size))).apply(
        SumWithWindow()
    )
    results = mode.collect(
        reduced.map(lambda r: ("reduce", r[0], r[1] // size * size, r[2])).union(
            applied.map(lambda r: ("apply", r[0], r[1], r[3]))
        )
    )
    expected: dict = defaultdict(int)
    for key, ts, value in data:
        expected[(key, ts // size * size)] += value
    for kind in ("reduce", "apply"):
        got = {(k, start): total for what, k, start, total in results if what == kind}
        assert got == dict(expected), kind
        assert sum(1 for r in results if r[0] == kind) == len(expected)  # each fired once


class Average(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value[2], accumulator[1] + 1)

    def get_result(self, accumulator):
        return (accumulator[0], accumulator[1])

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


class Label(ProcessWindowFunction):
    def process(self, key, context, elements):
        window = context.window()
        for total, count in elements:
            yield (key, window.start, window.end, total, count)


def test_sliding_event_time_windows_aggregate_with_a_process_window_function(mode):
    data = events(500)
    env = env_with(2)
    size, slide = 60, 20
    windows = (
        stamped(env, data)
        .key_by(lambda e: e[0])
        .window(SlidingEventTimeWindows.of(Time.milliseconds(size), Time.milliseconds(slide)))
        .aggregate(Average(), Label())
    )
    results = mode.collect(windows)
    expected: dict = defaultdict(lambda: [0, 0])
    for key, ts, value in data:
        last = ts - ts % slide
        for start in range(last, ts - size, -slide):
            expected[(key, start)][0] += value
            expected[(key, start)][1] += 1
    got = {(k, start): [total, count] for k, start, end, total, count in results}
    assert got == dict(expected)
    assert all(end - start == size for _, start, end, _, _ in results)


class Sessions(ProcessWindowFunction):
    def process(self, key, context, elements):
        items = list(elements)
        yield (key, context.window().start, context.window().end, len(items))


def test_event_time_session_windows(mode):
    rng = random.Random(9)
    data = []
    for key in ("a", "b"):
        t = 0
        for _ in range(12):  # bursts separated by gaps larger than the session gap
            burst = rng.randrange(1, 6)
            for _ in range(burst):
                data.append((key, t, 1))
                t += rng.randrange(1, 8)
            t += 100
    rng.shuffle(data)
    data.sort(key=lambda e: e[1])  # ordered input: session boundaries are then exact
    env = env_with(2)
    sessions = (
        stamped(env, data)
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(30)))
        .process(Sessions())
    )
    results = mode.collect(sessions)
    expected = []
    for key in ("a", "b"):
        times = sorted(ts for k, ts, _ in data if k == key)
        start, last, count = times[0], times[0], 1
        for ts in times[1:]:
            if ts - last >= 30:
                expected.append((key, start, last + 30, count))
                start, count = ts, 0
            last = ts
            count += 1
        expected.append((key, start, last + 30, count))
    assert sorted(results) == sorted(expected)


def test_count_windows_and_a_count_trigger(mode):
    env = env_with(2)
    data = [(f"k{i % 3}", i, 1) for i in range(90)]
    counted = (
        env.from_collection(data)
        .key_by(lambda e: e[0])
        .count_window(10)
        .reduce(lambda a, b: (a[0], a[1], a[2] + b[2]))
    )
    results = mode.collect(counted)
    assert sorted(r[2] for r in results) == [10] * 9
    assert sorted(r[0] for r in results) == sorted(["k0", "k1", "k2"] * 3)


class PausingSource(SourceFunction):
    """Five records, a pause (a slow source), five more."""

    def run(self, ctx):
        for i in range(10):
            if i == 5:
                time.sleep(0.3)
            ctx.collect(("k", i, 1))

    def cancel(self):
        pass


def test_count_windows_wait_out_a_pause_of_their_input(mode):
    # A global window never ends: its task once waited for a cleanup timer at the end of time,
    # a wait no lock takes (OverflowError), whenever its input paused with a window open.
    env = env_with(1)
    env.set_buffer_timeout(0)
    counted = (
        env.add_source(PausingSource())
        .key_by(lambda e: e[0])
        .count_window(2)
        .reduce(lambda a, b: (a[0], b[1], a[2] + b[2]))
    )
    assert mode.collect(counted) == [("k", i, 2) for i in (1, 3, 5, 7, 9)]


def test_processing_time_windows_with_a_count_trigger_see_every_record(mode):
    env = env_with(1)
    data = [("k", i, i) for i in range(200)]
    windows = (
        env.from_collection(data)
        .key_by(lambda e: e[0])
        .window(TumblingProcessingTimeWindows.of(Time.seconds(60)))
        .trigger(CountTrigger.of(50))
        .reduce(lambda a, b: (a[0], a[1], a[2] + b[2]))
    )
    results = mode.collect(windows)
    # CountTrigger fires (without purging) at 50, 100, 150, 200 records: running sums.
    assert [r[2] for r in results][:4] == [sum(range(n)) for n in (50, 100, 150, 200)]


class ScriptedEvents(SourceFunction):
    """Records and watermarks in a fixed order, so lateness is exact."""

    def __init__(self, script):
        self.script = script

    def run(self, ctx):
        for kind, item in self.script:
            if kind == "record":
                ctx.collect_with_timestamp(item, item[1])
            else:
                ctx.emit_watermark(Watermark(item))

    def cancel(self):
        pass


def test_late_records_are_dropped_unless_within_allowed_lateness(mode):
    script = [
        ("record", ("k", 5, 1)),
        ("record", ("k", 15, 1)),
        ("watermark", 30),  # closes [0, 10) and [10, 20)
        ("record", ("k", 7, 10)),  # 23 ms late: within a 30 ms lateness, fires [0, 10) again
        ("watermark", 60),  # past [0,10)'s lateness too
        ("record", ("k", 8, 100)),  # too late: dropped
        ("record", ("k", 65, 1)),
    ]
    env = env_with(1)
    windows = (
        env.add_source(ScriptedEvents(script))
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
        .allowed_lateness(30)
        .reduce(lambda a, b: (a[0], min(a[1], b[1]), a[2] + b[2]))
    )
    results = [(r[1] // 10 * 10, r[2]) for r in mode.collect(windows)]
    assert results == [(0, 1), (10, 1), (0, 11), (60, 1)]


def test_a_session_too_late_to_keep_is_no_session_to_join(mode):
    """A record too late for any session leaves no session behind (as Flink's merging window
    set retires it): a later record whose window would have overlapped it makes a session
    of its own."""
    script = [
        ("record", ("k", 100, 1)),
        ("watermark", 200),  # closes [100, 130)
        ("record", ("k", 150, 10)),  # [150, 180): too late, dropped
        ("record", ("k", 175, 100)),  # [175, 205): on time; it overlapped the dropped one
    ]
    env = env_with(1)
    windows = (
        env.add_source(ScriptedEvents(script))
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(30)))
        .process(Sessions())
    )
    assert sorted(mode.collect(windows)) == [("k", 100, 130, 1), ("k", 175, 205, 1)]


class FiringsPerWindow(ProcessWindowFunction):
    """Counts firings in per-window state and in the key's global state; ``clear`` sees the
    window's state when the window goes."""

    def open(self, runtime_context):
        from strom.common import Types
        from strom.datastream import ValueStateDescriptor

        self.descriptor = ValueStateDescriptor("firings", Types.INT())
        self.opened = True

    def process(self, key, context, elements):
        assert self.opened, "open() was not called"
        in_window = context.window_state().get_state(self.descriptor)
        in_key = context.global_state().get_state(self.descriptor)
        in_window.update((in_window.value() or 0) + 1)
        in_key.update((in_key.value() or 0) + 1)
        yield key, context.window().start, len(list(elements)), in_window.value()

    def clear(self, context):
        assert context.window_state().get_state(self.descriptor).value() == 2
        context.window_state().get_state(self.descriptor).clear()


def test_process_window_function_per_window_and_global_state(mode):
    data = [(f"k{i % 2}", t, 1) for i, t in enumerate(range(0, 400, 5))]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    results = mode.collect(
        stamped(env, data)
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(40)))
        .trigger(CountTrigger.of(2))
        .process(FiringsPerWindow())
    )
    # Each window of a key holds 4 records: the count trigger fires at the 2nd and 4th,
    # and the per-window count restarts in every window.
    expected = []
    for key in ("k0", "k1"):
        for start in range(0, 400, 40):
            expected += [(key, start, 2, 1), (key, start, 4, 2)]
    assert sorted(results) == sorted(expected)
