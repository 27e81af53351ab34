"""Side outputs the PyFlink way: ``yield output_tag, value`` from process functions."""

from collections.abc import Iterable

from pyflink.common import Time, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import OutputTag, StreamExecutionEnvironment
from pyflink.datastream.functions import (
    KeyedProcessFunction,
    ProcessFunction,
    ProcessWindowFunction,
)
from pyflink.datastream.window import TimeWindow, TumblingEventTimeWindows

SMALL = OutputTag("small", Types.INT())
NOTES = OutputTag("notes")
BIG = OutputTag("big", Types.TUPLE([Types.STRING(), Types.INT()]))
EMPTY_KEYS = OutputTag("window-notes", Types.STRING())


class Split(ProcessFunction):
    def process_element(self, value, ctx):
        if value < 10:
            yield SMALL, value
        else:
            yield value
        yield NOTES, f"saw {value}"


class FlagBig(KeyedProcessFunction):
    def process_element(self, value, ctx):
        if value[1] > 100:
            yield BIG, (ctx.get_current_key(), value[1])
        yield value[0]


class Stamp(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[1]


class Summarise(ProcessWindowFunction[tuple, tuple, str, TimeWindow]):
    def process(
        self,
        key: str,
        context: ProcessWindowFunction.Context[TimeWindow],
        elements: Iterable[tuple],
    ) -> Iterable[tuple]:
        values = [e[1] for e in elements]
        yield EMPTY_KEYS, f"{key} window {context.window().start} has {len(values)}"
        yield key, sum(values)


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    numbers = env.from_collection([1, 20, 5, 30, 7], type_info=Types.INT())
    main_stream = numbers.process(Split(), output_type=Types.INT())
    main_stream.print("main")
    main_stream.get_side_output(SMALL).print("small")
    main_stream.get_side_output(NOTES).print("notes")

    pairs = env.from_collection(
        [("a", 5), ("b", 500), ("a", 120)], type_info=Types.TUPLE([Types.STRING(), Types.INT()])
    )
    flagged = pairs.key_by(lambda p: p[0]).process(FlagBig(), output_type=Types.STRING())
    flagged.print("keyed-main")
    flagged.get_side_output(BIG).print("big")

    windowed = (
        pairs.assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(Stamp())
        )
        .key_by(lambda p: p[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
        .process(Summarise(), Types.TUPLE([Types.STRING(), Types.INT()]))
    )
    windowed.print("window")
    windowed.get_side_output(EMPTY_KEYS).print("window-notes")
    env.execute("side outputs")


if __name__ == "__main__":
    main()
