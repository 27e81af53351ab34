"""The PyFlink-shaped API surface in pure Python: Row, Types, Configuration, time, watermark
strategies, function base classes and state descriptors."""

from __future__ import annotations

import datetime
import pickle

import cloudpickle
import pytest

import strom.common as common
from strom.common import (
    Configuration,
    Duration,
    Encoder,
    ExecutionConfig,
    Row,
    RowKind,
    SimpleStringSchema,
    Time,
    TimestampAssigner,
    TypeInformation,
    Types,
    Watermark,
    WatermarkStrategy,
)
from strom.common.typeinfo import RowTypeInfo, TupleTypeInfo
from strom.datastream import functions
from strom.datastream.functions import (
    AggregateFunction,
    Function,
    KeyedProcessFunction,
    MapFunction,
    ParallelSourceFunction,
    ReduceFunction,
    RuntimeContext,
    SourceFunction,
    TimeDomain,
    TimerService,
)
from strom.datastream.state import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapState,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateTtlConfig,
    ValueState,
    ValueStateDescriptor,
)


def roundtrip(value):
    return pickle.loads(pickle.dumps(value))


# ---------------------------------------------------------------------- Row


def test_positional_row():
    row = Row(1, "a", None)
    assert row[0] == 1 and row[1] == "a" and row[2] is None
    assert row[-1] is None
    assert row[0:2] == [1, "a"]
    assert len(row) == 3
    assert list(row) == [1, "a", None]
    assert repr(row) == "<Row(1, 'a', None)>"  # as PyFlink shows a row without names
    assert list(row._values) == [1, "a", None]
    assert 1 in row
    with pytest.raises(TypeError):
        row.as_dict()
    with pytest.raises(KeyError):
        row["name"]
    with pytest.raises(AttributeError):
        _ = row.name


def test_named_row_keeps_keyword_order():
    row = Row(name="Alice", age=11)
    assert repr(row) == "Row(name='Alice', age=11)"
    assert row._fields == ["name", "age"]
    assert row["name"] == "Alice" and row["age"] == 11
    assert row.name == "Alice" and row.age == 11
    assert row[0] == "Alice" and row[1] == 11
    assert row.as_dict() == {"name": "Alice", "age": 11}
    assert list(row.as_dict()) == ["name", "age"]
    assert "name" in row and "missing" not in row
    with pytest.raises(AttributeError):
        _ = row.missing
    with pytest.raises(KeyError):
        row["missing"]


def test_row_as_class():
    Person = Row("name", "age")
    alice = Person("Alice", 11)
    assert alice == Row(name="Alice", age=11)
    assert alice.age == 11
    assert repr(alice) == "Row(name='Alice', age=11)"
    with pytest.raises(ValueError):
        Person("too", "many", "values")


def test_row_recursive_as_dict():
    row = Row(key=1, value=Row(name="a", age=2), items=[Row(x=1)])
    assert row.as_dict() == {"key": 1, "value": Row(name="a", age=2), "items": [Row(x=1)]}
    assert row.as_dict(True) == {"key": 1, "value": {"name": "a", "age": 2}, "items": [{"x": 1}]}


def test_row_kind_and_equality():
    a, b = Row(1, "x"), Row(1, "x")
    assert a == b and hash(a) == hash(b)
    assert a != Row(1, "y")
    assert a != (1, "x")
    assert Row(a=1) != Row(b=1)
    assert Row(a=1) != Row(1)
    assert a.get_row_kind() is RowKind.INSERT
    b.set_row_kind(RowKind.DELETE)
    assert b.get_row_kind() is RowKind.DELETE
    assert a != b
    with pytest.raises(TypeError):
        a.set_row_kind("+I")


def test_row_kind_short_strings():
    assert [k.short_string() for k in RowKind] == ["+I", "-U", "+U", "-D"]
    assert RowKind.from_short_string("-U") is RowKind.UPDATE_BEFORE
    assert str(RowKind.UPDATE_AFTER) == "+U"
    with pytest.raises(ValueError):
        RowKind.from_short_string("x")


