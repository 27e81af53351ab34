"""Event time: timestamps, watermarks and timers, embedded and on the 2-TaskManager cluster."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from strom.common import Duration, Time, Types, WatermarkStrategy
from strom.datastream import (
    KeyedProcessFunction,
    MapStateDescriptor,
    SourceFunction,
    StreamExecutionEnvironment,
    TimeDomain,
)
from strom.datastream.connectors.base import Source, SourceReader
from strom.datastream.window import TumblingEventTimeWindows

BUCKET = 10
DISORDER = 5


def events(count: int = 600) -> list[tuple[str, int]]:
    """(key, timestamp) pairs, at most DISORDER ms out of order."""
    rng = random.Random(3)
    stamped = [(f"k{rng.randrange(4)}", t * 2 + rng.randrange(DISORDER)) for t in range(count)]
    return stamped


class CountPerBucket(KeyedProcessFunction):
    """Counts each key's events per 10 ms bucket; an event-time timer at the bucket's end
    reports the count once the watermark has passed it."""

    def open(self, runtime_context):
        self.counts = runtime_context.get_map_state(
            MapStateDescriptor("counts", Types.LONG(), Types.LONG())
        )

    def process_element(self, value, ctx):
        assert ctx.timestamp() == value[1]
        bucket = value[1] // BUCKET * BUCKET
        self.counts.put(bucket, (self.counts.get(bucket) or 0) + 1)
        ctx.timer_service().register_event_time_timer(bucket + BUCKET - 1)
        return []

    def on_timer(self, timestamp, ctx):
        assert ctx.time_domain() == TimeDomain.EVENT_TIME
        assert ctx.timer_service().current_watermark() >= timestamp
        bucket = timestamp - BUCKET + 1
        yield (ctx.get_current_key(), bucket, self.counts.get(bucket))
        self.counts.remove(bucket)


def test_event_time_timers_fire_on_watermarks_with_the_right_counts(mode):
    data = events()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.get_config().set_auto_watermark_interval(10)
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(DISORDER)
    ).with_timestamp_assigner(lambda event, _: event[1])
    stamped = env.from_collection(data).assign_timestamps_and_watermarks(strategy)
    reports = stamped.key_by(lambda e: e[0]).process(CountPerBucket())
    results = mode.collect(reports)
    expected = Counter((k, t // BUCKET * BUCKET) for k, t in data)
    assert Counter({(k, b): n for k, b, n in results}) == expected
    assert len(results) == len(expected)  # each bucket reported exactly once


class Pinger(KeyedProcessFunction):
    def process_element(self, value, ctx):
        now = ctx.timer_service().current_processing_time()
        ctx.timer_service().register_processing_time_timer(now + 20)
        ctx.timer_service().register_processing_time_timer(now + 10_000)
        ctx.timer_service().delete_processing_time_timer(now + 10_000)
        return []

    def on_timer(self, timestamp, ctx):
        assert ctx.time_domain() == TimeDomain.PROCESSING_TIME
        FIRED.append(ctx.get_current_key())
        if len(FIRED) >= 3:
            ALL_FIRED.set()
        yield ctx.get_current_key()


FIRED: list = []
ALL_FIRED = threading.Event()


class WaitForTimers(SourceFunction):
    def run(self, ctx):
        for key in ("a", "b", "c"):
            ctx.collect(key)
        ctx.emit_watermark(0)  # flush the records downstream
        ALL_FIRED.wait(30)  # a source that stays open until the timers have fired

    def cancel(self):
        ALL_FIRED.set()


def test_processing_time_timers_fire_and_deleted_ones_do_not():
    FIRED.clear()
    ALL_FIRED.clear()
    env = StreamExecutionEnvironment.get_execution_environment()
    fired = env.add_source(WaitForTimers()).key_by(lambda k: k).process(Pinger())
    with fired.execute_and_collect() as results:
        assert sorted(results) == ["a", "b", "c"]
    assert sorted(FIRED) == ["a", "b", "c"]


def test_timers_need_a_keyed_stream():
    class Bad(KeyedProcessFunction):
        def process_element(self, value, ctx):
            ctx.timer_service().register_event_time_timer(1)

    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(Exception, match="key_by"):
        list(env.from_collection([1]).process(Bad()).execute_and_collect())


class PauseThenLate(SourceReader):
    """EVENTS in two batches, then nothing until the window [0, 100) has fired (``fired``
    exists) or 10 s have passed, then a record of that window's time, then the end."""

    def __init__(self, fired: str) -> None:
        self.fired = fired
        self.step = 0
        self.deadline: float | None = None

    def read_batch(self, max_records: int) -> list | None:
        import os
        import time

        self.step += 1
        if self.step == 1:
            return PAUSE_EVENTS[:1]
        if self.step == 2:
            return PAUSE_EVENTS[1:]
        if self.step == 3:
            if self.deadline is None:
                self.deadline = time.monotonic() + 10
            if not os.path.exists(self.fired) and time.monotonic() < self.deadline:
                self.step -= 1
                return []  # nothing now: the task's loop polls again soon
            return [LATE_EVENT]
        return None

    def snapshot_position(self) -> object:
        return None

    def restore_position(self, position: object) -> None:
        pass


