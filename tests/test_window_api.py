"""Windows, window assigners and triggers (``strom.datastream.window``) as pure logic: the
assigners against windows computed independently here, the triggers against a fake
``TriggerContext`` that records timers and keeps window-scoped reducing state."""

from __future__ import annotations

import datetime
import doctest
import pickle
import random

import cloudpickle
import pytest

import strom.datastream.window as window_module
from strom.common import Duration, Time
from strom.common.watermark_strategy import MAX_TIMESTAMP, MIN_TIMESTAMP
from strom.datastream.state import ReducingState, ValueState
from strom.datastream.window import (
    ContinuousEventTimeTrigger,
    ContinuousProcessingTimeTrigger,
    CountSlidingWindowAssigner,
    CountTrigger,
    CountTumblingWindowAssigner,
    CountWindow,
    DynamicEventTimeSessionWindows,
    DynamicProcessingTimeSessionWindows,
    EventTimeSessionWindows,
    EventTimeTrigger,
    GlobalWindow,
    GlobalWindows,
    MergingWindowAssigner,
    NeverTrigger,
    OnMergeContext,
    ProcessingTimeSessionWindows,
    ProcessingTimeTrigger,
    PurgingTrigger,
    SessionWindowTimeGapExtractor,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TimeWindow,
    Trigger,
    TriggerContext,
    TriggerResult,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WindowAssigner,
    WindowAssignerContext,
)

# ---------------------------------------------------------------------- fakes


class FakeReducingState(ReducingState):
    """A reducing state over one slot of a dict, as a state backend scopes it."""

    def __init__(self, store: dict, slot: tuple, reduce_function) -> None:
        self.store, self.slot, self.reduce_function = store, slot, reduce_function

    def get(self):
        return self.store.get(self.slot)

    def add(self, value) -> None:
        current = self.store.get(self.slot)
        self.store[self.slot] = (
            value if current is None else self.reduce_function.reduce(current, value)
        )

    def clear(self) -> None:
        self.store.pop(self.slot, None)


class FakeTriggerContext(OnMergeContext):
    """The context of the current ``window``: times the test sets, timers it records, and
    state per (window, state name). ``merged_windows`` are the sources of a merge."""

    def __init__(self, window=None, watermark: int = MIN_TIMESTAMP, now: int = 0) -> None:
        self.window = window
        self.watermark = watermark
        self.now = now
        self.event_timers: set[tuple] = set()
        self.processing_timers: set[tuple] = set()
        self.state: dict[tuple, object] = {}
        self.merged_windows: list = []

    def get_current_processing_time(self) -> int:
        return self.now

    def get_current_watermark(self) -> int:
        return self.watermark

    def register_processing_time_timer(self, time: int) -> None:
        self.processing_timers.add((self.window, time))

    def register_event_time_timer(self, time: int) -> None:
        self.event_timers.add((self.window, time))

    def delete_processing_time_timer(self, time: int) -> None:
        self.processing_timers.discard((self.window, time))

    def delete_event_time_timer(self, time: int) -> None:
        self.event_timers.discard((self.window, time))

    def get_partitioned_state(self, state_descriptor):
        return FakeReducingState(
            self.state,
            (self.window, state_descriptor.get_name()),
            state_descriptor.get_reduce_function(),
        )

    def merge_partitioned_state(self, state_descriptor) -> None:
        target = self.get_partitioned_state(state_descriptor)
        for source in self.merged_windows:
            value = self.state.pop((source, state_descriptor.get_name()), None)
            if value is not None:
                target.add(value)

    def timers_of(self, window) -> tuple[list[int], list[int]]:
        return (
            sorted(t for w, t in self.event_timers if w == window),
            sorted(t for w, t in self.processing_timers if w == window),
        )


class FakeValueState(ValueState):
    def __init__(self, store: dict, slot: tuple) -> None:
        self.store, self.slot = store, slot

    def value(self):
        return self.store.get(self.slot)

    def update(self, value) -> None:
        self.store[self.slot] = value

    def clear(self) -> None:
        self.store.pop(self.slot, None)


class FakeKeyedRuntimeContext:
    """Only what the count assigners use: ``get_state`` scoped to ``current_key``."""

    def __init__(self) -> None:
        self.current_key = None
        self.store: dict[tuple, object] = {}

    def get_state(self, state_descriptor) -> FakeValueState:
        return FakeValueState(self.store, (self.current_key, state_descriptor.get_name()))


class FakeAssignerContext(WindowAssignerContext):
    def __init__(self, now: int = 0) -> None:
        self.now = now
        self.runtime_context = FakeKeyedRuntimeContext()

    def get_current_processing_time(self) -> int:
        return self.now

    def get_runtime_context(self) -> FakeKeyedRuntimeContext:
        return self.runtime_context


class RecordingMergeCallback(MergingWindowAssigner.MergeCallback):
    def __init__(self) -> None:
        self.merges: list[tuple[list[TimeWindow], TimeWindow]] = []

    def merge(self, to_be_merged, merge_result) -> None:
        self.merges.append((sorted(to_be_merged), merge_result))


class GapFromElement(SessionWindowTimeGapExtractor):
    def extract(self, element) -> int:
        return element[1]


