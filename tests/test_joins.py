"""Joins of two streams — window joins, co-groups and interval joins — over out-of-order
timestamped input, embedded and across TaskManagers, checked against results computed by
plain Python in the test; an interval join through a failure and a restart from a checkpoint;
and the interval join operator's late records, state cleanup and snapshots, driven directly."""

from __future__ import annotations

import ast
import pickle
import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from test_checkpointing import checkpointed_env, committed_output, completed_checkpoints

from strom.common import Duration, Encoder, Time, WatermarkStrategy
from strom.common.watermark_strategy import Watermark
from strom.datastream import (
    CoGroupFunction,
    FlatJoinFunction,
    JoinFunction,
    KeyedProcessFunction,
    MapFunction,
    OutputTag,
    ProcessFunction,
    ProcessJoinFunction,
    SourceFunction,
    StreamExecutionEnvironment,
)
from strom.datastream.connectors.file_system import FileSink
from strom.datastream.join import UnionKeySelector
from strom.datastream.window import (
    CountTrigger,
    EventTimeSessionWindows,
    EventTimeTrigger,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
)
from strom.graph.stream_graph import OperatorSpec
from taskmanager.runtime.context import OperatorContext
from taskmanager.runtime.joins import CLEANUP_TIMERS, IntervalJoinOperator
from taskmanager.runtime.operators import MAX_WATERMARK, Output
from taskmanager.state.operator_state import OperatorRestore

DISORDER = 20


def out_of_order(events: list, seed: int) -> list:
    """``events`` in an order where each is less than DISORDER ms behind the newest so far."""
    rng = random.Random(seed)
    return [e for _, e in sorted((e[1] + rng.randrange(DISORDER), e) for e in events)]


def side(name: str, count: int, keys: list[str], seed: int, spacing: int = 3) -> list:
    """``(key, timestamp ms, id)`` records of one side, out of order within DISORDER."""
    rng = random.Random(seed)
    events = [
        (rng.choice(keys), t * spacing + rng.randrange(spacing), f"{name}{t}") for t in range(count)
    ]
    return out_of_order(events, seed)


def env_with(parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.get_config().set_auto_watermark_interval(5)
    return env


def stamped(env, data):
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(DISORDER)
    ).with_timestamp_assigner(lambda event, _: event[1])
    return env.from_collection(data).assign_timestamps_and_watermarks(strategy)


def key(event):
    return event[0]


def upper_key(event):
    """The key of records whose keys are spelled in capitals (the second side, in places)."""
    return event[0].lower()


class WithTimestamp(ProcessFunction):
    """Appends each record's event timestamp, to check the timestamps joins give outputs."""

    def process_element(self, value, ctx):
        yield (*value, ctx.timestamp())


# ---------------------------------------------------------------------- window joins


class PairJoin(JoinFunction):
    def join(self, first, second):
        return ("class", first[2], second[2])


class EvenPairs(FlatJoinFunction):
    """Zero or two outputs per pair: two when the timestamps add up to an even number."""

    def join(self, first, second):
        if (first[1] + second[1]) % 2 == 0:
            yield ("flat", first[2], second[2])
            yield ("flat", first[2], second[2])


def windows_of(timestamp: int, size: int, slide: int) -> set[int]:
    """The starts of the sliding (or, slide == size, tumbling) windows holding a timestamp."""
    last = timestamp - timestamp % slide
    return set(range(last, timestamp - size, -slide))


