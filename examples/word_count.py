"""Word count: lines from a file (or a built-in text) in, a count per word out.

    python examples/word_count.py                          # embedded, built-in text
    python examples/word_count.py --input some.txt --output out/
    bin/strom run -p 2 examples/word_count.py --input /data/book.txt --output /tmp/counts

With --output the counts go to part files under that folder (FileSink); without, to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from strom.common import Encoder, Types
from strom.datastream import StreamExecutionEnvironment
from strom.datastream.connectors.file_system import (
    FileSink,
    FileSource,
    OutputFileConfig,
    StreamFormat,
)

WORDS = [
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles,",
    "And by opposing end them. To die: to sleep;",
    "No more; and by a sleep to say we end",
    "The heart-ache and the thousand natural shocks",
    "That flesh is heir to, 'tis a consummation",
    "Devoutly to be wish'd. To die, to sleep;",
]


def split(line: str):
    for word in line.lower().split():
        word = word.strip(".,;:!?'\"")
        if word:
            yield word, 1


def word_count(
    input_path: str | None, output_path: str | None, parallelism: int | None = None
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    if parallelism is not None:
        env.set_parallelism(parallelism)
    if input_path is None:
        # Write the built-in text to a file so the job reads it like any other input.
        folder = tempfile.mkdtemp(prefix="strom-wordcount-")
        input_path = os.path.join(folder, "hamlet.txt")
        with open(input_path, "w") as handle:
            handle.write("\n".join(WORDS) + "\n")
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), input_path
    ).build()
    lines = env.from_source(source, None, "file-source")
    counts = (
        lines.flat_map(split, output_type=Types.TUPLE([Types.STRING(), Types.INT()]))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    if output_path:
        sink = (
            FileSink.for_row_format(output_path, Encoder.simple_string_encoder())
            .with_output_file_config(
                OutputFileConfig.builder()
                .with_part_prefix("prefix")
                .with_part_suffix(".txt")
                .build()
            )
            .build()
        )
        counts.sink_to(sink)
    else:
        counts.print()
    env.execute("word_count")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="a text file or a folder of them")
    parser.add_argument("--output", help="a folder for the counts (default: stdout)")
    parser.add_argument(
        "--parallelism",
        type=int,
        help="operator parallelism (default: the machine's cores with python, as in PyFlink; "
        "strom run's -p on a cluster)",
    )
    arguments = parser.parse_args(sys.argv[1:])
    word_count(arguments.input, arguments.output, arguments.parallelism)
