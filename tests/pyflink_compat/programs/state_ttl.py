"""Keyed state with a time-to-live (value, list and map state expire after a pause longer than
their TTL), and what a function's RuntimeContext tells it in open()."""

import time

from pyflink.common import Configuration, Time, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import FlatMapFunction, KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)

TTL = (
    StateTtlConfig.new_builder(Time.seconds(1))
    .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
    .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
    .cleanup_full_snapshot()
    .build()
)


def expiring(descriptor):
    descriptor.enable_time_to_live(TTL)
    return descriptor


class Remember(KeyedProcessFunction):
    """("k", n) adds n to k's state; ("k", -1) pauses for longer than the TTL."""

    def open(self, runtime_context: RuntimeContext):
        self.last = runtime_context.get_state(expiring(ValueStateDescriptor("last", Types.INT())))
        self.all = runtime_context.get_list_state(expiring(ListStateDescriptor("all", Types.INT())))
        self.parity = runtime_context.get_map_state(
            expiring(MapStateDescriptor("parity", Types.STRING(), Types.INT()))
        )
        self.forever = runtime_context.get_state(ValueStateDescriptor("forever", Types.INT()))

    def process_element(self, value, ctx):
        key, number = value
        if number < 0:
            time.sleep(2.5)  # well past the TTL
            return
        parity = "even" if number % 2 == 0 else "odd"
        yield (
            f"{key} {number}: last={self.last.value()} all={list(self.all.get())} "
            f"parity={sorted(self.parity.items())} forever={self.forever.value()}"
        )
        self.last.update(number)
        self.all.add(number)
        self.parity.put(parity, (self.parity.get(parity) or 0) + 1)
        self.forever.update((self.forever.value() or 0) + number)


class Describe(FlatMapFunction):
    def open(self, runtime_context: RuntimeContext):
        self.parallelism = runtime_context.get_number_of_parallel_subtasks()
        self.max_parallelism = runtime_context.get_max_number_of_parallel_subtasks()
        self.index = runtime_context.get_index_of_this_subtask()
        self.attempt = runtime_context.get_attempt_number()
        self.mode = runtime_context.get_job_parameter("mode", "none")
        self.missing = runtime_context.get_job_parameter("missing", "fallback")

    def flat_map(self, value):
        yield (
            f"{value}: parallelism={self.parallelism} max={self.max_parallelism} "
            f"index_ok={0 <= self.index < self.parallelism} attempt={self.attempt} "
            f"mode={self.mode} missing={self.missing}"
        )


def main():
    # PyFlink's Python workers cache state in front of the Java backend and serve cached
    # values past their TTL; without the cache, state expires as Flink's state TTL specifies
    config = Configuration()
    config.set_integer("python.state.cache-size", 0)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(2)
    env.get_config().set_global_job_parameters({"mode": "test"})
    env.from_collection(
        [("a", 1), ("b", 2), ("b", 3), ("a", 4), ("a", -1), ("a", 5), ("a", 6)],
        type_info=Types.TUPLE([Types.STRING(), Types.INT()]),
    ).key_by(lambda p: p[0], key_type=Types.STRING()).process(
        Remember(), output_type=Types.STRING()
    ).print("ttl")
    env.from_collection(["x", "y"], type_info=Types.STRING()).flat_map(
        Describe(), output_type=Types.STRING()
    ).set_parallelism(3).print("context")
    env.execute("state ttl")


if __name__ == "__main__":
    main()
