"""Keyed operators of BATCH execution mode: the whole input grouped by key, one key at a time.

In BATCH mode (``strom/graph/batch.py`` picks these when it builds the job graph) a keyed
operator first takes in its complete input, grouped by key in a hash table, and only at the
end of input works through it one key at a time, as Flink's batch runtime does:

- ``reduce``, ``sum``/``min``/``max``/``min_by``/``max_by``: each key's records are folded in
  arrival order as they come, and only the final value per key is emitted.
- ``KeyedProcessFunction``: a key's records (ordered by timestamp) go to ``process_element``
  together; then its event-time timers fire (event time jumps to the end), then its
  processing-time timers, and its state is dropped before the next key.
- windows: a key's records are assigned, and then every window fires once, complete;
  allowed lateness has no effect (no record is ever late in BATCH).

No watermarks flow while records do; each operator sends the final one after its results.
The hash table is held to ``execution.sorted-inputs.memory``: beyond it, the table and every
later record are spilled to temporary files partitioned by key hash, and at the end each
partition is loaded and worked through in turn (records of one key stay in arrival order).
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from strom.graph.stream_graph import OperatorSpec
from taskmanager.runtime.context import MIN_WATERMARK, OperatorContext
from taskmanager.runtime.operators import (
    MAX_WATERMARK,
    KeyedOperator,
    KeyedProcessOperator,
    Operator,
    SinkWriterOperator,
    _field_access,
    run_process_function,
    user_function,
)
from taskmanager.runtime.two_input import (
    BroadcastProcessOperator,
    KeyedBroadcastProcessOperator,
    KeyedCoProcessOperator,
)
from taskmanager.runtime.windows import EVENT_TIMERS, PROCESSING_TIMERS, WindowOperator

log = logging.getLogger(__name__)

_MISSING = object()
#: partitions of a spilled table; each is loaded whole at the end
SPILL_PARTITIONS = 64
#: records buffered per partition before they are written
_SPILL_CHUNK = 512
#: results are emitted in batches of this many
_EMIT_BATCH = 1024
#: how many new entries pass between two checks of the memory estimate
_CHECK_EVERY = 4096
#: bytes a hash-table slot and list pointer cost beyond the objects themselves
_ENTRY_OVERHEAD = 100


def _deep_size(value: Any, depth: int = 3) -> int:
    """An estimate of the memory ``value`` holds (containers to ``depth`` levels; long
    ones from their first 16 items)."""
    size = sys.getsizeof(value)
    if not depth:
        return size
    if isinstance(value, dict):
        value = [item for pair in list(value.items())[:16] for item in pair]
    if isinstance(value, (tuple, list)) and value:
        head = value[:16]
        size += sum(_deep_size(item, depth - 1) for item in head) * len(value) // len(head)
    return size


class SpillFiles:
    """Temporary files, one per key-hash partition, to which entries are appended in order."""

    def __init__(self, partitions: int = SPILL_PARTITIONS) -> None:
        self.partitions = partitions
        self.directory = tempfile.mkdtemp(prefix="strom-batch-spill-")
        self._buffers: list[list] = [[] for _ in range(partitions)]
        self._handles: dict[int, Any] = {}
        self.entries = 0
        self.bytes = 0

    def add(self, key: Any, entry: tuple) -> None:
        """Append ``entry`` (it starts with the key) to the partition of ``key``."""
        partition = hash(key) % self.partitions
        buffer = self._buffers[partition]
        buffer.append(entry)
        self.entries += 1
        if len(buffer) >= _SPILL_CHUNK:
            self._write(partition)

    def _write(self, partition: int) -> None:
        buffer = self._buffers[partition]
        if not buffer:
            return
        handle = self._handles.get(partition)
        if handle is None:
            path = os.path.join(self.directory, f"partition-{partition}")
            handle = self._handles[partition] = open(path, "wb")  # noqa: SIM115 - kept open
        data = pickle.dumps(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        handle.write(len(data).to_bytes(8, "little"))
        handle.write(data)
        self.bytes += len(data) + 8
        self._buffers[partition] = []

    def read(self) -> Iterator[list]:
        """Each partition's entries in the order they were added, one partition at a time;
        a partition's file is deleted once it has been read."""
        for partition in range(self.partitions):
            self._write(partition)
        for handle in self._handles.values():
            handle.close()
        for partition in range(self.partitions):
            if partition not in self._handles:
                continue
            path = os.path.join(self.directory, f"partition-{partition}")
            entries: list = []
            with open(path, "rb") as handle:
                while True:
                    header = handle.read(8)
                    if not header:
                        break
                    entries.extend(pickle.loads(handle.read(int.from_bytes(header, "little"))))
            os.remove(path)
            yield entries
        self._handles.clear()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        for name in os.listdir(self.directory) if os.path.isdir(self.directory) else ():
            os.remove(os.path.join(self.directory, name))
        if os.path.isdir(self.directory):
            os.rmdir(self.directory)


