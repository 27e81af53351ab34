"""Operators: the runtime form of each ``OperatorSpec`` kind.

Operators work a batch at a time: ``process_batch(values, timestamps)`` takes a list of
records (and their timestamps, or None) and hands a new list to ``self.output``. A chain
calls its operators directly, so the per-record cost is the user's function and a list
append; everything else is paid once per batch.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

from strom.common.type_values import formatter, shaper
from strom.datastream.output_tag import OutputTag, tag_id_of
from strom.graph.partitioning import key_group_range
from strom.graph.stream_graph import OperatorSpec
from taskmanager.network.elements import WATERMARK, WATERMARK_STATUS
from taskmanager.runtime.context import MIN_WATERMARK, OperatorContext, ProcessContext
from taskmanager.runtime.timers import InternalTimerService
from taskmanager.state.heap import HeapKeyedStateBackend
from taskmanager.state.operator_state import (
    FunctionInitializationContext,
    FunctionSnapshotContext,
    OperatorRestore,
    OperatorStateStore,
)

try:
    # Per-record loops in C (strom/_speedups.c: the rolling reduce, a sink), where the install
    # built it.
    from strom import _speedups
except ImportError:  # pragma: no cover - a build without a C compiler
    _speedups = None

_MISSING = object()
MAX_WATERMARK = 2**63 - 1
#: about how many records an operator that makes several of each input hands to its chained
#: successors at once (a flat_map of lines into words): batches of 400-1,000 such records
#: run fastest (bench/embedded_ceiling.py)
CHAINED_BATCH = 1024


def user_function(function: Any, method: str) -> Callable[..., Any]:
    """The callable to invoke: ``function.<method>`` of a function class, else the callable."""
    bound = getattr(function, method, None)
    if callable(bound):
        return bound
    return function


class Output:
    """Where an operator's results go: chained operators (direct calls) and record writers;
    ``side`` holds the consumers of each side output (by ``OutputTag`` id)."""

    __slots__ = ("emit", "side", "targets", "writers")

    def emit_watermark(self, timestamp: int) -> None:
        for target in self.targets:
            target.process_watermark(timestamp)
        for writer in self.writers:
            writer.broadcast((WATERMARK, timestamp))
        for side in self.side.values():
            side.emit_watermark(timestamp)

    def emit_watermark_status(self, idle: bool) -> None:
        for target in self.targets:
            target.process_watermark_status(idle)
        for writer in self.writers:
            writer.broadcast((WATERMARK_STATUS, idle))
        for side in self.side.values():
            side.emit_watermark_status(idle)

    def __init__(
        self, targets: list[Operator], writers: list[Any], side: dict[str, Output] | None = None
    ) -> None:
        self.targets = targets
        self.writers = writers
        self.side = side or {}
        calls = [t.process_batch for t in targets] + [w.emit for w in writers]
        if len(calls) == 1:
            self.emit = calls[0]
        elif not calls:
            self.emit = _drop
        else:

            def emit(values: list, timestamps: list | None) -> None:
                for call in calls:
                    call(values, timestamps)

            self.emit = emit

    def side_output(self, tag_id: str, value: Any, timestamp: int | None) -> None:
        """One record to a side output; dropped when nothing consumes that side output."""
        side = self.side.get(tag_id)
        if side is not None:
            side.emit([value], None if timestamp is None else [timestamp])

    def tagged_output(self, output_tag: Any, value: Any, timestamp: int | None) -> None:
        """``ctx.output(output_tag, value)``: to the side output, shaped by the tag's type."""
        self.side_output(tag_id_of(output_tag), value, timestamp)


def _drop(values: list, timestamps: list | None) -> None:
    pass


