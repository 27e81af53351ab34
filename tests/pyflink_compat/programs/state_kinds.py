"""Every kind of keyed state, at parallelism 2 (printed lines carry subtask prefixes)."""

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import (
    AggregateFunction,
    KeyedProcessFunction,
    MapFunction,
    RuntimeContext,
)
from pyflink.datastream.state import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    ValueStateDescriptor,
)


class Average(AggregateFunction):
    def create_accumulator(self):
        return 0, 0

    def add(self, value, accumulator):
        return accumulator[0] + value, accumulator[1] + 1

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, a, b):
        return a[0] + b[0], a[1] + b[1]


class AllStates(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.INT()))
        self.seen = runtime_context.get_list_state(ListStateDescriptor("seen", Types.INT()))
        self.parity = runtime_context.get_map_state(
            MapStateDescriptor("parity", Types.STRING(), Types.INT())
        )
        self.total = runtime_context.get_reducing_state(
            ReducingStateDescriptor("total", lambda a, b: a + b, Types.INT())
        )
        self.average = runtime_context.get_aggregating_state(
            AggregatingStateDescriptor(
                "average", Average(), Types.TUPLE([Types.INT(), Types.INT()])
            )
        )

    def process_element(self, value, ctx):
        key, number = value
        self.count.update((self.count.value() or 0) + 1)
        self.seen.add(number)
        parity = "even" if number % 2 == 0 else "odd"
        self.parity.put(parity, (self.parity.get(parity) or 0) + 1)
        self.total.add(number)
        self.average.add(number)
        parities = sorted(self.parity.items())
        yield (
            f"{key}: count={self.count.value()} seen={list(self.seen.get())} "
            f"parity={parities} keys={sorted(self.parity.keys())} total={self.total.get()} "
            f"average={self.average.get()} has_odd={self.parity.contains('odd')}"
        )
        if self.count.value() == 3:
            self.seen.update([0])
            self.parity.remove("odd")


class Running(MapFunction):
    def open(self, runtime_context: RuntimeContext):
        self.last = runtime_context.get_state(ValueStateDescriptor("last", Types.INT()))

    def map(self, value):
        previous = self.last.value()
        self.last.update(value[1])
        return value[0], previous, value[1]


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    data = env.from_collection(
        [("a", 1), ("b", 2), ("a", 4), ("c", 3), ("a", 5), ("b", 7), ("a", 6), ("c", 8)],
        type_info=Types.TUPLE([Types.STRING(), Types.INT()]),
    )
    keyed = data.key_by(lambda p: p[0], key_type=Types.STRING())
    keyed.process(AllStates(), output_type=Types.STRING()).print()
    keyed.map(Running()).print("running")
    keyed.sum(1).print("sum")
    keyed.max_by(1).print("max_by")
    env.execute("state kinds")


if __name__ == "__main__":
    main()
