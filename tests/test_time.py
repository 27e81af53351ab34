"""Event time: timestamps, watermarks and timers, embedded and on the 2-TaskManager cluster."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from strom.common import Duration, Types, WatermarkStrategy
from strom.datastream import (
    KeyedProcessFunction,
    MapStateDescriptor,
    SourceFunction,
    StreamExecutionEnvironment,
    TimeDomain,
)

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