class MemoryBudget:
    """Whether a hash table of ``units`` entries (keys or records) still fits the budget; the
    size of an entry is estimated from a sample when the table first grows large."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = max(1, int(budget_bytes))
        self.unit_bytes: float | None = None
        self.next_check = 64

    def exceeded(self, units: int, sample: Callable[[], list]) -> bool:
        if units < self.next_check:
            return False
        if self.unit_bytes is None:
            entries = sample()
            self.unit_bytes = _ENTRY_OVERHEAD + sum(_deep_size(e) for e in entries) / max(
                1, len(entries)
            )
        self.next_check = units + _CHECK_EVERY
        if units * self.unit_bytes > self.budget:
            return True
        # Check again when the table could first reach the budget (but at least every
        # _CHECK_EVERY units, so a sample that was too small is corrected by the next one).
        self.next_check = min(self.next_check, max(units + 1, int(self.budget / self.unit_bytes)))
        return False


def _sample(table: dict, n: int = 32) -> list:
    sample = []
    for item in table.items():
        sample.append(item)
        if len(sample) >= n:
            break
    return sample


def _emit_all(operator: KeyedOperator, results: list, stamps: list | None) -> None:
    for start in range(0, len(results), _EMIT_BATCH):
        end = start + _EMIT_BATCH
        operator.output.emit(results[start:end], None if stamps is None else stamps[start:end])


class _BufferedOutput:
    """Stands in for an operator's output while it works through its keys: the few results
    of each key are gathered into batches, as a streaming operator's output would be."""

    def __init__(self, output: Any) -> None:
        self.output = output
        self.side = output.side
        self.values: list = []
        self.stamps: list = []
        self.stamped = False

    def emit(self, values: list, timestamps: list | None) -> None:
        self.values.extend(values)
        if timestamps is None:
            self.stamps.extend([None] * len(values))
        else:
            self.stamped = True
            self.stamps.extend(timestamps)
        if len(self.values) >= _EMIT_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.values:
            values, stamps = self.values, self.stamps if self.stamped else None
            self.values, self.stamps, self.stamped = [], [], False
            self.output.emit(values, stamps)

    def side_output(self, tag_id: str, value: Any, timestamp: int | None) -> None:
        self.output.side_output(tag_id, value, timestamp)

    def emit_watermark(self, timestamp: int) -> None:
        self.flush()
        self.output.emit_watermark(timestamp)

    def emit_watermark_status(self, idle: bool) -> None:
        self.flush()
        self.output.emit_watermark_status(idle)