def roundtrip(value):
    return pickle.loads(pickle.dumps(value))


# ---------------------------------------------------------------------- windows


def test_time_window_bounds_intersection_and_cover():
    w = TimeWindow(0, 10)
    assert (w.start, w.end, w.max_timestamp()) == (0, 10, 9)
    assert w.intersects(TimeWindow(5, 15))
    assert w.intersects(TimeWindow(10, 20)), "touching windows intersect, so sessions merge"
    assert TimeWindow(10, 20).intersects(w)
    assert not w.intersects(TimeWindow(11, 20))
    assert w.cover(TimeWindow(20, 30)) == TimeWindow(0, 30)
    assert TimeWindow(-5, 3).cover(w) == TimeWindow(-5, 10)


def test_windows_are_values_hashable_sortable_and_printed_like_pyflink():
    assert TimeWindow(0, 10) == TimeWindow(0, 10)
    assert TimeWindow(0, 10) != TimeWindow(0, 11)
    assert TimeWindow(0, 10) == (0, 10)  # a (start, end) tuple underneath, for speed
    assert {TimeWindow(0, 10): "a"}[TimeWindow(0, 10)] == "a"
    assert len({TimeWindow(0, 10), TimeWindow(0, 10), TimeWindow(5, 15)}) == 2
    unsorted = [TimeWindow(5, 15), TimeWindow(0, 20), TimeWindow(-10, 0), TimeWindow(0, 10)]
    assert sorted(unsorted) == [
        TimeWindow(-10, 0),
        TimeWindow(0, 10),
        TimeWindow(0, 20),
        TimeWindow(5, 15),
    ]
    assert TimeWindow(0, 10) <= TimeWindow(0, 10) < TimeWindow(0, 11)
    assert TimeWindow(1, 2) > TimeWindow(0, 100) >= TimeWindow(0, 100)
    assert repr(TimeWindow(0, 10)) == "TimeWindow(start=0, end=10)"

    assert CountWindow(3) == CountWindow(3) != CountWindow(4)
    assert sorted([CountWindow(2), CountWindow(0), CountWindow(1)]) == [
        CountWindow(0),
        CountWindow(1),
        CountWindow(2),
    ]
    assert CountWindow(3).max_timestamp() == MAX_TIMESTAMP
    assert repr(CountWindow(3)) == "CountWindow(id=3)"
    assert len({CountWindow(1), CountWindow(1)}) == 1

    assert GlobalWindow() == GlobalWindow.get()
    assert GlobalWindow.get().max_timestamp() == MAX_TIMESTAMP
    assert repr(GlobalWindow.get()) == "GlobalWindow"
    assert len({GlobalWindow(), GlobalWindow.get()}) == 1

    assert TimeWindow(0, 10) != CountWindow(0)
    with pytest.raises(TypeError):
        _ = TimeWindow(0, 10) < CountWindow(0)


def test_windows_pickle_to_equal_values():
    for window in (TimeWindow(-5, 10), CountWindow(7), GlobalWindow.get()):
        copy = roundtrip(window)
        assert copy == window and hash(copy) == hash(window) and repr(copy) == repr(window)
    assert roundtrip(GlobalWindow.get()) is GlobalWindow.get()


@pytest.mark.parametrize(
    ("timestamp", "offset", "size", "start"),
    [
        (0, 0, 10, 0),
        (9, 0, 10, 0),
        (10, 0, 10, 10),
        (12_345, 0, 5_000, 10_000),
        (-1, 0, 10, -10),
        (-10, 0, 10, -10),
        (-11, 0, 10, -20),
        (7, 3, 10, 3),
        (2, 3, 10, -7),
        (2, -3, 10, -3),
        (-4, -3, 10, -13),
    ],
)
def test_window_start_with_offset(timestamp, offset, size, start):
    assert TimeWindow.get_window_start_with_offset(timestamp, offset, size) == start


# ---------------------------------------------------------------------- tumbling


def test_tumbling_event_time_windows_with_offsets_and_negative_timestamps():
    rng = random.Random(6)
    for size, offset in [(10_000, 0), (10_000, 2_500), (10_000, -2_500), (7, 3), (1, 0)]:
        assigner = TumblingEventTimeWindows.of(Time.milliseconds(size), Time.milliseconds(offset))
        for timestamp in [rng.randint(-100_000, 100_000) for _ in range(300)] + [0, -1, size]:
            (window,) = assigner.assign_windows("x", timestamp, None)
            # the one window [start, start + size) holding the timestamp, start ≡ offset
            assert window.start <= timestamp < window.end
            assert window.end - window.start == size
            assert (window.start - offset) % size == 0


def test_tumbling_windows_of_hours_shifted_to_a_time_zone():
    daily_utc8 = TumblingEventTimeWindows.of(Time.days(1), Time.hours(-8))
    day, hour = 86_400_000, 3_600_000
    assert daily_utc8.assign_windows(None, 20 * hour, None) == [
        TimeWindow(16 * hour, day + 16 * hour)
    ]
    assert daily_utc8.assign_windows(None, 3 * hour, None) == [TimeWindow(-8 * hour, 16 * hour)]