def test_row_is_mutable_by_item_but_not_attribute():
    row = Row(name="a", n=1)
    row["n"] = 2
    row[0] = "b"
    assert row == Row(name="b", n=2)
    with pytest.raises(AttributeError):
        row.n = 3
    with pytest.raises(AttributeError):
        row.other = 3


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_row_pickles_with_names_and_kind(dumps):
    row = Row(word="hi", count=3)
    row.set_row_kind(RowKind.UPDATE_AFTER)
    copy = pickle.loads(dumps(row))
    assert copy == row
    assert copy._fields == ["word", "count"]
    assert copy.get_row_kind() is RowKind.UPDATE_AFTER
    assert roundtrip(Row(1, 2)) == Row(1, 2)


def test_row_keys_hash_like_tuples():
    from strom.graph.partitioning import stable_hash

    assert stable_hash(Row(1, "a")) == stable_hash((1, "a"))
    assert stable_hash(Row(k=1, w="a")) == stable_hash(Row(1, "a"))


def test_set_field_names():
    row = Row(1, 2)
    row.set_field_names(["a", "b"])
    assert row.b == 2
    with pytest.raises(ValueError):
        row.set_field_names(["a"])


# ---------------------------------------------------------------------- Types


BASIC = [
    ("STRING", "String"),
    ("BYTE", "Byte"),
    ("BOOLEAN", "Boolean"),
    ("SHORT", "Short"),
    ("INT", "Integer"),
    ("LONG", "Long"),
    ("FLOAT", "Float"),
    ("DOUBLE", "Double"),
    ("CHAR", "Char"),
    ("BIG_INT", "BigInteger"),
    ("BIG_DEC", "BigDecimal"),
    ("INSTANT", "Instant"),
]


@pytest.mark.parametrize("name,text", BASIC)
def test_basic_types(name, text):
    info = getattr(Types, name)()
    assert isinstance(info, TypeInformation)
    assert info == getattr(Types, name)()
    assert hash(info) == hash(getattr(Types, name)())
    assert repr(info) == text
    assert roundtrip(info) == info


def test_basic_types_differ():
    infos = [getattr(Types, name)() for name, _ in BASIC]
    assert len(set(infos)) == len(infos)


@pytest.mark.parametrize(
    "factory",
    [
        Types.SQL_DATE,
        Types.SQL_TIME,
        Types.SQL_TIMESTAMP,
        Types.PICKLED_BYTE_ARRAY,
        Types.LOCAL_DATE,
        Types.LOCAL_DATE_TIME,
    ],
)
def test_other_atomic_types(factory):
    assert isinstance(factory(), TypeInformation)
    assert factory() == factory()
    assert roundtrip(factory()) == factory()
    assert Types.SQL_DATE() != Types.SQL_TIME()


def test_row_type_info():
    named = Types.ROW_NAMED(["word", "count"], [Types.STRING(), Types.LONG()])
    assert isinstance(named, RowTypeInfo)
    assert named.get_field_names() == ["word", "count"]
    assert named.get_field_types() == [Types.STRING(), Types.LONG()]
    assert named.get_field_index("count") == 1
    assert named.get_field_index("nope") == -1
    assert named.get_arity() == 2
    assert repr(named) == "RowTypeInfo(word: String, count: Long)"
    assert roundtrip(named) == named
    positional = Types.ROW([Types.INT(), Types.STRING()])
    assert positional.get_field_names() == ["f0", "f1"]
    assert positional != named
    with pytest.raises(ValueError):
        Types.ROW_NAMED(["a"], [Types.INT(), Types.INT()])
    with pytest.raises(TypeError):
        Types.ROW([int])