class ShapingOutput(Output):
    """An operator's output as PyFlink's would be: values take the form of the declared output
    type (``Row``, 32-bit floats, range-checked ints, tuples), and when the operator has side
    outputs a yielded ``(output_tag, value)`` pair goes to that side output, shaped by the
    tag's type (PyFlink's way to emit to a side output; it only does so when some side output
    of the operator is consumed, and so does this)."""

    __slots__ = ("inner", "tag_shapes")

    def __init__(self, inner: Output, shape: Callable[[Any], Any] | None, route: bool) -> None:
        self.inner = inner
        self.targets, self.writers, self.side = inner.targets, inner.writers, inner.side
        self.tag_shapes: dict[str, Callable[[Any], Any] | None] = {}
        inner_emit = inner.emit
        typed = shape
        if not route:

            def emit(values: list, timestamps: list | None) -> None:
                inner_emit([None if v is None else typed(v) for v in values], timestamps)

        else:

            def emit(values: list, timestamps: list | None) -> None:
                main: list = []
                stamps: list | None = None if timestamps is None else []
                for index, value in enumerate(values):
                    stamp = None if timestamps is None else timestamps[index]
                    if type(value) is tuple and value and isinstance(value[0], OutputTag):
                        self._to_side(value[0], value[1], stamp)
                        continue
                    main.append(value if typed is None or value is None else typed(value))
                    if stamps is not None:
                        stamps.append(stamp)
                if main:
                    inner_emit(main, stamps)

        self.emit = emit

    def tagged_output(self, output_tag: Any, value: Any, timestamp: int | None) -> None:
        tag_id_of(output_tag)  # a clear error for anything but an OutputTag
        self._to_side(output_tag, value, timestamp)

    def _to_side(self, tag: OutputTag, value: Any, stamp: int | None) -> None:
        tag_id = tag.tag_id
        if tag_id not in self.tag_shapes:
            self.tag_shapes[tag_id] = shaper(tag.type_info)
        shape = self.tag_shapes[tag_id]
        if shape is not None and value is not None:
            value = shape(value)
        self.inner.side_output(tag_id, value, stamp)


def shaping_output(output: Output, spec: OperatorSpec) -> Output:
    """``output``, or a :class:`ShapingOutput` around it when the operator declares an output
    type that changes values or has side outputs that ``yield tag, value`` may feed."""
    shape = shaper(spec.output_type)
    route = bool(output.side)
    if isinstance(output, ShapingOutput) or (shape is None and not route):
        return output
    return ShapingOutput(output, shape, route)


def is_checkpointed_function(function: Any) -> bool:
    return callable(getattr(function, "initialize_state", None)) and callable(
        getattr(function, "snapshot_state", None)
    )


class FunctionState:
    """The operator state of a user function that implements ``CheckpointedFunction``."""

    def __init__(self, function: Any, keyed_store: Any, restore: OperatorRestore | None):
        self.function = function
        self.store = OperatorStateStore(restore.operator_lists() if restore else None)
        function.initialize_state(
            FunctionInitializationContext(self.store, keyed_store, restore is not None)
        )

    def snapshot(self, checkpoint_id: int, timestamp: int) -> dict:
        self.function.snapshot_state(FunctionSnapshotContext(checkpoint_id, timestamp))
        return self.store.snapshot()


class Operator:
    """Base of all operators. Subclasses override ``process_batch``."""

    def __init__(self, spec: OperatorSpec, context: OperatorContext) -> None:
        self.spec = spec
        self.context = context
        self.function = spec.function
        self._output: Output = Output([], [])
        self.records_in = 0
        self.function_state: FunctionState | None = None

    @property
    def output(self) -> Output:
        """Where results go; set by the task, which wires the chain."""
        return self._output

    @output.setter
    def output(self, output: Output) -> None:
        self._output = shaping_output(output, self.spec)

    # -------------------------------------------------------------- checkpoints

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        """Before ``open``: create state, filled from ``restore`` when recovering."""
        if is_checkpointed_function(self.function):
            keyed = self.context.runtime_context if self.context.keyed_backend else None
            self.function_state = FunctionState(self.function, keyed, restore)

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        """What this operator must get back after a failure, at this point of the stream."""
        state: dict[str, Any] = {}
        if self.function_state is not None:
            state["operator"] = self.function_state.snapshot(checkpoint_id, timestamp)
        return state

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        notify = getattr(self.function, "notify_checkpoint_complete", None)
        if callable(notify):
            notify(checkpoint_id)

    # -------------------------------------------------------------- processing

    def open(self) -> None:
        opener = getattr(self.function, "open", None)
        if callable(opener) and not isinstance(self.function, type):
            opener(self.context.runtime_context)

    def process_batch(self, values: list, timestamps: list | None) -> None:
        raise NotImplementedError

    current_watermark = MIN_WATERMARK

    def process_watermark(self, timestamp: int) -> None:
        """Event time reached ``timestamp``: fire what is due, then pass it on."""
        self.current_watermark = timestamp
        self.output.emit_watermark(timestamp)

    def process_watermark_status(self, idle: bool) -> None:
        """All inputs went idle (no records or watermarks for a while), or one is active again."""
        self.output.emit_watermark_status(idle)

    def next_processing_timer(self) -> int | None:
        """When this operator next needs ``fire_processing_timers`` (epoch ms), if ever."""
        return None

    def fire_processing_timers(self, now_ms: int) -> None:
        pass

    def end_input(self) -> None:
        """All input has arrived (a bounded stream ended)."""

    def awaits_final_checkpoint(self) -> bool:
        """After ``end_input``: whether the task must wait for a checkpoint to complete."""
        return False

    def close(self) -> None:
        closer = getattr(self.function, "close", None)
        if callable(closer) and not isinstance(self.function, type):
            closer()