def test_sizes_accept_time_duration_timedelta_and_int_millis():
    expected = TumblingEventTimeWindows.of(Time.seconds(10), Time.seconds(1))
    assert expected.get_size() == 10_000 and expected.get_offset() == 1_000
    assert TumblingEventTimeWindows.of(Duration.of_seconds(10), Duration.of_seconds(1)) == expected
    assert TumblingEventTimeWindows.of(10_000, 1_000) == expected
    assert (
        TumblingEventTimeWindows.of(datetime.timedelta(seconds=10), datetime.timedelta(seconds=1))
        == expected
    )
    assert TumblingEventTimeWindows.of(10_000) == TumblingEventTimeWindows.of(10_000, 0)
    assert SlidingEventTimeWindows.of(Duration.of_seconds(10), 5_000) == (
        SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5))
    )
    assert EventTimeSessionWindows.with_gap(Duration.of_minutes(1)) == (
        EventTimeSessionWindows.with_gap(60_000)
    )
    assert repr(expected) == "TumblingEventTimeWindows(10000, 1000)"
    assert expected != TumblingProcessingTimeWindows.of(Time.seconds(10), Time.seconds(1))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TumblingEventTimeWindows.of(Time.seconds(0)), "must be positive"),
        (lambda: TumblingEventTimeWindows.of(10, 10), "abs(offset) < size"),
        (lambda: TumblingProcessingTimeWindows.of(10, -10), "abs(offset) < size"),
        (lambda: TumblingEventTimeWindows.of("10s"), "Time such as Time.seconds"),
        (lambda: SlidingEventTimeWindows.of(10, 0), "must be positive"),
        (lambda: SlidingEventTimeWindows.of(0, 5), "must be positive"),
        (lambda: SlidingEventTimeWindows.of(10, 5, 5), "abs(offset) < slide"),
        (lambda: EventTimeSessionWindows.with_gap(Time.seconds(-1)), "must be positive"),
        (lambda: ProcessingTimeSessionWindows.with_gap(0), "must be positive"),
        (lambda: EventTimeSessionWindows.with_dynamic_gap(5), "function element -> gap"),
        (lambda: CountTumblingWindowAssigner.of(0), "positive int"),
        (lambda: CountSlidingWindowAssigner.of(3, 0), "positive int"),
        (lambda: CountTrigger.of(1.5), "positive int"),
        (lambda: PurgingTrigger.of(lambda: None), "takes a Trigger"),
        (lambda: ContinuousEventTimeTrigger.of(0), "must be positive"),
    ],
)
def test_bad_arguments_raise_at_the_call_with_the_rule(build, message):
    with pytest.raises((ValueError, TypeError)) as error:
        build()
    assert message in str(error.value)


@pytest.mark.parametrize(
    "assigner",
    [
        TumblingEventTimeWindows.of(Time.seconds(1)),
        SlidingEventTimeWindows.of(Time.seconds(2), Time.seconds(1)),
        EventTimeSessionWindows.with_gap(Time.seconds(1)),
        DynamicEventTimeSessionWindows.with_dynamic_gap(GapFromElement()),
    ],
)
def test_event_time_assigners_reject_records_without_timestamp(assigner):
    for missing in (None, MIN_TIMESTAMP):
        with pytest.raises(ValueError, match="assign_timestamps_and_watermarks"):
            assigner.assign_windows(("a", 5), missing, None)


def test_tumbling_processing_time_windows_follow_the_clock_not_the_timestamp():
    assigner = TumblingProcessingTimeWindows.of(Time.seconds(10), Time.seconds(2))
    context = FakeAssignerContext(now=25_000)
    assert assigner.assign_windows("x", 999_999, context) == [TimeWindow(22_000, 32_000)]
    assert assigner.assign_windows("x", None, context) == [TimeWindow(22_000, 32_000)]
    context.now = 32_000
    assert assigner.assign_windows("x", None, context) == [TimeWindow(32_000, 42_000)]
    assert not assigner.is_event_time()
    assert assigner.get_default_trigger() == ProcessingTimeTrigger.create()


# ---------------------------------------------------------------------- sliding


def expected_sliding_windows(timestamp: int, size: int, slide: int, offset: int) -> set:
    """Every window [s, s + size) with s ≡ offset (mod slide) that holds the timestamp."""
    first = timestamp - size - slide
    first -= (first - offset) % slide
    return {
        TimeWindow(start, start + size)
        for start in range(first, timestamp + 1, slide)
        if start <= timestamp < start + size
    }


def test_sliding_size_10s_slide_5s_puts_each_element_in_two_windows():
    assigner = SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5))
    assert assigner.assign_windows("x", 12_000, None) == [
        TimeWindow(10_000, 20_000),
        TimeWindow(5_000, 15_000),
    ]
    assert assigner.assign_windows("x", 10_000, None) == [
        TimeWindow(10_000, 20_000),
        TimeWindow(5_000, 15_000),
    ]
    assert assigner.assign_windows("x", 9_999, None) == [
        TimeWindow(5_000, 15_000),
        TimeWindow(0, 10_000),
    ]
    assert assigner.assign_windows("x", -1, None) == [
        TimeWindow(-5_000, 5_000),
        TimeWindow(-10_000, 0),
    ]
    for timestamp in range(-20_000, 20_000, 333):
        assert len(assigner.assign_windows("x", timestamp, None)) == 2