def test_tuple_and_container_types():
    pair = Types.TUPLE([Types.STRING(), Types.INT()])
    assert isinstance(pair, TupleTypeInfo)
    assert pair.get_field_types() == [Types.STRING(), Types.INT()]
    assert pair == Types.TUPLE([Types.STRING(), Types.INT()])
    assert pair != Types.TUPLE([Types.INT(), Types.STRING()])
    assert repr(pair) == "TupleTypeInfo(String, Integer)"
    assert Types.LIST(Types.INT()) == Types.LIST(Types.INT())
    assert Types.LIST(Types.INT()) != Types.LIST(Types.LONG())
    assert Types.MAP(Types.STRING(), Types.INT()).get_value_type() == Types.INT()
    assert Types.PRIMITIVE_ARRAY(Types.INT()) != Types.BASIC_ARRAY(Types.INT())
    assert Types.OBJECT_ARRAY(pair).get_element_type() == pair
    with pytest.raises(TypeError):
        Types.PRIMITIVE_ARRAY(Types.STRING())
    with pytest.raises(TypeError):
        Types.BASIC_ARRAY(pair)
    nested = Types.MAP(Types.STRING(), Types.LIST(Types.ROW([Types.INT()])))
    assert roundtrip(nested) == nested


# ---------------------------------------------------------------------- Configuration


def test_configuration_typed_access():
    config = Configuration()
    assert config.set_string("a.b", "x") is config
    config.set_integer("parallelism.default", 4).set_boolean("flag", True).set_float("f", 0.5)
    assert config.get_string("a.b", "d") == "x"
    assert config.get_string("missing", "d") == "d"
    assert config.get_integer("parallelism.default", 1) == 4
    assert config.get_integer("missing", 7) == 7
    assert config.get_boolean("flag", False) is True
    assert config.get_float("f", 0.0) == 0.5
    assert config.get("parallelism.default") == "4"
    assert config.get("missing", "x") == "x"
    assert config.to_dict() == {"a.b": "x", "parallelism.default": "4", "flag": "true", "f": "0.5"}
    assert config.contains_key("flag") and not config.contains_key("nope")
    assert config.key_set() == {"a.b", "parallelism.default", "flag", "f"}


def test_configuration_bad_values_name_the_key():
    config = Configuration().set_string("rest.port", "eighty")
    with pytest.raises(ValueError, match="rest.port"):
        config.get_integer("rest.port", 0)
    with pytest.raises(ValueError, match="rest.port"):
        config.get_boolean("rest.port", False)
    with pytest.raises(TypeError):
        config.set_integer("x", "1")


def test_configuration_copy_add_all_remove():
    base = Configuration().set_string("a", "1")
    copy = Configuration(base)
    copy.set_string("b", "2")
    assert not base.contains_key("b")
    target = Configuration().add_all(copy, "p.")
    assert target.to_dict() == {"p.a": "1", "p.b": "2"}
    assert target.remove_config("p.a") is True
    assert target.remove_config("p.a") is False
    assert target.to_dict() == {"p.b": "2"}
    assert Configuration({"x": 1}).get_integer("x", 0) == 1
    assert roundtrip(copy) == copy
    mapping: dict = {}
    copy.add_all_to_dict(mapping)
    assert mapping == {"a": "1", "b": "2"}


# ---------------------------------------------------------------------- time


def test_duration():
    assert Duration.of_millis(1500).to_milliseconds() == 1500
    assert Duration.of_seconds(2).to_milliseconds() == 2000
    assert Duration.of_minutes(1).to_milliseconds() == 60_000
    assert Duration.of_hours(1).to_milliseconds() == 3_600_000
    assert Duration.of_days(1).to_milliseconds() == 86_400_000
    assert Duration.of_nanos(2_500_000).to_milliseconds() == 2
    assert Duration.of_seconds(60) == Duration.of_minutes(1)
    assert Duration.of_seconds(1) != Duration.of_millis(999)
    assert repr(Duration.of_seconds(5)) == "Duration.of_seconds(5)"
    assert repr(Duration.of_millis(1500)) == "Duration.of_millis(1500)"
    assert roundtrip(Duration.of_minutes(3)) == Duration.of_minutes(3)


def test_time():
    assert Time.milliseconds(5).to_milliseconds() == 5
    assert Time.seconds(5).to_milliseconds() == 5000
    assert Time.minutes(2).to_milliseconds() == 120_000
    assert Time.hours(1).to_milliseconds() == 3_600_000
    assert Time.days(2).to_milliseconds() == 172_800_000
    assert Time.seconds(60) == Time.minutes(1)
    assert repr(Time.seconds(1)) == "Time.milliseconds(1000)"
    assert roundtrip(Time.hours(1)) == Time.hours(1)


