"""JdbcSink against a real PostgreSQL: PyFlink's names, batching and upserts, at-least-once
and exactly-once (two-phase commit) output through TaskManagers SIGKILLed mid-job."""

from __future__ import annotations

from collections import Counter

import pytest
from jobs_support import Mode, remote
from services import PostgresServer, RedisServer, kill_taskmanagers_during
from test_checkpointing import checkpointed_env, expected_output
from test_redis_connector import counting_job, fill

from strom.common import Row, Types
from strom.datastream import StreamExecutionEnvironment
from strom.datastream.connectors.base import DeliveryGuarantee
from strom.datastream.connectors.jdbc import (
    JdbcConnectionOptions,
    JdbcExactlyOnceOptions,
    JdbcExecutionOptions,
    JdbcSink,
    to_psycopg_sql,
)
from strom.datastream.connectors.redis import RedisStreamSource


@pytest.fixture
def postgres():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


def options(server: PostgresServer) -> JdbcConnectionOptions:
    return (
        JdbcConnectionOptions.JdbcConnectionOptionsBuilder()
        .with_url(f"jdbc:postgresql://127.0.0.1:{server.port}/postgres")
        .with_driver_name("org.postgresql.Driver")
        .with_user_name(server.user)
        .build()
    )


ROW_TYPE = Types.ROW([Types.INT(), Types.INT()])


def test_placeholders_become_psycopg_parameters():
    assert to_psycopg_sql("INSERT INTO t VALUES (?, '?', ?) -- 5%") == (
        "INSERT INTO t VALUES (%s, '?', %s) -- 5%%"
    )


def test_sink_upserts_rows_in_batches_through_add_sink(postgres):
    postgres.query("CREATE TABLE totals (word text PRIMARY KEY, n int)")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    words = [Row(w, n) for n, w in enumerate(["a", "b", "a", "c", "b", "a"] * 50, start=1)]
    execution = (
        JdbcExecutionOptions.builder()
        .with_batch_size(7)
        .with_batch_interval_ms(100)
        .with_max_retries(2)
        .build()
    )
    assert (execution.get_batch_size(), execution.get_max_retries()) == (7, 2)
    env.from_collection(words).key_by(lambda row: row[0]).add_sink(
        JdbcSink.sink(
            "INSERT INTO totals (word, n) VALUES (?, ?) "
            "ON CONFLICT (word) DO UPDATE SET n = GREATEST(totals.n, EXCLUDED.n)",
            Types.ROW([Types.STRING(), Types.INT()]),
            options(postgres),
            execution,
        )
    )
    Mode("embedded").execute(env, "upserts")
    assert postgres.query("SELECT word, n FROM totals ORDER BY word") == [
        ("a", 300),
        ("b", 299),
        ("c", 298),
    ]


def test_exactly_once_sink_rolls_back_what_a_failed_attempt_prepared(postgres):
    """A transaction prepared for a checkpoint that never completed is rolled back when a
    writer of that subtask starts; one of the restored checkpoint is committed."""
    postgres.query("CREATE TABLE t (key int, n int)")
    sink = JdbcSink.exactly_once_sink(
        "INSERT INTO t VALUES (?, ?)",
        ROW_TYPE,
        options(postgres),
        jdbc_exactly_once_options=JdbcExactlyOnceOptions.builder()
        .with_transaction_id_prefix("job")
        .build(),
    )
    first = sink.create_writer(0, 1)
    first.write_batch([(1, 1)])
    committed = first.prepare_commit(5)
    first.write_batch([(2, 2)])
    first.prepare_commit(6)  # checkpoint 6 never completes: the TaskManager dies
    first.connection.close()
    assert len(postgres.query("SELECT gid FROM pg_prepared_xacts")) == 2

    again = sink.create_writer(0, 1)  # restored from checkpoint 5
    again.commit(committed)
    again.write_batch([(3, 3)])
    again.commit(again.prepare_commit(6))
    again.close()
    assert postgres.query("SELECT gid FROM pg_prepared_xacts") == []
    assert postgres.query("SELECT key, n FROM t ORDER BY key") == [(1, 1), (3, 3)]