@pytest.mark.parametrize(
    ("size", "slide", "offset"),
    [
        (10, 5, 0),
        (10, 3, 0),
        (10, 3, 2),
        (10, 3, -2),
        (9, 3, 1),
        (3, 10, 0),
        (10, 10, 4),
        (1, 1, 0),
    ],
)
def test_sliding_windows_match_an_independent_computation(size, slide, offset):
    assigner = SlidingEventTimeWindows.of(size, slide, offset)
    for timestamp in range(-50, 50):
        windows = assigner.assign_windows(None, timestamp, None)
        assert len(windows) == len(set(windows))
        assert set(windows) == expected_sliding_windows(timestamp, size, slide, offset)
        assert windows == sorted(windows, reverse=True), "latest window first, as Flink"


def test_sliding_with_a_slide_larger_than_the_size_leaves_gaps():
    assigner = SlidingEventTimeWindows.of(3, 10)
    assert assigner.assign_windows(None, 12, None) == [TimeWindow(10, 13)]
    assert assigner.assign_windows(None, 15, None) == []


def test_sliding_processing_time_windows_follow_the_clock():
    assigner = SlidingProcessingTimeWindows.of(Time.seconds(10), Time.seconds(5))
    context = FakeAssignerContext(now=12_000)
    assert assigner.assign_windows("x", 0, context) == [
        TimeWindow(10_000, 20_000),
        TimeWindow(5_000, 15_000),
    ]
    assert not assigner.is_event_time()
    assert isinstance(assigner.get_default_trigger(), ProcessingTimeTrigger)
    assert repr(assigner) == "SlidingProcessingTimeWindows(10000, 5000, 0)"


# ---------------------------------------------------------------------- sessions


def test_merge_windows_reports_each_group_of_overlapping_windows():
    callback = RecordingMergeCallback()
    TimeWindow.merge_windows(
        [
            TimeWindow(40, 50),  # alone: not reported
            TimeWindow(5, 15),
            TimeWindow(0, 10),
            TimeWindow(14, 20),  # overlaps [5, 15) only: chains into the first group
            TimeWindow(20, 25),  # touches [14, 20): merges too
            TimeWindow(100, 110),
            TimeWindow(105, 106),  # inside [100, 110)
        ],
        callback,
    )
    assert callback.merges == [
        (
            [TimeWindow(0, 10), TimeWindow(5, 15), TimeWindow(14, 20), TimeWindow(20, 25)],
            TimeWindow(0, 25),
        ),
        ([TimeWindow(100, 110), TimeWindow(105, 106)], TimeWindow(100, 110)),
    ]


def test_merge_windows_accepts_a_plain_callable_and_reports_nothing_for_disjoint_windows():
    calls = []
    TimeWindow.merge_windows(
        [TimeWindow(0, 10), TimeWindow(11, 20)], lambda group, result: calls.append(result)
    )
    assert calls == []
    TimeWindow.merge_windows([], lambda group, result: calls.append(result))
    assert calls == []


def run_sessions(assigner, events, context=None) -> set:
    """Assign and merge as a merging window operator does: after each element, merge the
    open windows of its key."""
    open_windows: dict[str, set] = {}
    for key, gap, timestamp in events:
        windows = open_windows.setdefault(key, set())
        windows.update(assigner.assign_windows((key, gap), timestamp, context))
        callback = RecordingMergeCallback()
        assigner.merge_windows(list(windows), callback)
        for merged, result in callback.merges:
            windows.difference_update(merged)
            windows.add(result)
    return {(key, w) for key, windows in open_windows.items() for w in windows}


def expected_sessions(events) -> set:
    """Sessions computed directly: sort by time; an element within the running end joins."""
    sessions = set()
    for key in {key for key, _, _ in events}:
        current = None
        for _, gap, timestamp in sorted((e for e in events if e[0] == key), key=lambda e: e[2]):
            if current is not None and timestamp <= current[1]:
                current = (current[0], max(current[1], timestamp + gap))
            else:
                if current is not None:
                    sessions.add((key, TimeWindow(*current)))
                current = (timestamp, timestamp + gap)
        sessions.add((key, TimeWindow(*current)))
    return sessions


def test_event_time_sessions_merge_out_of_order_elements_into_sessions():
    gap = 1_000
    events = [("a", gap, t) for t in (0, 2_500, 500, 4_000, 3_200, 900, 10_000)]
    events += [("b", gap, t) for t in (100, 1_100, 5_000)]
    sessions = run_sessions(EventTimeSessionWindows.with_gap(Time.seconds(1)), events)
    assert sessions == {
        ("a", TimeWindow(0, 1_900)),
        ("a", TimeWindow(2_500, 5_000)),
        ("a", TimeWindow(10_000, 11_000)),
        ("b", TimeWindow(100, 2_100)),
        ("b", TimeWindow(5_000, 6_000)),
    }
    assert sessions == expected_sessions(events)


