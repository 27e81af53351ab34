"""BATCH execution mode: how a job picks it, and Flink's batch semantics in the operators,
embedded and on a real 2-TaskManager cluster (the ``mode`` fixture)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from harness import REPO_ROOT, http_json, poll_for, python_env
from jobs_support import remote

from strom.common import Duration, Encoder, RestartStrategies, Time, Types, WatermarkStrategy
from strom.datastream import (
    BroadcastProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    MapFunction,
    ProcessWindowFunction,
    RuntimeExecutionMode,
    SourceFunction,
    StreamExecutionEnvironment,
    execution_context,
)
from strom.datastream.connectors.file_system import FileSink, FileSource, StreamFormat
from strom.datastream.connectors.number_seq import NumberSequenceSource
from strom.datastream.state import MapStateDescriptor, ValueStateDescriptor
from strom.datastream.window import TumblingEventTimeWindows
from strom.errors import StromError
from strom.graph.batch import UnboundedSourceInBatchMode

MIN_WATERMARK = -(2**63)


def batch_env(parallelism: int = 1, **configuration: str) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment(configuration or None)
    env.set_parallelism(parallelism)
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    return env


def operator_kinds(env: StreamExecutionEnvironment) -> list[str]:
    plan = json.loads(env.get_execution_plan())
    return [op["kind"] for node in plan["nodes"] for op in node["operators"]]


def word_count(env: StreamExecutionEnvironment, lines: list[str]):
    return (
        env.from_collection(lines)
        .flat_map(lambda line: [(word, 1) for word in line.split()])
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )


class Endless(SourceFunction):
    def run(self, ctx):
        while True:
            ctx.collect(1)

    def cancel(self):
        pass


# ------------------------------------------------------------------ choosing the mode


def test_set_runtime_mode_batch_runs_the_batch_forms_of_keyed_operators():
    env = batch_env()
    word_count(env, ["a b"]).print()
    assert "batch_reduce" in operator_kinds(env)
    streaming = StreamExecutionEnvironment.get_execution_environment()
    word_count(streaming, ["a b"]).print()
    assert "reduce" in operator_kinds(streaming)
    assert "batch_reduce" not in operator_kinds(streaming)


def test_at_parallelism_1_the_keyed_operator_is_chained_to_its_input():
    env = batch_env(1)
    word_count(env, ["a b"]).print()
    assert len(json.loads(env.get_execution_plan())["nodes"]) == 1
    streaming = StreamExecutionEnvironment.get_execution_environment().set_parallelism(1)
    word_count(streaming, ["a b"]).print()
    assert len(json.loads(streaming.get_execution_plan())["nodes"]) == 1
    wide = batch_env(2)
    word_count(wide, ["a b"]).print()
    assert len(json.loads(wide.get_execution_plan())["nodes"]) == 3  # source at 1, then 2
    wide_streaming = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    word_count(wide_streaming, ["a b"]).print()
    assert len(json.loads(wide_streaming.get_execution_plan())["nodes"]) == 3


def test_the_runtime_mode_key_from_the_job_configuration_and_from_dash_d():
    env = StreamExecutionEnvironment.get_execution_environment({"execution.runtime-mode": "batch"})
    word_count(env, ["a"]).print()
    assert "batch_reduce" in operator_kinds(env)
    previous = execution_context.set_current(
        execution_context.ExecutionContext(config={"execution.runtime-mode": "batch"})
    )
    try:
        env = StreamExecutionEnvironment.get_execution_environment()
        word_count(env, ["a"]).print()
        assert "batch_reduce" in operator_kinds(env)
        # The job's code wins over -D, as in Flink.
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
        word_count(env, ["a"]).print()
        assert "batch_reduce" not in operator_kinds(env)
    finally:
        execution_context.set_current(previous)


def test_automatic_picks_batch_only_when_every_source_is_bounded(tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.AUTOMATIC)
    counts = word_count(env, ["a"])
    counts.print()
    assert "batch_reduce" in operator_kinds(env)
    assert env.get_job_graph().settings["runtime_mode"] == "BATCH"
    unbounded = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(tmp_path)
    ).monitor_continuously(Duration.of_seconds(1))
    env.from_source(unbounded.build(), None, "watched folder").print()
    assert "batch_reduce" not in operator_kinds(env)
    assert env.get_job_graph().settings["runtime_mode"] == "STREAMING"


def test_batch_with_an_unbounded_source_is_refused_naming_the_source():
    env = batch_env()
    env.add_source(Endless(), "endless").key_by(lambda x: x).reduce(lambda a, b: a + b).print()
    with pytest.raises(UnboundedSourceInBatchMode) as error:
        env.execute("refused")
    message = str(error.value)
    assert "'Source: endless'" in message and "BATCH" in message
    assert "STREAMING or AUTOMATIC" in message
    assert isinstance(error.value, StromError)  # the CLI shows it as one paragraph


# ------------------------------------------------------------------ keyed operators


def test_reduce_emits_only_the_final_value_per_key(mode):
    lines = [f"w{i % 7} w{i % 3} common" for i in range(500)]
    results = mode.collect(word_count(batch_env(2), lines))
    expected = Counter(word for line in lines for word in line.split())
    assert sorted(results) == sorted(expected.items())


def test_aggregations_emit_only_the_final_value_per_key(mode):
    data = [(f"k{i % 4}", i, (i * 37) % 101) for i in range(400)]
    env = batch_env(2)
    stream = env.from_collection(data).key_by(lambda r: r[0])
    outputs = {
        "sum": stream.sum(1),
        "min": stream.min(2),
        "max": stream.max(2),
        "min_by": stream.min_by(2),
        "max_by": stream.max_by(2),
    }
    tagged = [s.map(lambda r, name=name: (name, r)) for name, s in outputs.items()]
    union = tagged[0].union(*tagged[1:])
    results = mode.collect(union)
    by_key: dict[str, list] = {}
    for record in data:
        by_key.setdefault(record[0], []).append(record)
    expected = []
    for key, records in by_key.items():
        first = records[0]
        expected.append(("sum", (key, sum(r[1] for r in records), first[2])))
        expected.append(("min", (key, first[1], min(r[2] for r in records))))
        expected.append(("max", (key, first[1], max(r[2] for r in records))))
        expected.append(("min_by", min(records, key=lambda r: r[2])))
        expected.append(("max_by", max(records, key=lambda r: r[2])))
    assert sorted(results) == sorted(expected)


class KeyAtATime(KeyedProcessFunction):
    """Emits each element with the watermark it sees, and at each timer what the key saw."""

    def open(self, runtime_context):
        self.seen = runtime_context.get_state(
            ValueStateDescriptor("seen", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, value, ctx):
        self.seen.update((self.seen.value() or ()) + (value[1],))
        ctx.timer_service().register_event_time_timer(5_000)
        ctx.timer_service().register_processing_time_timer(4_102_444_800_000)  # year 2100
        yield ("element", ctx.get_current_key(), value[1], ctx.timer_service().current_watermark())

    def on_timer(self, timestamp, ctx):
        kind = "event" if timestamp == 5_000 else "processing"
        yield (kind, ctx.get_current_key(), self.seen.value())


def test_keyed_process_function_sees_one_key_at_a_time_with_its_timers_at_its_end(mode):
    # Keys interleave in the input, and timestamps run backwards.
    data = [("abc"[i % 3], i, 1_000 - i) for i in range(30)]
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda record, _: record[2]
    )
    env = batch_env(1)
    env.get_config().set_auto_watermark_interval(1)
    stream = (
        env.from_collection(data)
        .assign_timestamps_and_watermarks(strategy)
        .key_by(lambda r: r[0])
        .process(KeyAtATime())
    )
    results = mode.collect(stream)
    blocks: dict[str, list] = {}
    order: list[str] = []
    for result in results:
        if result[1] not in blocks:
            order.append(result[1])
        blocks.setdefault(result[1], []).append(result)
    # Each key's outputs are contiguous: its elements, then its event-time timer, then its
    # processing-time timer (processing time jumps to the end of the key too).
    assert [r[1] for r in results] == [k for k in order for _ in blocks[k]]
    for key, block in blocks.items():
        values = [i for k, i, _ in sorted(data, key=lambda r: r[2]) if k == key]
        assert block == [("element", key, i, MIN_WATERMARK) for i in values] + [
            ("event", key, tuple(values)),
            ("processing", key, tuple(values)),
        ]


class OrdersAndPayments(KeyedCoProcessFunction):
    """Remembers both inputs of a key; at the end of the key, what it saw of each."""

    def open(self, runtime_context):
        self.seen = runtime_context.get_state(
            ValueStateDescriptor("seen", Types.PICKLED_BYTE_ARRAY())
        )

    def _add(self, item, ctx):
        self.seen.update((self.seen.value() or ()) + (item,))
        ctx.timer_service().register_event_time_timer(0)

    def process_element1(self, value, ctx):
        self._add(("order", value[1]), ctx)
        yield ("element", ctx.get_current_key())

    def process_element2(self, value, ctx):
        self._add(("payment", value[1]), ctx)
        yield ("element", ctx.get_current_key())

    def on_timer(self, timestamp, ctx):
        yield ("done", ctx.get_current_key(), self.seen.value())


def test_keyed_co_process_function_sees_both_inputs_of_one_key_at_a_time(mode):
    env = batch_env(1)
    orders = env.from_collection([(f"c{i % 3}", i) for i in range(12)])
    payments = env.from_collection([(f"c{i % 3}", 100 + i) for i in range(6)])
    stream = (
        orders.connect(payments).key_by(lambda o: o[0], lambda p: p[0]).process(OrdersAndPayments())
    )
    results = mode.collect(stream)
    keys = []
    for result in results:
        if not keys or keys[-1] != result[1]:
            keys.append(result[1])
    assert sorted(keys) == ["c0", "c1", "c2"]  # each key's outputs are contiguous
    for key in keys:
        block = [r for r in results if r[1] == key]
        orders_of = tuple(("order", i) for i in range(12) if f"c{i % 3}" == key)
        payments_of = tuple(("payment", 100 + i) for i in range(6) if f"c{i % 3}" == key)
        assert block[:-1] == [("element", key)] * (len(orders_of) + len(payments_of))
        assert block[-1][:2] == ("done", key)
        assert sorted(block[-1][2]) == sorted(orders_of + payments_of)


RULES = MapStateDescriptor("rules", Types.STRING(), Types.STRING())


class SlowRule(MapFunction):
    """Rules arrive late: in STREAMING most events would pass before any rule is known."""

    def map(self, value):
        time.sleep(0.05)
        return value


class ApplyRule(KeyedBroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield (value, ctx.get_broadcast_state(RULES).get(ctx.get_current_key()))

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(RULES).put(value[0], value[1])


class ApplyAnyRule(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield (value, ctx.get_broadcast_state(RULES).get(value[0]))

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(RULES).put(value[0], value[1])


def test_broadcast_input_is_complete_before_the_other_input_is_processed(mode):
    env = batch_env(2)
    events = [(f"k{i % 3}", i) for i in range(60)]
    rules = [("k0", "zero"), ("k1", "one"), ("k2", "two")]
    rule_stream = env.from_collection(rules).map(SlowRule()).broadcast(RULES)
    event_stream = env.from_collection(events)
    keyed = event_stream.key_by(lambda e: e[0]).connect(rule_stream).process(ApplyRule())
    plain = event_stream.connect(rule_stream).process(ApplyAnyRule())
    results = mode.collect(keyed.union(plain))
    names = dict(rules)
    assert sorted(results) == sorted([(e, names[e[0]]) for e in events] * 2)


class CountPerWindow(ProcessWindowFunction):
    def process(self, key, context, elements):
        yield (key, context.window().start, len(list(elements)))


def test_windows_fire_once_with_their_complete_contents_and_lateness_has_no_effect(mode):
    # Sent a record at a time, the first 1,024 records move event time far ahead in
    # STREAMING (which fires the first windows, and again for each late record); the
    # records after them belong to the first windows again.
    data = [("a" if i % 2 else "b", i * 10) for i in range(1024)]
    data += [("a" if i % 2 else "b", i) for i in range(76)]
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda record, _: record[1]
    )
    env = batch_env(2)
    env.get_config().set_auto_watermark_interval(1)
    env.set_buffer_timeout(0)
    stream = (
        env.from_collection(data)
        .assign_timestamps_and_watermarks(strategy)
        .key_by(lambda r: r[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(1)))
        .allowed_lateness(60_000)
        .process(CountPerWindow())
    )
    results = mode.collect(stream)
    expected = Counter((key, ts // 1000 * 1000) for key, ts in data)
    assert sorted(results) == sorted((k, start, n) for (k, start), n in expected.items())


def test_more_keys_than_the_memory_budget_holds_spill_and_stay_exact(mode, caplog):
    caplog.set_level(logging.INFO, logger="taskmanager.runtime.batch")
    env = batch_env(2, **{"execution.sorted-inputs.memory": "16 kb"})
    data = [(f"key-{i % 3000}", i) for i in range(12_000)]
    keyed = env.from_collection(data).key_by(lambda r: r[0])
    sums = keyed.reduce(lambda a, b: (a[0], a[1] + b[1]))
    firsts = keyed.process(FirstAndCount())
    totals = keyed.sum(1).map(lambda r: ("total", r))
    results = mode.collect(sums.map(lambda r: ("sum", r)).union(firsts, totals))
    expected = [("sum", (f"key-{k}", sum(range(k, 12_000, 3000)))) for k in range(3000)]
    expected += [("total", (f"key-{k}", sum(range(k, 12_000, 3000)))) for k in range(3000)]
    expected += [("first", f"key-{k}", k, 4) for k in range(3000)]
    assert sorted(results) == sorted(expected)
    if mode.cluster is None:  # the tasks ran in this process: their log is ours
        assert "spilling to" in caplog.text
    else:
        poll_for(lambda: "spilling to" in mode.cluster.logs(), what="the spill in the log")


class FirstAndCount(KeyedProcessFunction):
    def open(self, runtime_context):
        self.first = runtime_context.get_state(
            ValueStateDescriptor("first", Types.PICKLED_BYTE_ARRAY())
        )
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.INT()))

    def process_element(self, value, ctx):
        if self.first.value() is None:
            self.first.update(value[1])
        self.count.update((self.count.value() or 0) + 1)
        ctx.timer_service().register_event_time_timer(0)

    def on_timer(self, timestamp, ctx):
        yield ("first", ctx.get_current_key(), self.first.value(), self.count.value())


# ------------------------------------------------------------------ checkpoints and sinks


class SnapshotMarker(MapFunction):
    """Slow enough for a checkpoint interval to pass; leaves a file per snapshot taken."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def initialize_state(self, context):
        pass

    def snapshot_state(self, context):
        Path(self.folder, f"snapshot-{time.time_ns()}").write_text("taken")

    def map(self, value):
        time.sleep(0.002)
        return value


