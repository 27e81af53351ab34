"""Late firings of aggregating windows on two subtasks, of a purging trigger and of windows over
the whole stream; records too late for any of them go to side outputs.

As in late_data.py, the records come in two phases: the first is on time and in timestamp
order, and ends with its highest timestamp (the watermark is then 24000 - 2000 - 1 = 21999);
the second holds no timestamp above it, so the watermark stays at 21999 while it passes. A gate
holds the second phase back until a probe fired its event-time timer at 21999, so the same
records are late on every run; Python bundles of one record keep PyFlink from holding the
watermark back behind an open bundle.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Iterable

from pyflink.common import Configuration, Duration, Time, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import OutputTag, StreamExecutionEnvironment
from pyflink.datastream.functions import (
    AggregateFunction,
    KeyedProcessFunction,
    MapFunction,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
)
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.datastream.window import (
    EventTimeSessionWindows,
    EventTimeTrigger,
    PurgingTrigger,
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
)


def event_type():
    # A type of its own for each use: PyFlink keeps the Java type it made in it, which
    # cannot be pickled with a function that holds the type.
    return Types.TUPLE([Types.STRING(), Types.LONG(), Types.INT()])


ON_TIME = [
    ("x", 500, 1),
    ("y", 2500, 2),
    ("x", 4000, 3),
    ("z", 5500, 4),
    ("y", 8000, 5),
    ("x", 9000, 6),
    ("z", 12500, 7),
    ("y", 13000, 8),
    ("x", 15500, 9),
    ("z", 18000, 10),
    ("y", 24000, 11),
]
#: the watermark after the first phase, and while the second passes
WATERMARK = 24000 - 2000 - 1

LATER = [
    # tumbling: the first firing of a window comes from a late record; session: joins a
    # fired session, which fires again
    ("x", 14000, 100),
    ("x", 16000, 200),  # a late firing everywhere
    ("y", 7000, 300),  # too late for every window: to the side outputs
    ("z", 22000, 400),  # on time everywhere
    ("z", 11000, 500),  # tumbling: a late firing; session: too late
    ("y", 21999, 600),  # at the watermark: on time (no window it is in has fired)
    ("x", 19999, 700),  # tumbling: a late firing; session: a new one, on time
]

TUMBLING_LATE = OutputTag("tumbling-late", event_type())
SESSION_LATE = OutputTag("session-late", event_type())
ALL_LATE = OutputTag("all-late", event_type())


class Stamp(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[1]


class Gate(MapFunction):
    """Lets records through once ``signal`` exists (the probe saw the first phase's watermark)."""

    def __init__(self, signal: str):
        self.signal = signal

    def map(self, value):
        deadline = time.monotonic() + 60
        while not os.path.exists(self.signal):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no watermark of {WATERMARK} within 60 s ({self.signal})")
            time.sleep(0.01)
        return value


class Probe(KeyedProcessFunction):
    """Opens the gate when the watermark reaches the end of the first phase. The timer that
    a record of the second phase registers is in the past: it fires at the next watermark,
    the final one."""

    def __init__(self, signal: str):
        self.signal = signal

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        if ctx.timestamp() < WATERMARK:
            ctx.timer_service().register_event_time_timer(WATERMARK)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        watermark = ctx.timer_service().current_watermark()
        yield f"{ctx.get_current_key()} timer at {timestamp}, watermark {watermark}"
        with open(self.signal + ".part", "w") as f:
            f.write(ctx.get_current_key())
        os.replace(self.signal + ".part", self.signal)


class SumCount(AggregateFunction):
    """[sum, count, lowest timestamp, highest timestamp]: merging it is order-free."""

    def create_accumulator(self):
        return [0, 0, None, None]

    def add(self, value, accumulator):
        low, high = accumulator[2], accumulator[3]
        return [
            accumulator[0] + value[2],
            accumulator[1] + 1,
            value[1] if low is None else min(low, value[1]),
            value[1] if high is None else max(high, value[1]),
        ]

    def get_result(self, accumulator):
        return tuple(accumulator)

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3])]