def test_sessions_match_an_independent_computation_on_random_input():
    rng = random.Random(42)
    for _ in range(50):
        gap = rng.choice([1, 5, 20])
        events = [(rng.choice("ab"), gap, rng.randint(-200, 200)) for _ in range(40)]
        assert run_sessions(EventTimeSessionWindows.with_gap(gap), events) == (
            expected_sessions(events)
        )


def test_dynamic_gap_sessions_take_the_gap_from_each_element():
    rng = random.Random(7)
    for extractor in (GapFromElement(), lambda element: element[1]):
        assigner = EventTimeSessionWindows.with_dynamic_gap(extractor)
        assert isinstance(assigner, DynamicEventTimeSessionWindows)
        assert assigner.get_extractor() is extractor
        assert assigner.assign_windows(("a", 30), 100, None) == [TimeWindow(100, 130)]
        for _ in range(30):
            events = [("k", rng.choice([1, 10, 50]), rng.randint(0, 300)) for _ in range(25)]
            assert run_sessions(assigner, events) == expected_sessions(events)


def test_dynamic_gap_accepts_time_and_rejects_a_non_positive_gap():
    assigner = DynamicEventTimeSessionWindows.with_dynamic_gap(lambda element: element)
    assert assigner.assign_windows(Time.seconds(2), 0, None) == [TimeWindow(0, 2_000)]
    with pytest.raises(ValueError, match="positive"):
        assigner.assign_windows(0, 0, None)
    with pytest.raises(ValueError, match="positive"):
        assigner.assign_windows(-5, 0, None)


def test_processing_time_sessions_follow_the_clock():
    context = FakeAssignerContext(now=1_000)
    fixed = ProcessingTimeSessionWindows.with_gap(Time.seconds(5))
    assert fixed.assign_windows("x", 0, context) == [TimeWindow(1_000, 6_000)]
    dynamic = ProcessingTimeSessionWindows.with_dynamic_gap(GapFromElement())
    assert isinstance(dynamic, DynamicProcessingTimeSessionWindows)
    assert dynamic.assign_windows(("k", 300), None, context) == [TimeWindow(1_000, 1_300)]
    for assigner in (fixed, dynamic):
        assert isinstance(assigner, MergingWindowAssigner)
        assert not assigner.is_event_time()
        assert isinstance(assigner.get_default_trigger(), ProcessingTimeTrigger)
    assert DynamicProcessingTimeSessionWindows.with_dynamic_gap(GapFromElement()).assign_windows(
        ("k", 1), None, context
    ) == [TimeWindow(1_000, 1_001)]


# ---------------------------------------------------------------------- count and global


def test_count_tumbling_windows_number_the_elements_of_each_key():
    assigner = CountTumblingWindowAssigner.of(3)
    context = FakeAssignerContext()
    assigned = []
    for key in "aaaabaaab":
        context.runtime_context.current_key = key
        (window,) = assigner.assign_windows(key, None, context)
        assigned.append((key, window.id))
    assert assigned == [
        ("a", 0),
        ("a", 0),
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("a", 1),
        ("a", 1),
        ("a", 2),
        ("b", 0),
    ]
    assert not assigner.is_event_time()
    assert assigner.get_default_trigger() == PurgingTrigger.of(CountTrigger.of(3))


@pytest.mark.parametrize(("size", "slide"), [(3, 2), (4, 1), (2, 2), (2, 5), (5, 3)])
def test_count_sliding_windows_match_an_independent_computation(size, slide):
    assigner = CountSlidingWindowAssigner.of(size, slide)
    context = FakeAssignerContext()
    for index in range(40):
        windows = assigner.assign_windows(index, None, context)
        expected = [
            CountWindow(i)
            for i in range(index // slide, -1, -1)
            if i * slide <= index < i * slide + size
        ]
        assert windows == expected


def test_count_windows_fire_with_their_default_trigger_once_full():
    """The assigner and its default trigger together, as the window operator runs them."""
    assigner = CountSlidingWindowAssigner.of(3, 2)
    trigger = assigner.get_default_trigger()
    assigner_context = FakeAssignerContext()
    trigger_context = FakeTriggerContext()
    contents: dict = {}
    fired = []
    for element in range(10):
        for window in assigner.assign_windows(element, None, assigner_context):
            contents.setdefault(window, []).append(element)
            trigger_context.window = window
            result = trigger.on_element(element, None, window, trigger_context)
            if result.is_fire():
                fired.append(list(contents[window]))
            if result.is_purge():
                del contents[window]
    assert fired == [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8]]
    assert contents == {CountWindow(4): [8, 9]}, "only the open window keeps elements"


def test_global_windows_put_everything_into_one_window_that_never_fires_by_default():
    assigner = GlobalWindows.create()
    assert assigner.assign_windows("a", None, None) == [GlobalWindow.get()]
    assert assigner.assign_windows("b", 5, None) == [GlobalWindow.get()]
    trigger = assigner.get_default_trigger()
    assert isinstance(trigger, NeverTrigger)
    ctx = FakeTriggerContext(GlobalWindow.get())
    window = GlobalWindow.get()
    assert trigger.on_element("a", 0, window, ctx) is TriggerResult.CONTINUE
    assert trigger.on_event_time(MAX_TIMESTAMP, window, ctx) is TriggerResult.CONTINUE
    assert trigger.on_processing_time(MAX_TIMESTAMP, window, ctx) is TriggerResult.CONTINUE
    assert not assigner.is_event_time()
    assert assigner.get_window_serializer() is None