class _FoldingOperator(KeyedOperator):
    """Folds each key's records into one value as they arrive; emits the values at the end.

    Subclasses set ``self.combine(current, value) -> new current``.
    """

    combine: Callable[[Any, Any], Any]

    def open(self) -> None:
        super().open()
        self.values: dict[Any, Any] = {}
        self.stamps: dict[Any, Any] = {}  # the last timestamp per key, when records have one
        self.budget = MemoryBudget(self.spec.args.get("memory_budget") or 128 * 1024**2)
        self.spill: SpillFiles | None = None

    def process_batch(self, values, timestamps):
        if self.spill is not None:
            self._spill_records(values, timestamps)
            return
        combine, key_of, table = self.combine, self.key_of, self.values
        get = table.get
        missing = _MISSING
        if timestamps is None:
            for value in values:
                key = key_of(value)
                current = get(key, missing)
                table[key] = value if current is missing else combine(current, value)
        else:
            stamps = self.stamps
            for value, stamp in zip(values, timestamps, strict=True):
                key = key_of(value)
                current = get(key, missing)
                table[key] = value if current is missing else combine(current, value)
                stamps[key] = stamp
        if self.budget.exceeded(len(table), lambda: _sample(table)):
            self._start_spilling()

    def _start_spilling(self) -> None:
        spill = self.spill = SpillFiles()
        for key, value in self.values.items():
            spill.add(key, (key, True, value, self.stamps.get(key)))
        log.info(
            "%s (%d/%d): %d keys exceed the memory budget of %d bytes; spilling to %s",
            self.context.operator_name,
            self.context.subtask_index + 1,
            self.context.parallelism,
            len(self.values),
            self.budget.budget,
            spill.directory,
        )
        self.values, self.stamps = {}, {}

    def _spill_records(self, values: list, timestamps: list | None) -> None:
        key_of, add = self.key_of, self.spill.add
        if timestamps is None:
            for value in values:
                key = key_of(value)
                add(key, (key, False, value, None))
        else:
            for value, stamp in zip(values, timestamps, strict=True):
                key = key_of(value)
                add(key, (key, False, value, stamp))

    def process_watermark(self, timestamp: int) -> None:
        self.current_watermark = timestamp  # sent on after the results, at the end

    def end_input(self) -> None:
        if self.spill is None:
            self._emit(self.values, self.stamps)
        else:
            spill, combine = self.spill, self.combine
            try:
                for entries in spill.read():
                    table: dict[Any, Any] = {}
                    stamps: dict[Any, Any] = {}
                    for key, _partial, value, stamp in entries:
                        current = table.get(key, _MISSING)
                        table[key] = value if current is _MISSING else combine(current, value)
                        if stamp is not None:
                            stamps[key] = stamp
                    self._emit(table, stamps)
            finally:
                spill.close()
                self.spill = None
            log.info(
                "%s: read back %d spilled entries (%d bytes)",
                self.context.operator_name,
                spill.entries,
                spill.bytes,
            )
        self.values, self.stamps = {}, {}
        self.output.emit_watermark(MAX_WATERMARK)

    def _emit(self, table: dict, stamps: dict) -> None:
        results = list(table.values())
        if stamps:
            _emit_all(self, results, [stamps.get(key) for key in table])
        else:
            _emit_all(self, results, None)

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()
        super().close()


class BatchReduceOperator(_FoldingOperator):
    """``reduce`` in BATCH: the final reduced value of each key, once."""

    def open(self) -> None:
        super().open()
        self.combine = user_function(self.function, "reduce")