class MapOperator(Operator):
    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, "map")

    def process_batch(self, values, timestamps):
        f = self.call
        self.output.emit([f(v) for v in values], timestamps)


class FlatMapOperator(Operator):
    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, "flat_map")

    def process_batch(self, values, timestamps):
        f, emit = self.call, self.output.emit
        # Into chained operators in pieces of about CHAINED_BATCH: a batch of lines can make
        # tens of thousands of words, too many to stay in the core's cache on their way
        # through. A record writer takes the batch whole (it cuts its own).
        piece = CHAINED_BATCH if self.output.targets else sys.maxsize
        out: list = []
        if timestamps is None:
            extend = out.extend
            for value in values:
                result = f(value)
                if result is not None:
                    extend(result)
                    if len(out) >= piece:
                        emit(out, None)
                        out = []
                        extend = out.extend
            if out:
                emit(out, None)
            return
        stamps: list = []
        for value, stamp in zip(values, timestamps, strict=True):
            result = f(value)
            if result is not None:
                before = len(out)
                out.extend(result)
                stamps.extend([stamp] * (len(out) - before))
                if len(out) >= piece:
                    emit(out, stamps)
                    out, stamps = [], []
        if out:
            emit(out, stamps)


class FilterOperator(Operator):
    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, "filter")

    def process_batch(self, values, timestamps):
        f = self.call
        if timestamps is None:
            out = [v for v in values if f(v)]
            if out:
                self.output.emit(out, None)
            return
        pairs = [(v, t) for v, t in zip(values, timestamps, strict=True) if f(v)]
        if pairs:
            self.output.emit([p[0] for p in pairs], [p[1] for p in pairs])


def run_process_function(
    operator: Operator,
    values: list,
    timestamps: list | None,
    key_of: Callable[[Any], Any] | None = None,
    backend: HeapKeyedStateBackend | None = None,
    call: Callable[[Any, Any], Any] | None = None,
    keys: list | None = None,
) -> None:
    """``process_element(value, ctx)`` (or ``call``) for a batch; outputs keep their input's
    timestamp. ``keys``, parallel to ``values``, are the records' keys if already known."""
    f, ctx = call or operator.call, operator.ctx
    out: list = []
    stamps: list | None = None if timestamps is None else []
    for index, value in enumerate(values):
        if keys is not None:
            backend.current_key = keys[index]
        elif key_of is not None:
            backend.current_key = key_of(value)
        stamp = None if timestamps is None else timestamps[index]
        ctx.current_timestamp = stamp
        result = f(value, ctx)
        if result is not None:
            before = len(out)
            out.extend(result)
            if stamps is not None:
                stamps.extend([stamp] * (len(out) - before))
    if out:
        operator.output.emit(out, stamps)


class ProcessOperator(Operator):
    """A ``ProcessFunction``: ``process_element(value, ctx)`` returns or yields outputs."""

    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, "process_element")
        self.ctx = ProcessContext(self.context, None, self)

    def process_batch(self, values, timestamps):
        run_process_function(self, values, timestamps)


