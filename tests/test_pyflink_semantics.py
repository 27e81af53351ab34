"""PyFlink's semantics that programs rely on: declared types shape values (Row, 32-bit FLOAT,
range-checked ints, tuples), typed values print as Java's toString(), ``yield output_tag,
value`` feeds side outputs from every function that has them, generic function classes, and
the environment methods PyFlink programs call. Jobs run embedded and on a 2-TaskManager
cluster."""

from __future__ import annotations

import logging
import re
import struct
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from strom.common import Duration, Row, RowKind, Time, Types, WatermarkStrategy
from strom.common.type_values import formatter, java_double_string, java_float_string, shaper
from strom.common.watermark_strategy import TimestampAssigner
from strom.datastream import (
    BroadcastProcessFunction,
    CoProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    OutputTag,
    ProcessAllWindowFunction,
    ProcessFunction,
    ProcessWindowFunction,
    StreamExecutionEnvironment,
    WindowFunction,
)
from strom.datastream.connectors import Source
from strom.datastream.connectors.collection import CollectionSource
from strom.datastream.functions import KEY, ProcessJoinFunction, SourceFunction
from strom.datastream.state import MapStateDescriptor, ValueState
from strom.datastream.window import CountWindow, TimeWindow, TumblingEventTimeWindows
from strom.errors import JobExecutionError


def env_with(parallelism: int = 1) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


# ------------------------------------------------------------------ values of declared types


def test_float_rounds_to_32_bits_and_double_does_not():
    as_float = shaper(Types.FLOAT())
    assert as_float(110.1) == struct.unpack("f", struct.pack("f", 110.1))[0] != 110.1
    assert as_float(3) == 3.0 and type(as_float(3)) is float
    assert shaper(Types.DOUBLE())(110.1) == 110.1
    assert as_float(1e300) == float("inf")  # as PyFlink's C cast to float


@pytest.mark.parametrize(
    "type_info, low, high",
    [
        (Types.BYTE(), -128, 127),
        (Types.SHORT(), -(2**15), 2**15 - 1),
        (Types.INT(), -(2**31), 2**31 - 1),
    ],
)
def test_integer_types_are_range_checked(type_info, low, high):
    shape = shaper(type_info)
    assert shape(low) == low and shape(high) == high
    for bad in (low - 1, high + 1):
        with pytest.raises(OverflowError, match=f"{bad} is out of range"):
            shape(bad)
    with pytest.raises(TypeError, match="needs an int"):
        shape("7")


def test_row_types_make_named_rows_and_keep_the_kind():
    shape = shaper(Types.ROW_NAMED(["id", "name"], [Types.INT(), Types.STRING()]))
    row = shape((1, "Alice"))
    assert isinstance(row, Row) and row.id == 1 and row["name"] == "Alice" and row[0] == 1
    assert row.as_dict() == {"id": 1, "name": "Alice"}
    retraction = Row.of_kind(RowKind.DELETE, name="Bob", id=2)
    shaped = shape(retraction)
    assert list(shaped) == [2, "Bob"] and shaped.get_row_kind() is RowKind.DELETE
    positional = shaper(Types.ROW([Types.STRING(), Types.FLOAT()]))(("x", 0.1))
    assert positional.f0 == "x" and positional.f1 == struct.unpack("f", struct.pack("f", 0.1))[0]


def test_tuples_lists_and_untyped_values():
    pair = shaper(Types.TUPLE([Types.STRING(), Types.INT()]))
    assert pair(["a", 1]) == ("a", 1) and pair(("a", 1)) == ("a", 1)
    assert pair(("a", None)) == ("a", None)
    with pytest.raises(OverflowError, match="out of range for Types.INT"):
        pair(("a", 2**40))
    with pytest.raises(ValueError, match="has 2 fields; got 3"):
        pair(("a", 1, 2))
    single = shaper(Types.TUPLE([Types.FLOAT()]))((0.1,))
    assert single == (struct.unpack("f", struct.pack("f", 0.1))[0],)
    assert shaper(Types.LIST(Types.FLOAT()))([1, 2]) == [1.0, 2.0]
    assert shaper(None) is None and shaper(Types.PICKLED_BYTE_ARRAY()) is None