class KeyFirings(ProcessWindowFunction[tuple, str, str, TimeWindow]):
    """Each firing with how often the key's windows fired so far (the key's global state)."""

    def __init__(self, label: str):
        self.label = label

    def process(self, key: str, context, results: Iterable[tuple]) -> Iterable[str]:
        fired = context.global_state().get_state(
            ValueStateDescriptor(f"{self.label}-fired", Types.INT())
        )
        fired.update((fired.value() or 0) + 1)
        window = context.window()
        for total, count, low, high in results:
            yield (
                f"{key} [{window.start}, {window.end}) firing {fired.value()} of the key: "
                f"sum {total} of {count}, timestamps {low}..{high}"
            )


class AllFirings(ProcessAllWindowFunction[tuple, str, TimeWindow]):
    def process(self, context, reduced):
        fired = context.window_state().get_state(ValueStateDescriptor("fired", Types.INT()))
        fired.update((fired.value() or 0) + 1)
        window = context.window()
        for value in reduced:
            yield f"all [{window.start}, {window.end}) firing {fired.value()}: sum {value[2]}"


def total(a, b):
    return a[0], max(a[1], b[1]), a[2] + b[2]


def main():
    config = Configuration()
    config.set_integer("python.fn-execution.bundle.size", 1)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    signal_dir = tempfile.mkdtemp(prefix="late-firings-")
    try:
        build(env, os.path.join(signal_dir, "watermark-passed"))
        env.execute("late firings")
    finally:
        shutil.rmtree(signal_dir, ignore_errors=True)


def build(env, signal):
    """The job: both phases of records, the gate, the probe and the windows."""
    first = env.from_collection(ON_TIME, type_info=event_type())
    second = env.from_collection(LATER, type_info=event_type()).map(
        Gate(signal), output_type=event_type()
    )
    events = first.union(second).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(
            Duration.of_millis(2000)
        ).with_timestamp_assigner(Stamp())
    )
    keyed = events.key_by(lambda e: e[0], key_type=Types.STRING())
    keyed.process(Probe(signal), output_type=Types.STRING()).print("probe")

    # Keyed windows on two subtasks: both see the watermark before the late records.
    tumbling = (
        keyed.window(TumblingEventTimeWindows.of(Time.seconds(5)))
        .allowed_lateness(8000)
        .side_output_late_data(TUMBLING_LATE)
        .aggregate(
            SumCount(),
            KeyFirings("tumbling"),
            accumulator_type=Types.PICKLED_BYTE_ARRAY(),
            output_type=Types.STRING(),
        )
        .set_parallelism(2)
    )
    tumbling.print("tumbling")
    tumbling.get_side_output(TUMBLING_LATE).print("tumbling-late")

    sessions = (
        keyed.window(EventTimeSessionWindows.with_gap(Time.seconds(3)))
        .allowed_lateness(6000)
        .side_output_late_data(SESSION_LATE)
        .aggregate(
            SumCount(),
            KeyFirings("session"),
            accumulator_type=Types.PICKLED_BYTE_ARRAY(),
            output_type=Types.STRING(),
        )
        .set_parallelism(2)
    )
    sessions.print("session")
    sessions.get_side_output(SESSION_LATE).print("session-late")

    # A purging trigger empties the window at each firing: a late firing holds only what
    # came late.
    keyed.window(TumblingEventTimeWindows.of(Time.seconds(5))).trigger(
        PurgingTrigger.of(EventTimeTrigger.create())
    ).allowed_lateness(8000).reduce(total, output_type=event_type()).print("purging")

    everything = (
        events.window_all(SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5)))
        .allowed_lateness(6000)
        .side_output_late_data(ALL_LATE)
        .reduce(total, window_function=AllFirings(), output_type=Types.STRING())
    )
    everything.print("all")
    everything.get_side_output(ALL_LATE).print("all-late")


if __name__ == "__main__":
    main()
