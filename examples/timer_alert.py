"""Timers: alert when a sensor's temperature stays above a threshold for 30 seconds.

Machine sensors report a temperature every second, and the readings reach the job up to three
seconds late, out of order. A ``KeyedProcessFunction`` keyed by sensor keeps each reading in a
``MapState`` until event time reaches it (an event-time timer at its timestamp): by then every
earlier reading of the sensor has arrived, because the ``WatermarkStrategy`` holds event time
back by those three seconds, and the readings are judged in the order they were taken. When
a run of readings above the threshold begins, its start goes into a ``ValueState`` and a
second timer is registered ``--duration`` seconds later; a reading at or below the threshold
before then deletes that timer. When event time reaches it, ``on_timer`` raises the alert.
The readings come from a fixed seed, so the alerts are always the same.

    python examples/timer_alert.py                     # 4 sensors, 10 minutes, 80.0 for 30 s
    python examples/timer_alert.py --sensors 10 --threshold 78.5 --duration 20
    bin/strom run examples/timer_alert.py

On a cluster the alerts go to the TaskManager's ``.out`` file, as ``print()`` does in Flink.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple

from strom.common import Duration, TimestampAssigner, Types, WatermarkStrategy
from strom.datastream import (
    KeyedProcessFunction,
    MapStateDescriptor,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)

START_MS = 1_714_554_000_000  # 2024-05-01 09:00:00 UTC
MAX_DELAY_MS = 3_000  # how late a reading may reach the job
NORMAL_TEMPERATURE = 70.0


class Reading(NamedTuple):
    sensor: str
    temperature: float
    timestamp: int  # when the sensor measured, in epoch milliseconds


def readings(sensors: int, seconds: int, seed: int = 1) -> list[Reading]:
    """A reading per sensor and second, in the order they reach the job: each one up to
    ``MAX_DELAY_MS`` after it was taken. Now and then a sensor's machine heats up until it
    cools down again."""
    rng = random.Random(seed)
    arriving = []
    for number in range(sensors):
        sensor = f"sensor-{number}"
        temperature, heating = NORMAL_TEMPERATURE, 0.0
        for second in range(seconds):
            if not heating and rng.random() < 0.01:
                heating = rng.uniform(0.8, 2.0)
            elif heating and rng.random() < 0.05:
                heating = 0.0
            temperature += heating + (NORMAL_TEMPERATURE - temperature) * 0.05 + rng.gauss(0.0, 0.8)
            timestamp = START_MS + second * 1_000
            reading = Reading(sensor, round(temperature, 1), timestamp)
            arriving.append((timestamp + rng.randrange(MAX_DELAY_MS), reading))
    arriving.sort(key=lambda pair: pair[0])
    return [reading for _, reading in arriving]


def clock(millis: int) -> str:
    """``HH:MM:SS`` (UTC) of an epoch-millisecond timestamp."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%H:%M:%S")


class ReadingTimestamp(TimestampAssigner):
    """The event time of a reading is when it was taken, not when it arrived."""

    def extract_timestamp(self, value: Reading, record_timestamp: int) -> int:
        return value.timestamp


class OverheatingDetector(KeyedProcessFunction):
    """Alerts once when a sensor reads above ``threshold`` for ``duration_ms`` on end."""

    def __init__(self, threshold: float, duration_ms: int) -> None:
        self.threshold = threshold
        self.duration_ms = duration_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        # Readings that event time has not reached yet, by timestamp (one per timestamp).
        self.pending = runtime_context.get_map_state(
            MapStateDescriptor("pending", Types.LONG(), Types.DOUBLE())
        )
        # When the current run of readings above the threshold began; empty while cool.
        self.hot_since = runtime_context.get_state(ValueStateDescriptor("hot-since", Types.LONG()))

    def process_element(self, value: Reading, ctx: KeyedProcessFunction.Context) -> None:
        self.pending.put(value.timestamp, value.temperature)
        ctx.timer_service().register_event_time_timer(value.timestamp)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[str]:
        hot_since = self.hot_since.value()
        if hot_since is not None and timestamp == hot_since + self.duration_ms:
            yield (
                f"{clock(timestamp)} ALERT {ctx.get_current_key()}: above {self.threshold} "
                f"for {self.duration_ms // 1000} s, since {clock(hot_since)}"
            )
        if not self.pending.contains(timestamp):
            return  # the timer of an alert only
        temperature = self.pending.get(timestamp)
        self.pending.remove(timestamp)
        if temperature > self.threshold:
            if hot_since is None:
                self.hot_since.update(timestamp)
                ctx.timer_service().register_event_time_timer(timestamp + self.duration_ms)
        elif hot_since is not None:
            deadline = hot_since + self.duration_ms
            # Cooled down in time: no alert. A key has one timer per timestamp, so leave it
            # when a reading taken at the deadline waits for it too.
            if timestamp < deadline and not self.pending.contains(deadline):
                ctx.timer_service().delete_event_time_timer(deadline)
            self.hot_since.clear()


def overheating_alerts(
    sensors: int,
    seconds: int,
    threshold: float,
    duration_s: int,
    parallelism: int | None = None,
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    if parallelism is not None:
        env.set_parallelism(parallelism)
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(MAX_DELAY_MS)
    ).with_timestamp_assigner(ReadingTimestamp())
    (
        env.from_collection(readings(sensors, seconds))
        .assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda reading: reading.sensor)
        .process(OverheatingDetector(threshold, duration_s * 1_000), output_type=Types.STRING())
        .print()
    )
    env.execute("timer_alert")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=4, help="sensors (4)")
    parser.add_argument("--seconds", type=int, default=600, help="seconds of readings (600)")
    parser.add_argument("--threshold", type=float, default=80.0, help="too hot above (80.0)")
    parser.add_argument("--duration", type=int, default=30, help="for how many seconds (30)")
    parser.add_argument(
        "--parallelism",
        type=int,
        help="operator parallelism (default: the machine's cores with python, as in PyFlink; "
        "strom run's -p on a cluster)",
    )
    arguments = parser.parse_args(sys.argv[1:])
    if arguments.duration < 1:
        parser.error("--duration must be at least 1 second")
    overheating_alerts(
        arguments.sensors,
        arguments.seconds,
        arguments.threshold,
        arguments.duration,
        arguments.parallelism,
    )
