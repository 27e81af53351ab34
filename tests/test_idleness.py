"""Idle inputs: ``WatermarkStrategy.with_idleness`` and ``mark_as_temporarily_idle`` keep event
time going when one source subtask has nothing to say (embedded and on the cluster)."""

from __future__ import annotations

import pytest

from strom.common import Duration, Time, WatermarkStrategy
from strom.datastream import ParallelSourceFunction, StreamExecutionEnvironment
from strom.datastream.connectors.base import Source, SourceReader
from strom.datastream.window import TumblingEventTimeWindows

EVENTS = [(f"k{i % 3}", i * 10) for i in range(100)]  # timestamps 0 .. 990
WINDOW_MS = 100
#: windows of EVENTS that close before the last watermark (990 - 1): [0, 100) .. [800, 900)
CLOSED = {(k, start) for k, t in EVENTS for start in [t - t % WINDOW_MS] if start + 99 < 989}


class SilentAfter(SourceReader):
    """Subtask 0 reads EVENTS, then nothing more; subtask 1 never reads anything. Neither
    ends (an unbounded source), so only idleness lets event time advance."""

    def __init__(self, events: list) -> None:
        self.events = events

    def read_batch(self, max_records: int) -> list | None:
        batch, self.events = self.events[:max_records], self.events[max_records:]
        return batch

    def snapshot_position(self) -> object:
        return len(self.events)

    def restore_position(self, position: object) -> None:
        pass


class SilentSource(Source):
    def is_bounded(self) -> bool:
        return False

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return SilentAfter(EVENTS if subtask_index == 0 else [])


def window_counts(stream):
    return (
        stream.key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .process(CountWindow())
    )


class CountWindow:
    def process(self, key, context, elements):
        yield key, context.window().start, len(list(elements))


def expected_counts():
    counts: dict = {}
    for key, t in EVENTS:
        start = t - t % WINDOW_MS
        if (key, start) in CLOSED:
            counts[(key, start)] = counts.get((key, start), 0) + 1
    return counts


def env_with(parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.get_config().set_auto_watermark_interval(10)
    return env


def collect_closed_windows(mode, stream) -> dict:
    """The first len(CLOSED) window results; the job is cancelled after them."""
    with mode.active():
        results = stream.execute_and_collect(limit=len(CLOSED))
    return {(key, start): n for key, start, n in results}


def test_with_idleness_lets_windows_fire_while_a_source_subtask_is_silent(mode):
    env = env_with(2)
    strategy = (
        WatermarkStrategy.for_monotonous_timestamps()
        .with_timestamp_assigner(lambda e, _: e[1])
        .with_idleness(Duration.of_millis(200))
    )
    stream = env.from_source(SilentSource(), strategy, "silent")
    assert collect_closed_windows(mode, window_counts(stream)) == expected_counts()


class Quiet(ParallelSourceFunction):
    """Subtask 0 emits EVENTS with watermarks; subtask 1 declares itself idle and waits."""

    def run(self, ctx):
        import threading

        self.stopped = threading.Event()
        if self.index == 0:
            for event in EVENTS:
                ctx.collect_with_timestamp(event, event[1])
            ctx.emit_watermark(EVENTS[-1][1] - 1)
        else:
            ctx.mark_as_temporarily_idle()
        self.stopped.wait()

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()

    def cancel(self):
        self.stopped.set()


def test_mark_as_temporarily_idle_leaves_a_subtask_out_of_event_time(mode):
    env = env_with(2)
    stream = env.add_source(Quiet())
    assert collect_closed_windows(mode, window_counts(stream)) == expected_counts()


@pytest.mark.parametrize("idle_first", [True, False])
def test_watermark_status_crosses_the_network(idle_first):
    from taskmanager.network.elements import WATERMARK_STATUS, decode, encode

    element = (WATERMARK_STATUS, idle_first)
    assert decode(encode(element)) == element


@pytest.mark.parametrize("chained", [True, False])
def test_with_idleness_in_assign_timestamps_and_watermarks(mode, chained):
    env = env_with(2)
    strategy = (
        WatermarkStrategy.for_monotonous_timestamps()
        .with_timestamp_assigner(lambda e, _: e[1])
        .with_idleness(Duration.of_millis(200))
    )
    source = env.from_source(SilentSource(), WatermarkStrategy.no_watermarks(), "silent")
    if chained:  # in the source's task
        stamped = source.assign_timestamps_and_watermarks(strategy)
    else:  # in a task of its own
        stamped = source.forward().assign_timestamps_and_watermarks(strategy).start_new_chain()
    assert collect_closed_windows(mode, window_counts(stamped)) == expected_counts()
