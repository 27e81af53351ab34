"""How PyFlink prints values of each declared type: Java's toString() of the Java value."""

import datetime
from decimal import Decimal

from pyflink.common import Instant, Types
from pyflink.datastream import StreamExecutionEnvironment

CASES = [
    ("short", [-7, 300], Types.SHORT()),
    ("byte", [-128, 5], Types.BYTE()),
    ("big-int", [2**70], Types.BIG_INT()),
    ("big-dec", [Decimal("1.50"), Decimal("-0.001")], Types.BIG_DEC()),
    ("sql-date", [datetime.date(2024, 1, 2)], Types.SQL_DATE()),
    ("sql-time", [datetime.time(3, 4, 5)], Types.SQL_TIME()),
    ("sql-timestamp", [datetime.datetime(2024, 1, 2, 3, 4, 5, 600000)], Types.SQL_TIMESTAMP()),
    ("instant", [Instant.of_epoch_milli(1700000000123)], Types.INSTANT()),
    ("map", [{"a": 1}], Types.MAP(Types.STRING(), Types.INT())),
    ("double-edges", [1e-3, 9.99e-4, 1e7, 9999999.0, -0.0], Types.DOUBLE()),
    ("float-edges", [1.1, 16777217.0, 3.4e38], Types.FLOAT()),
]


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    for name, values, type_info in CASES:
        env.from_collection(values, type_info=type_info).print(name)
    env.execute("java text")


if __name__ == "__main__":
    main()