def test_window_join_over_tumbling_windows(mode):
    first = side("a", 300, ["k0", "k1", "k2"], seed=1)
    second = side("b", 300, ["K0", "K1", "K3"], seed=2)  # keyed by upper_key
    size = 40
    env = env_with(2)
    a, b = stamped(env, first), stamped(env, second)

    def windowed():
        assigner = TumblingEventTimeWindows.of(Time.milliseconds(size))
        return a.join(b).where(key).equal_to(upper_key).window(assigner)

    joined = (
        windowed()
        .apply(PairJoin())
        .process(WithTimestamp())
        .union(
            windowed().apply(lambda x, y: ("lambda", x[2], y[2], None)),
            windowed().apply(EvenPairs()).map(lambda r: (*r, None)),
        )
    )
    results = mode.collect(joined)

    expected: Counter = Counter()
    for x in first:
        for y in second:
            if x[0] == y[0].lower() and x[1] // size == y[1] // size:
                end = x[1] // size * size + size
                expected[("class", x[2], y[2], end - 1)] += 1
                expected[("lambda", x[2], y[2], None)] += 1
                if (x[1] + y[1]) % 2 == 0:
                    expected[("flat", x[2], y[2], None)] += 2
    assert Counter(results) == expected
    assert sum(1 for r in results if r[0] == "flat") > 0  # the test can tell a flat join


def test_window_join_over_sliding_windows_with_a_trigger_and_allowed_lateness(mode):
    first = side("a", 200, ["k0", "k1"], seed=3)
    second = side("b", 200, ["k0", "k1"], seed=4)
    size, slide = 60, 20
    env = env_with(2)
    joined = (
        stamped(env, first)
        .join(stamped(env, second))
        .where(key)
        .equal_to(key)
        .window(SlidingEventTimeWindows.of(Time.milliseconds(size), Time.milliseconds(slide)))
        .trigger(EventTimeTrigger.create())
        .allowed_lateness(Duration.of_millis(50))
        .apply(lambda x, y: (x[2], y[2]))
    )
    results = mode.collect(joined)

    expected: Counter = Counter()
    for x in first:
        for y in second:
            if x[0] == y[0]:
                shared = windows_of(x[1], size, slide) & windows_of(y[1], size, slide)
                if shared:
                    expected[(x[2], y[2])] += len(shared)  # once per window holding both
    assert Counter(results) == expected


def session_sides(seed: int) -> tuple[list, list]:
    """Bursts of records of both sides per key; gaps between bursts are sometimes shorter
    than the session gap (so sessions of both sides merge) and sometimes longer."""
    rng = random.Random(seed)
    first: list = []
    second: list = []
    for name in ("s0", "s1"):
        t = rng.randrange(50)
        for _ in range(15):
            for _ in range(rng.randrange(4)):
                first.append((name, t + rng.randrange(40), f"a{len(first)}"))
            for _ in range(rng.randrange(4)):
                second.append((name, t + rng.randrange(40), f"b{len(second)}"))
            t += rng.choice([45, 60, 150])
    return out_of_order(first, seed), out_of_order(second, seed + 1)


def sessions(records: list, gap: int) -> dict:
    """Offline sessions: record id -> (key, session number), over both sides of a key."""
    session_of = {}
    by_key = defaultdict(list)
    for record in records:
        by_key[record[0]].append(record)
    for name, items in by_key.items():
        items.sort(key=lambda r: r[1])
        number, last = 0, None
        for record in items:
            if last is not None and record[1] - last >= gap:
                number += 1
            session_of[record[2]] = (name, number)
            last = record[1]
    return session_of


def test_window_join_over_session_windows(mode):
    first, second = session_sides(seed=7)
    gap = 25
    env = env_with(2)
    joined = (
        stamped(env, first)
        .join(stamped(env, second))
        .where(key)
        .equal_to(key)
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(gap)))
        .apply(PairJoin())
    )
    results = mode.collect(joined)

    session_of = sessions(first + second, gap)
    expected = Counter(
        ("class", x[2], y[2]) for x in first for y in second if session_of[x[2]] == session_of[y[2]]
    )
    assert Counter(results) == expected
    assert len({session_of[x[2]] for x in first}) > 10  # many sessions, not one


class Sides(CoGroupFunction):
    """Both sides of a key's window, including windows with records of one side only."""

    def co_group(self, first, second):
        first, second = list(first), list(second)
        some = (first or second)[0]
        yield (
            some[0],
            some[1] // 50 * 50,
            tuple(sorted(r[2] for r in first)),
            tuple(sorted(r[2] for r in second)),
        )