class KeyedOperator(Operator):
    """An operator on a keyed stream: keyed state scoped to the current record's key."""

    #: whether ``process_keyed`` handles this operator's input (the task then hands it the
    #: keys a hash edge computed): False when the ``process_batch`` a class ends up with is
    #: more derived than its ``process_keyed`` (it overrides the input, e.g. BATCH's
    #: operators that group records by key first, and must not be bypassed). A class may
    #: set it in its body.
    takes_keys = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "takes_keys" in cls.__dict__:
            return

        def provider(name: str) -> int:
            return next(i for i, base in enumerate(cls.__mro__) if name in base.__dict__)

        cls.takes_keys = provider("process_keyed") <= provider("process_batch")

    def __init__(self, spec: OperatorSpec, context: OperatorContext) -> None:
        super().__init__(spec, context)
        self.key_of = spec.key_selector
        self.backend = HeapKeyedStateBackend(context.max_parallelism)
        context.keyed_backend = self.backend

    def process_batch(self, values: list, timestamps: list | None) -> None:
        key_of = self.key_of
        self.process_keyed(values, timestamps, [key_of(v) for v in values])

    def process_keyed(self, values: list, timestamps: list | None, keys: list) -> None:
        """A batch whose keys are known (``keys`` parallel to ``values``): the task hands the
        keys a hash edge's partitioner computed, so the key selector runs once per record."""
        raise NotImplementedError

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        if restore is not None:
            c = self.context
            groups = key_group_range(c.subtask_index, c.parallelism, c.max_parallelism)
            self.backend.restore(restore.keyed(), groups)
        super().initialize_state(restore)

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        state = super().snapshot_state(checkpoint_id, timestamp)
        state["keyed"] = self.backend.snapshot()
        return state


class KeyedMapLikeOperator(KeyedOperator):
    """map / flat_map / filter on a keyed stream: the user's function may use keyed state."""

    takes_keys = True  # process_keyed is chosen per kind in __init__

    def __init__(self, spec: OperatorSpec, context: OperatorContext) -> None:
        super().__init__(spec, context)
        # Chosen once here (outputs bind process_keyed before open), not per record.
        self.process_keyed = {
            "map": self._map,
            "filter": self._filter,
            "flat_map": self._flat_map,
        }[spec.kind]

    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, self.spec.kind)

    def _map(self, values, timestamps, keys):
        f, backend = self.call, self.backend
        out = []
        for value, key in zip(values, keys, strict=True):
            backend.current_key = key
            out.append(f(value))
        self.output.emit(out, timestamps)

    def _filter(self, values, timestamps, keys):
        f, backend = self.call, self.backend
        kept: list = []
        stamps: list | None = None if timestamps is None else []
        for index, value in enumerate(values):
            backend.current_key = keys[index]
            if f(value):
                kept.append(value)
                if stamps is not None:
                    stamps.append(timestamps[index])
        if kept:
            self.output.emit(kept, stamps)

    def _flat_map(self, values, timestamps, keys):
        f, backend = self.call, self.backend
        out: list = []
        stamps: list | None = None if timestamps is None else []
        for index, value in enumerate(values):
            backend.current_key = keys[index]
            result = f(value)
            if result is not None:
                before = len(out)
                out.extend(result)
                if stamps is not None:
                    stamps.extend([timestamps[index]] * (len(out) - before))
        if out:
            self.output.emit(out, stamps)


class ReduceOperator(KeyedOperator):
    """Rolling reduce per key: emits the key's new result for every record."""

    STATE = "_reduce"

    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, "reduce")
        self.table = self.backend.table(self.STATE)

    def process_batch(self, values, timestamps):
        table = self.table
        if _speedups is not None and type(table) is dict and type(values) is list:
            # Chained to its input: the loop calls the key selector too.
            reduced = _speedups.reduce_batch(self.call, table, values, None, self.key_of)
            self.output.emit(reduced, timestamps)
            return
        super().process_batch(values, timestamps)

    def process_keyed(self, values, timestamps, keys):
        f, table = self.call, self.table
        if _speedups is not None and type(table) is dict and type(values) is type(keys) is list:
            # The same loop without the interpreter's per-record dispatch: ~45 ns a record
            # less (word count's reduce, bench/README.md "Session 11").
            self.output.emit(_speedups.reduce_batch(f, table, values, keys), timestamps)
            return
        get = table.get
        out = []
        append = out.append
        for value, key in zip(values, keys, strict=True):
            current = get(key, _MISSING)
            if current is not _MISSING:
                value = f(current, value)
            table[key] = value
            append(value)
        self.output.emit(out, timestamps)