def output_rows(postgres: PostgresServer) -> Counter:
    return Counter(repr((k, n)) for k, n in postgres.query("SELECT key, n FROM counts"))


@pytest.mark.parametrize("exactly_once", [True, False], ids=["exactly-once", "at-least-once"])
def test_redis_to_postgres_survives_sigkilled_taskmanagers(
    local_cluster, tmp_path, postgres, redis_server, exactly_once
):
    postgres.query("CREATE TABLE counts (key int, n int)")  # no key: repeats would show
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count, streams = 60_000, ["in-0", "in-1", "in-2"]
    fill(redis_server, streams, count)
    checkpoints = tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    make = JdbcSink.exactly_once_sink if exactly_once else JdbcSink.sink
    jdbc = make(
        "INSERT INTO counts (key, n) VALUES (?, ?)",
        ROW_TYPE,
        options(postgres),
        JdbcExecutionOptions.builder().with_batch_size(200).build(),
    )
    counting_job(env, redis_server, streams, None, DeliveryGuarantee.NONE, jdbc=jdbc)
    with remote(cluster.address):
        client = env.execute_async("redis to postgres under SIGKILL")
    kills = kill_taskmanagers_during(cluster, client, seed=5)
    assert kills >= 2, "the job ended before the failures could be injected"
    client.get_job_execution_result()
    expected, got = expected_output(count), output_rows(postgres)
    if exactly_once:
        assert got == expected
        assert postgres.query("SELECT gid FROM pg_prepared_xacts") == []
    else:
        assert set(got) == set(expected) and sum(got.values()) >= count
    assert RedisStreamSource  # the source module is the one the job used


def test_exactly_once_sink_resumes_from_a_savepoint_at_another_parallelism(
    local_cluster, tmp_path, postgres, redis_server
):
    """Stopped with a savepoint at parallelism 2, resumed at 3: the prepared transactions of
    the old subtasks are committed by the new ones, and every row is there once."""
    import re

    from harness import poll_for
    from test_savepoints import strom_cli

    from client.gateway import ClusterClient
    from strom.datastream import execution_context

    postgres.query("CREATE TABLE counts (key int, n int)")
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count, streams = 30_000, ["s0", "s1", "s2"]
    fill(redis_server, streams, count)

    def submit(parallelism: int, savepoint: str | None = None) -> str:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        env.enable_checkpointing(60_000)
        jdbc = JdbcSink.exactly_once_sink(
            "INSERT INTO counts (key, n) VALUES (?, ?)", ROW_TYPE, options(postgres)
        )
        counting_job(env, redis_server, streams, None, DeliveryGuarantee.NONE, jdbc=jdbc)
        with remote(cluster.address):
            execution_context.current().savepoint_path = savepoint
            return env.execute_async(f"postgres p={parallelism}").get_job_id()

    job_id = submit(2)
    with ClusterClient(cluster.address) as jobs:
        poll_for(lambda: jobs.job(job_id).vertices[0].records_out > 3000, what="progress")
        stop = strom_cli(cluster, "stop", "--savepoint-path", str(tmp_path / "sp"), job_id)
        assert stop.returncode == 0, stop.stderr
        location = re.search(r"Savepoint completed\. Path: file:(\S+)", stop.stdout).group(1)
        poll_for(lambda: jobs.job(job_id).summary.state == "FINISHED", what="the job to stop")
        resumed = submit(3, savepoint=location)
        poll_for(
            lambda: jobs.job(resumed).summary.state in ("FINISHED", "FAILED"),
            timeout=120,
            what="the resumed job to end",
        )
        assert jobs.job(resumed).summary.state == "FINISHED", jobs.job(resumed).failure
    assert output_rows(postgres) == expected_output(count)
    assert postgres.query("SELECT gid FROM pg_prepared_xacts") == []