def test_co_group_over_tumbling_windows_sees_one_sided_keys(mode):
    first = side("a", 250, ["k0", "k1", "only-a"], seed=11)
    second = side("b", 250, ["k0", "k1", "only-b"], seed=12)
    env = env_with(2)
    a, b = stamped(env, first), stamped(env, second)

    def windowed():
        assigner = TumblingEventTimeWindows.of(Time.milliseconds(50))
        return a.co_group(b).where(key).equal_to(key).window(assigner)

    grouped = (
        windowed()
        .apply(Sides())
        .union(windowed().apply(lambda xs, ys: [("sizes", len(list(xs)), len(list(ys)))]))
    )
    results = mode.collect(grouped)

    groups: dict = defaultdict(lambda: ([], []))
    for index, records in enumerate((first, second)):
        for record in records:
            groups[(record[0], record[1] // 50 * 50)][index].append(record[2])
    expected = Counter(
        (name, start, tuple(sorted(xs)), tuple(sorted(ys)))
        for (name, start), (xs, ys) in groups.items()
    )
    expected.update(("sizes", len(xs), len(ys)) for xs, ys in groups.values())
    assert Counter(results) == expected
    assert any(r[0] == "only-a" for r in results) and any(r[0] == "only-b" for r in results)


# ---------------------------------------------------------------------- interval joins


class Labelled(ProcessJoinFunction):
    def __init__(self, label):
        self.label = label

    def process_element(self, left, right, ctx):
        assert ctx.get_left_timestamp() == left[1]
        assert ctx.get_right_timestamp() == right[1]
        yield (self.label, left[2], right[2], ctx.get_timestamp())


# label -> (lower, upper, lower inclusive, upper inclusive), as the join below sets them
INTERVALS = {
    "inclusive": (-7, 12, True, True),
    "exclusive": (-6, 6, False, False),
    "lower-exclusive": (0, 10, False, True),
    "positive": (3, 9, True, False),
    "negative": (-15, -4, True, True),
}


def test_interval_join_with_inclusive_exclusive_and_negative_bounds(mode):
    first = side("a", 300, ["k0", "k1"], seed=21)
    second = side("b", 300, ["K0", "K1"], seed=22)  # keyed by upper_key
    env = env_with(2)
    left = stamped(env, first).key_by(key)
    right = stamped(env, second).key_by(upper_key)
    joins = [
        left.interval_join(right)
        .between(Time.milliseconds(-7), Time.milliseconds(12))
        .process(Labelled("inclusive")),
        left.interval_join(right)
        .between(Duration.of_millis(-6), Duration.of_millis(6))
        .lower_bound_exclusive()
        .upper_bound_exclusive()
        .process(Labelled("exclusive")),
        left.interval_join(right)
        .between(0, 10)
        .lower_bound_exclusive()
        # the same join spelled with the event-time switch of Flink's API
        .process(Labelled("lower-exclusive")),
        left.interval_join(right)
        .in_event_time()
        .between(Time.milliseconds(3), Time.milliseconds(9))
        .upper_bound_exclusive()
        .process(Labelled("positive")),
        left.interval_join(right)
        .between(Time.milliseconds(-15), Time.milliseconds(-4))
        .process(Labelled("negative")),
    ]
    joined = joins[0].union(*joins[1:]).process(WithTimestamp())
    results = mode.collect(joined)

    expected: Counter = Counter()
    boundaries: Counter = Counter()
    for x in first:
        for y in second:
            if x[0] != y[0].lower():
                continue
            distance = y[1] - x[1]
            for label, (lower, upper, lower_in, upper_in) in INTERVALS.items():
                above = distance > lower or (lower_in and distance == lower)
                below = distance < upper or (upper_in and distance == upper)
                if above and below:
                    at = max(x[1], y[1])
                    expected[(label, x[2], y[2], at, at)] += 1
                if distance in (lower, upper):
                    boundaries[label] += 1
    assert Counter(results) == expected
    assert all(boundaries[label] for label in INTERVALS)  # every bound is put to the test


def test_interval_join_api_mistakes_raise_at_the_call_site():
    env = env_with(1)
    stream = env.from_collection([("k", 1, "x")])
    keyed = stream.key_by(key)
    with pytest.raises(ValueError, match="lower_bound <= upper_bound"):
        keyed.interval_join(keyed).between(5, -5)
    with pytest.raises(ValueError, match="event time"):
        keyed.interval_join(keyed).in_processing_time()
    with pytest.raises(TypeError, match="KeyedStream"):
        keyed.interval_join(stream)
    with pytest.raises(TypeError, match="Duration"):
        keyed.interval_join(keyed).between("soon", 5)
    with pytest.raises(ValueError, match="holds no timestamp"):
        joined = keyed.interval_join(keyed).between(3, 4)
        joined.lower_bound_exclusive().upper_bound_exclusive().process(Labelled("x"))
    with pytest.raises(TypeError, match="process_element"):
        keyed.interval_join(keyed).between(0, 1).process(object())
    with pytest.raises(TypeError, match="WindowAssigner"):
        stream.join(stream).where(key).equal_to(key).window(5)
    with pytest.raises(TypeError, match="DataStream"):
        stream.join([1, 2])
    with pytest.raises(TypeError, match="where"):
        stream.co_group(stream).where(5)
    with pytest.raises(TypeError, match="Trigger"):
        stream.join(stream).where(key).equal_to(key).window(
            TumblingEventTimeWindows.of(Time.milliseconds(5))
        ).trigger(5)


def test_window_join_records_its_trigger_and_allowed_lateness():
    env = env_with(1)
    stream = env.from_collection([("k", 1, "x")])
    trigger = CountTrigger.of(3)
    joined = (
        stream.join(stream)
        .where(key)
        .equal_to(key)
        .window(TumblingEventTimeWindows.of(Time.milliseconds(5)))
        .trigger(trigger)
        .allowed_lateness(Time.milliseconds(30))
        .apply(PairJoin())
    )
    spec = joined._transformation.operator
    assert spec.kind == "window"
    assert spec.args["trigger"] is trigger and spec.args["allowed_lateness"] == 30
    assert joined.get_name() == "Window Join"


# ---------------------------------------------------------------------- late records in a job

WATERMARK_SEEN = threading.Event()


class Script(SourceFunction):
    """Records and watermarks in a fixed order; ``("wait", None)`` blocks until the join's
    output has seen watermark 100 (embedded only: the flag is shared in the process)."""

    def __init__(self, script):
        self.script = script

    def run(self, ctx):
        for kind, item in self.script:
            if kind == "record":
                ctx.collect_with_timestamp(item, item[1])
            elif kind == "watermark":
                ctx.emit_watermark(Watermark(item))
            else:
                WATERMARK_SEEN.wait(30)

    def cancel(self):
        WATERMARK_SEEN.set()


class WatermarkSpy(KeyedProcessFunction):
    """Passes records on and raises WATERMARK_SEEN once event time reaches 100 here, which
    is after the join's own event time has."""

    def process_element(self, value, ctx):
        ctx.timer_service().register_event_time_timer(100)
        yield value

    def on_timer(self, timestamp, ctx):
        WATERMARK_SEEN.set()
        return []


def test_interval_join_drops_late_records_in_a_job_or_sends_them_to_a_side_output():
    """Embedded only: the sources wait, through a flag shared in the process, until the join
    has seen watermark 100, so that the record after it is late for sure."""
    WATERMARK_SEEN.clear()
    env = env_with(1)
    left = env.add_source(
        Script(
            [
                ("record", ("k", 10, "a10")),
                ("record", ("k", 20, "a20")),
                ("watermark", 100),
                ("wait", None),
                ("record", ("k", 50, "a50")),  # late: behind watermark 100; would match b105
            ]
        )
    ).key_by(key)
    right = env.add_source(
        Script(
            [
                ("record", ("k", 12, "b12")),
                ("record", ("k", 105, "b105")),
                ("watermark", 100),
                ("wait", None),
            ]
        )
    ).key_by(key)
    late_tag = OutputTag("late-left")
    dropping = left.interval_join(right).between(-10, 60).process(Labelled("dropping"))
    keeping = (
        left.interval_join(right)
        .between(Time.milliseconds(-10), Time.milliseconds(60))
        .side_output_left_late_data(late_tag)
        .process(Labelled("keeping"))
    )
    spied = dropping.union(keeping).key_by(lambda r: 0).process(WatermarkSpy())
    late = keeping.get_side_output(late_tag).map(lambda r: ("late", *r))
    with spied.union(late).execute_and_collect() as results:
        got = sorted(results)
    assert WATERMARK_SEEN.is_set()
    assert got == [
        ("dropping", "a10", "b12", 12),
        ("dropping", "a20", "b12", 20),
        ("keeping", "a10", "b12", 12),
        ("keeping", "a20", "b12", 20),
        ("late", "k", 50, "a50"),
    ]


# ---------------------------------------------------------------------- through a failure


class SlowLeft(MapFunction):
    """Slows the left side down (a throttle, not a wait) so that checkpoints complete
    meanwhile; in the first attempt it fails at the first record after one has, so the restart
    must restore the join's buffers and timers from it."""

    def __init__(self, checkpoints: str) -> None:
        self.checkpoints = checkpoints

    def open(self, runtime_context):
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value):
        if self.attempt == 0 and value % 10 == 0:
            time.sleep(0.01)
            if completed_checkpoints(Path(self.checkpoints)) >= 1:
                raise RuntimeError("injected failure")
        return value


class PairWithAttempt(ProcessJoinFunction):
    def open(self, runtime_context):
        self.attempt = runtime_context.get_attempt_number()

    def process_element(self, left, right, ctx):
        yield (left, right, self.attempt)


def test_interval_join_state_survives_a_restart_from_a_checkpoint(mode, tmp_path):
    from strom.datastream.connectors.number_seq import NumberSequenceSource

    count = 6000
    checkpoints, output = tmp_path / "checkpoints", tmp_path / "out"
    env = checkpointed_env(checkpoints)
    env.get_config().set_auto_watermark_interval(20)
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(5)
    ).with_timestamp_assigner(lambda value, _: value)
    # The left side is slow and fails once; the right side ends early, so after the restart
    # its records are only in the join's restored state.
    left = (
        env.from_source(NumberSequenceSource(0, count - 1), None, "left")
        .map(SlowLeft(str(checkpoints)))
        .assign_timestamps_and_watermarks(strategy)
        .key_by(lambda v: v % 7)
    )
    right = (
        env.from_source(NumberSequenceSource(0, count - 1), None, "right")
        .assign_timestamps_and_watermarks(strategy)
        .key_by(lambda v: v % 7)
    )
    joined = left.interval_join(right).between(-20, 20).process(PairWithAttempt())
    joined.sink_to(FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build())
    mode.execute(env, "interval join through a failure")

    results = [ast.literal_eval(line) for line in committed_output(output).elements()]
    expected = Counter(
        (v, w)
        for v in range(count)
        for w in range(v - 20, v + 21)
        if 0 <= w < count and (w - v) % 7 == 0
    )
    assert Counter((v, w) for v, w, _ in results) == expected  # each pair exactly once
    assert {attempt for _, _, attempt in results} >= {1}  # the failure did happen


