"""The per-record path between tasks: key-group placement, the record codec, batch copies."""

from __future__ import annotations

import enum
import shutil
import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jobs_support import CountedCalls, Mode

from strom.common import Row
from strom.datastream import StreamExecutionEnvironment
from strom.graph import partitioning
from strom.graph.partitioning import ForwardPartitioner, KeyGroupPartitioner, key_group_of
from taskmanager.network import RECORDS, OutputChannel, RecordWriter, decode, elements, encode
from taskmanager.runtime import operators


@pytest.fixture(params=["compiled", "python"])
def split_loop(request, monkeypatch):
    """Each test of the hash split runs with the compiled loop (strom/_speedups.c) and with
    the Python one it stands in for."""
    if request.param == "python":
        monkeypatch.setattr(partitioning, "_speedups", None)
    elif partitioning._speedups is None:
        pytest.skip("strom._speedups is not built here (no C compiler at install)")
    return request.param


class Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.next: Node | None = None


def test_placement_is_the_key_group_of_every_key_across_batches_and_key_types(split_loop):
    deep: object = "a"
    for _ in range(10):  # deeper than the compiled hash goes: placed by Python
        deep = (deep, 1)
    keys = ["a", "b", "a", 7, 7.0, True, 1, None, b"x", (1, "a"), [1, "a"], -0.0, 0, "a", deep]
    partitioner = KeyGroupPartitioner(lambda record: record[0], 128)
    partitioner.setup(0, 1, 5)
    for _ in range(2):  # the second batch is served from the cache
        records = [(key, index) for index, key in enumerate(keys)]
        for channel, share, stamps in partitioner.split(records, list(range(len(keys)))):
            assert stamps == [index for _, index in share]
            for key, _ in share:
                assert channel == key_group_of(key, 128) * 5 // 128, key


def test_the_key_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(partitioning, "_speedups", None)  # the compiled loop keeps no cache
    partitioner = KeyGroupPartitioner(lambda record: record, 128)
    partitioner.setup(0, 1, 3)
    for start in range(0, 3 * partitioner.CACHE_SIZE, 10_000):
        partitioner.split(list(range(start, start + 10_000)), None)
    assert len(partitioner._channels) <= partitioner.CACHE_SIZE + 10_000
    big = KeyGroupPartitioner(lambda record: record, 128)
    big.setup(0, 1, 3)
    big.split(["x" * 10_000, ("a",) * 20, "small"], None)
    assert list(big._channels) == ["small"]  # big keys are placed, not kept


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


SCALARS = st.one_of(
    st.text(),  # lone surrogates too: their stable hash encodes them with "surrogatepass"
    st.integers(),  # beyond 64 bits too
    st.integers(min_value=-(2**63) - 1, max_value=2**64),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),  # infinities, -0.0, integral floats beyond 64 bits
    st.binary(max_size=8),
    st.sampled_from([Color.RED, Name("a"), Name("é"), Row("a", 1), frozenset({1, "b"})]),
)
# Tuples and lists of those, nested deeper than the compiled hash goes (8).
KEYS = st.recursive(
    SCALARS,
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(KEYS, max_size=40),
    n=st.integers(min_value=2, max_value=9),
    max_parallelism=st.sampled_from([9, 128, 4096, 32768]),
    stamped=st.booleans(),
)
def test_the_compiled_split_places_every_record_as_the_python_loop_does(
    keys, n, max_parallelism, stamped
):
    if partitioning._speedups is None:
        pytest.skip("strom._speedups is not built here (no C compiler at install)")
    records = [(key, index) for index, key in enumerate(keys)]
    stamps = [index * 10 for index in range(len(keys))] if stamped else None

    def split(compiled: bool) -> list:
        partitioner = KeyGroupPartitioner(lambda record: record[0], max_parallelism)
        partitioner.setup(0, 1, n)
        saved = partitioning._speedups
        if not compiled:
            partitioning._speedups = None
        try:
            return partitioner.split_with_keys(records, stamps)
        finally:
            partitioning._speedups = saved

    compiled = split(True)
    assert repr(compiled) == repr(split(False))  # repr: -0.0 and 0, True and 1 stay apart
    for channel, share, _, share_keys in compiled:
        assert [key for key, _ in share] == share_keys
        for key in share_keys:
            assert channel == key_group_of(key, max_parallelism) * n // max_parallelism


def test_the_split_fails_as_the_key_selector_and_the_timestamps_do(split_loop):
    def broken(record):
        if record == 3:
            raise KeyError("no key for 3")
        return record

    partitioner = KeyGroupPartitioner(broken, 128)
    partitioner.setup(0, 1, 4)
    with pytest.raises(KeyError, match="no key for 3"):
        partitioner.split_with_keys([1, 2, 3, 4], None)
    with pytest.raises(ValueError):
        partitioner.split_with_keys([1, 2], [10])  # timestamps not parallel to the records


