"""Redis Streams source and sink against a real redis-server: positions, bounded reading,
watermarks from entry ids, and exactly-once / at-least-once output through TaskManagers
SIGKILLed mid-job and through a savepoint restored at another parallelism."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from harness import poll_for
from jobs_support import Mode, remote
from services import RedisServer, kill_taskmanagers_during
from test_checkpointing import KEYS, Throttle, checkpointed_env, expected_output
from test_savepoints import strom_cli

from client.gateway import ClusterClient
from strom.common import WatermarkStrategy
from strom.datastream import ProcessFunction, StreamExecutionEnvironment, execution_context
from strom.datastream.connectors.base import DeliveryGuarantee
from strom.datastream.connectors.redis import (
    EntryIdTimestampAssigner,
    RedisStartingPosition,
    RedisStreamSink,
    RedisStreamSource,
)


@pytest.fixture
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


def fill(server: RedisServer, streams: list[str], count: int) -> None:
    """Entries ``{"n": 1..count}`` dealt round-robin over ``streams``."""
    client = server.client()
    pipeline = client.pipeline(transaction=False)
    for n in range(1, count + 1):
        pipeline.xadd(streams[n % len(streams)], {"n": n})
        if n % 5000 == 0:
            pipeline.execute()
    pipeline.execute()


def number_of(entry) -> int:
    return int(entry.fields["n"])


def source(server: RedisServer, streams: list[str], bounded: bool = True, position=None):
    builder = (
        RedisStreamSource.builder()
        .set_host("127.0.0.1")
        .set_port(server.port)
        .set_streams(streams)
        .set_deserializer(number_of)
    )
    if position is not None:
        builder.set_starting_position(position)
    return (builder.set_bounded() if bounded else builder).build()


def sink(server: RedisServer, stream: str, guarantee: DeliveryGuarantee):
    return (
        RedisStreamSink.builder()
        .set_host("127.0.0.1")
        .set_port(server.port)
        .set_stream(stream)
        .set_serializer(lambda pair: {"key": pair[0], "count": pair[1]})
        .set_delivery_guarantee(guarantee)
        .build()
    )


def counting_job(env, server, streams, out, guarantee, bounded=True, jdbc=None) -> None:
    """Numbers from Redis -> (n % 7, 1) -> running count per key -> Redis stream ``out``
    (or the JDBC sink ``jdbc``)."""
    numbers = env.from_source(source(server, streams, bounded), None, "redis").uid("redis-in")
    counts = (
        numbers.map(Throttle())
        .uid("throttle")
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("counts")
    )
    if jdbc is not None:
        counts.add_sink(jdbc).uid("postgres-out")
    else:
        counts.sink_to(sink(server, out, guarantee)).uid("redis-out")


def output_of(server: RedisServer, stream: str) -> Counter:
    entries = server.client().xrange(stream)
    return Counter(repr((int(f["key"]), int(f["count"]))) for _, f in entries)


def test_bounded_source_reads_each_entry_once_from_the_starting_position(redis_server):
    streams = ["a", "b", "c"]
    fill(redis_server, streams, 300)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    mode = Mode("embedded")
    everything = mode.collect(env.from_source(source(redis_server, streams), None, "all"))
    assert sorted(everything) == list(range(1, 301))

    # From an id: only the entries after it (stream "a" holds the multiples of 3).
    cut = redis_server.client().xrange("a")[49][0]
    fill(redis_server, ["a"], 5)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    later = mode.collect(
        env.from_source(
            source(redis_server, ["a"], position=RedisStartingPosition.from_id(cut)), None, "a"
        )
    )
    assert later == [n for n in range(1, 301) if n % 3 == 0][50:] + [1, 2, 3, 4, 5]

    env = StreamExecutionEnvironment.get_execution_environment()
    latest = source(redis_server, streams, position=RedisStartingPosition.latest())
    assert mode.collect(env.from_source(latest, None, "latest")) == []


def test_one_stream_is_split_into_shares_among_subtasks(redis_server):
    fill(redis_server, ["one"], 2000)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(3)
    read = env.from_source(source(redis_server, ["one"]), None, "one")
    shares = read.map(lambda n: n)  # the map runs in the source's task: its subtask's share
    assert sorted(Mode("embedded").collect(shares)) == list(range(1, 2001))
    assert [len(source(redis_server, ["one"]).assignment(i, 3)) for i in range(3)] == [1, 1, 1]
    assert source(redis_server, ["a", "b"]).assignment(2, 3) == [("a", 1, 2)]


class EventTime(ProcessFunction):
    def process_element(self, value, ctx):
        yield (value.id, ctx.timestamp())


def test_watermarks_and_timestamps_come_from_the_entry_ids(redis_server):
    client = redis_server.client()
    for n in range(1, 4):
        client.xadd("timed", {"n": n}, id=f"{n * 1000}-0")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    entries = (
        RedisStreamSource.builder()
        .set_port(redis_server.port)
        .set_host("127.0.0.1")
        .set_streams(["timed"])
        .set_bounded()
        .build()
    )
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        EntryIdTimestampAssigner()
    )
    stamped = env.from_source(entries, strategy, "timed").process(EventTime())
    assert Mode("embedded").collect(stamped) == [
        ("1000-0", 1000),
        ("2000-0", 2000),
        ("3000-0", 3000),
    ]


@pytest.mark.parametrize(
    "guarantee", [DeliveryGuarantee.EXACTLY_ONCE, DeliveryGuarantee.AT_LEAST_ONCE]
)
def test_keyed_counts_to_redis_survive_sigkilled_taskmanagers(
    local_cluster, tmp_path, redis_server, guarantee
):
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count, streams = 60_000, ["in-0", "in-1", "in-2"]
    fill(redis_server, streams, count)
    checkpoints = tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    counting_job(env, redis_server, streams, "out", guarantee)
    with remote(cluster.address):
        client = env.execute_async(f"redis {guarantee.name} under SIGKILL")
    kills = kill_taskmanagers_during(cluster, client, seed=11)
    assert kills >= 2, "the job ended before the failures could be injected"
    client.get_job_execution_result()
    expected = expected_output(count)
    got = output_of(redis_server, "out")
    if guarantee == DeliveryGuarantee.EXACTLY_ONCE:
        assert got == expected
    else:
        assert set(got) == set(expected)  # repeats allowed, losses not
        assert sum(got.values()) >= sum(expected.values())


@pytest.mark.parametrize(
    "streams", [["s0", "s1", "s2", "s3", "s4"], ["big"]], ids=["streams", "shares"]
)
def test_savepoint_resumes_each_stream_at_its_position_at_another_parallelism(
    local_cluster, tmp_path, redis_server, streams
):
    """Whole streams dealt to subtasks, and one stream split into shares (2, then 3)."""
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count = 30_000
    fill(redis_server, streams, count)

    def submit(parallelism: int, savepoint: str | None = None) -> str:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        env.enable_checkpointing(60_000)
        counting_job(env, redis_server, streams, "out", DeliveryGuarantee.EXACTLY_ONCE)
        with remote(cluster.address):
            execution_context.current().savepoint_path = savepoint
            return env.execute_async(f"redis p={parallelism}").get_job_id()

    job_id = submit(2)
    with ClusterClient(cluster.address) as jobs:
        poll_for(lambda: jobs.job(job_id).vertices[0].records_out > 3000, what="progress")
        stop = strom_cli(cluster, "stop", "--savepoint-path", str(tmp_path / "sp"), job_id)
        assert stop.returncode == 0, stop.stderr
        location = re.search(r"Savepoint completed\. Path: file:(\S+)", stop.stdout).group(1)
        poll_for(lambda: jobs.job(job_id).summary.state == "FINISHED", what="the job to stop")
        partial = output_of(redis_server, "out")
        assert 0 < sum(partial.values()) < count  # committed with the savepoint, cut short

        resumed = submit(3, savepoint=location)
        poll_for(
            lambda: jobs.job(resumed).summary.state in ("FINISHED", "FAILED"),
            timeout=120,
            what="the resumed job to end",
        )
        assert jobs.job(resumed).summary.state == "FINISHED", jobs.job(resumed).failure
    assert output_of(redis_server, "out") == expected_output(count)
    assert KEYS == 7


def test_redis_word_count_example_counts_the_lines_of_a_stream(redis_server):
    import subprocess
    import sys

    from harness import REPO_ROOT, python_env

    redis_server.client().xadd("lines", {"line": "to be or not to be"})
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "redis_word_count.py")]
        + ["--host", "127.0.0.1", "--port", str(redis_server.port), "--bounded", "--fill"],
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env(),
    )
    assert result.returncode == 0, result.stderr
    counts = dict(line.split() for line in result.stdout.splitlines())
    assert counts["to"] == "6" and counts["be"] == "4" and counts["question"] == "1"
    entries = redis_server.client().xrange("word-counts")
    assert len(entries) == 6 + 10 + 8 + 7 + 9  # one running count per word of every line


def test_an_idle_stream_does_not_hold_back_event_time(local_cluster, redis_server):
    """Two streams on two subtasks, one silent: with ``with_idleness`` the windows of the
    other fire while the job runs, with event time from the entry ids."""
    from strom.common import Duration, Time
    from strom.datastream.window import TumblingEventTimeWindows

    cluster = local_cluster(slots=2).start(taskmanagers=1)
    client = redis_server.client()
    client.xadd("quiet", {"n": 0}, id="1-0")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    entries = (
        RedisStreamSource.builder()
        .set_host("127.0.0.1")
        .set_port(redis_server.port)
        .set_streams(["busy", "quiet"])
        .build()
    )
    strategy = (
        WatermarkStrategy.for_monotonous_timestamps()
        .with_timestamp_assigner(EntryIdTimestampAssigner())
        .with_idleness(Duration.of_millis(200))
    )
    windows = (
        env.from_source(entries, strategy, "entries")
        .map(lambda entry: (entry.stream, 1))
        .key_by(lambda pair: pair[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(1)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    windows.sink_to(sink(redis_server, "windows", DeliveryGuarantee.AT_LEAST_ONCE))
    with remote(cluster.address):
        job = env.execute_async("idle redis stream")
    for ms in (1000, 1100, 1200, 2000, 2100, 3500):
        client.xadd("busy", {"n": ms}, id=f"{ms}-0")

    def busy() -> list:
        entries = client.xrange("windows")
        return [int(f["count"]) for _, f in entries if f["key"] == "busy"]

    poll_for(lambda: len(busy()) >= 2, what="two windows of the busy stream")
    job.cancel()
    assert busy()[:2] == [3, 2]
