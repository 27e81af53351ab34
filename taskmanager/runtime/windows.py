"""The window operator: assigns records to windows per key, asks the trigger when to fire,
and runs the window function over what each window holds.

Window contents, trigger state and window timers all live in the operator's keyed state, so
windows are checkpointed by key group with everything else and restored with their keys.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

from strom.datastream.window import TimeWindow
from taskmanager.runtime.operators import MAX_WATERMARK, KeyedOperator, user_function
from taskmanager.state.heap import HeapKeyedStateBackend
from taskmanager.state.operator_state import OperatorRestore

try:
    # The tumbling windows' per-record loop and firing in C (strom/_speedups.c), where the
    # install built it.
    from strom import _speedups
except ImportError:  # pragma: no cover - an install without a C compiler
    _speedups = None

CONTENTS = "__window_contents"  # key -> {window: accumulator or list}
TRIGGER_STATE = "__window_trigger"  # key -> {(window, state name): value}
EVENT_TIMERS = "__window_timers_event"  # key -> {(timestamp, window)}
PROCESSING_TIMERS = "__window_timers_processing"
SESSIONS = "__window_sessions"  # key -> [windows] (merging assigners)

_MISSING = object()
_INT64_LOW, _INT64_HIGH = -(2**63), 2**63 - 1


class _PartitionedValue:
    """Trigger state (value/reducing semantics) of one (key, window)."""

    def __init__(self, store: dict, slot: tuple, descriptor: Any) -> None:
        self.store, self.slot = store, slot
        reduce = getattr(descriptor, "get_reduce_function", None)
        self.reduce = user_function(reduce(), "reduce") if callable(reduce) else None

    def get(self) -> Any:
        return self.store.get(self.slot)

    value = get

    def update(self, value: Any) -> None:
        self.store[self.slot] = value

    def add(self, value: Any) -> None:
        current = self.store.get(self.slot, _MISSING)
        if current is _MISSING or self.reduce is None:
            self.store[self.slot] = value
        else:
            self.store[self.slot] = self.reduce(current, value)

    def clear(self) -> None:
        self.store.pop(self.slot, None)


class _TriggerContext:
    """What a trigger sees of the runtime for one (key, window)."""

    def __init__(self, operator: WindowOperator) -> None:
        self.operator = operator
        self.key: Any = None
        self.window: Any = None
        self.merged: list = []

    def get_current_processing_time(self) -> int:
        return int(time.time() * 1000)

    def get_current_watermark(self) -> int:
        return self.operator.current_watermark

    def register_processing_time_timer(self, t: int) -> None:
        self.operator.register_timer(PROCESSING_TIMERS, self.key, int(t), self.window)

    def register_event_time_timer(self, t: int) -> None:
        self.operator.register_timer(EVENT_TIMERS, self.key, int(t), self.window)

    def delete_processing_time_timer(self, t: int) -> None:
        self.operator.delete_timer(PROCESSING_TIMERS, self.key, int(t), self.window)

    def delete_event_time_timer(self, t: int) -> None:
        self.operator.delete_timer(EVENT_TIMERS, self.key, int(t), self.window)

    def get_partitioned_state(self, descriptor: Any) -> _PartitionedValue:
        store = self.operator.trigger_state.setdefault(self.key, {})
        return _PartitionedValue(store, (self.window, descriptor.get_name()), descriptor)

    def merge_partitioned_state(self, descriptor: Any) -> None:
        store = self.operator.trigger_state.setdefault(self.key, {})
        target = _PartitionedValue(store, (self.window, descriptor.get_name()), descriptor)
        for window in self.merged:
            slot = (window, descriptor.get_name())
            if slot in store:
                target.add(store.pop(slot))

    def get_metric_group(self) -> Any:
        return self.operator.context.runtime_context.get_metrics_group()


class _WindowContext:
    """``context`` of ``ProcessWindowFunction.process``."""

    def __init__(self, operator: WindowOperator, window: Any) -> None:
        self._operator, self._window = operator, window

    def window(self) -> Any:
        return self._window

    def current_processing_time(self) -> int:
        return int(time.time() * 1000)

    def current_watermark(self) -> int:
        return self._operator.current_watermark

    def window_state(self) -> WindowStateStore:
        """Keyed state of this key in this window only; cleared with the window."""
        store = self._operator.window_states
        store.backend.current_key = self._window
        return store

    def global_state(self) -> Any:
        """Keyed state of this key across all its windows."""
        return self._operator.context.runtime_context

    def output(self, output_tag: Any, value: Any) -> None:
        """Emit ``value`` to a side output, stamped with the window's last timestamp."""
        self._operator.output.tagged_output(output_tag, value, self._window.max_timestamp())