def test_the_compiled_split_is_built_where_a_c_compiler_is():
    """An install on a machine with a compiler and Python's headers must not go without the
    compiled loop unnoticed (setup.py builds it as optional, so a failure there is silent)."""
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not (shutil.which("cc") or shutil.which("gcc")) or not headers.exists():
        pytest.skip("no C compiler or no Python headers here: the Python loop is used")
    assert partitioning._speedups is not None, "strom._speedups failed to build; see pip -v"


def _reduce_in_python(reduce, table, values, keys):
    """ReduceOperator.process_keyed's Python loop."""
    out = []
    for value, key in zip(values, keys, strict=True):
        if key in table:
            value = reduce(table[key], value)
        table[key] = value
        out.append(value)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", 1.0, None])), st.integers()
        ),
        max_size=60,
    )
)
def test_the_compiled_reduce_runs_as_the_python_loop_does(records):
    if partitioning._speedups is None:
        pytest.skip("strom._speedups is not built here (no C compiler at install)")
    keys = [key for key, _ in records]

    def add(a, b):
        return (a[0], a[1] + b[1])

    expected_table = {"other": 1}
    expected = _reduce_in_python(add, expected_table, records, keys)
    table = {"other": 1}
    got = partitioning._speedups.reduce_batch(add, table, records, keys)
    assert repr(got) == repr(expected) and repr(table) == repr(expected_table)
    # Chained to its input, the loop finds the keys itself (a bound method as the selector).
    table = {"other": 1}
    got = partitioning._speedups.reduce_batch(add, table, records, None, _FirstField().of)
    assert repr(got) == repr(expected) and repr(table) == repr(expected_table)


class _FirstField:
    def of(self, record):
        return record[0]


def test_the_compiled_reduce_stops_where_the_python_loop_does():
    if partitioning._speedups is None:
        pytest.skip("strom._speedups is not built here (no C compiler at install)")
    reduce_batch = partitioning._speedups.reduce_batch
    values = [1, 2, 3, 4]

    def fails_on_three(a, b):
        if b == 3:
            raise RuntimeError("user code failed")
        return a + b

    table: dict = {}
    with pytest.raises(RuntimeError, match="user code failed"):
        reduce_batch(fails_on_three, table, values, ["k"] * 4)
    assert table == {"k": 3}  # the records before the failing one were reduced
    with pytest.raises(TypeError):
        reduce_batch(fails_on_three, {"k": 1}, [1], [["unhashable"]])
    with pytest.raises(ValueError):
        reduce_batch(fails_on_three, {}, [1, 2], ["k"])

    def empties_the_batch(a, b):
        values.clear()  # user code that changes the batch under the loop
        return a + b

    assert reduce_batch(empties_the_batch, {}, values, ["k"] * 4) == [1, 3]

    def fails_on_four(value):
        if value == 4:
            raise RuntimeError("key selector failed")
        return "k"

    table = {}
    with pytest.raises(RuntimeError, match="key selector failed"):
        reduce_batch(lambda a, b: a + b, table, [1, 2, 4, 8], None, fails_on_four)
    assert table == {"k": 3}
    with pytest.raises(TypeError):
        reduce_batch(lambda a, b: a + b, {}, [1], None)  # neither keys nor a key selector


def test_the_compiled_sink_loop_calls_invoke_in_order_and_stops_where_it_fails():
    if operators._speedups is None:
        pytest.skip("strom._speedups is not built here (no C compiler at install)")
    seen = []

    class Sink:
        def invoke(self, value, context):
            if value == "boom":
                raise RuntimeError("sink failed")
            seen.append((value, context))
            if value == "a":
                values.append("late")  # user code that grows the batch under the loop

    values = ["a", "b"]
    context = object()
    assert operators._speedups.call_each(Sink().invoke, values, context) is None
    assert seen == [("a", context), ("b", context), ("late", context)]
    seen.clear()
    with pytest.raises(RuntimeError, match="sink failed"):
        operators._speedups.call_each(Sink().invoke, ["x", "boom", "y"], None)
    assert seen == [("x", None)]


def test_a_chained_flat_map_hands_its_successors_pieces_of_about_a_batch():
    from strom.graph.stream_graph import OperatorSpec
    from taskmanager.runtime.context import OperatorContext

    class Recording:
        def __init__(self) -> None:
            self.batches: list = []

        def process_batch(self, values, timestamps):
            self.batches.append((list(values), timestamps))

    context = OperatorContext("job", "task", "words", "words", 0, 1, 128)
    flat_map = operators.create_operator(
        OperatorSpec("flat_map", function=lambda n: range(n)), context
    )
    flat_map.open()
    chained = Recording()
    flat_map.output = operators.Output([chained], [])
    flat_map.process_batch([50] * 100, None)
    sizes = [len(values) for values, _ in chained.batches]
    assert sum(sizes) == 5000
    # Cut once a piece is full: each at least CHAINED_BATCH, less one input's records over it.
    assert all(
        operators.CHAINED_BATCH <= size < operators.CHAINED_BATCH + 50 for size in sizes[:-1]
    )
    assert 0 < sizes[-1] < operators.CHAINED_BATCH + 50
    assert [v for values, _ in chained.batches for v in values] == [*range(50)] * 100
    chained.batches.clear()
    flat_map.process_batch([2000, 2000], [7, 9])
    stamps = [s for _, stamps in chained.batches for s in stamps]
    assert stamps == [7] * 2000 + [9] * 2000 and len(chained.batches) == 2
    # Into a record writer the batch goes whole: the writer cuts its own.
    writer = Recording()
    writer.emit = writer.process_batch
    flat_map.output = operators.Output([], [writer])
    flat_map.process_batch([3000, 3000], None)
    assert [len(values) for values, _ in writer.batches] == [6000]