def _field_access(sample: Any, field: int | str) -> tuple[Callable[[Any], Any], Callable]:
    """Getter and replacer of one field of a record, by position or name."""
    if isinstance(sample, (int, float)) and field in (0, "0"):
        return (lambda v: v), (lambda record, value: value)
    if hasattr(sample, "as_dict") and hasattr(sample, "_values"):  # strom.common.Row
        row_type = type(sample)
        if isinstance(field, str):
            names = list(sample.as_dict().keys())
            index = names.index(field)
        else:
            index = field

        def replace_row(record: Any, value: Any) -> Any:
            values = list(record._values)
            values[index] = value
            new = row_type(*values)
            fields = getattr(record, "_fields", None)
            if fields:
                new = row_type(**dict(zip(fields, values, strict=True)))
            kind = getattr(record, "get_row_kind", None)
            if callable(kind) and hasattr(new, "set_row_kind"):
                new.set_row_kind(kind())
            return new

        return (lambda r: r._values[index]), replace_row
    if isinstance(sample, dict):
        return (lambda r: r[field]), (lambda r, v: {**r, field: v})
    if isinstance(sample, tuple):
        if isinstance(field, str):
            index = sample._fields.index(field)  # a namedtuple
            return (lambda r: r[index]), (lambda r, v: r._replace(**{field: v}))
        return (lambda r: r[field]), (lambda r, v: r[:field] + (v,) + r[field + 1 :])
    if isinstance(sample, list):
        return (lambda r: r[field]), (lambda r, v: r[:field] + [v] + r[field + 1 :])
    raise TypeError(
        f"cannot aggregate field {field!r} of a {type(sample).__name__}; aggregate numbers, "
        "tuples, lists, dicts or Rows"
    )


class AggregationOperator(KeyedOperator):
    """``sum``/``min``/``max``/``min_by``/``max_by`` per key, as Flink's built-ins behave."""

    STATE = "_aggregate"

    def open(self) -> None:
        super().open()
        self.kind = self.spec.args["aggregation"]
        self.field = self.spec.args["field"]
        self.table = self.backend.table(self.STATE)
        self.access: tuple[Callable, Callable] | None = None

    def process_keyed(self, values, timestamps, keys):
        table, kind = self.table, self.kind
        out = []
        for value, key in zip(values, keys, strict=True):
            if self.access is None:
                self.access = _field_access(value, self.field)
            get, replace = self.access
            current = table.get(key, _MISSING)
            if current is _MISSING:
                result = value
            elif kind == "sum":
                result = replace(current, get(current) + get(value))
            elif kind == "min":
                result = current if get(current) <= get(value) else replace(current, get(value))
            elif kind == "max":
                result = current if get(current) >= get(value) else replace(current, get(value))
            elif kind == "min_by":
                result = current if get(current) <= get(value) else value
            else:  # max_by
                result = current if get(current) >= get(value) else value
            table[key] = result
            out.append(result)
        self.output.emit(out, timestamps)