def test_no_checkpoints_are_taken_in_batch(mode, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    env = batch_env(
        1,
        **{
            "execution.checkpointing.interval": "20 ms",
            "state.checkpoints.dir": str(tmp_path / "checkpoints"),
        },
    )
    numbers = env.from_source(NumberSequenceSource(1, 400), None, "numbers")
    stream = numbers.map(SnapshotMarker(str(markers))).key_by(lambda x: x % 5).sum(0)
    results = mode.collect(stream)
    assert sorted(results) == sorted(sum(range(k or 5, 401, 5)) for k in range(5))
    assert list(markers.iterdir()) == []


def test_file_sink_writes_final_counts_once_and_leaves_no_in_progress_files(mode, tmp_path):
    output = tmp_path / "out"
    lines = [f"w{i % 11} w{i % 4}" for i in range(2000)]
    env = batch_env(2, **{"execution.checkpointing.interval": "20 ms"})
    counts = word_count(env, lines)
    counts.sink_to(FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build())
    mode.execute(env, "batch file sink")
    files = [p for p in output.rglob("*") if p.is_file()]
    assert files and not [p for p in files if "inprogress" in p.name or p.name.startswith(".")]
    written = [line for p in files for line in p.read_text().splitlines()]
    expected = Counter(word for line in lines for word in line.split())
    assert sorted(written) == sorted(str(item) for item in expected.items())


class FailOnce(MapFunction):
    """Fails the job's first attempt at line 2,000 of its input (every task runs by then)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def map(self, value):
        if value[0] == 2000 and not Path(self.marker).exists():
            Path(self.marker).write_text("failed")
            raise RuntimeError("the first attempt fails here")
        return value[1]


def test_a_failed_batch_job_restarts_and_commits_exact_results_once(mode, tmp_path):
    output = tmp_path / "out"
    lines = [f"w{i % 11} w{i % 4}" for i in range(3000)]
    env = batch_env(2)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(2, 100))
    counts = (
        env.from_collection(list(enumerate(lines)))
        .map(FailOnce(str(tmp_path / "failed")))
        .flat_map(lambda line: [(w, 1) for w in line.split()])
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    counts.sink_to(FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build())
    mode.execute(env, "batch restart")
    assert (tmp_path / "failed").exists()
    files = [p for p in output.rglob("*") if p.is_file()]
    assert not [p for p in files if "inprogress" in p.name or p.name.startswith(".")]
    written = [line for p in files for line in p.read_text().splitlines()]
    expected = Counter(word for line in lines for word in line.split())
    assert sorted(written) == sorted(str(item) for item in expected.items())


class FailOnAFinalCount(MapFunction):
    """Fails the first attempt on one final count: other sink subtasks may have committed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def map(self, value):
        if value[0] == "w7" and not Path(self.marker).exists():
            Path(self.marker).write_text("failed")
            raise RuntimeError("the first attempt fails here")
        return value


def test_a_restart_replaces_what_finished_sink_subtasks_had_committed(mode, tmp_path):
    output = tmp_path / "out"
    lines = [f"w{i % 11} w{i % 4}" for i in range(3000)]
    env = batch_env(2)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(2, 100))
    counts = word_count(env, lines).map(FailOnAFinalCount(str(tmp_path / "failed")))
    counts.sink_to(FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build())
    mode.execute(env, "batch restart in the sink stage")
    assert (tmp_path / "failed").exists()
    files = [p for p in output.rglob("*") if p.is_file()]
    assert not [p for p in files if "inprogress" in p.name or p.name.startswith(".")]
    written = [line for p in files for line in p.read_text().splitlines()]
    expected = Counter(word for line in lines for word in line.split())
    assert sorted(written) == sorted(str(item) for item in expected.items())