class BatchAggregationOperator(_FoldingOperator):
    """``sum``/``min``/``max``/``min_by``/``max_by`` in BATCH: the final value of each key.

    ``sum`` over a field of tuples (the word count) keeps a running number per key and builds
    each key's result once at the end, so a record costs its key and one addition.
    """

    def open(self) -> None:
        super().open()
        kind = self.spec.args["aggregation"]
        field = self.spec.args["field"]
        access: list = []

        def combine(current: Any, value: Any) -> Any:
            if not access:
                access.extend(_field_access(current, field))
            get, replace = access
            if kind == "sum":
                return replace(current, get(current) + get(value))
            if kind == "min":
                return current if get(current) <= get(value) else replace(current, get(value))
            if kind == "max":
                return current if get(current) >= get(value) else replace(current, get(value))
            if kind == "min_by":
                return current if get(current) <= get(value) else value
            return current if get(current) >= get(value) else value  # max_by

        if kind not in ("sum", "min", "max", "min_by", "max_by"):
            raise ValueError(f"unknown aggregation '{kind}'")
        self.combine = combine
        #: the sum fast path: key -> running total, and key -> the key's first record
        self.totals: dict[Any, Any] | None = None
        self.firsts: dict[Any, Any] = {}
        self.sum_field = field if kind == "sum" and isinstance(field, int) else None

    def process_batch(self, values, timestamps):
        index = self.sum_field
        if index is not None and timestamps is None and self.spill is None and not self.values:
            if self.totals is None:
                if not values or type(values[0]) is not tuple:
                    self.sum_field = None
                    super().process_batch(values, timestamps)
                    return
                self.totals = {}
            key_of, totals, firsts = self.key_of, self.totals, self.firsts
            get = totals.get
            missing = _MISSING
            for value in values:
                key = key_of(value)
                total = get(key, missing)
                if total is missing:
                    firsts[key] = value
                    totals[key] = value[index]
                else:
                    totals[key] = total + value[index]
            if self.budget.exceeded(len(totals), lambda: _sample(firsts)):
                self._to_values()
                self._start_spilling()
            return
        if self.totals is not None:
            self._to_values()
        super().process_batch(values, timestamps)

    def _to_values(self) -> None:
        """Leave the fast path: each key's result so far as a record."""
        index, firsts = self.sum_field, self.firsts
        values = self.values = {}
        for key, total in self.totals.items():
            first = firsts[key]
            if type(first) is tuple:
                values[key] = first[:index] + (total,) + first[index + 1 :]
            else:
                values[key] = _field_access(first, index)[1](first, total)
        self.totals, self.firsts, self.sum_field = None, {}, None

    def end_input(self) -> None:
        if self.totals is not None:
            self._to_values()
        super().end_input()


class KeyGroups:
    """The whole input of a keyed operator grouped by key: key -> [(value, timestamp)], within
    the memory budget, spilling beyond it."""

    def __init__(self, operator: KeyedOperator) -> None:
        self.operator = operator
        self.groups: dict[Any, list] = {}
        self.records = 0
        self.budget = MemoryBudget(operator.spec.args.get("memory_budget") or 128 * 1024**2)
        self.spill: SpillFiles | None = None

    def add(
        self, values: list, timestamps: list | None, key_of: Callable[[Any], Any] | None = None
    ) -> None:
        """Group ``values`` by their key (``key_of``, else the operator's key selector)."""
        key_of = key_of or self.operator.key_of
        if self.spill is not None:
            add = self.spill.add
            stamps = timestamps if timestamps is not None else [None] * len(values)
            for value, stamp in zip(values, stamps, strict=True):
                key = key_of(value)
                add(key, (key, value, stamp))
            return
        groups = self.groups
        get = groups.get
        stamps = timestamps if timestamps is not None else [None] * len(values)
        for value, stamp in zip(values, stamps, strict=True):
            key = key_of(value)
            group = get(key)
            if group is None:
                groups[key] = [(value, stamp)]
            else:
                group.append((value, stamp))
        self.records += len(values)
        if self.budget.exceeded(self.records, self._sample):
            self._start_spilling()

    def _sample(self) -> list:
        sample = []
        for group in self.groups.values():
            sample.extend(group[:4])
            if len(sample) >= 32:
                break
        return sample

    def _start_spilling(self) -> None:
        spill = self.spill = SpillFiles()
        for key, group in self.groups.items():
            for value, stamp in group:
                spill.add(key, (key, value, stamp))
        context = self.operator.context
        log.info(
            "%s (%d/%d): %d records exceed the memory budget of %d bytes; spilling to %s",
            context.operator_name,
            context.subtask_index + 1,
            context.parallelism,
            self.records,
            self.budget.budget,
            spill.directory,
        )
        self.groups = {}

    def by_key(self) -> Iterator[tuple[Any, list, list | None]]:
        """Each key with its values and timestamps (None when records have none), the
        records ordered by timestamp (stable: arrival order among equal ones)."""
        if self.spill is None:
            tables: Iterator[dict] = iter([self.groups])
        else:
            tables = self._spilled_tables()
        for table in tables:
            while table:
                key, group = table.popitem()  # O(1), and frees the key's records after it
                if any(stamp is not None for _, stamp in group):
                    group.sort(key=lambda entry: -(2**63) if entry[1] is None else entry[1])
                    yield key, [v for v, _ in group], [s for _, s in group]
                else:
                    yield key, [v for v, _ in group], None
        self.groups = {}

    def _spilled_tables(self) -> Iterator[dict]:
        spill = self.spill
        try:
            for entries in spill.read():
                table: dict[Any, list] = {}
                for key, value, stamp in entries:
                    group = table.get(key)
                    if group is None:
                        table[key] = [(value, stamp)]
                    else:
                        group.append((value, stamp))
                yield table
        finally:
            spill.close()
            self.spill = None

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()
            self.spill = None