class KeyedProcessOperator(KeyedOperator):
    """A ``KeyedProcessFunction`` with keyed state and timers (event and processing time)."""

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        super().initialize_state(restore)
        self.timers = InternalTimerService(self.backend)

    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, "process_element")
        self.on_timer = getattr(self.function, "on_timer", None)
        self.ctx = ProcessContext(self.context, self.backend, self)

    def process_batch(self, values, timestamps):
        run_process_function(self, values, timestamps, self.key_of, self.backend)

    def process_keyed(self, values, timestamps, keys):
        run_process_function(self, values, timestamps, None, self.backend, keys=keys)

    def _fire(self, due, domain: str) -> None:
        on_timer = self.on_timer
        if not callable(on_timer):
            for _ in due:
                pass
            return
        ctx, backend = self.ctx, self.backend
        for timestamp, key in due:
            backend.current_key = key
            ctx.current_timestamp = timestamp
            ctx.domain = domain
            result = on_timer(timestamp, ctx)
            if result is not None:
                values = list(result)
                if values:
                    self.output.emit(values, [timestamp] * len(values))
        ctx.domain = None

    def process_watermark(self, timestamp: int) -> None:
        self.current_watermark = timestamp
        self._fire(self.timers.due_event_timers(timestamp), "EVENT_TIME")
        self.output.emit_watermark(timestamp)

    def next_processing_timer(self) -> int | None:
        return self.timers.next_processing_time()

    def fire_processing_timers(self, now_ms: int) -> None:
        self._fire(self.timers.due_processing_timers(now_ms), "PROCESSING_TIME")


class WatermarkGenerator:
    """Periodic watermarks from a ``WatermarkStrategy``: the highest timestamp seen, less the
    allowed out-of-orderness, less 1 ms (as Flink's generators). An interval of 0 turns
    periodic watermarks off, as in Flink: only the final one at the end of input is sent
    (and ``with_idleness``, which Flink checks at each periodic emission, never acts)."""

    def __init__(self, strategy: Any, interval_ms: int) -> None:
        kind = getattr(strategy, "kind", "none")
        self.enabled = strategy is not None and kind != "none" and interval_ms > 0
        self.lag = int(getattr(strategy, "max_out_of_orderness_ms", 0) or 0)
        self.interval_s = max(1, interval_ms) / 1000.0
        self.max_timestamp: int | None = None
        self.emitted = MIN_WATERMARK
        self.next_at = 0.0
        idleness_ms = getattr(strategy, "idleness_ms", None) if self.enabled else None
        #: ``with_idleness``: seconds without records after which the output is idle
        self.idle_timeout_s = idleness_ms / 1000.0 if idleness_ms else None
        self.idle = False
        self.last_record_at = time.monotonic()

    def observe(self, stamps: list | None) -> None:
        self.last_record_at = time.monotonic()
        if self.enabled and stamps:
            highest = max(s for s in stamps if s is not None) if None in stamps else max(stamps)
            if self.max_timestamp is None or highest > self.max_timestamp:
                self.max_timestamp = highest

    def due(self, now: float) -> int | None:
        """The watermark to emit now, if it is time and it advanced."""
        if not self.enabled or now < self.next_at or self.max_timestamp is None:
            return None
        self.next_at = now + self.interval_s
        watermark = self.max_timestamp - self.lag - 1
        if watermark <= self.emitted:
            return None
        self.emitted = watermark
        return watermark

    def pending_at(self) -> float | None:
        """When (monotonic seconds) a watermark that advanced since the last one is due, if
        one did: it is emitted then, whether or not more records come (Flink's periodic
        emission is a timer, not a reaction to records)."""
        if not self.enabled or self.max_timestamp is None:
            return None
        if self.max_timestamp - self.lag - 1 <= self.emitted:
            return None
        return self.next_at

    def status_change(self, now: float, has_records: bool) -> bool | None:
        """``True`` when the output goes idle now (no records for the idle timeout),
        ``False`` when records arrive at an idle output, else None."""
        if self.idle_timeout_s is None:
            return None
        if has_records:
            if self.idle:
                self.idle = False
                return False
            return None
        if not self.idle and now - self.last_record_at >= self.idle_timeout_s:
            self.idle = True
            return True
        return None

    def idle_deadline(self) -> float | None:
        """When (monotonic seconds) the output goes idle unless records come, if it may."""
        if self.idle_timeout_s is None or self.idle:
            return None
        return self.last_record_at + self.idle_timeout_s