# ---------------------------------------------------------------------- watermarks


class FirstField(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[0]


def test_watermark_strategy_kinds():
    bounded = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(5))
    assert bounded.kind == "bounded_out_of_orderness"
    assert bounded.max_out_of_orderness_ms == 5000
    assert bounded.timestamp_assigner is None and bounded.idleness_ms is None
    monotonous = WatermarkStrategy.for_monotonous_timestamps()
    assert monotonous.kind == "monotonous" and monotonous.max_out_of_orderness_ms == 0
    assert WatermarkStrategy.no_watermarks().kind == "none"
    with pytest.raises(TypeError):
        WatermarkStrategy.for_bounded_out_of_orderness("5 s")


def test_timestamp_assigner_is_normalised_to_a_callable():
    strategy = WatermarkStrategy.for_monotonous_timestamps()
    assert strategy.with_timestamp_assigner(FirstField()) is strategy
    assert strategy.timestamp_assigner((42, "x"), None) == 42
    strategy.with_timestamp_assigner(lambda value, ts: value * 10)
    assert strategy.timestamp_assigner(3, None) == 30
    with pytest.raises(TypeError):
        strategy.with_timestamp_assigner(5)


def test_idleness_and_alignment_are_recorded():
    base = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100))
    base.with_timestamp_assigner(FirstField())
    idle = base.with_idleness(Duration.of_minutes(1))
    assert idle.idleness_ms == 60_000
    assert idle.timestamp_assigner((7,), None) == 7
    assert idle.max_out_of_orderness_ms == 100
    assert base.idleness_ms is None
    aligned = idle.with_watermark_alignment("group", Duration.of_seconds(20))
    assert aligned.watermark_alignment["group"] == "group"
    assert aligned.watermark_alignment["max_drift_ms"] == 20_000
    with pytest.raises(ValueError):
        base.with_idleness(Duration.of_millis(0))


def test_watermark_strategy_travels_with_cloudpickle():
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(1))
    strategy = strategy.with_timestamp_assigner(lambda v, ts: v["ts"]).with_idleness(
        Duration.of_seconds(3)
    )
    copy = pickle.loads(cloudpickle.dumps(strategy))
    assert copy.kind == "bounded_out_of_orderness"
    assert copy.max_out_of_orderness_ms == 1000 and copy.idleness_ms == 3000
    assert copy.timestamp_assigner({"ts": 9}, None) == 9


def test_watermark():
    assert Watermark(5).get_timestamp() == 5
    assert Watermark(5) == Watermark(5) != Watermark(6)
    assert Watermark.MAX_WATERMARK.get_timestamp() == 2**63 - 1
    assert roundtrip(Watermark(3)) == Watermark(3)


# ---------------------------------------------------------------------- execution config


def test_execution_config_standalone():
    config = ExecutionConfig()
    assert config.get_auto_watermark_interval() == 200
    config.set_auto_watermark_interval(50).set_parallelism(3).set_max_parallelism(64)
    assert config.get_auto_watermark_interval() == 50
    assert config.get_parallelism() == 3 and config.get_max_parallelism() == 64
    config.enable_object_reuse()
    assert config.is_object_reuse_enabled()
    config.set_global_job_parameters({"threshold": 10})
    assert config.get_global_job_parameters() == {"threshold": "10"}
    with pytest.raises(ValueError):
        config.set_auto_watermark_interval(-1)


def test_execution_config_of_an_environment():
    from strom.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    config = env.get_config()
    assert isinstance(config, ExecutionConfig)
    config.set_parallelism(3)
    assert env.get_parallelism() == 3
    config.set_global_job_parameters({"k": "v"})
    assert env.get_config().get_global_job_parameters() == {"k": "v"}


# ---------------------------------------------------------------------- serialization