class _OneKeyAtATime:
    """What BATCH's keyed operators share: records are grouped by key as they come, no
    watermark or processing timer acts during the input, and at its end each key is handled
    in turn (``_each_key``), its output buffered, then event time jumps to its maximum."""

    def open(self) -> None:
        super().open()
        self.groups = KeyGroups(self)

    def process_batch(self, values, timestamps):
        self.groups.add(values, timestamps)

    def process_watermark(self, timestamp: int) -> None:
        pass  # event time is the minimum until a key's records are done

    def next_processing_timer(self) -> int | None:
        return None  # processing-time timers fire at the end of their key

    def _each_key(self) -> None:
        raise NotImplementedError

    def end_input(self) -> None:
        output = self.output
        self.output = _BufferedOutput(output)
        try:
            self._each_key()
        finally:
            self.output.flush()
            self.output = output
        self.current_watermark = MAX_WATERMARK
        self.output.emit_watermark(MAX_WATERMARK)


class BatchKeyedProcessOperator(_OneKeyAtATime, KeyedProcessOperator):
    """``KeyedProcessFunction`` in BATCH: one key at a time, with its timers at its end."""

    def _each_key(self) -> None:
        backend, timers = self.backend, self.timers
        for key, values, stamps in self.groups.by_key():
            backend.current_key = key
            self.current_watermark = MIN_WATERMARK
            self._process_key(values, stamps)
            # The end of this key's input: event time jumps to the end (timers registered
            # while timers fire fire too), then processing time does.
            self.current_watermark = MAX_WATERMARK
            while True:
                due = list(timers.due_event_timers(MAX_WATERMARK))
                if not due:
                    break
                self._fire(due, "EVENT_TIME")
            while True:
                due = list(timers.due_processing_timers(MAX_WATERMARK))
                if not due:
                    break
                self._fire(due, "PROCESSING_TIME")
            for table in backend.tables.values():  # a key's state ends with the key
                table.pop(key, None)

    def _process_key(self, values: list, stamps: list | None) -> None:
        run_process_function(self, values, stamps)

    def close(self) -> None:
        self.groups.close()
        super().close()


class BatchKeyedCoProcessOperator(BatchKeyedProcessOperator, KeyedCoProcessOperator):
    """``KeyedCoProcessFunction`` in BATCH: both inputs grouped by key together; a key's
    records (of either input, ordered by timestamp) are processed, then its timers fire."""

    def process_batch(self, values, timestamps):
        key_of = self.key_of1
        self.groups.add([(0, v) for v in values], timestamps, lambda t: key_of(t[1]))

    def process_batch2(self, values, timestamps):
        key_of = self.key_of2
        self.groups.add([(1, v) for v in values], timestamps, lambda t: key_of(t[1]))

    def _process_key(self, values: list, stamps: list | None) -> None:
        calls = (self.call1, self.call2)
        for index, (which, value) in enumerate(values):
            run_process_function(
                self, [value], None if stamps is None else [stamps[index]], call=calls[which]
            )


