"""Side outputs: ``OutputTag``, ``ctx.output`` and ``get_side_output``, and a window's late
data, embedded and on the 2-TaskManager cluster."""

from __future__ import annotations

from collections import Counter

import pytest

from strom.common import Time, Types, WatermarkStrategy
from strom.datastream import (
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    ProcessWindowFunction,
    SourceFunction,
    StreamExecutionEnvironment,
)
from strom.datastream.window import TumblingEventTimeWindows

NEGATIVE = OutputTag("negative", Types.INT())
BIG = OutputTag("big")
LATE = OutputTag("late")


def env_with(parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


class Split(ProcessFunction):
    """Positive numbers to the main output, negative ones and big ones to side outputs."""

    def process_element(self, value, ctx):
        if value < 0:
            ctx.output(NEGATIVE, -value)
            return
        if value > 90:
            ctx.output(BIG, ("big", value))
        yield value


def tagged(stream, tag):
    return stream.map(lambda v, tag=tag: (tag, v))


@pytest.mark.parametrize("chained", [True, False])
def test_process_function_splits_a_stream(mode, chained):
    data = list(range(-50, 100))
    env = env_with(2)
    main = env.from_collection(data).rebalance().process(Split())
    negative = main.get_side_output(NEGATIVE)
    big = main.get_side_output(BIG)
    if not chained:  # the side output crosses the network to another parallelism
        negative = negative.rebalance().map(lambda v: v).set_parallelism(3)
    results = mode.collect(
        tagged(main, "main").union(tagged(negative, "negative"), tagged(big, "big"))
    )
    expected = (
        [("main", v) for v in data if v >= 0]
        + [("negative", -v) for v in data if v < 0]
        + [("big", ("big", v)) for v in data if v > 90]
    )
    assert Counter(results) == Counter(expected)


def test_side_output_nobody_reads_is_dropped_and_two_readers_both_get_it(mode):
    env = env_with(2)
    main = env.from_collection(list(range(-5, 5))).process(Split())
    first = main.get_side_output(NEGATIVE)
    second = main.get_side_output(OutputTag("negative"))  # equal ids: the same side output
    results = mode.collect(tagged(first, 1).union(tagged(second, 2)))
    assert Counter(results) == Counter([(n, v) for n in (1, 2) for v in range(1, 6)])


class Alarm(KeyedProcessFunction):
    """Counts per key; an event-time timer at the end reports the count to a side output."""

    def open(self, runtime_context):
        from strom.datastream import ValueStateDescriptor

        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.INT()))

    def process_element(self, value, ctx):
        self.count.update((self.count.value() or 0) + 1)
        ctx.timer_service().register_event_time_timer(1000)
        yield value

    def on_timer(self, timestamp, ctx):
        ctx.output(BIG, (ctx.get_current_key(), self.count.value(), ctx.timestamp()))


def test_keyed_process_function_emits_to_a_side_output_from_on_timer(mode):
    data = [(f"k{i % 3}", i) for i in range(30)]
    env = env_with(2)
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda e, _: e[1]
    )
    main = (
        env.from_collection(data)
        .assign_timestamps_and_watermarks(strategy)
        .key_by(lambda e: e[0])
        .process(Alarm())
    )
    results = mode.collect(tagged(main, "main").union(tagged(main.get_side_output(BIG), "side")))
    counts = Counter(k for k, _ in data)
    assert Counter(results) == Counter(
        [("main", e) for e in data] + [("side", (k, n, 1000)) for k, n in counts.items()]
    )


class OutOfOrder(SourceFunction):
    """Timestamped events with explicit watermarks, so which events are late is certain."""

    def __init__(self, steps):
        self.steps = steps

    def run(self, ctx):
        for step in self.steps:
            if step[0] == "watermark":
                ctx.emit_watermark(step[1])
            else:
                ctx.collect_with_timestamp(step, step[2])

    def cancel(self):
        pass


WATERMARK_AT = 23


