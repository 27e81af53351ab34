"""PostgreSQL change data capture against a real server: the initial snapshot and the changes
as Rows with RowKinds, positions that resume exactly, the slot advanced only by completed
checkpoints, and CDC -> keyed aggregation -> PostgreSQL through SIGKILLed TaskManagers."""

from __future__ import annotations

import random
import threading

import pytest
from harness import poll_for
from jobs_support import remote
from services import PostgresServer, kill_taskmanagers_during
from test_checkpointing import checkpointed_env

from strom.common import RowKind, Types
from strom.datastream import KeyedProcessFunction
from strom.datastream.connectors.jdbc import (
    JdbcConnectionOptions,
    JdbcExecutionOptions,
    JdbcSink,
)
from strom.datastream.connectors.postgres_cdc import PostgresCDCSource, parse_lsn
from strom.datastream.state import ValueStateDescriptor


@pytest.fixture
def postgres():
    server = PostgresServer()
    server.query("CREATE TABLE orders (id int PRIMARY KEY, customer int, amount int)")
    server.query("ALTER TABLE orders REPLICA IDENTITY FULL")
    yield server
    server.stop()


def cdc_source(server: PostgresServer, slot: str = "strom_orders") -> PostgresCDCSource:
    return (
        PostgresCDCSource.builder()
        .hostname("127.0.0.1")
        .port(server.port)
        .database("postgres")
        .username(server.user)
        .table_list(["orders"])
        .slot_name(slot)
        .build()
    )


def read_all(reader, at_least: int) -> list:
    rows: list = []
    poll_for(lambda: rows.extend(reader.read_batch(100)) or len(rows) >= at_least)
    return rows


def described(rows) -> list[tuple]:
    return [(row.get_row_kind().short_string(), *row) for row in rows]


def confirmed(server: PostgresServer) -> int:
    (lsn,) = server.query("SELECT confirmed_flush_lsn::text FROM pg_replication_slots")[0]
    return parse_lsn(lsn)


def test_snapshot_then_changes_as_rows_with_row_kinds_resuming_at_the_position(postgres):
    postgres.query("INSERT INTO orders VALUES (1, 10, 5), (2, 20, 7)")
    source = cdc_source(postgres)
    reader = source.create_reader(0, 1)
    snapshot = reader.read_batch(100)
    assert described(snapshot) == [("+I", 1, 10, 5), ("+I", 2, 20, 7)]
    assert snapshot[0].customer == 10
    assert source.create_reader(1, 2).read_batch(100) == []  # only subtask 0 reads the slot

    postgres.query("INSERT INTO orders VALUES (3, 10, 1)")
    postgres.query("UPDATE orders SET amount = 6 WHERE id = 1")
    postgres.query("DELETE FROM orders WHERE id = 2")
    changes = read_all(reader, 4)
    assert described(changes) == [
        ("+I", 3, 10, 1),
        ("-U", 1, 10, 5),
        ("+U", 1, 10, 6),
        ("-D", 2, 20, 7),
    ]
    position = reader.snapshot_position()
    start = confirmed(postgres)

    with postgres.connect() as connection, connection.transaction():
        for n in range(4, 9):  # one transaction of five rows, read in two steps
            connection.execute("INSERT INTO orders VALUES (%s, 30, %s)", (n, n))
    first = reader.read_batch(2)
    assert [row.id for row in first] == [4, 5]
    middle = reader.snapshot_position()
    reader.close()

    # A restored reader goes on right after the rows of its position, and confirms that
    # position (its checkpoint completed) to the slot.
    again = source.create_reader(0, 1)
    again.restore_position(middle)
    assert [row.id for row in read_all(again, 3)] == [6, 7, 8]
    assert confirmed(postgres) == middle[1] > start
    again.close()
    back = source.create_reader(0, 1)
    back.restore_position(position)
    assert [row.id for row in read_all(back, 5)] == [4, 5, 6, 7, 8]
    back.close()


class Totals(KeyedProcessFunction):
    """Per customer: the sum of amounts and the number of orders, from a changelog."""

    def open(self, runtime_context):
        self.state = runtime_context.get_state(
            ValueStateDescriptor("totals", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, row, ctx):
        total, count = self.state.value() or (0, 0)
        sign = 1 if row.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER) else -1
        total, count = total + sign * row.amount, count + sign
        self.state.update((total, count))
        yield (row.customer, total, count)