def test_printed_text_is_java_to_string_for_typed_values():
    assert formatter(Types.TUPLE([Types.STRING(), Types.INT()]))(("apple", 2)) == "(apple,2)"
    nested = Types.TUPLE([Types.INT(), Types.ROW([Types.STRING(), Types.BOOLEAN()])])
    assert formatter(nested)((1, Row("x", True))) == "(1,+I[x, true])"
    assert formatter(Types.ROW([Types.INT(), Types.STRING()]))(Row(1, "Alice")) == "+I[1,Alice]"
    assert formatter(Types.BOOLEAN())(False) == "false"
    assert formatter(Types.LIST(Types.INT()))([1, 2]) == "[1, 2]"
    assert formatter(None)(("apple", 2)) == "('apple', 2)"
    assert formatter(Types.TUPLE([Types.STRING(), Types.INT()]))(("a", None)) == "(a,null)"


@pytest.mark.parametrize(
    "value, double, single",
    [
        (1.0, "1.0", "1.0"),
        (110.1, "110.1", "110.1"),
        (1e10, "1.0E10", "1.0E10"),
        (1e-4, "1.0E-4", "1.0E-4"),
        (0.001, "0.001", "0.001"),
        (12345678.9, "1.23456789E7", "1.2345679E7"),
        (-0.0, "-0.0", "-0.0"),
        (float("inf"), "Infinity", "Infinity"),
        (float("nan"), "NaN", "NaN"),
    ],
)
def test_java_floating_point_text(value, double, single):
    assert java_double_string(value) == double
    assert java_float_string(value) == single


def test_declared_types_shape_what_the_next_function_sees(mode):
    env = env_with(2)
    people = env.from_collection(
        [(1, "Alice"), (2, "Bob")],
        type_info=Types.ROW_NAMED(["id", "name"], [Types.INT(), Types.STRING()]),
    )
    seen = people.map(lambda r: (r.id, r.name, type(r).__name__)).rebalance()
    halves = env.from_collection([0.1, 0.2], type_info=Types.DOUBLE()).map(
        lambda x: x, output_type=Types.FLOAT()
    )
    assert Counter(mode.collect(seen)) == Counter([(1, "Alice", "Row"), (2, "Bob", "Row")])
    expected = [struct.unpack("f", struct.pack("f", x))[0] for x in (0.1, 0.2)]
    assert sorted(mode.collect(halves.map(lambda x: x))) == expected


def test_streams_report_their_declared_type():
    env = env_with(1)
    untyped = env.from_collection([1])
    assert untyped.get_type() == Types.PICKLED_BYTE_ARRAY()
    typed = untyped.map(lambda x: (x, x), output_type=Types.TUPLE([Types.INT(), Types.INT()]))
    assert typed.get_type() == Types.TUPLE([Types.INT(), Types.INT()])
    assert typed.key_by(lambda t: t[0]).get_type() == typed.get_type()
    assert typed.filter(lambda t: True).rebalance().get_type() == typed.get_type()


def test_an_int_out_of_range_fails_the_job_with_a_clear_error(mode):
    env = env_with(1)
    stream = env.from_collection([1, 2**40]).map(lambda x: x, output_type=Types.INT())
    with pytest.raises(JobExecutionError, match=r"1099511627776 is out of range for Types.INT"):
        mode.collect(stream)


def test_print_writes_java_text_with_subtask_prefixes(capfd):
    env = env_with(2)
    pairs = env.from_collection(
        [("a", 1), ("b", 2)], type_info=Types.TUPLE([Types.STRING(), Types.INT()])
    )
    pairs.print()
    pairs.map(lambda p: Row(p[0], p[1]), Types.ROW([Types.STRING(), Types.INT()])).print("rows")
    env.execute("print")
    lines = capfd.readouterr().out.splitlines()
    stripped = Counter(line.split("> ", 1)[1] for line in lines)
    assert stripped == Counter(["(a,1)", "(b,2)", "+I[a,1]", "+I[b,2]"])
    assert all(line[0] in "12" or line.startswith(("rows:1> ", "rows:2> ")) for line in lines)


# ------------------------------------------------------------------ yield output_tag, value

EVEN = OutputTag("even", Types.INT())
NOTES = OutputTag("notes")


class EvenCo(CoProcessFunction):
    def process_element1(self, value, ctx):
        yield (EVEN, value) if value % 2 == 0 else value

    def process_element2(self, value, ctx):
        yield NOTES, f"second {value}"


class EvenKeyedCo(KeyedCoProcessFunction):
    def process_element1(self, value, ctx):
        yield (EVEN, value) if value % 2 == 0 else value

    def process_element2(self, value, ctx):
        yield NOTES, f"second {value}"


RULES = MapStateDescriptor("rules", Types.INT(), Types.STRING())