PAUSE_EVENTS = [("k", t) for t in range(0, 1000, 10)]
LATE_EVENT = ("k", 5)


class PausingSource(Source):
    def __init__(self, fired: str) -> None:
        self.fired = fired

    def is_bounded(self) -> bool:
        return True

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return PauseThenLate(self.fired)


class CountAndTell:
    """Counts a window's records; firing [0, 100) creates ``fired``, if given."""

    def __init__(self, fired: str | None = None) -> None:
        self.fired = fired

    def process(self, key, context, elements):
        if context.window().start == 0 and self.fired is not None:
            open(self.fired, "w").close()
        yield context.window().start, len(list(elements))


@pytest.mark.parametrize("chained", [True, False])
def test_assign_timestamps_and_watermarks_emits_its_watermark_while_no_records_come(
    mode, chained, tmp_path
):
    """Periodic watermarks are emitted on time, as Flink's timer does, not only when the
    next records come: the record that comes after a pause is late."""
    fired = str(tmp_path / "fired")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.set_buffer_timeout(0)  # the two batches reach the assigner as two
    env.get_config().set_auto_watermark_interval(200)  # the second comes before it is due
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda e, _: e[1]
    )
    source = env.from_source(PausingSource(fired), WatermarkStrategy.no_watermarks(), "pause")
    if chained:  # in the source's task
        stamped = source.assign_timestamps_and_watermarks(strategy)
    else:  # in a task of its own
        stamped = source.forward().assign_timestamps_and_watermarks(strategy).start_new_chain()
    counts = (
        stamped.key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
        .process(CountAndTell(fired))
    )
    # [0, 100) fired before LATE_EVENT came, which is then too late for it.
    assert sorted(mode.collect(counts)) == [(start, 10) for start in range(0, 1000, 100)]


class ThenOneMore(SourceReader):
    """PAUSE_EVENTS, then LATE_EVENT in a batch of its own, then the end."""

    def __init__(self) -> None:
        self.batches = [list(PAUSE_EVENTS), [LATE_EVENT]]

    def read_batch(self, max_records: int) -> list | None:
        return self.batches.pop(0) if self.batches else None

    def snapshot_position(self) -> object:
        return None

    def restore_position(self, position: object) -> None:
        pass


class ThenOneMoreSource(Source):
    def is_bounded(self) -> bool:
        return True

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return ThenOneMore()


def test_an_auto_watermark_interval_of_0_sends_no_watermark_before_the_end(mode):
    """As in Flink, 0 turns periodic watermarks off: no record is late, every window fires
    at the end of input."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.get_config().set_auto_watermark_interval(0)
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda e, _: e[1]
    )
    counts = (
        env.from_source(ThenOneMoreSource(), WatermarkStrategy.no_watermarks(), "two batches")
        .assign_timestamps_and_watermarks(strategy)
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
        .process(CountAndTell())
    )
    expected = [(0, 11)] + [(start, 10) for start in range(100, 1000, 100)]
    assert sorted(mode.collect(counts)) == expected
