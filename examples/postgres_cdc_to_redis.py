"""Change data capture from PostgreSQL to Redis: every insert, update and delete of an
``orders`` table, as a changelog, kept as a running total per customer that is appended to a
Redis stream, exactly once.

    # a local PostgreSQL with logical decoding, and a table to watch (see README "Connectors")
    psql -c "CREATE TABLE orders (id int PRIMARY KEY, customer int, amount int)"
    psql -c "ALTER TABLE orders REPLICA IDENTITY FULL"   # old rows for updates and deletes
    python examples/postgres_cdc_to_redis.py --pg-port 5432 --redis-port 6379
    psql -c "INSERT INTO orders VALUES (1, 7, 30)"       # ... while it runs
    redis-cli XRANGE customer-totals - +

The job first reads the rows already there (the snapshot), then follows the changes. Each
output entry is ``{customer, total, orders}`` after a change of that customer's orders.
"""

from __future__ import annotations

import argparse

from strom.common import RowKind, Types, WatermarkStrategy
from strom.datastream import KeyedProcessFunction, StreamExecutionEnvironment
from strom.datastream.connectors.base import DeliveryGuarantee
from strom.datastream.connectors.postgres_cdc import PostgresCDCSource
from strom.datastream.connectors.redis import RedisStreamSink
from strom.datastream.state import ValueStateDescriptor


class CustomerTotals(KeyedProcessFunction):
    """Applies a changelog of orders to the sum of amounts and number of orders of a customer:
    +I and +U add a row, -U and -D take one away."""

    def open(self, runtime_context):
        descriptor = ValueStateDescriptor("totals", Types.PICKLED_BYTE_ARRAY())
        self.totals = runtime_context.get_state(descriptor)

    def process_element(self, row, ctx):
        total, orders = self.totals.value() or (0, 0)
        sign = 1 if row.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER) else -1
        total, orders = total + sign * row.amount, orders + sign
        self.totals.update((total, orders))
        yield {"customer": row.customer, "total": total, "orders": orders}


def build(env, args) -> None:
    """The job's graph: CDC source -> key by customer -> totals -> Redis stream."""
    source = (
        PostgresCDCSource.builder()
        .hostname(args.pg_host)
        .port(args.pg_port)
        .database(args.database)
        .username(args.user)
        .table_list([args.table])
        .slot_name(args.slot)
        .build()
    )
    changes = env.from_source(source, WatermarkStrategy.no_watermarks(), "orders-cdc")
    totals = changes.key_by(lambda row: row.customer).process(CustomerTotals())
    totals.sink_to(
        RedisStreamSink.builder()
        .set_host(args.redis_host)
        .set_port(args.redis_port)
        .set_stream(args.output)
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .build()
    )


def parser() -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--pg-host", default="localhost")
    arguments.add_argument("--pg-port", type=int, default=5432)
    arguments.add_argument("--database", default="postgres")
    arguments.add_argument("--user", default="postgres")
    arguments.add_argument("--table", default="public.orders")
    arguments.add_argument("--slot", default="strom_orders")
    arguments.add_argument("--redis-host", default="localhost")
    arguments.add_argument("--redis-port", type=int, default=6379)
    arguments.add_argument("--output", default="customer-totals")
    arguments.add_argument("--checkpoint-interval", type=int, default=1000, help="ms")
    return arguments


def main() -> None:
    args = parser().parse_args()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(args.checkpoint_interval)  # commits output, advances the slot
    build(env, args)
    env.execute("postgres cdc to redis")


if __name__ == "__main__":
    main()
