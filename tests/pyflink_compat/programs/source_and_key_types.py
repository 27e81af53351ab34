"""Types given where a stream starts and to key_by: a source's type_info is the stream's type,
and key_type shapes the keys keyed functions see."""

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.datastream.functions import KeyedProcessFunction


class ShowKey(KeyedProcessFunction):
    def process_element(self, value, ctx):
        key = ctx.get_current_key()
        yield f"{type(key).__name__} {key} <- {value}"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    numbers = env.from_source(
        NumberSequenceSource(1, 4),
        WatermarkStrategy.no_watermarks(),
        "numbers",
        type_info=Types.LONG(),
    )
    numbers.print("numbers")
    numbers.map(lambda n: f"{type(n).__name__} {n * 3}").print("numbers-in-python")
    pairs = env.from_collection(
        [("a", 1), ("b", 2), ("a", 3)], type_info=Types.TUPLE([Types.STRING(), Types.INT()])
    )
    pairs.key_by(lambda p: p[1] / 10, key_type=Types.FLOAT()).process(
        ShowKey(), Types.STRING()
    ).print("float-key")
    pairs.key_by(lambda p: p[1] / 10, key_type=Types.DOUBLE()).process(
        ShowKey(), Types.STRING()
    ).print("double-key")
    pairs.key_by(
        lambda p: Row(p[0], p[1] % 2), key_type=Types.ROW([Types.STRING(), Types.INT()])
    ).process(ShowKey(), Types.STRING()).print("row-key")
    pairs.key_by(
        lambda p: (p[0], p[1] % 2), key_type=Types.TUPLE([Types.STRING(), Types.INT()])
    ).process(ShowKey(), Types.STRING()).print("tuple-key")
    pairs.key_by(lambda p: p[0], key_type=Types.STRING()).process(ShowKey(), Types.STRING()).print(
        "string-key"
    )
    pairs.key_by(lambda p: p[0]).process(ShowKey(), Types.STRING()).print("untyped-key")
    env.execute("source and key types")


if __name__ == "__main__":
    main()