# ---------------------------------------------------------------------- triggers


@pytest.mark.parametrize(
    ("result", "fire", "purge"),
    [
        (TriggerResult.CONTINUE, False, False),
        (TriggerResult.FIRE, True, False),
        (TriggerResult.PURGE, False, True),
        (TriggerResult.FIRE_AND_PURGE, True, True),
    ],
)
def test_trigger_result_flags(result, fire, purge):
    assert result.is_fire() is fire
    assert result.is_purge() is purge
    assert roundtrip(result) is result


def test_event_time_trigger_registers_the_window_end_and_fires_when_the_watermark_passes():
    trigger = EventTimeTrigger.create()
    window = TimeWindow(0, 10_000)
    ctx = FakeTriggerContext(window, watermark=5_000)
    assert trigger.on_element("x", 4_000, window, ctx) is TriggerResult.CONTINUE
    assert ctx.timers_of(window) == ([9_999], [])
    assert trigger.on_event_time(5_000, window, ctx) is TriggerResult.CONTINUE
    assert trigger.on_event_time(9_999, window, ctx) is TriggerResult.FIRE
    assert trigger.on_processing_time(9_999, window, ctx) is TriggerResult.CONTINUE
    trigger.clear(window, ctx)
    assert ctx.timers_of(window) == ([], [])


def test_event_time_trigger_fires_at_once_for_a_late_element():
    trigger = EventTimeTrigger.create()
    window = TimeWindow(0, 10_000)
    for watermark in (9_999, 12_000):
        ctx = FakeTriggerContext(window, watermark=watermark)
        assert trigger.on_element("late", 3_000, window, ctx) is TriggerResult.FIRE
        assert ctx.timers_of(window) == ([], [])


def test_event_time_trigger_on_merge_registers_only_a_future_end():
    trigger = EventTimeTrigger.create()
    assert trigger.can_merge()
    merged = TimeWindow(0, 10_000)
    ctx = FakeTriggerContext(merged, watermark=5_000)
    trigger.on_merge(merged, ctx)
    assert ctx.timers_of(merged) == ([9_999], [])
    ctx = FakeTriggerContext(merged, watermark=9_999)
    trigger.on_merge(merged, ctx)
    assert ctx.timers_of(merged) == ([], [])


def test_processing_time_trigger():
    trigger = ProcessingTimeTrigger.create()
    window = TimeWindow(0, 10_000)
    ctx = FakeTriggerContext(window, now=3_000, watermark=50_000)
    assert trigger.on_element("x", None, window, ctx) is TriggerResult.CONTINUE
    assert ctx.timers_of(window) == ([], [9_999])
    assert trigger.on_event_time(9_999, window, ctx) is TriggerResult.CONTINUE
    assert trigger.on_processing_time(9_999, window, ctx) is TriggerResult.FIRE
    trigger.clear(window, ctx)
    assert ctx.timers_of(window) == ([], [])
    assert trigger.can_merge()
    trigger.on_merge(window, ctx)
    assert ctx.timers_of(window) == ([], [9_999])
    late = FakeTriggerContext(window, now=10_000)
    trigger.on_merge(window, late)
    assert late.timers_of(window) == ([], [])


def test_count_trigger_fires_every_n_elements_per_window():
    trigger = CountTrigger.of(3)
    a, b = CountWindow(0), CountWindow(1)
    ctx = FakeTriggerContext()
    results = []
    for window in [a, a, b, a, a, b, b, a, a]:
        ctx.window = window
        results.append((window.id, trigger.on_element("x", None, window, ctx)))
    assert [(w, r.name) for w, r in results] == [
        (0, "CONTINUE"),
        (0, "CONTINUE"),
        (1, "CONTINUE"),
        (0, "FIRE"),
        (0, "CONTINUE"),
        (1, "CONTINUE"),
        (1, "FIRE"),
        (0, "CONTINUE"),
        (0, "FIRE"),
    ]
    assert ctx.state == {}, "the counter is cleared when the trigger fires"
    ctx.window = a
    trigger.on_element("x", None, a, ctx)
    assert ctx.state == {(a, "count"): 1}
    trigger.clear(a, ctx)
    assert ctx.state == {}
    assert trigger.on_event_time(0, a, ctx) is TriggerResult.CONTINUE
    assert trigger.on_processing_time(0, a, ctx) is TriggerResult.CONTINUE


def test_count_trigger_merges_the_counts_of_merged_windows():
    trigger = CountTrigger.of(3)
    assert trigger.can_merge()
    first, second, merged = TimeWindow(0, 10), TimeWindow(8, 20), TimeWindow(0, 20)
    ctx = FakeTriggerContext()
    for window in (first, second):
        ctx.window = window
        assert trigger.on_element("x", 1, window, ctx) is TriggerResult.CONTINUE
    ctx.window, ctx.merged_windows = merged, [first, second]
    trigger.on_merge(merged, ctx)
    assert ctx.state == {(merged, "count"): 2}
    assert trigger.on_element("x", 15, merged, ctx) is TriggerResult.FIRE


