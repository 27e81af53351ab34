"""Declared types: rows with names and kinds, 32-bit floats, Java's text for typed values."""

from pyflink.common import Row, RowKind, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import MapFunction

PERSON = Types.ROW_NAMED(["name", "age", "city"], [Types.STRING(), Types.INT(), Types.STRING()])


class Describe(MapFunction):
    def map(self, row):
        return f"{row.name} is {row[1]} in {row.as_dict()['city']} ({row.get_row_kind()})"


def retracted(row):
    out = Row(row.name, row.age)
    out.set_row_kind(RowKind.UPDATE_BEFORE)
    return out


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    people = env.from_collection(
        [Row("Alice", 31, "Paris"), Row("Bob", 27, "Oslo")], type_info=PERSON
    )
    people.print("people")
    people.map(Describe()).print("described")
    people.map(
        lambda r: Row(r.name, r.age + 1), output_type=Types.ROW([Types.STRING(), Types.INT()])
    ).rebalance().map(lambda r: f"{r.f0} next year: {r.f1}, {r}").print("positional")
    people.map(
        retracted, output_type=Types.ROW_NAMED(["n", "a"], [Types.STRING(), Types.INT()])
    ).print("retracted")
    people.map(
        lambda r: (r.name, r.age), output_type=Types.TUPLE([Types.STRING(), Types.INT()])
    ).map(lambda t: f"{type(t).__name__} {t}").print("tuple-seen-by-python")

    floats = env.from_collection([0.1, 110.1, 1e10, 3.0, -2.5e-5], type_info=Types.FLOAT())
    floats.print("float")
    floats.map(lambda x: x * 2).print("float-in-python")
    env.from_collection([0.1, 1e-5, 12345678.9, 1e7, 100.0], type_info=Types.DOUBLE()).print(
        "double"
    )
    env.from_collection([True, False], type_info=Types.BOOLEAN()).print("boolean")
    env.from_collection([7, -3], type_info=Types.LONG()).map(
        lambda x: x * 1000000000, output_type=Types.LONG()
    ).print("long")
    env.from_collection(
        [(1, ("a", 2.5)), (2, ("b", 0.001))],
        type_info=Types.TUPLE([Types.INT(), Types.TUPLE([Types.STRING(), Types.DOUBLE()])]),
    ).print("nested-tuple")
    env.from_collection(
        [(1, Row("x", 2))],
        type_info=Types.TUPLE([Types.INT(), Types.ROW([Types.STRING(), Types.INT()])]),
    ).print("tuple-with-row")
    env.from_collection([{"a": 1}, [1, 2], ("x", 1.5), None.__class__.__name__]).print("untyped")
    env.execute("types and rows")


if __name__ == "__main__":
    main()
