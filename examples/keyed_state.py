"""Keyed state: flag a small transaction followed by a large one on the same account.

As in Flink's fraud-detection walkthrough, a ``KeyedProcessFunction`` keeps one flag per
account in a ``ValueState``: set by a transaction under 1.00, cleared by the next one, which
raises an alert if it is over 500.00. The transactions come from a fixed seed, so the alerts
are always the same.

    python examples/keyed_state.py                 # embedded, 1,000 transactions
    python examples/keyed_state.py --count 10000
    bin/strom run examples/keyed_state.py

On a cluster the alerts go to the TaskManager's ``.out`` file, as ``print()`` does in Flink.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from typing import NamedTuple

from strom.common import Types
from strom.datastream import (
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)

SMALL_AMOUNT = 1.00
LARGE_AMOUNT = 500.00
ACCOUNTS = 5


class Transaction(NamedTuple):
    account_id: int
    amount: float


class Alert(NamedTuple):
    account_id: int
    amount: float


def transactions(count: int, seed: int = 7) -> list[Transaction]:
    """``count`` transactions over a few accounts: a fifth tiny, a fifth large."""
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.2:
            amount = rng.uniform(0.01, 0.99)
        elif kind < 0.8:
            amount = rng.uniform(1.00, 500.00)
        else:
            amount = rng.uniform(500.01, 2000.00)
        result.append(Transaction(rng.randrange(ACCOUNTS), round(amount, 2)))
    return result


class FraudDetector(KeyedProcessFunction):
    """Alerts on a large transaction right after a small one on the same account."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.flag = runtime_context.get_state(ValueStateDescriptor("flag", Types.BOOLEAN()))

    def process_element(
        self, value: Transaction, ctx: KeyedProcessFunction.Context
    ) -> Iterator[Alert]:
        if self.flag.value():
            self.flag.clear()
            if value.amount > LARGE_AMOUNT:
                yield Alert(value.account_id, value.amount)
        if value.amount < SMALL_AMOUNT:
            self.flag.update(True)


def detect_fraud(count: int, parallelism: int | None = None) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    if parallelism is not None:
        env.set_parallelism(parallelism)
    (
        env.from_collection(transactions(count))
        .key_by(lambda transaction: transaction.account_id)
        .process(FraudDetector())
        .print()
    )
    env.execute("fraud_detection")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000, help="transactions (1,000)")
    parser.add_argument(
        "--parallelism",
        type=int,
        help="operator parallelism (default: the machine's cores with python, as in PyFlink; "
        "strom run's -p on a cluster)",
    )
    arguments = parser.parse_args(sys.argv[1:])
    detect_fraud(arguments.count, arguments.parallelism)