def test_purging_trigger_turns_fire_into_fire_and_purge():
    trigger = PurgingTrigger.of(CountTrigger.of(2))
    window = CountWindow(0)
    ctx = FakeTriggerContext(window)
    assert trigger.on_element("x", None, window, ctx) is TriggerResult.CONTINUE
    assert trigger.on_element("x", None, window, ctx) is TriggerResult.FIRE_AND_PURGE
    assert trigger.can_merge()

    event_time = PurgingTrigger.of(EventTimeTrigger.create())
    time_window = TimeWindow(0, 10)
    ctx = FakeTriggerContext(time_window, watermark=0)
    assert event_time.on_element("x", 1, time_window, ctx) is TriggerResult.CONTINUE
    assert event_time.on_event_time(9, time_window, ctx) is TriggerResult.FIRE_AND_PURGE
    assert event_time.on_event_time(5, time_window, ctx) is TriggerResult.CONTINUE
    event_time.clear(time_window, ctx)
    assert ctx.timers_of(time_window) == ([], [])
    event_time.on_merge(time_window, ctx)
    assert ctx.timers_of(time_window) == ([9], [])

    processing = PurgingTrigger.of(ProcessingTimeTrigger.create())
    assert processing.on_processing_time(9, time_window, ctx) is TriggerResult.FIRE_AND_PURGE
    assert repr(trigger) == "PurgingTrigger(CountTrigger(2))"


def test_continuous_event_time_trigger_fires_every_interval_and_at_the_end():
    trigger = ContinuousEventTimeTrigger.of(Time.seconds(3))
    window = TimeWindow(0, 10_000)
    ctx = FakeTriggerContext(window, watermark=0)
    assert trigger.on_element("x", 1_000, window, ctx) is TriggerResult.CONTINUE
    assert trigger.on_element("y", 2_000, window, ctx) is TriggerResult.CONTINUE
    assert ctx.timers_of(window) == ([3_000, 9_999], [])
    fired = []
    # Fire timers in order, as the watermark advances past each.
    while ctx.event_timers:
        time = min(t for _, t in ctx.event_timers)
        ctx.event_timers.discard((window, time))
        ctx.watermark = time
        if trigger.on_event_time(time, window, ctx).is_fire():
            fired.append(time)
    assert fired == [3_000, 6_000, 9_000, 9_999]
    trigger.clear(window, ctx)
    assert ctx.state == {} and ctx.timers_of(window) == ([], [])
    late = FakeTriggerContext(window, watermark=10_000)
    assert trigger.on_element("late", 500, window, late) is TriggerResult.FIRE


def test_continuous_event_time_trigger_merges_to_the_earliest_next_firing():
    trigger = ContinuousEventTimeTrigger.of(1_000)
    first, second, merged = TimeWindow(0, 5_000), TimeWindow(4_000, 9_000), TimeWindow(0, 9_000)
    ctx = FakeTriggerContext(watermark=0)
    ctx.window = first
    trigger.on_element("x", 2_500, first, ctx)
    ctx.window = second
    trigger.on_element("y", 4_200, second, ctx)
    ctx.window, ctx.merged_windows = merged, [first, second]
    trigger.on_merge(merged, ctx)
    assert ctx.state == {(merged, "fire-time"): 3_000}
    assert ctx.timers_of(merged) == ([3_000, 8_999], [])


def test_continuous_processing_time_trigger_fires_every_interval():
    trigger = ContinuousProcessingTimeTrigger.of(Duration.of_seconds(5))
    window = GlobalWindow.get()
    ctx = FakeTriggerContext(window, now=12_000)
    assert trigger.on_element("x", None, window, ctx) is TriggerResult.CONTINUE
    assert ctx.timers_of(window) == ([], [15_000])
    assert trigger.on_processing_time(14_000, window, ctx) is TriggerResult.CONTINUE
    assert trigger.on_processing_time(15_000, window, ctx) is TriggerResult.FIRE
    assert ctx.timers_of(window) == ([], [15_000, 20_000])
    assert trigger.on_event_time(20_000, window, ctx) is TriggerResult.CONTINUE
    trigger.clear(window, ctx)
    assert ctx.state == {} and ctx.timers_of(window) == ([], [15_000])


def test_a_user_trigger_needs_the_abstract_methods_and_cannot_merge_by_default():
    class Incomplete(Trigger):
        def on_element(self, element, timestamp, window, ctx):
            return TriggerResult.FIRE

    with pytest.raises(TypeError):
        Incomplete()

    class FireOnDone(Trigger):
        def on_element(self, element, timestamp, window, ctx):
            return TriggerResult.FIRE_AND_PURGE if element == "done" else TriggerResult.CONTINUE

        def on_processing_time(self, time, window, ctx):
            return TriggerResult.CONTINUE

        def on_event_time(self, time, window, ctx):
            return TriggerResult.CONTINUE

        def clear(self, window, ctx):
            pass

    trigger = FireOnDone()
    ctx = FakeTriggerContext(GlobalWindow.get())
    assert trigger.on_element("done", None, GlobalWindow.get(), ctx) is (
        TriggerResult.FIRE_AND_PURGE
    )
    assert not trigger.can_merge()
    with pytest.raises(NotImplementedError, match="can_merge"):
        trigger.on_merge(GlobalWindow.get(), ctx)