class TimestampsOperator(Operator):
    """``assign_timestamps_and_watermarks``: stamps records with the strategy's assigner and
    emits its watermarks; watermarks from upstream are replaced, except the final one."""

    def open(self) -> None:
        super().open()
        strategy = self.spec.args.get("strategy")
        self.assigner = getattr(strategy, "timestamp_assigner", None)
        self.generator = WatermarkGenerator(strategy, self.context.auto_watermark_interval_ms)

    def process_batch(self, values, timestamps):
        assign = self.assigner
        if assign is None:
            stamps = timestamps
        elif timestamps is None:
            stamps = [assign(v, None) for v in values]
        else:
            stamps = [assign(v, t) for v, t in zip(values, timestamps, strict=True)]
        generator = self.generator
        if generator.idle and generator.status_change(0.0, True) is False:
            self.output.emit_watermark_status(False)
        self.output.emit(values, stamps)
        generator.observe(stamps)
        watermark = generator.due(time.monotonic())
        if watermark is not None:
            Operator.process_watermark(self, watermark)

    def process_watermark(self, timestamp: int) -> None:
        if timestamp == MAX_WATERMARK:
            Operator.process_watermark(self, timestamp)

    def process_watermark_status(self, idle: bool) -> None:
        pass  # this operator decides its output's status (with_idleness) itself

    # Processing-time deadlines: the watermark held back by the interval is due (so it is
    # emitted while no records come), and ``with_idleness`` marks the output idle after its
    # timeout without records.

    def next_processing_timer(self) -> int | None:
        generator = self.generator
        pending, idle = generator.pending_at(), generator.idle_deadline()
        if pending is None:
            deadline = idle
        else:
            deadline = pending if idle is None else min(pending, idle)
        if deadline is None:
            return None
        wait_ms = math.ceil(max(0.0, deadline - time.monotonic()) * 1000)
        return int(time.time() * 1000) + wait_ms

    def fire_processing_timers(self, now_ms: int) -> None:
        now = time.monotonic()
        watermark = self.generator.due(now)
        if watermark is not None:
            Operator.process_watermark(self, watermark)
        if self.generator.status_change(now, False):
            self.output.emit_watermark_status(True)


class SinkContext:
    """The ``context`` argument of ``SinkFunction.invoke``."""

    __slots__ = ("timestamp_value", "processing_time")

    def __init__(self) -> None:
        self.timestamp_value: int | None = None

    def timestamp(self) -> int | None:
        return self.timestamp_value

    def current_processing_time(self) -> int:
        return int(time.time() * 1000)

    def current_watermark(self) -> int:
        return -(2**63)


class SinkFunctionOperator(Operator):
    """``add_sink``: ``invoke(value, context)`` per record, or a plain callable per record."""

    def open(self) -> None:
        super().open()
        invoke = getattr(self.function, "invoke", None)
        self.sink_context = SinkContext()
        if callable(invoke):
            self.invoke = invoke
        else:
            self.call = self.function
            self.invoke = None

    def process_batch(self, values, timestamps):
        if self.invoke is not None:
            invoke, ctx = self.invoke, self.sink_context
            if timestamps is None:
                if _speedups is not None and type(values) is list:
                    _speedups.call_each(invoke, values, ctx)
                    return
                for value in values:
                    invoke(value, ctx)
            else:
                for value, stamp in zip(values, timestamps, strict=True):
                    ctx.timestamp_value = stamp
                    invoke(value, ctx)
        else:
            call = self.call
            for value in values:
                call(value)


class PrintOperator(Operator):
    """``print()``: one line per record on this process's stdout; ``N> `` with parallelism > 1."""

    def open(self) -> None:
        identifier = self.spec.args.get("identifier")
        parallelism = self.context.parallelism
        prefix = ""
        if parallelism > 1:
            prefix = f"{self.context.subtask_index + 1}> "
        if identifier:
            prefix = f"{identifier}:{prefix}" if prefix else f"{identifier}> "
        self.prefix = prefix
        #: the text of a record, as PyFlink prints one of the stream's declared type
        self.text = formatter(self.spec.args.get("type_info"))

    def process_batch(self, values, timestamps):
        prefix, text = self.prefix, self.text
        text = "".join(f"{prefix}{text(v)}\n" for v in values)
        stream = sys.stdout
        stream.write(text)
        stream.flush()


