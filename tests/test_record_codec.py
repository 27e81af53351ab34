"""Record batches on the wire: the compact layout (strom/_records.c) and its Python reader.

A batch of plain records crosses processes in the compact layout, with its keys; anything else
is pickled. Either way every record must arrive equal to what left and of the same type, a
hostile frame must raise DecodeError and nothing else, and a process without the C module must
read what one with it wrote.
"""

from __future__ import annotations

import collections
import math
import random
import shutil
import sysconfig
from pathlib import Path

import pytest

from taskmanager.network import elements
from taskmanager.network.elements import RECORDS, DecodeError, decode, decode_on_receipt, encode


@pytest.fixture(autouse=True)
def _compact_layout_built(request):
    if elements._records is None and "built_where" not in request.node.name:
        pytest.skip("strom._records is not built here (no C compiler at install)")


def test_the_compact_codec_is_built_where_a_c_compiler_is():
    """setup.py builds strom._records as optional, so a failed build would go unnoticed."""
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not (shutil.which("cc") or shutil.which("gcc")) or not headers.exists():
        pytest.skip("no C compiler or no Python headers here: batches are pickled")
    assert elements._records is not None, "strom._records failed to build; see pip -v"


COMPACT, PICKLED = 6, 0

PLAIN = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    255,
    -129,
    0.0,
    -0.0,
    1.5,
    float("inf"),
    -float("inf"),
    "",
    "word",
    "grüße",
    "日本語",
    "emoji 🎉",
    "\x00\x7f",
    b"",
    b"\x00\xff raw",
    (),
    ("word", 1),
    (1, (2.5, (None, b"x", ("deep", True)))),
    ("a" * 100_000, 7),
]