class BatchKeyedBroadcastProcessOperator(BatchKeyedProcessOperator, KeyedBroadcastProcessOperator):
    """``KeyedBroadcastProcessFunction`` in BATCH: the broadcast input is processed as it
    comes and the keyed input, grouped by key, after it has ended (as Flink's batch runtime
    reads the broadcast side first); then each key's timers fire."""


class BatchBroadcastProcessOperator(BroadcastProcessOperator):
    """``BroadcastProcessFunction`` in BATCH: the regular input is held until the broadcast
    input has ended, so every element sees the complete broadcast state."""

    def open(self) -> None:
        super().open()
        self.held: list = []
        self.held_stamps: list = []
        self.stamped = False

    def process_batch(self, values, timestamps):
        self.held.extend(values)
        if timestamps is not None:
            self.stamped = True
            self.held_stamps.extend(timestamps)
        else:
            self.held_stamps.extend([None] * len(values))

    def process_watermark(self, timestamp: int) -> None:
        pass

    def end_input(self) -> None:
        held, stamps = self.held, self.held_stamps if self.stamped else None
        self.held, self.held_stamps = [], []
        for start in range(0, len(held), _EMIT_BATCH):
            end = start + _EMIT_BATCH
            BroadcastProcessOperator.process_batch(
                self, held[start:end], None if stamps is None else stamps[start:end]
            )
        self.current_watermark = MAX_WATERMARK
        self.output.emit_watermark(MAX_WATERMARK)


class BatchWindowOperator(_OneKeyAtATime, WindowOperator):
    """Windows in BATCH: each key's windows fire once, complete, after its records."""

    def _each_key(self) -> None:
        for _key, values, stamps in self.groups.by_key():
            self.current_watermark = MIN_WATERMARK
            WindowOperator.process_batch(self, values, stamps)
            self.current_watermark = MAX_WATERMARK
            if self.tumbling is not None:
                self._fire_tumbling(MAX_WATERMARK)
            elif self.fast:
                self._fire_fast(MAX_WATERMARK)
            else:
                self._on_timers(self._due(EVENT_TIMERS, MAX_WATERMARK), True)
            self._on_timers(self._due(PROCESSING_TIMERS, MAX_WATERMARK), False)

    def close(self) -> None:
        self.groups.close()
        super().close()


class BatchSinkWriterOperator(SinkWriterOperator):
    """``sink_to`` in BATCH: as in STREAMING without checkpoints (the writer commits when its
    input ends), but with part files named after the job, so that a job restarted whole
    replaces what an earlier attempt of a subtask committed instead of adding to it."""

    def initialize_state(self, restore: Any) -> None:
        super().initialize_state(restore)
        adopt = getattr(self.writer, "adopt_run_id", None)
        if callable(adopt):
            adopt(self.context.job_id)


_BATCH_OPERATORS: dict[str, type[Operator]] = {
    "batch_reduce": BatchReduceOperator,
    "batch_aggregate": BatchAggregationOperator,
    "batch_keyed_process": BatchKeyedProcessOperator,
    "batch_window": BatchWindowOperator,
    "batch_keyed_co_process": BatchKeyedCoProcessOperator,
    "batch_keyed_broadcast_process": BatchKeyedBroadcastProcessOperator,
    "batch_broadcast_process": BatchBroadcastProcessOperator,
    "batch_sink_writer": BatchSinkWriterOperator,
}


def create_batch_operator(spec: OperatorSpec, context: OperatorContext) -> Operator:
    """The runtime operator of a batch kind (see ``strom/graph/batch.py``)."""
    return _BATCH_OPERATORS[spec.kind](spec, context)


__all__ = [
    "BatchAggregationOperator",
    "BatchSinkWriterOperator",
    "BatchBroadcastProcessOperator",
    "BatchKeyedBroadcastProcessOperator",
    "BatchKeyedCoProcessOperator",
    "BatchKeyedProcessOperator",
    "BatchReduceOperator",
    "BatchWindowOperator",
    "KeyGroups",
    "MemoryBudget",
    "SpillFiles",
    "create_batch_operator",
]