WINDOW_STATE_PREFIX = "__window__/"


class _PerWindowTable:
    """A table of per-window state as the Heap*State classes see it: indexed by window, for
    the keyed backend's current key. Stored in the keyed backend as key -> {window: value},
    so it is snapshotted and redistributed by key group like any keyed state."""

    __slots__ = ("keyed", "outer")

    def __init__(self, outer: dict, keyed: HeapKeyedStateBackend) -> None:
        self.outer, self.keyed = outer, keyed

    def _inner(self, create: bool = False) -> dict | None:
        inner = self.outer.get(self.keyed.current_key)
        if inner is None and create:
            inner = self.outer[self.keyed.current_key] = {}
        return inner

    def get(self, window: Any, default: Any = None) -> Any:
        inner = self._inner()
        return default if inner is None else inner.get(window, default)

    def __getitem__(self, window: Any) -> Any:
        inner = self._inner()
        if inner is None:
            raise KeyError(window)
        return inner[window]

    def __contains__(self, window: Any) -> bool:
        inner = self._inner()
        return inner is not None and window in inner

    def __setitem__(self, window: Any, value: Any) -> None:
        self._inner(create=True)[window] = value

    def setdefault(self, window: Any, default: Any) -> Any:
        return self._inner(create=True).setdefault(window, default)

    def pop(self, window: Any, default: Any = None) -> Any:
        inner = self._inner()
        if inner is None:
            return default
        value = inner.pop(window, default)
        if not inner:
            del self.outer[self.keyed.current_key]
        return value


class _PerWindowBackend(HeapKeyedStateBackend):
    """Makes the usual state objects for per-window state: its ``current_key`` is the
    window; the tables live in the operator's keyed backend (see ``_PerWindowTable``)."""

    def __init__(self, keyed: HeapKeyedStateBackend) -> None:
        super().__init__(keyed.max_parallelism, keyed.ttl_time_provider)
        self.keyed = keyed

    def table(self, name: str) -> Any:
        table = self.tables.get(name)
        if table is None:
            outer = self.keyed.table(WINDOW_STATE_PREFIX + name)
            table = self.tables[name] = _PerWindowTable(outer, self.keyed)
        return table

    def clear_window(self, window: Any) -> None:
        """Drop the current key's state in ``window`` (the window is gone)."""
        for table in self.tables.values():
            table.pop(window, None)


class WindowStateStore:
    """``context.window_state()``: get_state & co. scoped to the key and the window."""

    def __init__(self, keyed: HeapKeyedStateBackend) -> None:
        self.backend = _PerWindowBackend(keyed)

    def get_state(self, state_descriptor: Any) -> Any:
        return self.backend.get_state(state_descriptor)

    get_list_state = get_map_state = get_reducing_state = get_aggregating_state = get_state


class _AssignerContext:
    def __init__(self, operator: WindowOperator) -> None:
        self._operator = operator

    def get_current_processing_time(self) -> int:
        return int(time.time() * 1000)

    def get_runtime_context(self) -> Any:
        return self._operator.context.runtime_context


class _MergeCallback:
    def __init__(self) -> None:
        self.merges: list[tuple[list, Any]] = []

    def merge(self, to_be_merged: Any, merge_result: Any) -> None:
        self.merges.append((list(to_be_merged), merge_result))


