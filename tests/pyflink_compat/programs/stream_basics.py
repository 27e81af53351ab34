"""Everyday operators on typed streams: flat_map, filter, union, aggregations by field name
on rows, project, partitioning, number sequences and collecting results in the client."""

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.datastream.functions import (
    FlatMapFunction,
    MapFunction,
    Partitioner,
    RuntimeContext,
)

SALE = Types.ROW_NAMED(["shop", "item", "amount"], [Types.STRING(), Types.STRING(), Types.INT()])


class Words(FlatMapFunction):
    def flat_map(self, value):
        for word in value.split():
            yield word, len(word)


class Tag(MapFunction):
    def open(self, runtime_context: RuntimeContext):
        self.parallelism = runtime_context.get_number_of_parallel_subtasks()

    def map(self, value):
        return f"{value} of {self.parallelism}"


class ByLength(Partitioner):
    def partition(self, key, num_partitions):
        return key % num_partitions


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    lines = env.from_collection(["the quick brown fox", "jumps over the lazy dog"])
    words = lines.flat_map(Words(), output_type=Types.TUPLE([Types.STRING(), Types.INT()]))
    words.filter(lambda w: w[1] > 4).print("long")
    words.project(1).print("lengths")
    words.partition_custom(ByLength(), lambda w: w[1]).map(lambda w: w[0]).print("custom")
    short = words.filter(lambda w: w[1] <= 3).map(lambda w: w[0], output_type=Types.STRING())
    more = env.from_collection(["cat", "emu"], type_info=Types.STRING())
    short.union(more).map(Tag()).print("union")

    sales = env.from_collection(
        [("north", "tea", 3), ("south", "tea", 5), ("north", "cake", 2), ("north", "tea", 4)],
        type_info=SALE,
    )
    by_shop = sales.key_by(lambda s: s.shop, key_type=Types.STRING())
    by_shop.sum("amount").print("sum")
    by_shop.max("amount").print("max")
    by_shop.min_by("amount").print("min_by")
    sales.map(
        lambda s: Row(shop=s.shop, total=s.amount * 10),
        output_type=Types.ROW_NAMED(["shop", "total"], [Types.STRING(), Types.LONG()]),
    ).key_by(lambda r: r.shop).reduce(lambda a, b: Row(shop=a.shop, total=a.total + b.total)).map(
        lambda r: f"{r.shop}: {r.total} {r.as_dict()}"
    ).print("reduced-rows")

    numbers = env.from_source(
        NumberSequenceSource(1, 6), WatermarkStrategy.no_watermarks(), "numbers"
    )
    numbers.map(lambda n: n * n, output_type=Types.LONG()).print("squares")
    env.execute("stream basics")

    collected = (
        env.from_collection(
            [(1, "a"), (2, "b")], type_info=Types.ROW([Types.INT(), Types.STRING()])
        )
        .map(
            lambda r: Row(r[0] * 2, r[1].upper()),
            output_type=Types.ROW_NAMED(["n", "s"], [Types.INT(), Types.STRING()]),
        )
        .execute_and_collect()
    )
    with collected as results:
        for row in results:
            print(f"collected {row} {row.n} {row.s}")
    print("first", env.from_collection([5, 6, 7]).execute_and_collect(limit=1))


if __name__ == "__main__":
    main()