def late_data_steps():
    """(kind, key, timestamp) events in windows of 10 ms, then a watermark at 23 and events of
    which some are too late for a lateness of 5 ms: those of window [0, 10), which was
    cleaned up at 9 + 5 <= 23, while window [10, 20) still takes late events (19 + 5 > 23)."""
    steps = [("event", f"k{i % 2}", t) for i, t in enumerate([1, 3, 12, 14, 18, 21, 22])]
    steps.append(("watermark", WATERMARK_AT))
    steps += [("event", "k0", t) for t in (5, 9, 15, 19, 23, 27)]  # 5, 9 too late
    steps += [("event", "k1", 2), ("event", "k1", 28)]  # 2 too late
    return steps


class Describe(ProcessWindowFunction):
    def process(self, key, context, elements):
        window = context.window()
        timestamps = sorted(e[2] for e in elements)
        if len(timestamps) > 3:
            context.output(BIG, (key, window.start))
        yield key, window.start, tuple(timestamps)


@pytest.mark.parametrize("lateness", [0, 5])
def test_window_late_data_goes_to_a_side_output(mode, lateness):
    steps = late_data_steps()
    env = env_with(2)
    windowed = (
        env.add_source(OutOfOrder(steps))
        .key_by(lambda e: e[1])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
        .allowed_lateness(lateness)
        .side_output_late_data(LATE)
        .process(Describe())
    )
    late = windowed.get_side_output(LATE)
    big = windowed.get_side_output(BIG)
    results = mode.collect(
        tagged(windowed, "window").union(tagged(late, "late"), tagged(big, "big"))
    )

    # The same, by plain Python: a window [s, s+10) takes an event while the watermark is
    # below s + 10 - 1 + lateness; it fires when the watermark passes its end and once more
    # for each late event it takes after that (allowed lateness).
    watermark = -(2**63)
    contents: dict[tuple[str, int], list[int]] = {}
    fired: list = []
    late_events: list = []
    for step in steps:
        if step[0] == "watermark":
            watermark = step[1]
            for (key, start), stamps in sorted(contents.items()):
                if start + 9 <= watermark and not any(f[1] == (key, start) for f in fired):
                    fired.append(("window", (key, start), tuple(sorted(stamps))))
            continue
        _, key, stamp = step
        start = stamp - stamp % 10
        if start + 9 + lateness <= watermark:
            late_events.append(step)
            continue
        contents.setdefault((key, start), []).append(stamp)
        if start + 9 <= watermark:
            fired.append(("window", (key, start), tuple(sorted(contents[(key, start)]))))
    for (key, start), stamps in sorted(contents.items()):  # the end of input fires the rest
        if not any(f[1] == (key, start) for f in fired):
            fired.append(("window", (key, start), tuple(sorted(stamps))))
    expected = [("window", (key, start, stamps)) for _, (key, start), stamps in fired]
    expected += [("late", event) for event in late_events]
    expected += [("big", (key, start)) for _, (key, start), stamps in fired if len(stamps) > 3]
    assert Counter(results) == Counter(expected)
    assert sorted(e[2] for e in late_events) == ([2, 5, 9] if lateness else [2, 5, 9, 15, 19])


def test_get_side_output_of_a_repartitioned_stream_is_refused():
    env = env_with(1)
    with pytest.raises(TypeError, match="get_side_output"):
        env.from_collection([1]).rebalance().get_side_output(NEGATIVE)
    with pytest.raises(TypeError, match="OutputTag"):
        env.from_collection([1]).process(Split()).get_side_output("negative")


def test_late_events_are_dropped_without_a_side_output(mode):
    steps = late_data_steps()
    env = env_with(1)
    windowed = (
        env.add_source(OutOfOrder(steps))
        .key_by(lambda e: e[1])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
        .process(Describe())
    )
    results = mode.collect(windowed)
    in_windows = sorted(t for _, _, stamps in results for t in stamps)
    # Without lateness, an event after the watermark is dropped if its window ended.
    events = [s[2] for s in steps if s[0] == "event"]
    before, after = events[:7], events[7:]
    assert in_windows == sorted(before + [t for t in after if t - t % 10 + 9 > WATERMARK_AT])