def test_rest_shows_an_automatic_job_as_batch_with_its_stages_and_no_checkpoints(shared_cluster):
    env = StreamExecutionEnvironment.get_execution_environment(
        {"execution.checkpointing.interval": "20 ms"}
    )
    env.set_runtime_mode(RuntimeExecutionMode.AUTOMATIC)
    env.set_parallelism(2)
    word_count(env, [f"w{i % 13} x" for i in range(300)]).add_sink(lambda value: None)
    with remote(shared_cluster.address):
        job_id = env.execute("automatic batch").get_job_id()
    job = f"{shared_cluster.rest_url}/jobs/{job_id}"
    config = http_json(f"{job}/config")["execution-config"]
    assert config["execution-mode"] == "BATCH"
    details = http_json(job)
    assert [v["status"] for v in details["vertices"]] == ["FINISHED"] * len(details["vertices"])
    assert len(details["vertices"]) == 3  # read (p=1), split (p=2), count and sink (p=2)
    assert http_json(f"{job}/checkpoints")["counts"]["completed"] == 0


# ------------------------------------------------------------------ PyFlink's word_count

HAMLET = [
    "To be, or not to be,--that is the question:--",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune",
    "Or to take arms against a sea of troubles,",
    "And by opposing end them?--To die,--to sleep,--",
    "No more; and by a sleep to say we end",
    "The heartache, and the thousand natural shocks",
    "That flesh is heir to,--'tis a consummation",
    "Devoutly to be wish'd. To die,--to sleep;--",
    "To sleep! perchance to dream:--ay, there's the rub;",
    "For in that sleep of death what dreams may come,",
    "When we have shuffled off this mortal coil,",
    "Must give us pause: there's the respect",
    "That makes calamity of so long life;",
    "For who would bear the whips and scorns of time,",
    "The oppressor's wrong, the proud man's contumely,",
    "The pangs of despis'd love, the law's delay,",
    "The insolence of office, and the spurns",
    "That patient merit of the unworthy takes,",
    "When he himself might his quietus make",
    "With a bare bodkin? who would these fardels bear,",
    "To grunt and sweat under a weary life,",
    "But that the dread of something after death,--",
    "The undiscover'd country, from whose bourn",
    "No traveller returns,--puzzles the will,",
    "And makes us rather bear those ills we have",
    "Than fly to others that we know not of?",
    "Thus conscience does make cowards of us all;",
    "And thus the native hue of resolution",
    "Is sicklied o'er with the pale cast of thought;",
    "And enterprises of great pith and moment,",
    "With this regard, their currents turn awry,",
    "And lose the name of action.--Soft you now!",
    "The fair Ophelia!--Nymph, in thy orisons",
    "Be all my sins remember'd.",
]

