"""Connected streams: a CoProcessFunction with side outputs, keyed connected streams with a
stateful CoMapFunction and a KeyedCoProcessFunction with event-time timers, and union of
several streams."""

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import OutputTag, StreamExecutionEnvironment, TimeDomain
from pyflink.datastream.functions import (
    CoMapFunction,
    CoProcessFunction,
    KeyedCoProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ValueStateDescriptor

REJECTED = OutputTag("rejected", Types.STRING())


class Split(CoProcessFunction):
    """Even numbers go on, odd ones and the words of the other input to a side output."""

    def open(self, runtime_context: RuntimeContext):
        self.factor = 10

    def process_element1(self, value, ctx):
        if value % 2 == 0:
            yield value * self.factor
        else:
            yield REJECTED, f"odd {value}"

    def process_element2(self, value, ctx):
        # these records carry no timestamp: PyFlink gives Long.MIN_VALUE
        yield REJECTED, f"word {value} at {ctx.timestamp()}"
        yield len(value)


class Counts(CoMapFunction):
    """Keyed: each side counts its own records per key in keyed state."""

    def open(self, runtime_context: RuntimeContext):
        self.lefts = runtime_context.get_state(ValueStateDescriptor("lefts", Types.INT()))
        self.rights = runtime_context.get_state(ValueStateDescriptor("rights", Types.INT()))

    def map1(self, value):
        self.lefts.update((self.lefts.value() or 0) + 1)
        return f"{value[0]} left #{self.lefts.value()}: {value[1]}"

    def map2(self, value):
        self.rights.update((self.rights.value() or 0) + 1)
        return f"{value[0]} right #{self.rights.value()}: {value[1]}"


class Stamp(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[2]


class Timeout(KeyedCoProcessFunction):
    """A request is answered when its response comes within 100 ms, else it times out. Both
    sides are decided by event-time timers, so the order in which the two inputs' records
    interleave does not matter (only a watermark orders them)."""

    def open(self, runtime_context: RuntimeContext):
        self.requested = runtime_context.get_state(ValueStateDescriptor("requested", Types.LONG()))
        self.answered = runtime_context.get_state(ValueStateDescriptor("answered", Types.LONG()))

    def process_element1(self, request, ctx):
        if request[0] == "request":
            self.requested.update(ctx.timestamp())
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + 100)

    def process_element2(self, response, ctx):
        if response[0] == "response":
            self.answered.update(ctx.timestamp())
            ctx.timer_service().register_event_time_timer(ctx.timestamp())

    def on_timer(self, timestamp, ctx):
        key = ctx.get_current_key()
        domain = "event" if ctx.time_domain() == TimeDomain.EVENT_TIME else "processing"
        requested, answered = self.requested.value(), self.answered.value()
        if requested is not None and timestamp == requested + 100:
            if answered is not None and requested <= answered <= timestamp:
                yield f"{key} answered after {answered - requested}"
            else:
                yield f"{key} timed out at {ctx.timestamp()} ({domain} time)"
        if answered is not None and timestamp == answered:
            if requested is None or requested > answered:
                yield f"{key} unexpected response at {answered}"
            elif answered > requested + 100:
                yield f"{key} late response at {answered}"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)

    numbers = env.from_collection([1, 2, 3, 4, 5], type_info=Types.INT())
    words = env.from_collection(["open", "close"], type_info=Types.STRING())
    split = numbers.connect(words).process(Split(), output_type=Types.INT())
    split.print("split")
    split.get_side_output(REJECTED).print("rejected")

    lefts = env.from_collection(
        [("a", 1), ("b", 2), ("a", 3)], type_info=Types.TUPLE([Types.STRING(), Types.INT()])
    )
    rights = env.from_collection(
        [("a", "x"), ("c", "y"), ("a", "z")],
        type_info=Types.TUPLE([Types.STRING(), Types.STRING()]),
    )
    lefts.connect(rights).key_by(
        lambda left: left[0], lambda right: right[0], key_type=Types.STRING()
    ).map(Counts(), output_type=Types.STRING()).print("keyed-map")

    # One source connected to itself, each side taking its kind of event: two sources would
    # race, the watermarks of one reaching the timers before the other has started
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(0)
    ).with_timestamp_assigner(Stamp())
    exchange = (
        env.from_collection(
            [
                ("request", "r1", 0),
                ("request", "r2", 50),
                ("response", "r1", 80),
                ("response", "r5", 90),
                ("request", "r3", 120),
                ("response", "r2", 140),
                ("response", "r3", 250),
                ("request", "r4", 300),
            ],
            type_info=Types.TUPLE([Types.STRING(), Types.STRING(), Types.LONG()]),
        )
        .assign_timestamps_and_watermarks(strategy)
        .set_parallelism(1)
    )
    exchange.connect(exchange).key_by(lambda e: e[1], lambda e: e[1]).process(
        Timeout(), output_type=Types.STRING()
    ).print("timeout")

    first = env.from_collection(["a", "b"], type_info=Types.STRING())
    second = env.from_collection(["c"], type_info=Types.STRING())
    third = env.from_collection(["d", "e"], type_info=Types.STRING())
    first.union(second, third).map(str.upper, output_type=Types.STRING()).print("union3")
    first.union(first).print("union-self")
    env.execute("co process")


if __name__ == "__main__":
    main()
