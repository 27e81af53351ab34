"""Word count on Redis Streams: lines from one stream in, a running count per word appended
to another, exactly once.

    redis-server --port 6379 --save '' &                       # a local Redis to try it on
    python examples/redis_word_count.py --fill --bounded       # add sample lines, count them
    python examples/redis_word_count.py                        # runs until Ctrl-C
    redis-cli XADD lines '*' line "to be or not to be"         # ... while it runs
    redis-cli XRANGE word-counts - +
    bin/strom run -p 2 examples/redis_word_count.py --host redis.example --bounded

Each line is an entry with a ``line`` field; each count an entry ``{word, count}``. With
``--bounded`` the job reads the lines there when it starts, then ends and prints the counts.
"""

from __future__ import annotations

import argparse

from strom.common import Types, WatermarkStrategy
from strom.datastream import StreamExecutionEnvironment
from strom.datastream.connectors.base import DeliveryGuarantee
from strom.datastream.connectors.redis import (
    RedisStartingPosition,
    RedisStreamSink,
    RedisStreamSource,
)

LINES = [
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles,",
]


def split(line: str):
    for word in line.lower().split():
        word = word.strip(".,;:!?'\"")
        if word:
            yield word, 1


def redis_word_count(host: str, port: int, source_stream: str, target: str, bounded: bool):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(1000)  # EXACTLY_ONCE commits with each checkpoint
    builder = (
        RedisStreamSource.builder()
        .set_host(host)
        .set_port(port)
        .set_streams([source_stream])
        .set_starting_position(RedisStartingPosition.earliest())
        .set_deserializer(lambda entry: entry.fields.get("line", ""))
    )
    if bounded:
        builder.set_bounded()
    lines = env.from_source(builder.build(), WatermarkStrategy.no_watermarks(), "lines")
    counts = (
        lines.flat_map(split, output_type=Types.TUPLE([Types.STRING(), Types.INT()]))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    sink = (
        RedisStreamSink.builder()
        .set_host(host)
        .set_port(port)
        .set_stream(target)
        .set_serializer(lambda pair: {"word": pair[0], "count": pair[1]})
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .build()
    )
    counts.sink_to(sink)
    env.execute("redis word count")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--input", default="lines", help="the stream of lines")
    parser.add_argument("--output", default="word-counts", help="the stream of counts")
    parser.add_argument("--bounded", action="store_true", help="count what is there, then end")
    parser.add_argument("--fill", action="store_true", help="first append some sample lines")
    args = parser.parse_args()
    import redis

    client = redis.Redis(host=args.host, port=args.port, decode_responses=True)
    if args.fill:
        for line in LINES:
            client.xadd(args.input, {"line": line})
    redis_word_count(args.host, args.port, args.input, args.output, args.bounded)
    if args.bounded:
        final: dict[str, int] = {}
        for _, fields in client.xrange(args.output):
            final[fields["word"]] = int(fields["count"])
        for word in sorted(final):
            print(f"{word} {final[word]}")


if __name__ == "__main__":
    main()