def test_simple_string_encoder():
    encoder = Encoder.simple_string_encoder()
    assert encoder.encode("héllo") == "héllo\n".encode()
    assert encoder.encode(("a", 1)) == b"('a', 1)\n"
    values = ["x", 1, ("y", 2), "é"]
    assert encoder.encode_batch(values) == b"".join(encoder.encode(v) for v in values)
    assert encoder.encode_batch([]) == b""
    latin = Encoder.simple_string_encoder("latin-1")
    assert latin.encode("é") == b"\xe9\n"
    assert pickle.loads(cloudpickle.dumps(encoder)).encode(1) == b"1\n"
    custom = Encoder(lambda v: f"<{v}>".encode())
    assert custom.encode_batch([1, 2]) == b"<1><2>"
    with pytest.raises(ValueError):
        Encoder.simple_string_encoder("no-such-charset")


def test_simple_string_schema():
    schema = SimpleStringSchema()
    assert schema.serialize("héllo") == "héllo".encode()
    assert schema.deserialize("héllo".encode()) == "héllo"
    assert roundtrip(schema) == schema


def test_common_exports():
    required = {
        "Types",
        "TypeInformation",
        "Row",
        "RowKind",
        "Configuration",
        "Encoder",
        "SimpleStringSchema",
        "Duration",
        "Time",
        "WatermarkStrategy",
        "TimestampAssigner",
        "Watermark",
        "ExecutionConfig",
    }
    assert required <= set(common.__all__)
    for name in common.__all__:
        assert getattr(common, name) is not None


# ---------------------------------------------------------------------- functions


def test_function_bases_require_their_method():
    with pytest.raises(TypeError):
        MapFunction()

    class Double(MapFunction):
        def map(self, value):
            return value * 2

    double = Double()
    assert double.map(4) == 8
    assert double.open(None) is None and double.close() is None
    assert isinstance(double, Function)


def test_keyed_process_function_on_timer_is_optional():
    class Echo(KeyedProcessFunction):
        def process_element(self, value, ctx):
            yield value

    echo = Echo()
    assert list(echo.process_element(1, None)) == [1]
    assert echo.on_timer(0, None) is None
    assert issubclass(KeyedProcessFunction.OnTimerContext, KeyedProcessFunction.Context)
    assert {d.name for d in TimeDomain} == {"EVENT_TIME", "PROCESSING_TIME"}


def test_runtime_context_and_timer_service_are_interfaces():
    with pytest.raises(TypeError):
        RuntimeContext()
    with pytest.raises(TypeError):
        TimerService()
    names = {
        "get_task_name",
        "get_number_of_parallel_subtasks",
        "get_max_number_of_parallel_subtasks",
        "get_index_of_this_subtask",
        "get_attempt_number",
        "get_task_name_with_subtasks",
        "get_job_parameter",
        "get_state",
        "get_list_state",
        "get_map_state",
        "get_reducing_state",
        "get_aggregating_state",
    }
    assert names == set(RuntimeContext.__abstractmethods__)

    class Fake(RuntimeContext):
        pass

    for name in names:
        setattr(Fake, name, lambda self, *a: None)
    Fake.__abstractmethods__ = frozenset()
    group = Fake().get_metrics_group()
    counter = group.add_group("g").counter("c")
    counter.inc()
    counter.inc(2)
    assert counter.get_count() == 3
    group.gauge("g", lambda: 1)
    group.meter("m").mark_event()


def test_every_public_function_class_is_documented():
    for name in functions.__all__:
        assert getattr(functions, name).__doc__, name


def test_source_function_shapes():
    class Counter(ParallelSourceFunction):
        def run(self, ctx):
            for i in range(3):
                ctx.collect(i)

    assert issubclass(ParallelSourceFunction, SourceFunction)
    collected = []

    class Ctx:
        collect = staticmethod(collected.append)

    Counter().run(Ctx())
    assert collected == [0, 1, 2]
    assert Counter().cancel() is None


# ---------------------------------------------------------------------- state


class Average(AggregateFunction):
    def create_accumulator(self):
        return 0, 0

    def add(self, value, accumulator):
        return accumulator[0] + value, accumulator[1] + 1

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, acc_a, acc_b):
        return acc_a[0] + acc_b[0], acc_a[1] + acc_b[1]