def _rank(window: Any) -> int:
    """At equal times a window fires before its state is cleaned up."""
    return 1 if isinstance(window, tuple) else 0


class WindowOperator(KeyedOperator):
    def initialize_state(self, restore: OperatorRestore | None) -> None:
        super().initialize_state(restore)
        backend = self.backend
        self.contents = backend.table(CONTENTS)
        self.trigger_state = backend.table(TRIGGER_STATE)
        self.sessions = backend.table(SESSIONS)
        self._heaps: dict[str, list] = {EVENT_TIMERS: [], PROCESSING_TIMERS: []}
        self._sequence = itertools.count()
        for table in (EVENT_TIMERS, PROCESSING_TIMERS):
            for key, entries in backend.table(table).items():
                for timestamp, window in entries:
                    self._heaps[table].append(
                        (timestamp, _rank(window), next(self._sequence), key, window)
                    )
            heapq.heapify(self._heaps[table])

    def open(self) -> None:
        super().open()
        args = self.spec.args
        self.assigner = args["assigner"]
        self.trigger = args.get("trigger") or self.assigner.get_default_trigger(None)
        self.lateness = int(args.get("allowed_lateness") or 0)
        #: the side output (tag id) of records too late for any window; else they are dropped
        self.late_tag = args.get("late_data_tag")
        self.mode = args["mode"]
        function = args.get("function")
        if self.mode == "reduce":
            self.reduce = user_function(function, "reduce")
        self.aggregate = function if self.mode == "aggregate" else None
        self.window_function = args.get("window_function")
        self.window_states = WindowStateStore(self.backend)
        for function in self._functions():
            opener = getattr(function, "open", None)
            if callable(opener):
                opener(self.context.runtime_context)
        # ProcessWindowFunction.clear(context) runs when a window is dropped.
        self.clear_function = getattr(self.window_function, "clear", None)
        self.event_time = bool(self.assigner.is_event_time())
        self.merging = callable(getattr(self.assigner, "merge_windows", None))
        self.trigger_context = _TriggerContext(self)
        self.assigner_context = _AssignerContext(self)
        # The common case (event-time windows that do not merge, the default trigger, no
        # allowed lateness) takes a fast path: each window fires and is cleared when the
        # watermark passes its end, and its timer is implied by its contents (so restoring
        # the contents restores the timers).
        from strom.datastream.window import EventTimeTrigger, TumblingEventTimeWindows

        self.fast = (
            type(self.trigger) is EventTimeTrigger
            and self.event_time
            and not self.merging
            and self.lateness == 0
        )
        self.tumbling = None
        if self.fast and type(self.assigner) is TumblingEventTimeWindows:
            self.tumbling = (self.assigner.get_size(), self.assigner.get_offset())
        if self.tumbling is not None:
            # Tumbling windows are kept by their start (an int) and fire in start order:
            # start -> keys with that window, and a heap of the starts.
            self._keys_by_start: dict[int, list] = {}
            for key, per_key in self.contents.items():
                for start in per_key:
                    self._keys_by_start.setdefault(start, []).append(key)
            self._starts = list(self._keys_by_start)
            heapq.heapify(self._starts)
        elif self.fast:
            self._fast_heap = [
                (window.end - 1, next(self._sequence), key, window)
                for key, per_key in self.contents.items()
                for window in per_key
            ]
            heapq.heapify(self._fast_heap)

    # -------------------------------------------------------------- timers

    def register_timer(self, table: str, key: Any, timestamp: int, window: Any) -> None:
        entries = self.backend.table(table).setdefault(key, set())
        if (timestamp, window) not in entries:
            entries.add((timestamp, window))
            heapq.heappush(
                self._heaps[table],
                (timestamp, _rank(window), next(self._sequence), key, window),
            )

    def delete_timer(self, table: str, key: Any, timestamp: int, window: Any) -> None:
        entries = self.backend.table(table).get(key)
        if entries is not None:
            entries.discard((timestamp, window))
            if not entries:
                del self.backend.table(table)[key]

    def _due(self, table: str, until: int):
        heap, entries_of = self._heaps[table], self.backend.table(table)
        while heap and heap[0][0] <= until:
            timestamp, _, _, key, window = heapq.heappop(heap)
            entries = entries_of.get(key)
            if entries is None or (timestamp, window) not in entries:
                continue
            entries.discard((timestamp, window))
            if not entries:
                del entries_of[key]
            yield timestamp, key, window

    # -------------------------------------------------------------- records

    def _cleanup_time(self, window: Any) -> int:
        end = window.max_timestamp()
        if not self.event_time:
            return end
        return min(end + self.lateness, MAX_WATERMARK)

    def _cleanup_timer(self, register_or_delete: Callable, key: Any, window: Any) -> None:
        """Register (or delete) the timer that drops ``window``'s state once it is over; none
        for a window that never ends (a global window), as Flink's WindowOperator: a
        processing-time timer at the end of time made the task wait that long, more than a
        lock can (OverflowError), and every key kept one for nothing."""
        at = self._cleanup_time(window)
        if at < MAX_WATERMARK:
            table = EVENT_TIMERS if self.event_time else PROCESSING_TIMERS
            register_or_delete(table, key, at, ("cleanup", window))

    def _is_late(self, window: Any) -> bool:
        return self.event_time and self._cleanup_time(window) <= self.current_watermark

    def _add(self, current: Any, value: Any) -> Any:
        if self.mode == "reduce":
            return value if current is _MISSING else self.reduce(current, value)
        if self.mode == "aggregate":
            if current is _MISSING:
                current = self.aggregate.create_accumulator()
            return self.aggregate.add(value, current)
        if current is _MISSING:
            return [value]
        current.append(value)
        return current

    def _combine(self, a: Any, b: Any) -> Any:
        if self.mode == "reduce":
            return self.reduce(a, b)
        if self.mode == "aggregate":
            return self.aggregate.merge(a, b)
        return a + b

    def _process_tumbling(self, values: list, timestamps: list, keys: list | None) -> None:
        size, offset = self.tumbling
        watermark = self.current_watermark
        if (
            self.mode in ("reduce", "aggregate")
            and _speedups is not None
            and type(values) is type(timestamps) is list
            and type(self.contents) is dict
            and all(_INT64_LOW <= n <= _INT64_HIGH for n in (size, offset, watermark))
        ):
            # The loop below in C, up to the first record it leaves to Python (late, or a
            # timestamp that is not a 64-bit int); then on from the record after it.
            if self.mode == "reduce":
                function, aggregate = self.reduce, ()
            else:
                function = self.aggregate.add
                aggregate = (self.aggregate.create_accumulator, self.backend)
            args = (self.key_of, function, self.contents, self._keys_by_start, self._starts)
            index = 0
            while True:
                index = _speedups.tumbling_reduce(
                    values,
                    timestamps,
                    keys,
                    *args,
                    heapq.heappush,
                    size,
                    offset,
                    watermark,
                    index,
                    *aggregate,
                )
                if index >= len(values):
                    return
                self._tumbling_records(values, timestamps, keys, index, index + 1)
                index += 1
        self._tumbling_records(values, timestamps, keys, 0, len(values))

    def _tumbling_records(
        self, values: list, timestamps: list, keys: list | None, begin: int, end: int
    ) -> None:
        key_of, contents = self.key_of, self.contents
        keys_by_start, starts = self._keys_by_start, self._starts
        size, offset = self.tumbling
        watermark = self.current_watermark
        reduce = self.reduce if self.mode == "reduce" else None
        push = heapq.heappush
        for index in range(begin, end):
            value = values[index]
            stamp = timestamps[index]
            start = stamp - (stamp - offset) % size
            if start + size - 1 <= watermark:
                if self.late_tag is not None:
                    self.output.side_output(self.late_tag, value, stamp)
                continue
            key = key_of(value) if keys is None else keys[index]
            per_key = contents.get(key)
            if per_key is None:
                per_key = contents[key] = {}
            current = per_key.get(start, _MISSING)
            if current is _MISSING:
                with_start = keys_by_start.get(start)
                if with_start is None:
                    keys_by_start[start] = [key]
                    push(starts, start)
                else:
                    with_start.append(key)
                if reduce is not None:
                    per_key[start] = value
                    continue
            if reduce is not None:
                per_key[start] = reduce(current, value)
            else:
                self.backend.current_key = key
                per_key[start] = self._add(current, value)

    def _fire_tumbling(self, watermark: int) -> None:
        size = self.tumbling[0]
        starts, keys_by_start, contents = self._starts, self._keys_by_start, self.contents
        plain = self.mode == "reduce" and self.window_function is None
        compiled = plain and _speedups is not None and type(contents) is dict
        out: list = []
        stamps: list = []
        while starts and starts[0] + size - 1 <= watermark:
            start = heapq.heappop(starts)
            end = start + size
            with_start = keys_by_start.pop(start, ())
            if compiled and type(with_start) is list:
                # The loop below for a plain reduce, in C.
                fired = _speedups.fire_tumbling(with_start, contents, start, out)
                stamps.extend([end - 1] * fired)
                continue
            window = TimeWindow(start, end)
            fired = 0
            for key in with_start:
                per_key = contents.get(key)
                if per_key is None:
                    continue
                accumulated = per_key.pop(start, _MISSING)
                if not per_key:
                    del contents[key]
                if accumulated is _MISSING:
                    continue
                if plain:
                    out.append(accumulated)
                    fired += 1
                    continue
                self.backend.current_key = key
                produced = self._fire(key, window, accumulated)
                self._window_dropped(window)
                out.extend(produced)
                fired += len(produced)
            stamps.extend([end - 1] * fired)
        if out:
            self.output.emit(out, stamps)

    def _process_fast(self, values: list, timestamps: list | None, keys: list | None) -> None:
        if timestamps is None:
            raise RuntimeError(
                "an event-time window got records without timestamps: did you forget "
                "assign_timestamps_and_watermarks() or a WatermarkStrategy with a timestamp "
                "assigner on the source?"
            )
        key_of, contents, heap, sequence = (
            self.key_of,
            self.contents,
            self._fast_heap,
            self._sequence,
        )
        watermark = self.current_watermark
        mode = self.mode
        reduce = self.reduce if mode == "reduce" else None
        tumbling = self.tumbling
        assign, context = self.assigner.assign_windows, self.assigner_context
        push = heapq.heappush
        for index, value in enumerate(values):
            stamp = timestamps[index]
            key = key_of(value) if keys is None else keys[index]
            if tumbling is not None:
                size, offset = tumbling
                start = stamp - (stamp - offset) % size
                windows = (TimeWindow(start, start + size),)
            else:
                windows = assign(value, stamp, context)
            per_key = contents.get(key)
            if per_key is None:
                per_key = contents[key] = {}
            accepted = False
            for window in windows:
                end = window.end
                if end - 1 <= watermark:
                    continue  # late for this window
                accepted = True
                current = per_key.get(window, _MISSING)
                if current is _MISSING:
                    push(heap, (end - 1, next(sequence), key, window))
                    if reduce is not None:
                        per_key[window] = value
                        continue
                if reduce is not None:
                    per_key[window] = reduce(current, value)
                else:
                    self.backend.current_key = key
                    per_key[window] = self._add(current, value)
            if not accepted:
                if not per_key:
                    del contents[key]
                if self.late_tag is not None:
                    self.output.side_output(self.late_tag, value, stamp)

    def _fire_fast(self, watermark: int) -> None:
        heap, contents = self._fast_heap, self.contents
        out: list = []
        stamps: list = []
        pop = heapq.heappop
        while heap and heap[0][0] <= watermark:
            fire_at, _, key, window = pop(heap)
            per_key = contents.get(key)
            if per_key is None or window not in per_key:
                continue
            self.backend.current_key = key
            produced = self._fire(key, window, per_key.pop(window))
            self._window_dropped(window)
            if not per_key:
                del contents[key]
            out.extend(produced)
            stamps.extend([fire_at] * len(produced))
        if out:
            self.output.emit(out, stamps)

    def process_batch(self, values, timestamps):
        self._process(values, timestamps, None)

    def process_keyed(self, values, timestamps, keys):
        # The keys the hash edge computed: the key selector runs once per record (issue 12).
        self._process(values, timestamps, keys)

    def _process(self, values: list, timestamps: list | None, keys: list | None) -> None:
        if self.fast:
            if self.tumbling is not None and timestamps is not None:
                self._process_tumbling(values, timestamps, keys)
            else:
                self._process_fast(values, timestamps, keys)
            return
        key_of, backend = self.key_of, self.backend
        out: list = []
        stamps: list = []
        for index, value in enumerate(values):
            key = key_of(value) if keys is None else keys[index]
            backend.current_key = key
            if self.event_time:
                stamp = None if timestamps is None else timestamps[index]
                if stamp is None:
                    raise RuntimeError(
                        "an event-time window got a record without a timestamp: did you forget "
                        "assign_timestamps_and_watermarks() or a WatermarkStrategy with a "
                        "timestamp assigner on the source?"
                    )
            else:
                stamp = int(time.time() * 1000)
            windows = self.assigner.assign_windows(value, stamp, self.assigner_context)
            if self.merging:
                windows = self._merge(key, windows)
            per_key = self.contents.get(key)
            if per_key is None:
                per_key = self.contents[key] = {}
            accepted = False
            for window in windows:
                if self._is_late(window):
                    if self.merging:
                        self._retire(key, window)
                    continue  # late for this window
                accepted = True
                per_key[window] = self._add(per_key.get(window, _MISSING), value)
                ctx = self.trigger_context
                ctx.key, ctx.window = key, window
                result = self.trigger.on_element(value, stamp, window, ctx)
                self._act(result, key, window, out, stamps)
                self._cleanup_timer(self.register_timer, key, window)
            if not accepted and self.late_tag is not None:
                self.output.side_output(self.late_tag, value, stamp)
            if not per_key:
                self.contents.pop(key, None)
        if out:
            self.output.emit(out, stamps)

    def _merge(self, key: Any, new_windows: list) -> list:
        """Sessions: fold the new window into the key's windows it overlaps."""
        existing = list(self.sessions.get(key, []))
        callback = _MergeCallback()
        self.assigner.merge_windows(existing + list(new_windows), callback)
        contents = self.contents.setdefault(key, {})
        result = set(existing) | set(new_windows)
        for merged, into in callback.merges:
            accumulated = _MISSING
            for window in merged:
                result.discard(window)
                if window in contents:
                    part = contents.pop(window)
                    accumulated = (
                        part if accumulated is _MISSING else self._combine(accumulated, part)
                    )
                self._cleanup_timer(self.delete_timer, key, window)
                ctx = self.trigger_context
                ctx.key, ctx.window = key, window
                self.trigger.clear(window, ctx)
            result.add(into)
            if accumulated is not _MISSING:
                contents[into] = accumulated
            ctx = self.trigger_context
            ctx.key, ctx.window, ctx.merged = key, into, merged
            self.trigger.on_merge(into, ctx)
            ctx.merged = []
        self.sessions[key] = sorted(result, key=lambda w: (w.start, w.end))
        # The new records go to the window that now covers them.
        covering = []
        for window in new_windows:
            for candidate in self.sessions[key]:
                if candidate.start <= window.start and window.end <= candidate.end:
                    covering.append(candidate)
                    break
        return covering

    def _retire(self, key: Any, window: Any) -> None:
        """``window`` is no longer a session of ``key`` that later records may join: it was
        cleared, or it was late as soon as it was made (Flink's retireWindow)."""
        sessions = self.sessions.get(key)
        if sessions is not None and window in sessions:
            remaining = [w for w in sessions if w != window]
            if remaining:
                self.sessions[key] = remaining
            else:
                del self.sessions[key]

    def _act(self, result: Any, key: Any, window: Any, out: list, stamps: list) -> None:
        if result is None:
            return
        if result.is_fire():
            per_key = self.contents.get(key, {})
            if window in per_key:
                produced = self._fire(key, window, per_key[window])
                out.extend(produced)
                stamps.extend([window.max_timestamp()] * len(produced))
        if result.is_purge():
            per_key = self.contents.get(key)
            if per_key is not None:
                per_key.pop(window, None)

    def _fire(self, key: Any, window: Any, contents: Any) -> list:
        if self.mode == "reduce":
            elements = [contents]
        elif self.mode == "aggregate":
            elements = [self.aggregate.get_result(contents)]
        else:
            elements = list(contents)
        function = self.window_function
        if function is None:
            return elements
        process = getattr(function, "process", None)
        if callable(process):
            result = process(key, _WindowContext(self, window), elements)
        else:
            result = user_function(function, "apply")(key, window, elements)
        return list(result) if result is not None else []

    def _window_dropped(self, window: Any) -> None:
        """The current key's ``window`` is gone: ``clear`` of a ProcessWindowFunction, and
        its per-window state."""
        if self.clear_function is not None and callable(self.clear_function):
            self.clear_function(_WindowContext(self, window))
        if self.window_states.backend.tables:
            self.window_states.backend.clear_window(window)

    def _functions(self) -> list:
        args = self.spec.args
        return [f for f in (args.get("function"), args.get("window_function")) if f is not None]

    def close(self) -> None:
        for function in self._functions():
            closer = getattr(function, "close", None)
            if callable(closer):
                closer()

    # -------------------------------------------------------------- time

    def _on_timers(self, due, event_time: bool) -> None:
        out: list = []
        stamps: list = []
        ctx = self.trigger_context
        for timestamp, key, window in due:
            self.backend.current_key = key
            if isinstance(window, tuple) and window and window[0] == "cleanup":
                self._clear(key, window[1])
                continue
            ctx.key, ctx.window = key, window
            if event_time:
                result = self.trigger.on_event_time(timestamp, window, ctx)
            else:
                result = self.trigger.on_processing_time(timestamp, window, ctx)
            self._act(result, key, window, out, stamps)
        if out:
            self.output.emit(out, stamps)

    def _clear(self, key: Any, window: Any) -> None:
        per_key = self.contents.get(key)
        if per_key is not None:
            per_key.pop(window, None)
            if not per_key:
                del self.contents[key]
        ctx = self.trigger_context
        ctx.key, ctx.window = key, window
        self.trigger.clear(window, ctx)
        store = self.trigger_state.get(key)
        if store is not None:
            for slot in [s for s in store if s[0] == window]:
                del store[slot]
            if not store:
                del self.trigger_state[key]
        self._window_dropped(window)
        if self.merging:
            self._retire(key, window)

    def process_watermark(self, timestamp: int) -> None:
        self.current_watermark = timestamp
        if self.tumbling is not None:
            self._fire_tumbling(timestamp)
        elif self.fast:
            self._fire_fast(timestamp)
        else:
            self._on_timers(self._due(EVENT_TIMERS, timestamp), True)
        self.output.emit_watermark(timestamp)

    def next_processing_timer(self) -> int | None:
        heap, entries_of = self._heaps[PROCESSING_TIMERS], self.backend.table(PROCESSING_TIMERS)
        while heap:
            timestamp, _, _, key, window = heap[0]
            if (timestamp, window) in entries_of.get(key, ()):
                return timestamp
            heapq.heappop(heap)
        return None

    def fire_processing_timers(self, now_ms: int) -> None:
        self._on_timers(self._due(PROCESSING_TIMERS, now_ms), False)

    def end_input(self) -> None:
        """A bounded input ended: processing-time windows still open fire now."""
        if not self.event_time:
            self._on_timers(self._due(PROCESSING_TIMERS, MAX_WATERMARK), False)