# ---------------------------------------------------------------------- the operator itself


class Collector:
    """A downstream operator that records what reaches it."""

    def __init__(self):
        self.records: list = []
        self.watermarks: list = []

    def process_batch(self, values, timestamps):
        self.records.extend(zip(values, timestamps, strict=True))

    def process_watermark(self, timestamp):
        self.watermarks.append(timestamp)


def interval_join_operator(lower, upper, restore=None, late_tag=None):
    spec = OperatorSpec(
        "interval_join",
        Labelled("op"),
        key_selector=UnionKeySelector(key, key),
        args={"lower": lower, "upper": upper, "left_late_tag": late_tag},
    )
    context = OperatorContext("job", "task", "IntervalJoin", "uid", 0, 1, 128)
    operator = IntervalJoinOperator(spec, context)
    main, late = Collector(), Collector()
    side = {late_tag: Output([late], [])} if late_tag else None
    operator.output = Output([main], [], side)
    operator.initialize_state(restore)
    operator.open()
    return operator, main, late


def feed(operator, side_index, record):
    operator.process_batch([(side_index, record)], [record[1]])


def test_interval_join_operator_drops_late_records_or_sends_them_to_a_side_output():
    operator, main, late = interval_join_operator(-5, 5, late_tag="late-left")
    feed(operator, 0, ("k", 10, "a10"))
    operator.process_watermark(12)
    feed(operator, 1, ("k", 11, "b11"))  # behind the watermark: late, not joined with a10
    feed(operator, 0, ("k", 8, "a8"))  # late too: to the side output
    feed(operator, 1, ("k", 12, "b12"))  # at the watermark: not late, joins a10
    assert [r for r, _ in main.records] == [("op", "a10", "b12", 12)]
    assert main.records[0][1] == 12
    assert late.records == [(("k", 8, "a8"), 8)]
    assert operator.late_records == 2
    assert main.watermarks == [12]


