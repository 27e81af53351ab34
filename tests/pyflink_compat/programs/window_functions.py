"""Window functions the other programs leave out: WindowFunction (apply), reduce and aggregate
with a window function, per-window and global state in a ProcessWindowFunction, global windows
with a count trigger, sliding count windows, window offsets, and all-windows with window
functions."""

from pyflink.common import Time, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import (
    AggregateFunction,
    AllWindowFunction,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
    WindowFunction,
)
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.datastream.window import (
    CountTrigger,
    GlobalWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
)

EVENT = Types.TUPLE([Types.STRING(), Types.LONG(), Types.INT()])
EVENTS = [
    ("a", 1000, 1),
    ("b", 1500, 2),
    ("a", 2500, 3),
    ("a", 3200, 4),
    ("b", 4100, 5),
    ("a", 5600, 6),
    ("b", 7300, 7),
    ("a", 9900, 8),
]


class Stamp(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[1]


class Describe(WindowFunction):
    def apply(self, key, window, inputs):
        values = sorted(e[2] for e in inputs)
        yield f"{key} [{window.start}, {window.end}) max_ts={window.max_timestamp()}: {values}"


class Fires(ProcessWindowFunction):
    """Counts firings per window and per key across windows."""

    def process(self, key, context, elements):
        window_fires = context.window_state().get_state(
            ValueStateDescriptor("window-fires", Types.INT())
        )
        key_fires = context.global_state().get_state(ValueStateDescriptor("key-fires", Types.INT()))
        window_fires.update((window_fires.value() or 0) + 1)
        key_fires.update((key_fires.value() or 0) + 1)
        values = [e[2] for e in elements]
        yield (
            f"{key}: window fire {window_fires.value()} key fire {key_fires.value()} "
            f"values {values}"
        )


class WithCount(ProcessWindowFunction):
    def process(self, key, context, elements):
        for element in elements:
            yield f"{key} count window: {element}"


class SumCount(AggregateFunction):
    def create_accumulator(self):
        return 0, 0

    def add(self, value, accumulator):
        return accumulator[0] + value[2], accumulator[1] + 1

    def get_result(self, accumulator):
        return f"sum={accumulator[0]} n={accumulator[1]}"

    def merge(self, a, b):
        return a[0] + b[0], a[1] + b[1]


class AllWithWindow(ProcessAllWindowFunction):
    def process(self, context, elements):
        for element in elements:
            yield f"[{context.window().start}, {context.window().end}) {element}"


class AllApply(AllWindowFunction):
    def apply(self, window, inputs):
        for value in inputs:
            yield f"all max in [{window.start}, {window.end}): {value}"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    events = (
        env.from_collection(EVENTS, type_info=EVENT)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(Stamp())
        )
        .set_parallelism(1)
    )
    keyed = events.key_by(lambda e: e[0], key_type=Types.STRING())

    keyed.window(TumblingEventTimeWindows.of(Time.seconds(3), Time.seconds(1))).apply(
        Describe(), Types.STRING()
    ).print("offset-apply")
    keyed.window(
        SlidingEventTimeWindows.of(Time.seconds(4), Time.seconds(2), Time.seconds(1))
    ).reduce(
        lambda a, b: (a[0], max(a[1], b[1]), a[2] + b[2]),
        window_function=Describe(),
        output_type=Types.STRING(),
    ).print("offset-sliding-reduce")
    events.window_all(TumblingEventTimeWindows.of(Time.seconds(5))).aggregate(
        SumCount(), AllWithWindow(), output_type=Types.STRING()
    ).print("all-aggregate")
    events.window_all(TumblingEventTimeWindows.of(Time.seconds(5))).reduce(
        lambda a, b: a if a[2] > b[2] else b, window_function=AllApply(), output_type=Types.STRING()
    ).print("all-reduce")
    env.execute("time window functions")

    # Count windows run on records without timestamps, in a job of their own: on the stream
    # above (timestamps, parallelism 2), PyFlink 2.3 handed both count windows key b's first
    # record after its later ones, in every recording, while each key's records stay in order
    keyed = env.from_collection(EVENTS, type_info=EVENT).key_by(
        lambda e: e[0], key_type=Types.STRING()
    )
    keyed.window(GlobalWindows.create()).trigger(CountTrigger.of(2)).process(
        Fires(), Types.STRING()
    ).print("global-count")
    keyed.count_window(3, 2).reduce(
        lambda a, b: (a[0], b[1], a[2] + b[2]),
        window_function=WithCount(),
        output_type=Types.STRING(),
    ).print("sliding-count")
    env.execute("count window functions")


if __name__ == "__main__":
    main()
