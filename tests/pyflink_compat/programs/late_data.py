"""Late data in event-time windows: allowed lateness and late firings, records too late for
any window (sent to a side output, or dropped without one), and the watermark that process
functions see when a late record comes.

The records come in two phases. The first phase is on time, in timestamp order, and ends with
its highest timestamp, so the watermark ends at exactly 21000 - 1000 - 1 = 19999 after it.
The second phase holds no timestamp above 21000: the watermark stays at 19999 while it passes.
Watermarks are periodic, so when the second phase came after the watermark would be a matter
of timing; instead a gate holds the second phase back until a probe downstream fired its
event-time timer at 19999 (it writes a file the gate waits for). Every operator has then seen
that watermark before any record of the second phase, on every run. Python bundles of one
record keep PyFlink from holding a watermark back behind a bundle that is still open.
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
    KeyedProcessFunction,
    MapFunction,
    ProcessAllWindowFunction,
    ProcessFunction,
    ProcessWindowFunction,
)
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.datastream.window import (
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
)


def event_type():
    # A type of its own for each use: PyFlink keeps the Java type it made in it, which
    # cannot be pickled with a function that holds the type.
    return Types.TUPLE([Types.STRING(), Types.LONG(), Types.INT()])


ON_TIME = [
    ("a", 1000, 1),
    ("b", 1500, 2),
    ("a", 3000, 4),
    ("a", 6000, 8),
    ("b", 7000, 16),
    ("a", 12000, 32),
    ("b", 14000, 64),
    ("b", 16500, 128),
    ("a", 19000, 256),
    ("a", 21000, 512),
]
#: the watermark after the first phase, and while the second passes
WATERMARK = 21000 - 1000 - 1

LATER = [
    # tumbling: a late firing (or dropped); sliding: too late for both its windows;
    # session: joins a fired session, which fires again
    ("a", 11000, 1024),
    ("b", 2000, 2048),  # too late for every window: to the side outputs
    ("a", 20500, 4096),  # on time everywhere
    # at the watermark: a late firing of the tumbling window that ends at 20000 (dropped
    # without allowed lateness), on time in the sliding windows and a session of its own
    ("b", 19999, 8192),
    # sliding: a late firing of one window, on time in the other; session: joins a fired
    # session and the open one
    ("b", 17000, 16384),
    ("a", 14000, 32768),  # sliding: too late for one window, a late firing of the other
    ("a", 16000, 65536),  # session: joins a fired session and one still open
    # a new key: too late for its session (ending at the watermark less the allowed
    # lateness), first firings of windows by late records in the tumbling windows
    ("c", 11000, 131072),
    # session: a session of its own (the too late one before it is no session to join)
    ("c", 12500, 262144),
]

TUMBLING_LATE = OutputTag("tumbling-late", event_type())
SLIDING_LATE = OutputTag("sliding-late", event_type())
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
    """Says whether each record is behind the watermark, and opens the gate when the
    watermark reaches the end of the first phase. The timer registered again for a record of
    the second phase is at the watermark, in the past: it fires at the next watermark, the
    final one."""

    def __init__(self, signal: str):
        self.signal = signal

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        watermark = ctx.timer_service().current_watermark()
        if ctx.timestamp() <= watermark:
            yield f"keyed {value} behind the watermark {watermark}"
        else:
            yield f"keyed {value} ahead of the watermark"
        ctx.timer_service().register_event_time_timer(WATERMARK)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        watermark = ctx.timer_service().current_watermark()
        yield f"keyed {ctx.get_current_key()} timer at {timestamp}, watermark {watermark}"
        with open(self.signal + ".part", "w") as f:
            f.write(ctx.get_current_key())
        os.replace(self.signal + ".part", self.signal)


class Behind(ProcessFunction):
    def process_element(self, value, ctx: ProcessFunction.Context):
        watermark = ctx.timer_service().current_watermark()
        late = ctx.timestamp() <= watermark
        yield f"{value}: {'late, watermark ' + str(watermark) if late else 'on time'}"


class Firings(ProcessWindowFunction[tuple, str, str, TimeWindow]):
    """Each firing of a window, counted in the window's own state; firings after the first
    come from late records, when the watermark is the one after the first phase."""

    def process(
        self,
        key: str,
        context: ProcessWindowFunction.Context[TimeWindow],
        elements: Iterable[tuple],
    ) -> Iterable[str]:
        fired = context.window_state().get_state(ValueStateDescriptor("fired", Types.INT()))
        count = (fired.value() or 0) + 1
        fired.update(count)
        window = context.window()
        values = sorted(e[2] for e in elements)
        line = f"{key} [{window.start}, {window.end}) firing {count}: {values}"
        if count > 1:
            line += f" at watermark {context.current_watermark()}"
        yield line

    def clear(self, context: ProcessWindowFunction.Context) -> None:
        context.window_state().get_state(ValueStateDescriptor("fired", Types.INT())).clear()


class Bounds(ProcessWindowFunction[tuple, tuple, str, TimeWindow]):
    def process(self, key: str, context, reduced: Iterable[tuple]) -> Iterable[tuple]:
        for value in reduced:
            yield key, context.window().start, context.window().end, value[2]


class Session(ProcessWindowFunction[tuple, str, str, TimeWindow]):
    # Per-window state is not for merging windows: each firing shows the session's bounds.
    def process(self, key: str, context, elements: Iterable[tuple]) -> Iterable[str]:
        window = context.window()
        values = sorted(e[2] for e in elements)
        yield f"{key} [{window.start}, {window.end}): {values}"


class Everything(ProcessAllWindowFunction[tuple, str, TimeWindow]):
    def process(self, context, elements):
        window = context.window()
        yield f"all [{window.start}, {window.end}): {sorted(e[2] for e in elements)}"


def total(a, b):
    return a[0], max(a[1], b[1]), a[2] + b[2]


def main():
    config = Configuration()
    config.set_integer("python.fn-execution.bundle.size", 1)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    signal_dir = tempfile.mkdtemp(prefix="late-data-")
    try:
        build(env, os.path.join(signal_dir, "watermark-passed"))
        env.execute("late data")
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
            Duration.of_millis(1000)
        ).with_timestamp_assigner(Stamp())
    )
    keyed = events.key_by(lambda e: e[0], key_type=Types.STRING())

    keyed.process(Probe(signal), output_type=Types.STRING()).print("probe")
    events.process(Behind(), output_type=Types.STRING()).print("process")

    tumbling = (
        keyed.window(TumblingEventTimeWindows.of(Time.seconds(5)))
        .allowed_lateness(8000)
        .side_output_late_data(TUMBLING_LATE)
        .reduce(total, output_type=event_type())
    )
    tumbling.print("tumbling")
    tumbling.get_side_output(TUMBLING_LATE).print("tumbling-late")

    # No allowed lateness and no side output: late records are dropped.
    keyed.window(TumblingEventTimeWindows.of(Time.seconds(5))).process(
        Firings(), Types.STRING()
    ).print("tumbling-strict")
    keyed.window(TumblingEventTimeWindows.of(Time.seconds(5))).allowed_lateness(8000).process(
        Firings(), Types.STRING()
    ).print("tumbling-firings")

    sliding = (
        keyed.window(SlidingEventTimeWindows.of(Time.seconds(6), Time.seconds(3)))
        .allowed_lateness(4000)
        .side_output_late_data(SLIDING_LATE)
        .reduce(
            total,
            window_function=Bounds(),
            output_type=Types.TUPLE([Types.STRING(), Types.LONG(), Types.LONG(), Types.INT()]),
        )
    )
    sliding.print("sliding")
    sliding.get_side_output(SLIDING_LATE).print("sliding-late")
    keyed.window(SlidingEventTimeWindows.of(Time.seconds(6), Time.seconds(3))).allowed_lateness(
        4000
    ).process(Firings(), Types.STRING()).print("sliding-firings")

    sessions = (
        keyed.window(EventTimeSessionWindows.with_gap(Time.seconds(3)))
        .allowed_lateness(6000)
        .side_output_late_data(SESSION_LATE)
        .process(Session(), Types.STRING())
    )
    sessions.print("session")
    sessions.get_side_output(SESSION_LATE).print("session-late")

    everything = (
        events.window_all(TumblingEventTimeWindows.of(Time.seconds(10)))
        .side_output_late_data(ALL_LATE)
        .process(Everything(), Types.STRING())
    )
    everything.print("all")
    everything.get_side_output(ALL_LATE).print("all-late")


if __name__ == "__main__":
    main()
