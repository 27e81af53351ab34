"""Streaming click events: a running count of views per page from a generated source.

A ``SourceFunction`` makes click events ``(user, page, timestamp)`` from a fixed seed; the job
keys them by page, keeps a running count with ``reduce`` and prints a page's count each time it
reaches a multiple of ``--every`` (1,000). Bounded (``--count``, 10,000 events) the job ends
like a batch job; with ``--forever`` it streams until you press Ctrl-C.

    python examples/streaming_events.py                    # embedded, 10,000 events
    python examples/streaming_events.py --forever          # embedded, until Ctrl-C
    python examples/streaming_events.py --count 2000 --every 100 --parallelism 2
    bin/strom run -p 2 examples/streaming_events.py --count 5000

On a cluster the counts go to the TaskManagers' ``.out`` files, as ``print()`` does in Flink.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from typing import Any

from strom.common import Types
from strom.datastream import SourceFunction, StreamExecutionEnvironment

PAGES = ["/home", "/search", "/product", "/cart", "/checkout"]
PAGE_WEIGHTS = [40, 25, 20, 10, 5]
USERS = 100
START_MS = 1_700_000_000_000


def click_events(seed: int, count: int | None = None) -> Iterator[tuple[str, str, int]]:
    """The same ``(user, page, timestamp)`` events for the same seed; endless without count."""
    rng = random.Random(seed)
    timestamp = START_MS
    emitted = 0
    while count is None or emitted < count:
        timestamp += rng.randint(0, 500)
        user = f"user-{rng.randrange(USERS)}"
        page = rng.choices(PAGES, PAGE_WEIGHTS)[0]
        yield user, page, timestamp
        emitted += 1


class ClickEventSource(SourceFunction):
    """Emits :func:`click_events` until they run out or the job is cancelled."""

    def __init__(self, seed: int, count: int | None) -> None:
        self.seed = seed
        self.count = count
        self.running = True

    def run(self, ctx: Any) -> None:
        for event in click_events(self.seed, self.count):
            if not self.running:
                break
            ctx.collect(event)

    def cancel(self) -> None:
        self.running = False


def page_views(count: int | None, every: int, seed: int, parallelism: int | None) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    if parallelism is not None:
        env.set_parallelism(parallelism)
    clicks = env.add_source(ClickEventSource(seed, count), "click-events")
    (
        clicks.map(
            lambda click: (click[1], 1), output_type=Types.TUPLE([Types.STRING(), Types.LONG()])
        )
        .key_by(lambda view: view[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .filter(lambda total: total[1] % every == 0)
        .print()
    )
    env.execute("streaming_events")  # Ctrl-C cancels the job and stops it


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--count", type=int, default=10_000, help="events to generate (10,000)")
    bound.add_argument("--forever", action="store_true", help="generate events until Ctrl-C")
    parser.add_argument("--every", type=int, default=1_000, help="print each N-th count (1,000)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generator (42)")
    parser.add_argument(
        "--parallelism", type=int, help="operator parallelism (1, or strom run's -p)"
    )
    arguments = parser.parse_args(sys.argv[1:])
    if arguments.every < 1:
        parser.error("--every must be at least 1")
    count = None if arguments.forever else arguments.count
    try:
        page_views(count, arguments.every, arguments.seed, arguments.parallelism)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
