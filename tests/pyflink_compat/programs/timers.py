"""Event-time timers: registering, deleting, re-registering from on_timer, the timer's key."""

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import StreamExecutionEnvironment, TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor


class Stamp(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[1]


class Sessions(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext):
        self.total = runtime_context.get_state(ValueStateDescriptor("total", Types.LONG()))
        self.deadline = runtime_context.get_state(ValueStateDescriptor("deadline", Types.LONG()))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        self.total.update((self.total.value() or 0) + value[2])
        old = self.deadline.value()
        if old is not None:
            ctx.timer_service().delete_event_time_timer(old)
        deadline = ctx.timestamp() + 1000
        ctx.timer_service().register_event_time_timer(deadline)
        self.deadline.update(deadline)
        yield f"{ctx.get_current_key()} got {value[2]} at {ctx.timestamp()}"

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        domain = "event" if ctx.time_domain() == TimeDomain.EVENT_TIME else "processing"
        yield f"{ctx.get_current_key()} {domain} timer at {timestamp}: total {self.total.value()}"
        if self.total.value() < 100:
            self.total.update(self.total.value() + 100)
            ctx.timer_service().register_event_time_timer(timestamp + 500)


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    events = env.from_collection(
        [("a", 1000, 5), ("b", 1500, 50), ("a", 1800, 7), ("a", 4000, 200), ("b", 9000, 1)],
        type_info=Types.TUPLE([Types.STRING(), Types.LONG(), Types.INT()]),
    )
    events.assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(
            Duration.of_millis(100)
        ).with_timestamp_assigner(Stamp())
    ).key_by(lambda e: e[0]).process(Sessions(), output_type=Types.STRING()).print()
    env.execute("timers")


if __name__ == "__main__":
    main()