# PyFlink's examples/datastream/word_count.py with its imports renamed; ``set_runtime_mode``
# is left to the command line when the job is given the argument ``no-mode``.
PYFLINK_WORD_COUNT = """
    import sys

    from strom.common import Types
    from strom.datastream import RuntimeExecutionMode, StreamExecutionEnvironment

    word_count_data = {data!r}

    env = StreamExecutionEnvironment.get_execution_environment()
    if sys.argv[1:] != ["no-mode"]:
        env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.set_parallelism(1)
    print("Executing word_count example with default input data set.")
    ds = env.from_collection(word_count_data)

    def split(line):
        yield from line.split()

    ds = (
        ds.flat_map(split)
        .map(lambda i: (i, 1), output_type=Types.TUPLE([Types.STRING(), Types.INT()]))
        .key_by(lambda i: i[0])
        .reduce(lambda i, j: (i[0], i[1] + j[1]))
    )
    ds.print()
    env.execute()
"""


def pyflink_word_count_job(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "word_count.py"
    job.write_text(textwrap.dedent(PYFLINK_WORD_COUNT.format(data=HAMLET)))
    return job


def expected_final_counts() -> list[str]:
    counts = Counter(word for line in HAMLET for word in line.split())
    assert len(counts) == 183 and sum(counts.values()) == 268  # PyFlink's figures
    # The stream is declared Types.TUPLE: print() gives Java's text, as PyFlink's does.
    return sorted(f"({word},{count})" for word, count in counts.items())


def count_lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith("("))