def test_descriptors():
    value = ValueStateDescriptor("count", Types.LONG())
    assert value.get_name() == "count" and value.get_type_info() == Types.LONG()
    listed = ListStateDescriptor("seen", Types.STRING())
    assert listed.get_type_info() == Types.LIST(Types.STRING())
    mapped = MapStateDescriptor("m", Types.STRING(), Types.INT())
    assert mapped.get_type_info() == Types.MAP(Types.STRING(), Types.INT())
    reducing = ReducingStateDescriptor("sum", lambda a, b: a + b, Types.INT())
    assert isinstance(reducing.get_reduce_function(), ReduceFunction)
    assert reducing.get_reduce_function().reduce(2, 3) == 5
    aggregating = AggregatingStateDescriptor("avg", Average(), Types.TUPLE([Types.INT()] * 2))
    assert isinstance(aggregating.get_agg_function(), Average)
    for descriptor in (value, listed, mapped, reducing, aggregating):
        copy = pickle.loads(cloudpickle.dumps(descriptor))
        assert copy.get_name() == descriptor.get_name()
        assert copy.get_type_info() == descriptor.get_type_info()
    assert pickle.loads(cloudpickle.dumps(reducing)).get_reduce_function().reduce(1, 1) == 2


def test_descriptors_reject_bad_arguments():
    with pytest.raises(ValueError):
        ValueStateDescriptor("", Types.INT())
    with pytest.raises(TypeError):
        ValueStateDescriptor("x", int)
    with pytest.raises(TypeError):
        ReducingStateDescriptor("x", 5, Types.INT())
    with pytest.raises(TypeError):
        AggregatingStateDescriptor("x", lambda a: a, Types.INT())


def test_state_ttl_config():
    ttl = (
        StateTtlConfig.new_builder(Time.seconds(10))
        .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)
        .set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)
        .cleanup_full_snapshot()
        .disable_cleanup_in_background()
        .build()
    )
    assert ttl.get_ttl() == Time.seconds(10)
    assert ttl.get_update_type() is StateTtlConfig.UpdateType.OnReadAndWrite
    assert ttl.get_state_visibility() is StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
    assert ttl.get_ttl_time_characteristic() is StateTtlConfig.TtlTimeCharacteristic.ProcessingTime
    assert ttl.is_enabled()
    assert ttl.get_cleanup_strategies().in_full_snapshot()
    assert not ttl.get_cleanup_strategies().is_cleanup_in_background()
    default = StateTtlConfig.new_builder(Time.days(1)).build()
    assert default.get_update_type() is StateTtlConfig.UpdateType.OnCreateAndWrite
    assert default.get_state_visibility() is StateTtlConfig.StateVisibility.NeverReturnExpired
    assert default.get_cleanup_strategies().is_cleanup_in_background()
    descriptor = ValueStateDescriptor("v", Types.INT())
    assert descriptor.ttl_config is None
    descriptor.enable_time_to_live(ttl)
    assert descriptor.ttl_config is ttl
    assert roundtrip(descriptor).ttl_config == ttl
    with pytest.raises(TypeError):
        descriptor.enable_time_to_live(Time.seconds(1))


def test_state_interfaces_give_the_dict_protocol():
    with pytest.raises(TypeError):
        ValueState()

    class DictMapState(MapState):
        def __init__(self):
            self.d = {}

        def get(self, key):
            return self.d.get(key)

        def put(self, key, value):
            self.d[key] = value

        def put_all(self, dict_value):
            self.d.update(dict_value)

        def remove(self, key):
            self.d.pop(key, None)

        def contains(self, key):
            return key in self.d

        def items(self):
            return list(self.d.items())

        def keys(self):
            return list(self.d)

        def values(self):
            return list(self.d.values())

        def is_empty(self):
            return not self.d

        def clear(self):
            self.d.clear()

    state = DictMapState()
    state["a"] = 1
    state.put_all({"b": 2})
    assert state["a"] == 1 and "b" in state and list(state) == ["a", "b"]
    del state["a"]
    assert list(state.items()) == [("b", 2)]


def test_date_time_and_timedelta_durations_are_accepted():
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(datetime.timedelta(seconds=2))
    assert strategy.max_out_of_orderness_ms == 2000
