"""Event-time windows: views and unique visitors per page and minute, from out-of-order events.

Each page view carries the time it happened, but views reach the job up to five seconds late
and so out of order. A ``WatermarkStrategy`` with bounded out-of-orderness takes every view's
own timestamp and lets event time trail the newest view by those five seconds, so that no view
misses its window. The job keys views by page and cuts them into one-minute
``TumblingEventTimeWindows``; an ``AggregateFunction`` counts views and distinct visitors as
they come, and a ``ProcessWindowFunction`` adds the window's start and end to the result. With
``--slide`` the windows slide (``SlidingEventTimeWindows``): ``--size 120 --slide 30`` counts
the last two minutes every 30 seconds. The views come from a fixed seed, so the output is
always the same: windows in the order event time closes them.

    python examples/event_time_windows.py                          # 1-minute tumbling windows
    python examples/event_time_windows.py --size 120 --slide 30    # 2 minutes, every 30 s
    python examples/event_time_windows.py --count 5000
    bin/strom run examples/event_time_windows.py

On a cluster the results go to the TaskManager's ``.out`` file, as ``print()`` does in Flink.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import NamedTuple

from strom.common import Duration, Time, TimestampAssigner, Types, WatermarkStrategy
from strom.datastream import (
    AggregateFunction,
    ProcessWindowFunction,
    StreamExecutionEnvironment,
)
from strom.datastream.window import SlidingEventTimeWindows, TumblingEventTimeWindows

START_MS = 1_714_554_000_000  # 2024-05-01 09:00:00 UTC
MAX_DELAY_MS = 5_000  # how late a view may reach the job
PAGES = ["/home", "/search", "/product", "/cart", "/checkout"]
PAGE_WEIGHTS = [40, 25, 20, 10, 5]
USERS = 50


class PageView(NamedTuple):
    user: str
    page: str
    timestamp: int  # when the view happened, in epoch milliseconds


def page_views(count: int, seed: int = 11) -> list[PageView]:
    """``count`` views, about 400 ms apart, in the order they reach the job: each one up to
    ``MAX_DELAY_MS`` after it happened, so a view may arrive after later ones."""
    rng = random.Random(seed)
    arriving = []
    timestamp = START_MS
    for _ in range(count):
        timestamp += rng.randint(0, 800)
        view = PageView(
            f"user-{rng.randrange(USERS)}", rng.choices(PAGES, PAGE_WEIGHTS)[0], timestamp
        )
        arriving.append((timestamp + rng.randrange(MAX_DELAY_MS), view))
    arriving.sort(key=lambda pair: pair[0])
    return [view for _, view in arriving]


def clock(millis: int) -> str:
    """``HH:MM:SS`` (UTC) of an epoch-millisecond timestamp."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%H:%M:%S")


class ViewTimestamp(TimestampAssigner):
    """The event time of a view is when it happened, not when it arrived."""

    def extract_timestamp(self, value: PageView, record_timestamp: int) -> int:
        return value.timestamp


class CountViews(AggregateFunction):
    """Views and distinct visitors of a window, added up one view at a time."""

    def create_accumulator(self) -> tuple[int, set[str]]:
        return 0, set()

    def add(self, value: PageView, accumulator: tuple[int, set[str]]) -> tuple[int, set[str]]:
        views, visitors = accumulator
        visitors.add(value.user)
        return views + 1, visitors

    def get_result(self, accumulator: tuple[int, set[str]]) -> tuple[int, int]:
        views, visitors = accumulator
        return views, len(visitors)

    def merge(
        self, acc_a: tuple[int, set[str]], acc_b: tuple[int, set[str]]
    ) -> tuple[int, set[str]]:
        return acc_a[0] + acc_b[0], acc_a[1] | acc_b[1]


class PageStatistics(ProcessWindowFunction):
    """One line per page and window: the window's span and what ``CountViews`` added up."""

    def process(
        self, key: str, context: ProcessWindowFunction.Context, elements: Iterable[tuple[int, int]]
    ) -> Iterator[str]:
        views, visitors = next(iter(elements))  # the aggregate's single result
        window = context.window()
        yield (
            f"{clock(window.start)}-{clock(window.end)} {key:<9} "
            f"views={views:<4} visitors={visitors}"
        )


def page_statistics(
    count: int, size_s: int, slide_s: int | None, parallelism: int | None = None
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    if parallelism is not None:
        env.set_parallelism(parallelism)
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(MAX_DELAY_MS)
    ).with_timestamp_assigner(ViewTimestamp())
    if slide_s is None:
        windows = TumblingEventTimeWindows.of(Time.seconds(size_s))
    else:
        windows = SlidingEventTimeWindows.of(Time.seconds(size_s), Time.seconds(slide_s))
    (
        env.from_collection(page_views(count))
        .assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda view: view.page)
        .window(windows)
        .aggregate(CountViews(), PageStatistics(), output_type=Types.STRING())
        .print()
    )
    env.execute("event_time_windows")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_500, help="page views (1,500)")
    parser.add_argument("--size", type=int, default=60, help="window size in seconds (60)")
    parser.add_argument("--slide", type=int, help="slide in seconds (tumbling windows without)")
    parser.add_argument(
        "--parallelism",
        type=int,
        help="operator parallelism (default: the machine's cores with python, as in PyFlink; "
        "strom run's -p on a cluster)",
    )
    arguments = parser.parse_args(sys.argv[1:])
    if arguments.size < 1 or (arguments.slide is not None and arguments.slide < 1):
        parser.error("--size and --slide must be at least 1 second")
    page_statistics(arguments.count, arguments.size, arguments.slide, arguments.parallelism)