def test_contexts_are_abstract_and_reachable_as_pyflink_spells_them():
    assert Trigger.TriggerContext is TriggerContext
    assert Trigger.OnMergeContext is OnMergeContext
    assert WindowAssigner.WindowAssignerContext is WindowAssignerContext
    assert issubclass(OnMergeContext, TriggerContext)
    for abstract in (TriggerContext, OnMergeContext, WindowAssignerContext):
        with pytest.raises(TypeError):
            abstract()
    # PyFlink's subclasses are written generic: Trigger[T, W], WindowAssigner[T, W].
    assert Trigger[int, TimeWindow] is not None
    assert WindowAssigner[int, TimeWindow] is not None


# ---------------------------------------------------------------------- pickling


ASSIGNERS = [
    TumblingEventTimeWindows.of(Time.seconds(10), Time.seconds(-3)),
    TumblingProcessingTimeWindows.of(Time.seconds(10)),
    SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5), Time.seconds(1)),
    SlidingProcessingTimeWindows.of(Time.seconds(10), Time.seconds(5)),
    EventTimeSessionWindows.with_gap(Time.minutes(1)),
    ProcessingTimeSessionWindows.with_gap(Time.minutes(1)),
    GlobalWindows.create(),
    CountTumblingWindowAssigner.of(5),
    CountSlidingWindowAssigner.of(5, 2),
]

TRIGGERS = [
    EventTimeTrigger.create(),
    ProcessingTimeTrigger.create(),
    CountTrigger.of(4),
    PurgingTrigger.of(CountTrigger.of(4)),
    PurgingTrigger.of(EventTimeTrigger.create()),
    ContinuousEventTimeTrigger.of(Time.seconds(3)),
    ContinuousProcessingTimeTrigger.of(Time.seconds(3)),
    NeverTrigger(),
]


@pytest.mark.parametrize("value", ASSIGNERS + TRIGGERS, ids=repr)
def test_assigners_and_triggers_pickle_to_equal_values(value):
    for copy in (roundtrip(value), cloudpickle.loads(cloudpickle.dumps(value))):
        assert copy == value
        assert hash(copy) == hash(value)
        assert repr(copy) == repr(value)
        assert type(copy) is type(value)


@pytest.mark.parametrize("assigner", ASSIGNERS, ids=repr)
def test_a_pickled_assigner_assigns_the_same_windows(assigner):
    copy = roundtrip(assigner)
    for timestamp in (-12_345, 0, 7_777, 61_000):
        contexts = [FakeAssignerContext(now=timestamp), FakeAssignerContext(now=timestamp)]
        for _ in range(3):
            assert copy.assign_windows("x", timestamp, contexts[0]) == assigner.assign_windows(
                "x", timestamp, contexts[1]
            )
    assert copy.get_default_trigger() == assigner.get_default_trigger()
    assert copy.is_event_time() == assigner.is_event_time()


def test_a_pickled_trigger_keeps_its_behaviour():
    trigger = roundtrip(PurgingTrigger.of(CountTrigger.of(2)))
    ctx = FakeTriggerContext(CountWindow(0))
    assert trigger.on_element("x", None, CountWindow(0), ctx) is TriggerResult.CONTINUE
    assert trigger.on_element("x", None, CountWindow(0), ctx) is TriggerResult.FIRE_AND_PURGE


def test_dynamic_gap_assigners_pickle_with_their_extractor():
    gap_ms = 70
    for build in (EventTimeSessionWindows, ProcessingTimeSessionWindows):
        by_class = roundtrip(build.with_dynamic_gap(GapFromElement()))
        assert by_class.assign_windows(("k", 50), 10, FakeAssignerContext(now=10)) == [
            TimeWindow(10, 60)
        ]
        by_lambda = cloudpickle.loads(
            cloudpickle.dumps(build.with_dynamic_gap(lambda element: gap_ms))
        )
        assert by_lambda.assign_windows("e", 10, FakeAssignerContext(now=10)) == [
            TimeWindow(10, 80)
        ]
        assert type(by_lambda) is type(build.with_dynamic_gap(GapFromElement()))


# ---------------------------------------------------------------------- module surface


def test_every_exported_name_exists_and_docstring_examples_run():
    for name in window_module.__all__:
        assert hasattr(window_module, name), name
    results = doctest.testmod(window_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.attempted >= 10
    assert results.failed == 0


@pytest.mark.parametrize(
    "assigner_class",
    [
        TumblingEventTimeWindows,
        TumblingProcessingTimeWindows,
        SlidingEventTimeWindows,
        SlidingProcessingTimeWindows,
        EventTimeSessionWindows,
        ProcessingTimeSessionWindows,
        DynamicEventTimeSessionWindows,
        DynamicProcessingTimeSessionWindows,
        GlobalWindows,
        CountTumblingWindowAssigner,
        CountSlidingWindowAssigner,
    ],
)
def test_each_assigner_documents_an_example(assigner_class):
    assert "Example::" in (assigner_class.__doc__ or "")
    assert issubclass(assigner_class, WindowAssigner)
