"""Window assigners, window functions and triggers, keyed and over the whole stream."""

from collections.abc import Iterable

from pyflink.common import Time, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import (
    AggregateFunction,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
)
from pyflink.datastream.window import (
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
)


class Stamp(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[1]


class MeanAggregate(AggregateFunction):
    def create_accumulator(self):
        return [0, 0]

    def add(self, value, accumulator):
        return [accumulator[0] + value[2], accumulator[1] + 1]

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1]]


class WithWindow(ProcessWindowFunction[float, tuple, str, TimeWindow]):
    def process(self, key, context, averages: Iterable[float]):
        window = context.window()
        for average in averages:
            yield key, window.start, window.end, window.max_timestamp(), average


class Everything(ProcessAllWindowFunction[tuple, str, TimeWindow]):
    def process(self, context, elements):
        yield f"all [{context.window().start}, {context.window().end}): {len(list(elements))}"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    events = (
        env.from_collection(
            [
                ("a", 1000, 1),
                ("b", 1200, 10),
                ("a", 2500, 3),
                ("a", 6100, 5),
                ("b", 6500, 20),
                ("a", 6900, 7),
                ("b", 12000, 30),
                ("a", 12500, 9),
            ],
            type_info=Types.TUPLE([Types.STRING(), Types.LONG(), Types.INT()]),
        )
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(Stamp())
        )
        .set_parallelism(1)
    )  # each key's records stay in order
    keyed = events.key_by(lambda e: e[0], key_type=Types.STRING())

    keyed.window(TumblingEventTimeWindows.of(Time.seconds(5))).reduce(
        lambda a, b: (a[0], max(a[1], b[1]), a[2] + b[2])
    ).print("tumbling-reduce")
    keyed.window(SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5))).aggregate(
        MeanAggregate(),
        WithWindow(),
        output_type=Types.TUPLE(
            [Types.STRING(), Types.LONG(), Types.LONG(), Types.LONG(), Types.DOUBLE()]
        ),
    ).print("sliding-aggregate")
    keyed.window(EventTimeSessionWindows.with_gap(Time.seconds(2))).reduce(
        lambda a, b: (a[0], b[1], a[2] + b[2]),
        output_type=Types.TUPLE([Types.STRING(), Types.LONG(), Types.INT()]),
    ).print("session-reduce")
    # Count windows and count triggers run in count_windows.py: PyFlink 2.3 lost a key's
    # record in them when they shared this job with the time windows (two recordings).
    events.window_all(TumblingEventTimeWindows.of(Time.seconds(10))).process(
        Everything(), Types.STRING()
    ).print("all")
    env.execute("windows")


if __name__ == "__main__":
    main()