def test_pyflink_word_count_example_in_batch_prints_its_183_final_counts(tmp_path):
    job = pyflink_word_count_job(tmp_path / "job")
    result = subprocess.run(
        [sys.executable, str(job)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(REPO_ROOT),
        env=python_env(),
    )
    assert result.returncode == 0, result.stderr
    assert count_lines(result.stdout) == expected_final_counts()


def strom_cli(cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
    )


def test_strom_run_dash_d_batch_on_a_cluster_prints_final_counts(local_cluster, tmp_path):
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    job = pyflink_word_count_job(tmp_path / "job")
    result = strom_cli(cluster, "run", "-D", "execution.runtime-mode=batch", str(job), "no-mode")
    assert result.returncode == 0, result.stdout + result.stderr
    expected = expected_final_counts()
    # print() writes on the TaskManager that ran the sink, as Flink's does.
    poll_for(lambda: count_lines(cluster.logs()) == expected, what="the final counts")


def test_strom_run_refuses_a_batch_job_with_an_unbounded_source(local_cluster, tmp_path):
    cluster = local_cluster(slots=1).start(taskmanagers=1)
    job = tmp_path / "endless.py"
    job.write_text(
        textwrap.dedent(
            """
            from strom.datastream import SourceFunction, StreamExecutionEnvironment

            class Endless(SourceFunction):
                def run(self, ctx):
                    while True:
                        ctx.collect(1)

                def cancel(self):
                    pass

            env = StreamExecutionEnvironment.get_execution_environment()
            env.add_source(Endless(), "endless").print()
            env.execute("endless")
            """
        )
    )
    result = strom_cli(cluster, "run", "-D", "execution.runtime-mode=BATCH", str(job))
    assert result.returncode != 0
    assert "unbounded source 'Source: endless'" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    overview = cluster.overview()
    assert overview["jobs-running"] + overview["jobs-finished"] + overview["jobs-failed"] == 0