class EvenBroadcast(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield (EVEN, value) if value % 2 == 0 else value

    def process_broadcast_element(self, value, ctx):
        yield NOTES, f"second {value}"


class EvenKeyedBroadcast(KeyedBroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield (EVEN, value) if value % 2 == 0 else value

    def process_broadcast_element(self, value, ctx):
        yield NOTES, f"second {value}"


@pytest.mark.parametrize("kind", ["co_process", "keyed_co_process", "broadcast", "keyed_broadcast"])
def test_two_input_functions_yield_to_side_outputs(mode, kind):
    env = env_with(2)
    first = env.from_collection([1, 2, 3, 4])
    second = env.from_collection([10, 20])
    if kind == "co_process":
        result = first.connect(second).process(EvenCo())
    elif kind == "keyed_co_process":
        result = first.key_by(lambda v: v % 2).connect(second.key_by(lambda v: v % 2))
        result = result.process(EvenKeyedCo())
    elif kind == "broadcast":
        result = first.connect(second.broadcast(RULES)).process(EvenBroadcast())
    else:
        result = first.key_by(lambda v: v).connect(second.broadcast(RULES))
        result = result.process(EvenKeyedBroadcast())
    notes_per_subtask = 2 if "broadcast" in kind else 1  # broadcast records reach both
    tagged = (
        result.map(lambda v: ("main", v))
        .union(result.get_side_output(EVEN).map(lambda v: ("even", v)))
        .union(result.get_side_output(NOTES).map(lambda v: ("notes", v)))
    )
    expected = [("main", 1), ("main", 3), ("even", 2), ("even", 4)]
    expected += [("notes", "second 10"), ("notes", "second 20")] * notes_per_subtask
    assert Counter(mode.collect(tagged)) == Counter(expected)


class Stamp(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[1]


class CountAll(ProcessAllWindowFunction[tuple, int, TimeWindow]):
    def process(self, context: ProcessAllWindowFunction.Context[TimeWindow], elements):
        elements = list(elements)
        yield NOTES, f"window {context.window().start}"
        yield len(elements)


class PairUp(ProcessJoinFunction):
    def process_element(self, left, right, ctx):
        yield NOTES, f"{left[0]}~{right[0]}"
        yield left[0], right[0]


def test_window_all_and_interval_join_yield_to_side_outputs(mode):
    env = env_with(2)
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(0)
    ).with_timestamp_assigner(Stamp())
    events = env.from_collection([("a", 1), ("b", 2), ("c", 12)]).assign_timestamps_and_watermarks(
        strategy
    )
    counts = events.window_all(TumblingEventTimeWindows.of(Time.milliseconds(10))).process(
        CountAll()
    )
    others = env.from_collection([("x", 3)]).assign_timestamps_and_watermarks(strategy)
    joined = (
        events.key_by(lambda e: 0)
        .interval_join(others.key_by(lambda e: 0))
        .between(Time.milliseconds(-2), Time.milliseconds(2))
        .process(PairUp())
    )
    everything = (
        counts.map(lambda v: ("count", v))
        .union(counts.get_side_output(NOTES).map(lambda v: ("count-note", v)))
        .union(joined.map(lambda v: ("joined", v)))
        .union(joined.get_side_output(NOTES).map(lambda v: ("join-note", v)))
    )
    assert Counter(mode.collect(everything)) == Counter(
        [
            ("count", 2),
            ("count", 1),
            ("count-note", "window 0"),
            ("count-note", "window 10"),
            ("joined", ("a", "x")),
            ("joined", ("b", "x")),
            ("join-note", "a~x"),
            ("join-note", "b~x"),
        ]
    )


class StampOf(ProcessFunction):
    def process_element(self, value, ctx):
        yield "process", ctx.timestamp()


class StampOfCo(CoProcessFunction):
    def process_element1(self, value, ctx):
        yield "co-1", ctx.timestamp()

    def process_element2(self, value, ctx):
        yield "co-2", ctx.timestamp()


class StampOfKeyedCo(KeyedCoProcessFunction):
    def process_element1(self, value, ctx):
        yield "keyed-co-1", ctx.timestamp()

    def process_element2(self, value, ctx):
        yield "keyed-co-2", ctx.timestamp()


class StampOfBroadcast(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield "broadcast", ctx.timestamp()

    def process_broadcast_element(self, value, ctx):
        yield "broadcast-rule", ctx.timestamp()


class StampOfKeyedBroadcast(KeyedBroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield "keyed-broadcast", ctx.timestamp()

    def process_broadcast_element(self, value, ctx):
        yield "keyed-broadcast-rule", ctx.timestamp()


class TimerAfterStamp(KeyedProcessFunction):
    """``ctx.timestamp() + delay`` on a record without a timestamp, as PyFlink programs do."""

    def process_element(self, value, ctx):
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 1000)
        yield "keyed", ctx.timestamp()

    def on_timer(self, timestamp, ctx):
        yield "timer", (timestamp, ctx.timestamp())


def test_a_record_without_a_timestamp_has_long_min_value_as_pyflink_gives(mode):
    """PyFlink's ctx.timestamp() is Long.MIN_VALUE for a record without a timestamp (its Java
    side sends that), in every process function, not None as its docstring says; a timer at
    ``ctx.timestamp() + delay`` fires at the end of the input."""
    env = env_with(1)
    first = env.from_collection([1], type_info=Types.INT())
    second = env.from_collection([2], type_info=Types.INT())
    everything = first.process(StampOf()).union(
        first.connect(second).process(StampOfCo()),
        first.key_by(lambda v: v).connect(second.key_by(lambda v: v - 1)).process(StampOfKeyedCo()),
        first.connect(second.broadcast(RULES)).process(StampOfBroadcast()),
        first.key_by(lambda v: v).connect(second.broadcast(RULES)).process(StampOfKeyedBroadcast()),
        first.key_by(lambda v: v).process(TimerAfterStamp()),
    )
    no_timestamp = -(2**63)
    kinds = ["process", "co-1", "co-2", "keyed-co-1", "keyed-co-2", "broadcast"]
    kinds += ["broadcast-rule", "keyed-broadcast", "keyed-broadcast-rule", "keyed"]
    expected = [(kind, no_timestamp) for kind in kinds]
    expected.append(("timer", (no_timestamp + 1000, no_timestamp + 1000)))
    assert Counter(mode.collect(everything)) == Counter(expected)


def test_a_tagged_pair_stays_in_the_main_output_without_side_outputs(mode):
    """As PyFlink: (tag, value) is routed only when the operator has side outputs."""
    env = env_with(1)
    result = env.from_collection([1]).key_by(lambda v: v).process(_YieldTagged())
    assert [type(v[0]).__name__ for v in mode.collect(result)] == ["OutputTag"]


class _YieldTagged(KeyedProcessFunction):
    def process_element(self, value, ctx):
        yield NOTES, value


# ------------------------------------------------------------------ generic classes


def test_pyflink_generic_classes_are_subscriptable():
    class Sum(WindowFunction[tuple, tuple, str, CountWindow]):
        def apply(self, key: str, window: CountWindow, inputs: Iterable[tuple]):
            return [(key, sum(i[0] for i in inputs))]

    class Keep(ProcessWindowFunction[tuple, tuple, KEY, TimeWindow]):
        def process(self, key, context: ProcessWindowFunction.Context[TimeWindow], elements):
            return list(elements)

    assert Sum().apply("k", None, [(1,), (2,)]) == [("k", 3)]
    assert Keep().process("k", None, [1]) == [1]
    assert ValueState[int] is not None
    assert TumblingEventTimeWindows[tuple] is not None


# ------------------------------------------------------------------ environment methods


def test_add_python_file_makes_a_module_importable_by_the_job(tmp_path: Path):
    """Embedded: the file's directory goes on sys.path; the path is kept under Flink's
    ``python.files`` key for a cluster submission to ship."""
    helper = tmp_path / "pyflink_semantics_helper.py"
    helper.write_text("def triple(x):\n    return 3 * x\n")
    env = env_with(1)
    env.add_python_file(str(helper))
    assert env._configuration["python.files"] == str(helper)

    def use_helper(x):
        import pyflink_semantics_helper

        return pyflink_semantics_helper.triple(x)

    with env.from_collection([1, 2]).map(use_helper).execute_and_collect() as results:
        assert list(results) == [3, 6]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        env.add_python_file(str(tmp_path / "missing.py"))


def test_jvm_and_interpreter_settings_are_accepted_and_noted(tmp_path: Path, caplog):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests\n")
    env = env_with(1)
    with caplog.at_level(logging.INFO, logger="strom"):
        env.add_jars("file:///opt/flink-connector-kafka.jar")
        env.add_classpaths("file:///opt/lib.jar")
        env.set_python_requirements(str(requirements))
        env.set_python_executable("/usr/bin/python3-other")
    assert env._configuration["pipeline.jars"] == "file:///opt/flink-connector-kafka.jar"
    assert env._configuration["python.requirements"] == str(requirements)
    assert env._configuration["python.executable"] == "/usr/bin/python3-other"
    assert "no JVM" in caplog.text and "python.requirements" in caplog.text
    env.from_collection([1]).map(lambda x: x).print()
    env.execute("settings accepted")


def test_job_client_answers_pyflink_future_calls():
    """``execute_async().get_job_execution_result().result()`` is how PyFlink programs wait."""
    from strom.common import JobStatus

    env = env_with(1)
    env.from_collection([1, 2]).map(lambda x: x).add_sink(lambda value: None)
    client = env.execute_async("futures")
    result = client.get_job_execution_result().result()
    assert result.get_job_id() == client.get_job_id()
    status = client.get_job_status()
    assert status == "FINISHED" and status.result() is JobStatus.FINISHED


class _CtxOutput(KeyedProcessFunction):
    def process_element(self, value, ctx):
        ctx.output(FLOATS, value)
        yield value


FLOATS = OutputTag("floats", Types.FLOAT())


def test_ctx_output_shapes_by_the_tag_type_too(mode):
    env = env_with(1)
    main = env.from_collection([0.1]).key_by(lambda v: 0).process(_CtxOutput())
    side = main.get_side_output(FLOATS)
    got = mode.collect(main.map(lambda v: ("main", v)).union(side.map(lambda v: ("side", v))))
    assert sorted(got) == [("main", 0.1), ("side", struct.unpack("f", struct.pack("f", 0.1))[0])]


# ------------------------------------------------------------------ default parallelism


def test_an_embedded_job_runs_at_the_machines_cores_unless_told_otherwise(capfd):
    """PyFlink's local default parallelism is the number of cores; a configured
    ``parallelism.default`` or ``set_parallelism`` wins over it."""
    import os

    from strom.common import Configuration

    cores = len(os.sched_getaffinity(0))
    env = StreamExecutionEnvironment.get_execution_environment()
    assert env.get_parallelism() == cores
    configured = Configuration().set_integer("parallelism.default", 3)
    assert StreamExecutionEnvironment.get_execution_environment(configured).get_parallelism() == 3
    env.from_collection([1, 2, 3, 4]).map(lambda x: x * 10).print()
    env.execute("default parallelism")
    lines = capfd.readouterr().out.splitlines()
    assert sorted(line.split("> ")[-1] for line in lines) == ["10", "20", "30", "40"]
    prefixed = [line for line in lines if re.match(r"^\d+> ", line)]
    assert len(prefixed) == (4 if cores > 1 else 0)


# ------------------------------------------------------------------ types given at the source


class _PairsSource(Source):
    """A connector source of plain tuples, read by one subtask."""

    def is_bounded(self) -> bool:
        return True

    def create_reader(self, subtask_index: int, parallelism: int):
        return CollectionSource(
            [("Alice", 0.1), ("Bob", 2.5)] if subtask_index == 0 else []
        ).create_reader(0, 1)


class _PairsFunction(SourceFunction):
    def run(self, ctx) -> None:
        for pair in [("Alice", 0.1), ("Bob", 2.5)]:
            ctx.collect(pair)

    def cancel(self) -> None:
        pass


SCORE = Types.ROW_NAMED(["name", "score"], [Types.STRING(), Types.FLOAT()])


@pytest.mark.parametrize("kind", ["from_source", "add_source"])
def test_a_sources_type_info_shapes_what_it_emits(mode, kind):
    """The type given to ``from_source``/``add_source`` is the stream's: its values are what
    PyFlink's encoding with that type gives (here named rows with a 32-bit float)."""
    env = env_with(1)
    if kind == "from_source":
        scores = env.from_source(_PairsSource(), None, "pairs", type_info=SCORE)
    else:
        scores = env.add_source(_PairsFunction(), "pairs", type_info=SCORE)
    assert scores.get_type() == SCORE
    seen = scores.map(lambda r: (type(r).__name__, r.name, r.score, str(r)))
    single = struct.unpack("f", struct.pack("f", 0.1))[0]
    assert sorted(mode.collect(seen)) == [
        ("Row", "Alice", single, f"Row(name='Alice', score={single})"),
        ("Row", "Bob", 2.5, "Row(name='Bob', score=2.5)"),
    ]


def test_key_type_shapes_the_keys_keyed_functions_see(mode):
    env = env_with(2)
    pairs = env.from_collection([("a", 1), ("b", 2)])
    keys = pairs.key_by(lambda p: p[1] / 10, key_type=Types.FLOAT()).process(_CurrentKey())
    tuples = pairs.key_by(lambda p: [p[0]], key_type=Types.TUPLE([Types.STRING()])).process(
        _CurrentKey()
    )
    single = [struct.unpack("f", struct.pack("f", x))[0] for x in (0.1, 0.2)]
    assert sorted(mode.collect(keys)) == single
    assert sorted(mode.collect(tuples)) == [("a",), ("b",)]


class _CurrentKey(KeyedProcessFunction):
    def process_element(self, value, ctx):
        yield ctx.get_current_key()