def test_interval_join_operator_cleans_up_state_as_the_watermark_passes():
    lower, upper = -4, 9
    operator, main, _ = interval_join_operator(lower, upper)
    rng = random.Random(5)
    pending: list = []  # (cleanup time, record id) of what the state must still hold
    watermark = -1
    for step in range(400):
        timestamp = watermark + 1 + rng.randrange(30)
        side_index = rng.randrange(2)
        record = (f"k{rng.randrange(3)}", timestamp, f"{'ab'[side_index]}{step}")
        feed(operator, side_index, record)
        cleanup = timestamp + (max(upper, 0) if side_index == 0 else max(-lower, 0))
        pending.append((cleanup, record[2]))
        if step % 7 == 6:
            watermark += rng.randrange(15)
            operator.process_watermark(watermark)
            pending = [(t, r) for t, r in pending if t > watermark]
            assert operator.buffered_records() == len(pending)
    assert operator.buffered_records() > 0
    operator.process_watermark(MAX_WATERMARK)
    assert operator.buffered_records() == 0
    assert all(not table for table in operator.backend.tables.values())
    assert operator.backend.table(CLEANUP_TIMERS) == {}
    assert main.records  # it did join along the way


def test_interval_join_operator_state_survives_a_checkpoint():
    rng = random.Random(8)
    script: list = []
    for step in range(300):
        side_index = rng.randrange(2)
        timestamp = step * 2 + rng.randrange(10)
        script.append(("record", side_index, (f"k{rng.randrange(3)}", timestamp, f"r{step}")))
        if step % 10 == 9:
            script.append(("watermark", step * 2 - 12))

    def run(operator, steps):
        for kind, *rest in steps:
            if kind == "record":
                feed(operator, *rest)
            else:
                operator.process_watermark(rest[0])

    undisturbed, expected, _ = interval_join_operator(-8, 8)
    run(undisturbed, script)
    undisturbed.process_watermark(MAX_WATERMARK)

    first, before, _ = interval_join_operator(-8, 8)
    run(first, script[:150])
    emitted_before_checkpoint = list(before.records)
    snapshot = first.snapshot_state(1, 0)
    held = first.buffered_records()
    # as a TaskManager writes it: the keyed snapshot's stored form, pickled
    stored = pickle.loads(pickle.dumps({"keyed": snapshot["keyed"].stored()}))
    run(first, script[150:170])  # work after the checkpoint, lost in the failure
    restored, after, _ = interval_join_operator(
        -8, 8, restore=OperatorRestore({0: stored}, 1, 0, 1)
    )
    assert restored.buffered_records() == held > 0
    run(restored, script[150:])
    restored.process_watermark(MAX_WATERMARK)
    assert Counter(emitted_before_checkpoint + after.records) == Counter(expected.records)
    assert restored.buffered_records() == 0  # restored timers cleaned up restored buffers


def test_interval_join_of_records_without_timestamps_fails_with_a_hint():
    env = env_with(1)
    keyed = env.from_collection([("k", 1, "x")]).key_by(key)
    joined = keyed.interval_join(keyed).between(-1, 1).process(Labelled("x"))
    with pytest.raises(Exception, match="assign_timestamps_and_watermarks"):
        list(joined.execute_and_collect())
