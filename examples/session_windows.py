"""Session windows: each user's sessions of activity on a web shop, from out-of-order clicks.

Users click in bursts: a few seconds to two minutes between clicks, then they go away for a
quarter of an hour or more. ``EventTimeSessionWindows.with_gap(Time.minutes(5))`` puts a
user's clicks in one session as long as no five minutes pass without a click; a session window
opens at its first click and ends one gap after its last. Clicks reach the job up to ten
seconds late and out of order, so a ``WatermarkStrategy`` with bounded out-of-orderness takes
each click's own timestamp; a click that arrives late still joins (or joins up) its session.
A ``ProcessWindowFunction`` reports each session when event time passes its end: user, start,
end and number of clicks. The clicks come from a fixed seed, so the output is always the same.

    python examples/session_windows.py                   # 40 users
    python examples/session_windows.py --users 200
    bin/strom run examples/session_windows.py

On a cluster the sessions go to the TaskManager's ``.out`` file, as ``print()`` does in Flink.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import NamedTuple

from strom.common import Duration, Time, TimestampAssigner, Types, WatermarkStrategy
from strom.datastream import ProcessWindowFunction, StreamExecutionEnvironment
from strom.datastream.window import EventTimeSessionWindows

START_MS = 1_714_554_000_000  # 2024-05-01 09:00:00 UTC
MINUTE_MS = 60_000
SESSION_GAP_MINUTES = 5
MAX_DELAY_MS = 10_000  # how late a click may reach the job
PAGES = ["/home", "/search", "/product", "/cart", "/checkout"]


class Click(NamedTuple):
    user: str
    page: str
    timestamp: int  # when the user clicked, in epoch milliseconds


def clicks(users: int, seed: int = 3) -> list[Click]:
    """One to four bursts of clicks per user, in the order they reach the job: each click up to
    ``MAX_DELAY_MS`` after it happened, so a click may arrive after later ones."""
    rng = random.Random(seed)
    arriving = []
    for number in range(users):
        user = f"user-{number}"
        timestamp = START_MS + rng.randrange(30 * MINUTE_MS)
        for _ in range(rng.randint(1, 4)):
            for _ in range(rng.randint(1, 12)):
                click = Click(user, rng.choice(PAGES), timestamp)
                arriving.append((timestamp + rng.randrange(MAX_DELAY_MS), click))
                timestamp += rng.randint(1_000, 2 * MINUTE_MS)
            timestamp += rng.randint(15 * MINUTE_MS, 60 * MINUTE_MS)  # away: the session ends
    arriving.sort(key=lambda pair: pair[0])
    return [click for _, click in arriving]


def clock(millis: int) -> str:
    """``HH:MM:SS`` (UTC) of an epoch-millisecond timestamp."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%H:%M:%S")


class ClickTimestamp(TimestampAssigner):
    """The event time of a click is when the user clicked, not when the click arrived."""

    def extract_timestamp(self, value: Click, record_timestamp: int) -> int:
        return value.timestamp


class SessionSummary(ProcessWindowFunction):
    """One line per session: the user, the session window's start and end, and its clicks."""

    def process(
        self, key: str, context: ProcessWindowFunction.Context, elements: Iterable[Click]
    ) -> Iterator[str]:
        session = context.window()
        clicks = sum(1 for _ in elements)
        yield f"{key:<8} {clock(session.start)}-{clock(session.end)} clicks={clicks}"


def user_sessions(users: int, parallelism: int | None = None) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    if parallelism is not None:
        env.set_parallelism(parallelism)
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(MAX_DELAY_MS)
    ).with_timestamp_assigner(ClickTimestamp())
    (
        env.from_collection(clicks(users))
        .assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda click: click.user)
        .window(EventTimeSessionWindows.with_gap(Time.minutes(SESSION_GAP_MINUTES)))
        .process(SessionSummary(), output_type=Types.STRING())
        .print()
    )
    env.execute("session_windows")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40, help="users (40)")
    parser.add_argument(
        "--parallelism",
        type=int,
        help="operator parallelism (default: the machine's cores with python, as in PyFlink; "
        "strom run's -p on a cluster)",
    )
    arguments = parser.parse_args(sys.argv[1:])
    user_sessions(arguments.users, arguments.parallelism)
