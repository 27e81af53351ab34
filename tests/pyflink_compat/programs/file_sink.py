"""FileSink with the simple string encoder writes what print() shows for the same types."""

import argparse

from pyflink.common import Encoder, Row, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import FileSink, OutputFileConfig, RollingPolicy


def sink(stream, base_path, prefix):
    stream.sink_to(
        FileSink.for_row_format(base_path, Encoder.simple_string_encoder())
        .with_output_file_config(
            OutputFileConfig.builder().with_part_prefix(prefix).with_part_suffix(".txt").build()
        )
        .with_rolling_policy(RollingPolicy.default_rolling_policy())
        .build()
    )


def main(output):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    pairs = env.from_collection(
        [("x", 1), ("y", 2), ("x", 3)], type_info=Types.TUPLE([Types.STRING(), Types.INT()])
    )
    totals = pairs.key_by(lambda p: p[0]).reduce(lambda a, b: (a[0], a[1] + b[1]))
    rows = pairs.map(
        lambda p: Row(p[0], p[1] * 0.5),
        output_type=Types.ROW_NAMED(["k", "half"], [Types.STRING(), Types.FLOAT()]),
    )
    words = pairs.map(lambda p: p[0] * p[1], output_type=Types.STRING())
    if output is None:
        totals.print("totals")
        rows.print("rows")
        words.print("words")
    else:
        sink(totals, f"{output}/totals", "totals")
        sink(rows, f"{output}/rows", "rows")
        sink(words, f"{output}/words", "words")
    env.execute("file sink")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=False)
    main(parser.parse_args().output)