def same(a, b) -> bool:
    """Equal and of the same types all the way down (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    if type(a) is float:
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


def read_in_python(data: bytes):
    """``decode`` as a process without the C module runs it."""
    saved = elements._records
    elements._records = None
    try:
        return decode(data)
    finally:
        elements._records = saved


def both_readers(data: bytes):
    """The element both readers make of ``data``; they must agree."""
    native, python = decode(data), read_in_python(data)
    assert len(native) == len(python)
    for left, right in zip(native[1:], python[1:], strict=True):
        assert (left is None) == (right is None)
        if left is not None:
            assert all(same(a, b) for a, b in zip(left, right, strict=True))
    return native


def test_plain_records_go_compact_and_come_back_equal_and_of_their_own_types():
    stamps = [None if i % 3 == 0 else i * 1000 - 5 for i in range(len(PLAIN))]
    for timestamps in (None, stamps):
        data = encode((RECORDS, list(PLAIN), timestamps))
        assert data[0] == COMPACT
        element = both_readers(data)
        assert element[0] == RECORDS and len(element) == 3
        assert all(same(a, b) for a, b in zip(element[1], PLAIN, strict=True))
        if timestamps is None:
            assert element[2] is None
        else:
            assert element[2] == stamps
    nan = both_readers(encode((RECORDS, [float("nan")], None)))[1][0]
    assert math.isnan(nan)


def test_records_the_layout_does_not_hold_are_pickled_and_keep_their_types():
    class Word(str):
        pass

    Point = collections.namedtuple("Point", "x y")
    for record in [
        [1, 2],
        {"a": 1},
        Word("w"),
        Point(1, 2),
        2**64,
        "lone \ud800 surrogate",
        ("fine", [1]),
        (((((((((((((((((("too deep",),),),),),),),),),),),),),),),),),),
        1 + 2j,
    ]:
        values = ["plain", record]
        data = encode((RECORDS, values, None, ["plain", "key"]))
        assert data[0] == PICKLED, record
        element = decode(data)
        assert len(element) == 3  # a pickled batch leaves its keys out
        assert type(element[1][1]) is type(record)
        assert element[1][1] == record


def test_keys_travel_as_references_to_their_records_fields_or_as_values():
    values = [("w1", 1), ("w2", 2), "bare", ("w3", 3), (4, "x")]
    keys = [values[0][0], values[1][1], values[2], "computed", values[4][1]]
    data = encode((RECORDS, values, None, keys))
    assert data[0] == COMPACT
    element = both_readers(data)
    assert element[3] == keys
    got, got_keys = element[1], element[3]
    assert got_keys[0] is got[0][0] and got_keys[1] is got[1][1] and got_keys[2] is got[2]
    assert got_keys[4] is got[4][1]
    # A key the layout does not hold makes the batch pickled, without keys.
    data = encode((RECORDS, [("a", 1)], None, [frozenset({"a"})]))
    assert data[0] == PICKLED and len(decode(data)) == 3


def test_a_key_reference_costs_a_byte_and_a_computed_key_its_value():
    values = [(f"word{i:05d}", 1) for i in range(1000)]
    without = encode((RECORDS, values, None))
    by_field = encode((RECORDS, values, None, [v[0] for v in values]))
    computed = encode((RECORDS, values, None, [v[0].upper() for v in values]))
    assert len(by_field) == len(without) + 1000
    assert len(computed) > len(without) + 1000 * len("WORD00000")


def test_many_words_come_back_right_through_the_decoders_string_cache():
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(20_000)] + ["ü", "x" * 33, "x" * 32, ""]
    for _ in range(5):
        values = [(rng.choice(vocabulary), i) for i in range(2_000)]
        element = decode(encode((RECORDS, values, None, [v[0] for v in values])))
        assert element[1] == values
        assert element[3] == [v[0] for v in values]


def test_receipt_leaves_compact_batches_to_the_consuming_task():
    data = encode((RECORDS, [("a", 1)], None, ["a"]))
    kind, raw = decode_on_receipt(data)
    assert kind == elements.ENCODED_RECORDS and raw == data
    assert elements.decoded((kind, raw)) == (RECORDS, [("a", 1)], None, ["a"])


def test_malformed_compact_frames_raise_decode_error_in_both_readers():
    values = [("w", 1), (None, 2.5, b"\xff"), "grüße", (1, (2, (3,)))]
    good = encode((RECORDS, values, [1, None, 3, 4], [values[0][0], 7, values[2], "k"]))
    assert good[0] == COMPACT
    hostile = [
        bytes([COMPACT]),  # no flags
        bytes([COMPACT, 0x04, 0]),  # unknown flag
        bytes([COMPACT, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        bytes([COMPACT, 0]) + b"\xff" * 11,  # a count longer than 64 bits
        bytes([COMPACT, 0, 1, 5, 1, 0x80]),  # an ASCII str with a high byte
        bytes([COMPACT, 0, 1, 6, 1, 0xC3]),  # a str that is not UTF-8
        bytes([COMPACT, 0, 1, 9]),  # an unknown value tag
        bytes([COMPACT, 0, 1, 0, 0]),  # trailing bytes
        bytes([COMPACT, 2, 1, 8, 1, 0, 3]),  # a key in field 1 of a 1-tuple
        bytes([COMPACT, 2, 1, 0, 2]),  # a key in a field of None
        bytes([COMPACT, 0, 1]) + bytes([8, 1]) * 17 + bytes([0]),  # nested too deep
        bytes([COMPACT, 0, 1, 4, 0, 0]),  # a float cut short
    ]
    hostile += [good[:cut] for cut in range(1, len(good))]
    for data in hostile:
        for read in (decode, read_in_python):
            with pytest.raises(DecodeError):
                read(data)


def test_random_damage_to_a_frame_never_raises_anything_but_decode_error():
    rng = random.Random(12)
    values = [(f"w{i}", i, i / 3, None, b"b", (True,)) for i in range(50)]
    good = bytearray(encode((RECORDS, values, list(range(50)), [v[0] for v in values])))
    for _ in range(3_000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(1, len(data))] = rng.randrange(256)
        outcomes = []
        for read in (decode, read_in_python):
            try:
                outcomes.append(read(bytes(data)))
            except DecodeError:
                outcomes.append(None)
        native, python = outcomes
        assert (native is None) == (python is None), bytes(data)
        if native is not None:
            assert repr(native) == repr(python)


def test_operators_that_take_their_input_their_own_way_are_not_handed_keys():
    # With keys crossing processes, a keyed batch reaches ``process_keyed`` wherever the
    # partitioner's selector is the operator's; BATCH's operators group their input by key in
    # ``process_batch`` first and must not be bypassed (they were, in test_batch's broadcast
    # test, until ``takes_keys`` followed the class's resolved methods).
    from taskmanager.runtime import batch, operators, two_input, windows

    assert operators.ReduceOperator.takes_keys
    assert windows.WindowOperator.takes_keys
    assert operators.KeyedProcessOperator.takes_keys
    assert operators.KeyedMapLikeOperator.takes_keys
    assert two_input.KeyedBroadcastProcessOperator.takes_keys
    assert not batch.BatchKeyedProcessOperator.takes_keys
    assert not batch.BatchKeyedBroadcastProcessOperator.takes_keys
    assert not batch.BatchKeyedCoProcessOperator.takes_keys
    assert not batch.BatchWindowOperator.takes_keys