class SinkWriterOperator(Operator):
    """``sink_to``: a connector ``Sink``'s writer, committed in two phases.

    At a checkpoint barrier the writer turns its data pending (``prepare_commit``); when the
    checkpoint is complete the pending data becomes final (``commit``). After a failure the
    committables of the restored checkpoint are committed again (commit is idempotent), and
    what was written after it stays invisible. A bounded input ends with ``finish``.
    """

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        self.writer = self.function.create_writer(
            self.context.subtask_index, self.context.parallelism
        )
        self.pending: dict[int, Any] = {}
        #: with checkpointing, after the end of input: the final checkpoint (0: not taken yet)
        self.final_checkpoint: int | None = None
        if restore is not None:
            for snapshot in restore.assigned():
                for committables in snapshot.get("committables", []):
                    self.writer.commit(committables)

    def open(self) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        committables = self.writer.prepare_commit(checkpoint_id)
        self.pending[checkpoint_id] = committables
        if self.final_checkpoint == 0:
            self.final_checkpoint = checkpoint_id
        return {"committables": [self.pending[c] for c in sorted(self.pending)]}

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        for done in [c for c in sorted(self.pending) if c <= checkpoint_id]:
            self.writer.commit(self.pending.pop(done))
        if self.final_checkpoint and self.final_checkpoint <= checkpoint_id:
            self.final_checkpoint = None  # everything is committed

    def awaits_final_checkpoint(self) -> bool:
        return self.final_checkpoint is not None

    def process_batch(self, values, timestamps):
        self.writer.write_batch(values)

    def end_input(self) -> None:
        # A TaskManager declared lost may still run an old attempt to its end: it must not
        # commit beside the attempt that replaced it. Ask the JobManager first.
        is_current = self.context.attempt_is_current
        if is_current is not None and not is_current():
            raise RuntimeError(
                "this attempt of the job was replaced by a newer one; its output is not committed"
            )
        if self.context.checkpointing:
            self.final_checkpoint = 0  # commit with the next checkpoint (see Task)
        else:
            self.writer.finish()

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


class CollectOperator(Operator):
    """``execute_and_collect``: streams records back to the client."""

    def open(self) -> None:
        collect = self.spec.args["collect"]
        self.sender = collect.open_sender(self.context)

    def process_batch(self, values, timestamps):
        self.sender.send(values)

    def end_input(self) -> None:
        self.sender.finish()

    def close(self) -> None:
        self.sender.close()


_OPERATORS: dict[str, type[Operator]] = {
    "map": MapOperator,
    "flat_map": FlatMapOperator,
    "filter": FilterOperator,
    "process": ProcessOperator,
    "reduce": ReduceOperator,
    "aggregate": AggregationOperator,
    "keyed_process": KeyedProcessOperator,
    "timestamps": TimestampsOperator,
    "sink_function": SinkFunctionOperator,
    "sink_print": PrintOperator,
    "sink_writer": SinkWriterOperator,
    "sink_collect": CollectOperator,
}


def create_operator(spec: OperatorSpec, context: OperatorContext) -> Operator:
    """The runtime operator for a spec (sources are driven by the task, not created here)."""
    if spec.is_keyed and spec.kind in ("map", "flat_map", "filter"):
        return KeyedMapLikeOperator(spec, context)
    if spec.kind.startswith("batch_"):  # BATCH execution mode (strom/graph/batch.py)
        from taskmanager.runtime.batch import create_batch_operator

        return create_batch_operator(spec, context)
    if spec.kind == "window":
        from taskmanager.runtime.windows import WindowOperator

        return WindowOperator(spec, context)
    if spec.kind == "interval_join":
        from taskmanager.runtime.joins import IntervalJoinOperator

        return IntervalJoinOperator(spec, context)
    if spec.kind.startswith(("co_", "keyed_co_", "broadcast_", "keyed_broadcast_")):
        from taskmanager.runtime.two_input import create_two_input_operator

        return create_two_input_operator(spec, context)
    try:
        operator_class = _OPERATORS[spec.kind]
    except KeyError:
        raise ValueError(f"unknown operator kind '{spec.kind}'") from None
    return operator_class(spec, context)
