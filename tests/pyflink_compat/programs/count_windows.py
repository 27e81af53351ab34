"""Count windows and a purging count trigger, with interleaved keys."""

from pyflink.common import Time, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import WindowFunction
from pyflink.datastream.window import (
    CountTrigger,
    CountWindow,
    PurgingTrigger,
    TumblingProcessingTimeWindows,
)


class Listing(WindowFunction[tuple, str, str, CountWindow]):
    def apply(self, key, window, inputs):
        yield f"{key}: {[i[1] for i in inputs]}"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    events = env.from_collection(
        [("a", 1), ("b", 10), ("a", 3), ("a", 5), ("b", 20), ("a", 7), ("b", 30), ("a", 9)],
        type_info=Types.TUPLE([Types.STRING(), Types.INT()]),
    )
    keyed = events.key_by(lambda e: e[0], key_type=Types.STRING())
    keyed.count_window(2).apply(Listing(), Types.STRING()).print("tumbling-count")
    keyed.count_window(3, 2).reduce(lambda a, b: (a[0], a[1] + b[1])).print("sliding-count")
    keyed.window(TumblingProcessingTimeWindows.of(Time.hours(24))).trigger(
        PurgingTrigger.of(CountTrigger.of(2))
    ).reduce(lambda a, b: (a[0], a[1] + b[1])).print("purging-count-trigger")
    env.execute("count windows")


if __name__ == "__main__":
    main()
