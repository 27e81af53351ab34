"""Stream elements: what travels through a channel, and their wire form (DESIGN.md §5).

Elements are plain tuples, tagged by their first item, because the hot path creates one per
batch and a tuple is the cheapest object Python has:

- ``(RECORDS, values, timestamps)``: a batch of records; ``timestamps`` is a list parallel to
  ``values`` (an item may be None) or None when no record has an event timestamp.
- ``(RECORDS, values, timestamps, keys)``: the same, with the records' keys (parallel to
  ``values``) as the hash edge's partitioner computed them; the keyed operator that consumes
  the batch uses them instead of calling its key selector again. Between processes the keys
  travel only in the compact layout below, where a key that is its record or one of its
  fields costs a byte; pickled, a key per record cost about what the selector call it saves
  (+4 ns encode and +24 ns decode a record against a 32 ns call), so a pickled batch leaves
  them out.
- ``(WATERMARK, timestamp)``: event time has reached ``timestamp`` (an int, in ms).
- ``(BARRIER, checkpoint_id, options)``: checkpoint barrier ``checkpoint_id``; ``options`` is
  a small dict (checkpoint type, alignment, target) the runtime reads.
- ``(END_OF_PARTITION,)``: the producer of this channel will send nothing more.
- ``(WATERMARK_STATUS, idle)``: the producer is idle (sends neither records nor watermarks for
  now, so consumers leave this channel out of their event time) or active again.
- ``(ENCODED_RECORDS, data)``: a record batch as it came over the network, not yet decoded.
  The receiving connection hands record batches on this way (``decode_on_receipt``) and the
  consuming task decodes them (``decode``) when it takes them: unpickling on the task's
  thread, just before the records are used, instead of on the data-plane thread long before,
  made word count at p=2 burn 8 % less CPU (issue 12; bench/RESULTS.md). A batch that does
  not decode fails the consuming task with ``DecodeError``'s reason.

Only a remote channel serialises: ``encode`` turns an element into bytes once per batch and
``decode`` turns them back. A record batch whose records are all built from exact None, bool,
int (64-bit), float, str, bytes and tuples of those goes in a compact layout, with its keys
(``strom/_records.c``, which documents it: about half pickle's cost to write, a fifth less to
read, and the keyed task downstream calls no key selector). Any other batch is pickled
(protocol 5, without a memo: each record on its own), falling back to cloudpickle for what
plain pickle refuses (lambdas, classes defined interactively). Either way a record arrives as
the type it left as. The other kinds of element use a fixed binary layout. ``decode`` raises
``DecodeError`` on malformed input and never anything that would take a process down.

The compact layout is written only where ``strom._records`` was built; it is read everywhere,
by this module's Python reader where the C module is missing.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import cloudpickle

try:
    # Record batches in the compact layout, in C (strom/_records.c), where the install built it.
    from strom import _records
except ImportError:  # pragma: no cover - a build without a C compiler
    _records = None

__all__ = [
    "BARRIER",
    "END_OF_PARTITION",
    "END_OF_PARTITION_ELEMENT",
    "RECORDS",
    "WATERMARK",
    "WATERMARK_STATUS",
    "ENCODED_RECORDS",
    "DecodeError",
    "barrier",
    "decode",
    "decode_on_receipt",
    "decoded",
    "encode",
    "records",
    "watermark",
]

RECORDS = 0
WATERMARK = 1
BARRIER = 2
END_OF_PARTITION = 3
WATERMARK_STATUS = 4
ENCODED_RECORDS = 5

#: the one end-of-partition element; elements are immutable, so all senders share it
END_OF_PARTITION_ELEMENT = (END_OF_PARTITION,)

# Wire tags: the first byte of an encoded element.
_TAG_RECORDS = b"\x00"  # a pickled record batch
_TAG_COMPACT_RECORDS = b"\x06"  # a record batch in _records' layout, with its keys if known
_TAG_WATERMARK = b"\x01"
_TAG_BARRIER = b"\x02"
_TAG_END_OF_PARTITION = b"\x03"
_TAG_IDLE = b"\x04"
_TAG_ACTIVE = b"\x05"
_TAG_WATERMARK_PICKLED = b"\x11"  # a watermark that does not fit in a signed 64-bit int
_TAG_BARRIER_PICKLED = b"\x12"  # a barrier whose id does not fit, or that has options

_INT64 = struct.Struct("<q")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class DecodeError(ValueError):
    """Bytes that are not an encoded stream element (a bad peer, or a class it cannot load)."""


def records(values: list, timestamps: list | None = None, keys: list | None = None) -> tuple:
    """A batch of records; ``timestamps`` and ``keys`` parallel to ``values`` or None."""
    if keys is None:
        return (RECORDS, values, timestamps)
    return (RECORDS, values, timestamps, keys)


def watermark(timestamp: int) -> tuple:
    """A watermark at ``timestamp``."""
    return (WATERMARK, timestamp)


def barrier(checkpoint_id: int, options: dict[str, Any] | None = None) -> tuple:
    """Checkpoint barrier ``checkpoint_id``."""
    return (BARRIER, checkpoint_id, options if options is not None else {})


def _dumps(obj: Any) -> bytes:
    try:
        data = pickle.dumps(obj, protocol=5)
        if b"__main__" not in data:
            return data
        # A class of the job's main script is pickled by name as __main__.X, which names
        # another module on the receiving TaskManager: send it by value instead.
        return cloudpickle.dumps(obj, protocol=5)
    except Exception:
        # Plain pickle refuses lambdas, local functions and classes it cannot import by
        # name; cloudpickle sends those by value. Its output loads with plain pickle.
        return cloudpickle.dumps(obj, protocol=5)


def _encode_records(obj: Any) -> bytes:
    """The frame of a record batch: its tag, then its pickle written without a memo, about
    twice as fast as ``_dumps`` on many small records. Every record is written on its own, as
    Flink serializes each record (objects shared between records arrive as copies); a cycle
    makes pickle raise, and then the batch goes the memoizing way."""
    buffer = io.BytesIO()
    buffer.write(_TAG_RECORDS)
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True
    try:
        pickler.dump(obj)
    except Exception:
        return _TAG_RECORDS + _dumps(obj)
    data = buffer.getvalue()
    if b"__main__" in data:
        return _TAG_RECORDS + _dumps(obj)
    return data


def _fits_int64(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def encode(element: tuple) -> bytes:
    """The wire form of ``element``; raises ``ValueError`` for something that is not one."""
    kind = element[0]
    if kind == RECORDS:
        if _records is not None and type(element[1]) is list:
            keys = element[3] if len(element) > 3 else None
            data = _records.encode_records(_TAG_COMPACT_RECORDS, element[1], element[2], keys)
            if data is not None:
                return data
        # A pickled batch leaves its keys out (see the module's docstring).
        return _encode_records((element[1], element[2]))
    if kind == WATERMARK:
        timestamp = element[1]
        if _fits_int64(timestamp):
            return _TAG_WATERMARK + _INT64.pack(timestamp)
        return _TAG_WATERMARK_PICKLED + _dumps(timestamp)
    if kind == BARRIER:
        checkpoint_id, options = element[1], element[2]
        if not options and _fits_int64(checkpoint_id):
            return _TAG_BARRIER + _INT64.pack(checkpoint_id)
        return _TAG_BARRIER_PICKLED + _dumps((checkpoint_id, options))
    if kind == END_OF_PARTITION:
        return _TAG_END_OF_PARTITION
    if kind == WATERMARK_STATUS:
        return _TAG_IDLE if element[1] else _TAG_ACTIVE
    raise ValueError(f"not a stream element: {element!r:.200}")


def decode_on_receipt(data: bytes) -> tuple:
    """What a receiving connection puts into a gate for ``data``: a record batch as
    ``(ENCODED_RECORDS, data)``, for its task to decode; any other element decoded (raises
    ``DecodeError`` as ``decode`` does)."""
    if data and (data[0] == 0 or data[0] == 6):
        return (ENCODED_RECORDS, data)
    return decode(data)


def decoded(element: tuple) -> tuple:
    """``element`` with an ``ENCODED_RECORDS`` batch decoded (what its task sees)."""
    if element[0] == ENCODED_RECORDS:
        return decode(element[1])
    return element


def decode(data: bytes) -> tuple:
    """The element ``data`` encodes; raises ``DecodeError`` when it encodes none."""
    if not data:
        raise DecodeError("empty frame: no stream element in it")
    tag = data[0]
    try:
        if tag == 0:
            values, timestamps = pickle.loads(memoryview(data)[1:])
            if type(values) is not list or not (
                timestamps is None or (type(timestamps) is list and len(timestamps) == len(values))
            ):
                raise DecodeError("a record batch must be a list with a parallel timestamp list")
            return (RECORDS, values, timestamps)
        if tag == 6:
            if _records is not None:
                values, timestamps, keys = _records.decode_records(data, 1)
            else:
                values, timestamps, keys = _read_compact(memoryview(data)[1:])
            if keys is None:
                return (RECORDS, values, timestamps)
            return (RECORDS, values, timestamps, keys)
        if tag == 1:
            return (WATERMARK, _INT64.unpack(data[1:])[0])
        if tag == 2:
            return (BARRIER, _INT64.unpack(data[1:])[0], {})
        if tag == 3:
            if len(data) != 1:
                raise DecodeError("trailing bytes after an end-of-partition")
            return END_OF_PARTITION_ELEMENT
        if tag in (4, 5):
            if len(data) != 1:
                raise DecodeError("trailing bytes after a watermark status")
            return (WATERMARK_STATUS, tag == 4)
        if tag == 0x11:
            return (WATERMARK, pickle.loads(memoryview(data)[1:]))
        if tag == 0x12:
            checkpoint_id, options = pickle.loads(memoryview(data)[1:])
            if type(options) is not dict:
                raise DecodeError("barrier options must be a dict")
            return (BARRIER, checkpoint_id, options)
    except DecodeError:
        raise
    except (AttributeError, ImportError) as error:
        # The usual cause: a record class defined in the job's __main__ or in a module this
        # process cannot import.
        raise DecodeError(
            f"cannot load a record: {type(error).__name__}: {error}; record classes must be "
            "importable on every TaskManager (define them in a module of the job, not in the "
            "script run as __main__)"
        ) from None
    except Exception as error:
        raise DecodeError(f"malformed stream element: {type(error).__name__}: {error}") from None
    raise DecodeError(f"unknown stream element tag {tag}")


# The compact record layout read in Python (strom/_records.c documents it), for a process whose
# install has no C module: slow, and only for frames a peer with the module sent.

_FLOAT = struct.Struct("<d")
_MAX_DEPTH = 16


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise DecodeError("malformed record batch: a value runs past the end")
        self.at += 1
        return self.data[self.at - 1]

    def varint(self) -> int:
        result = 0
        for shift in range(0, 70, 7):
            byte = self.byte()
            if shift == 63 and byte > 1:
                break
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise DecodeError("malformed record batch: a number is longer than 64 bits")

    def length(self) -> int:
        size = self.varint()
        if size > len(self.data) - self.at:
            raise DecodeError("malformed record batch: a length runs past the end")
        return size

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.at:
            raise DecodeError("malformed record batch: a value runs past the end")
        self.at += size
        return bytes(self.data[self.at - size : self.at])

    def value(self, depth: int = 0) -> Any:
        tag = self.byte()
        if tag <= 2:
            return (None, False, True)[tag]
        if tag == 3:
            zigzag = self.varint()
            return (zigzag >> 1) ^ -(zigzag & 1)
        if tag == 4:
            return _FLOAT.unpack(self.take(8))[0]
        if tag in (5, 6):
            raw = self.take(self.length())
            return raw.decode("ascii" if tag == 5 else "utf-8")
        if tag == 7:
            return self.take(self.length())
        if tag == 8:
            if depth >= _MAX_DEPTH:
                raise DecodeError("malformed record batch: tuples nested too deep")
            return tuple(self.value(depth + 1) for _ in range(self.length()))
        raise DecodeError(f"malformed record batch: unknown value tag {tag}")

    def key(self, record: Any) -> Any:
        ref = self.byte()
        if ref == 0:
            return self.value()
        if ref == 1:
            return record
        if type(record) is tuple and ref - 2 < len(record):
            return record[ref - 2]
        raise DecodeError("malformed record batch: a key names a field its record does not have")


def _read_compact(data: memoryview) -> tuple[list, list | None, list | None]:
    reader = _Reader(data)
    flags = reader.byte()
    if flags & ~3:
        raise DecodeError("malformed record batch: unknown flags")
    count = reader.length()
    values = [reader.value() for _ in range(count)]
    timestamps = [reader.value() for _ in range(count)] if flags & 1 else None
    keys = [reader.key(value) for value in values] if flags & 2 else None
    if reader.at != len(data):
        raise DecodeError("malformed record batch: trailing bytes after the batch")
    return values, timestamps, keys