def changes(server: PostgresServer, stop: threading.Event, seed: int) -> None:
    """Inserts, updates (also moving orders to another customer) and deletes until stopped."""
    rng = random.Random(seed)
    live: list[int] = []
    next_id = 1000
    with server.connect() as connection:
        while not stop.is_set() or next_id < 1400:
            choice = rng.random()
            if choice < 0.5 or len(live) < 5:
                next_id += 1
                connection.execute(
                    "INSERT INTO orders VALUES (%s, %s, %s)",
                    (next_id, rng.randrange(8), rng.randrange(1, 100)),
                )
                live.append(next_id)
            elif choice < 0.8:
                connection.execute(
                    "UPDATE orders SET amount = %s, customer = %s WHERE id = %s",
                    (rng.randrange(1, 100), rng.randrange(8), rng.choice(live)),
                )
            else:
                victim = live.pop(rng.randrange(len(live)))
                connection.execute("DELETE FROM orders WHERE id = %s", (victim,))
            if next_id > 20_000:
                break


def test_cdc_to_keyed_totals_in_postgres_exactly_through_sigkills(
    local_cluster, tmp_path, postgres
):
    postgres.query("CREATE TABLE totals (customer int PRIMARY KEY, total int, n int)")
    postgres.query("INSERT INTO orders SELECT g, g % 8, g % 50 FROM generate_series(1, 500) AS g")
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    checkpoints = tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    orders = env.from_source(cdc_source(postgres), None, "orders-cdc")
    totals = orders.key_by(lambda row: row.customer).process(Totals())
    totals.add_sink(
        JdbcSink.exactly_once_sink(
            "INSERT INTO totals VALUES (?, ?, ?) ON CONFLICT (customer) "
            "DO UPDATE SET total = EXCLUDED.total, n = EXCLUDED.n",
            Types.ROW([Types.INT(), Types.INT(), Types.INT()]),
            JdbcConnectionOptions.JdbcConnectionOptionsBuilder().with_url(postgres.url).build(),
            JdbcExecutionOptions.builder().with_batch_size(100).build(),
        )
    )
    stop = threading.Event()
    writer = threading.Thread(target=changes, args=(postgres, stop, 3), daemon=True)
    with remote(cluster.address):
        client = env.execute_async("cdc totals under SIGKILL")
    first = poll_for(
        lambda: postgres.query("SELECT 1 FROM pg_replication_slots") and confirmed(postgres)
    )
    writer.start()
    try:
        kills = kill_taskmanagers_during(cluster, client, seed=9)
        assert kills >= 2
    finally:
        stop.set()
        writer.join(timeout=60)
    expected = {
        c: (t, n)
        for c, t, n in postgres.query(
            "SELECT customer, sum(amount)::int, count(*)::int FROM orders GROUP BY customer"
        )
    }

    def reflected():
        rows = postgres.query("SELECT customer, total, n FROM totals")
        return {c: (t, n) for c, t, n in rows if n != 0} == expected

    poll_for(reflected, timeout=60, what="the totals to reflect every change")
    client.cancel()
    assert postgres.query("SELECT count(*) FROM orders")[0][0] > 500  # changes were made
    # The slot moved on with the completed checkpoints.
    poll_for(lambda: confirmed(postgres) > first, what="the slot to advance")


def test_cdc_to_redis_example_appends_each_customers_totals(local_cluster, tmp_path, postgres):
    from services import RedisServer
    from test_examples import load_example

    redis_server = RedisServer()
    try:
        example = load_example("postgres_cdc_to_redis")
        postgres.query("INSERT INTO orders VALUES (1, 7, 30), (2, 8, 5)")
        args = example.parser().parse_args(
            ["--pg-host", "127.0.0.1", "--pg-port", str(postgres.port), "--user", postgres.user]
            + ["--redis-host", "127.0.0.1", "--redis-port", str(redis_server.port)]
        )
        cluster = local_cluster(slots=2).start(taskmanagers=1)
        env = checkpointed_env(tmp_path / "checkpoints", parallelism=1)
        example.build(env, args)
        with remote(cluster.address):
            client = env.execute_async("cdc to redis example")
        poll_for(lambda: postgres.query("SELECT 1 FROM pg_replication_slots"), what="the slot")
        postgres.query("UPDATE orders SET amount = 40 WHERE id = 1")
        postgres.query("DELETE FROM orders WHERE id = 2")

        def latest() -> dict:
            entries = redis_server.client().xrange("customer-totals")
            return {f["customer"]: (f["total"], f["orders"]) for _, f in entries}

        poll_for(
            lambda: latest() == {"7": ("40", "1"), "8": ("0", "0")},
            what="the totals after the update and the delete",
        )
        assert len(redis_server.client().xrange("customer-totals")) == 5  # 2 +I, -U, +U, -D
        client.cancel()
    finally:
        redis_server.stop()
