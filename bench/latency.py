"""End-to-end latency at a buffer timeout: a source at 1,000 records/s through ``key_by``.

    python bench/latency.py                  # 2 TaskManagers x 1 slot, p=2, timeouts 0/10/100
    python bench/latency.py --embedded       # the same job in this process
    python bench/latency.py --rate 4 --seconds 8   # a sparse source: run() waits between records

A ``SourceFunction`` stamps each record with the wall-clock time it made it and emits it on a
fixed schedule; after ``key_by`` (which crosses processes on the cluster) a map takes the
difference to its own clock. The first half second of each run is left out (start-up). Target
(issue 12): p99 <= timeout + 5 ms at 10 and 100 ms, p99 <= 5 ms at 0. At a low ``--rate`` the
source's ``run`` sleeps between records longer than the timeout: a record must still go
within one timeout, not wait for the next ``collect``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cluster import local_cluster  # noqa: E402

from strom.datastream import SourceFunction, StreamExecutionEnvironment  # noqa: E402

RATE = 1000
WARM_UP_S = 0.5


class PacedSource(SourceFunction):
    """``(sequence number, wall-clock creation time)`` at ``rate`` records a second."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate, self.seconds, self.running = rate, seconds, True

    def run(self, ctx):
        started = time.monotonic()
        for i in range(int(self.rate * self.seconds)):
            if not self.running:
                return
            pause = started + i / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            ctx.collect((i, time.time()))

    def cancel(self):
        self.running = False


def key_of(record):
    return record[0] % 16


def latency(record):
    return (record[0], time.time() - record[1])


def run(timeout_ms: int, parallelism: int, seconds: float, rate: int = RATE) -> list[float]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.set_buffer_timeout(timeout_ms)
    stream = env.add_source(PacedSource(rate, seconds)).key_by(key_of).map(latency)
    with stream.execute_and_collect() as results:
        measured = list(results)
    skip = int(rate * WARM_UP_S)
    return sorted(seconds for index, seconds in measured if index >= skip)


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description="Strom buffer-timeout latency benchmark")
    parser.add_argument("--embedded", action="store_true", help="run in this process")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--timeouts", default="0,10,100", help="buffer timeouts in ms")
    parser.add_argument("--rate", type=int, default=RATE, help="records a second per subtask")
    args = parser.parse_args()
    timeouts = [int(t) for t in args.timeouts.split(",")]

    def measure(parallelism: int) -> None:
        for timeout in timeouts:
            values = run(timeout, parallelism, args.seconds, args.rate)
            p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
            target = 5.0 if timeout == 0 else timeout + 5.0
            verdict = "met" if p99 * 1000 <= target else "MISSED"
            print(
                f"timeout {timeout:4d} ms: p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms"
                f"  max {values[-1] * 1000:7.1f} ms  mean {statistics.mean(values) * 1000:6.1f}"
                f" ms  (target p99 <= {target:.0f} ms: {verdict})"
            )

    if args.embedded:
        print(f"embedded, p=1, {args.rate} records/s")
        measure(1)
        return
    with tempfile.TemporaryDirectory(prefix="strom-latency-") as tmp:
        with local_cluster(2, Path(tmp)):  # execute() now submits to it
            print(f"cluster: 2 TaskManagers x 1 slot, p=2, {args.rate} records/s")
            measure(2)


if __name__ == "__main__":
    main()
