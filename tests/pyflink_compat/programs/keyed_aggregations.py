"""Rolling keyed aggregations (sum, min, max, min_by, max_by) on tuples, positional and named
Rows and plain numbers, ties, a ReduceFunction class with open(), and a KeySelector class."""

from pyflink.common import Row, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import KeySelector, ReduceFunction, RuntimeContext

PAIR = Types.TUPLE([Types.STRING(), Types.INT(), Types.INT()])
READING = Types.ROW_NAMED(["sensor", "temp", "hour"], [Types.STRING(), Types.DOUBLE(), Types.INT()])


class BySensor(KeySelector):
    def get_key(self, value):
        return value.sensor


class Longest(ReduceFunction):
    def open(self, runtime_context: RuntimeContext):
        self.subtasks = runtime_context.get_number_of_parallel_subtasks()

    def reduce(self, value1, value2):
        longer = value2 if len(value2) > len(value1) else value1
        return f"{longer}/{self.subtasks}"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)

    # min and max change one field of the first record; min_by and max_by keep whole records,
    # the first of equal ones
    pairs = env.from_collection(
        [("a", 5, 1), ("a", 3, 2), ("b", 4, 3), ("a", 3, 4), ("b", 9, 5), ("a", 8, 6)],
        type_info=PAIR,
    ).key_by(lambda p: p[0], key_type=Types.STRING())
    pairs.min(1).print("tuple-min")
    pairs.max(1).print("tuple-max")
    pairs.min_by(1).print("tuple-min_by")
    pairs.max_by(2).print("tuple-max_by")
    pairs.sum(2).print("tuple-sum")

    readings = env.from_collection(
        [
            Row("s1", 20.5, 1),
            Row("s2", 18.0, 1),
            Row("s1", 19.0, 2),
            Row("s1", 21.0, 3),
            Row("s2", 18.0, 3),
            Row("s2", 25.0, 4),
        ],
        type_info=READING,
    ).key_by(BySensor(), key_type=Types.STRING())
    readings.min("temp").print("row-min")
    readings.max("temp").print("row-max")
    readings.min_by("temp").print("row-min_by")
    readings.max_by("hour").print("row-max_by")
    readings.sum("temp").print("row-sum")
    readings.sum(2).print("row-sum-position")
    readings.min_by(1).map(lambda r: f"{r.sensor}@{r.hour}={r.temp}").print("row-fields")

    positional = env.from_collection(
        [(1, "x"), (1, "y"), (2, "z"), (1, "w")], type_info=Types.ROW([Types.INT(), Types.STRING()])
    ).key_by(lambda r: r[0], key_type=Types.INT())
    positional.max(1).print("positional-max")
    positional.max_by(1).print("positional-max_by")

    numbers = env.from_collection([7, 3, 8, 3, 10, 1], type_info=Types.INT()).key_by(
        lambda n: n % 2, key_type=Types.INT()
    )
    numbers.sum().print("number-sum")
    numbers.min().print("number-min")
    numbers.max(0).print("number-max")

    env.from_collection(["ab", "abc", "a", "abcd", "xy"], type_info=Types.STRING()).key_by(
        lambda w: w[0], key_type=Types.STRING()
    ).reduce(Longest()).print("longest")
    env.execute("keyed aggregations")


if __name__ == "__main__":
    main()
