"""A window assigner and a trigger written in Python, as PyFlink allows."""

from collections.abc import Collection, Iterable

from pyflink.common import Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import ProcessWindowFunction
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.datastream.window import (
    EventTimeTrigger,
    TimeWindow,
    TimeWindowSerializer,
    Trigger,
    TriggerResult,
    WindowAssigner,
)


class Stamp(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[1]


class EvenOddWindows(WindowAssigner[tuple, TimeWindow]):
    """Even amounts in [0, 1000), odd ones in [1000, 2000) - a window per parity."""

    def assign_windows(
        self, element: tuple, timestamp: int, context: WindowAssigner.WindowAssignerContext
    ) -> Collection[TimeWindow]:
        start = 0 if element[2] % 2 == 0 else 1000
        return [TimeWindow(start, start + 1000)]

    def get_default_trigger(self, env) -> Trigger[tuple, TimeWindow]:
        return EventTimeTrigger()

    def get_window_serializer(self):
        return TimeWindowSerializer()

    def is_event_time(self) -> bool:
        return True


class EveryThird(Trigger[tuple, TimeWindow]):
    """Fires (and keeps the contents) at every third element, and at the window's end."""

    def __init__(self):
        self.seen = ValueStateDescriptor("seen", Types.INT())

    def on_element(
        self, element: tuple, timestamp: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        ctx.register_event_time_timer(window.max_timestamp())
        state = ctx.get_partitioned_state(self.seen)
        count = (state.value() or 0) + 1
        state.update(count)
        return TriggerResult.FIRE if count % 3 == 0 else TriggerResult.CONTINUE

    def on_processing_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return (
            TriggerResult.FIRE_AND_PURGE
            if time == window.max_timestamp()
            else TriggerResult.CONTINUE
        )

    def on_merge(self, window: TimeWindow, ctx: Trigger.OnMergeContext) -> None:
        pass

    def clear(self, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        ctx.delete_event_time_timer(window.max_timestamp())
        ctx.get_partitioned_state(self.seen).clear()


class Describe(ProcessWindowFunction[tuple, str, str, TimeWindow]):
    def process(
        self, key: str, context: ProcessWindowFunction.Context, elements: Iterable[tuple]
    ) -> Iterable[str]:
        amounts = sorted(e[2] for e in elements)
        yield f"{key} [{context.window().start}, {context.window().end}): {amounts}"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    events = env.from_collection(
        [
            ("k", 10, 2),
            ("k", 20, 3),
            ("k", 30, 4),
            ("k", 40, 6),
            ("k", 50, 5),
            ("k", 60, 8),
            ("j", 70, 1),
            ("k", 80, 7),
            ("k", 90, 9),
        ],
        type_info=Types.TUPLE([Types.STRING(), Types.LONG(), Types.INT()]),
    )
    keyed = events.assign_timestamps_and_watermarks(
        WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(Stamp())
    ).key_by(lambda e: e[0], key_type=Types.STRING())
    keyed.window(EvenOddWindows()).process(Describe(), Types.STRING()).print("parity")
    keyed.window(EvenOddWindows()).trigger(EveryThird()).process(Describe(), Types.STRING()).print(
        "every-third"
    )
    env.execute("custom windows")


if __name__ == "__main__":
    main()