def test_a_reduce_job_gives_the_same_results_with_the_compiled_loop_and_without(monkeypatch):
    if operators._speedups is None:
        pytest.skip("strom._speedups is not built here (no C compiler at install)")

    def run() -> list:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(1)
        words = env.from_collection([(w, 1) for w in "abcabcaab" * 50])
        summed = words.key_by(lambda p: p[0]).reduce(lambda a, b: (a[0], a[1] + b[1]))
        return Mode("embedded").collect(summed)

    counting = CountedCalls(operators._speedups)
    monkeypatch.setattr(operators, "_speedups", counting)
    compiled = run()
    assert counting.calls > 0
    monkeypatch.setattr(operators, "_speedups", None)
    assert run() == compiled
    assert max(count for word, count in compiled if word == "a") == 200


def test_record_batches_round_trip_with_shared_and_cyclic_records():
    shared = {"big": list(range(100))}
    node = Node("a")
    node.next = node  # a cycle: the batch is pickled the memoizing way
    for values in ([("w", 1), ("x", 2)], [shared, shared], [node], []):
        element = decode(encode((RECORDS, values, None)))
        assert element[0] == RECORDS
        assert len(element[1]) == len(values)
    again = decode(encode((RECORDS, [node], [5])))
    assert again[1][0].next is again[1][0]
    assert again[2] == [5]
    assert decode(encode((RECORDS, [shared, shared], None)))[1] == [shared, shared]


class Collecting(OutputChannel):
    def __init__(self) -> None:
        self.elements: list = []

    def send(self, element) -> None:
        self.elements.append(element)

    def close(self) -> None:
        pass


def test_a_partial_batch_is_sent_without_a_copy_and_the_callers_list_is_never_changed():
    channel = Collecting()
    writer = RecordWriter(ForwardPartitioner(), [channel], 0, 1, batch_size=100)
    first = [1, 2, 3]
    writer.emit(first)
    writer.flush()
    assert channel.elements[0][1] is first  # sent as it was: no copy
    second, third = [4, 5], [6]
    writer.emit(second, [40, 50])
    writer.emit(third, [60])  # merged into a copy: the emitted lists stay as they were
    writer.flush()
    assert channel.elements[1] == (RECORDS, [4, 5, 6], [40, 50, 60])
    assert second == [4, 5] and third == [6]


def test_a_hash_edge_hands_on_the_keys_it_computed_with_every_share():
    records = [(f"k{i % 13}", i) for i in range(100)]
    for consumers in (1, 4):
        partitioner = KeyGroupPartitioner(lambda record: record[0], 128)
        partitioner.setup(0, 1, consumers)
        stamps = list(range(100))
        shares = partitioner.split_with_keys(records, stamps)
        assert sum(len(share) for _, share, _, _ in shares) == 100
        for channel, share, share_stamps, keys in shares:
            assert keys == [key for key, _ in share]
            assert share_stamps == [index for _, index in share]
            assert all(channel == key_group_of(key, 128) * consumers // 128 for key in keys)
    # Partitioners that compute no keys hand on None.
    forward = ForwardPartitioner()
    forward.setup(0, 1, 1)
    assert forward.split_with_keys([1, 2], None) == [(0, [1, 2], None, None)]


def test_the_writer_sends_the_keys_with_the_batch_merged_and_in_pieces():
    channels = [Collecting(), Collecting()]
    writer = RecordWriter(KeyGroupPartitioner(lambda r: r[0], 128), channels, 0, 1, batch_size=8)
    records = [(f"k{i % 7}", i) for i in range(100)]
    for start in range(0, 60, 3):  # small batches: merged into pending buffers
        writer.emit(records[start : start + 3])
    writer.emit(records[60:])  # a big one: sent in pieces
    writer.flush()
    seen = []
    for channel in channels:
        for element in channel.elements:
            assert len(element) == 4
            assert element[3] == [key for key, _ in element[1]]
            seen.extend(element[1])
    assert sorted(seen, key=lambda r: r[1]) == records


def test_keys_travel_with_a_batch_of_plain_records_and_not_with_a_pickled_one():
    values = [("a", 1), ("b", 2)]
    element = (RECORDS, values, [5, 6], ["a", "b"])
    if elements._records is None:  # no C module: every batch is pickled, without keys
        assert decode(encode(element)) == element[:3]
    else:
        assert decode(encode(element)) == element
    pickled = [["a"], ["b"]]  # lists: not in the compact layout
    assert decode(encode((RECORDS, pickled, None, ["a", "b"]))) == (RECORDS, pickled, None)
