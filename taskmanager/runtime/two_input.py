"""Operators with two inputs: ``connect`` (CoMap, CoFlatMap, CoProcess, KeyedCoProcess) and
broadcast state (BroadcastProcess, KeyedBroadcastProcess).

The task calls ``process_batch`` with records of the first input and ``process_batch2`` with
records of the second (``JobEdge.target_input``). Event time is the minimum over both inputs'
watermarks, as for any operator with several input channels. On a keyed connected stream
each input has its own key selector; both address the same keyed state and timers.

Broadcast state is a dict per ``MapStateDescriptor`` that every subtask holds in full. Only
the broadcast input may change it, so all subtasks keep equal copies; each snapshots its copy
and a restore (at any parallelism) takes the first one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from strom.datastream import state as api
from taskmanager.runtime.context import ProcessContext
from taskmanager.runtime.operators import (
    KeyedOperator,
    KeyedProcessOperator,
    Operator,
    run_process_function,
    user_function,
)
from taskmanager.state.operator_state import OperatorRestore


def _required(function: Any, method: str, api_name: str) -> Callable[..., Any]:
    bound = getattr(function, method, None)
    if not callable(bound):
        raise TypeError(f"{api_name} needs a function with '{method}'; got {type(function)}")
    return bound


def _mapped(call: Callable[[Any], Any], key_of: Callable | None, backend: Any):
    """A batch function applying ``call`` per record (setting the current key if keyed)."""

    def process(values: list) -> list:
        if key_of is None:
            return [call(v) for v in values]
        out = []
        for value in values:
            backend.current_key = key_of(value)
            out.append(call(value))
        return out

    return process


def _flat_mapped(call: Callable[[Any], Any], key_of: Callable | None, backend: Any):
    def process(values: list, timestamps: list | None) -> tuple[list, list | None]:
        out: list = []
        stamps: list | None = None if timestamps is None else []
        for index, value in enumerate(values):
            if key_of is not None:
                backend.current_key = key_of(value)
            result = call(value)
            if result is not None:
                before = len(out)
                out.extend(result)
                if stamps is not None:
                    stamps.extend([timestamps[index]] * (len(out) - before))
        return out, stamps

    return process


class _CoMapMixin:
    """``CoMapFunction.map1/map2`` and ``CoFlatMapFunction.flat_map1/flat_map2``."""

    def _open_co_map(self, key_of1: Callable | None, key_of2: Callable | None, backend: Any):
        function = self.function
        if self.spec.kind == "co_map":
            map1 = _required(function, "map1", "connect(...).map()")
            map2 = _required(function, "map2", "connect(...).map()")
            first, second = _mapped(map1, key_of1, backend), _mapped(map2, key_of2, backend)
            self._first = lambda v, t: self.output.emit(first(v), t)
            self._second = lambda v, t: self.output.emit(second(v), t)
        else:
            fm1 = _required(function, "flat_map1", "connect(...).flat_map()")
            fm2 = _required(function, "flat_map2", "connect(...).flat_map()")
            first = _flat_mapped(fm1, key_of1, backend)
            second = _flat_mapped(fm2, key_of2, backend)

            def emit(result: tuple[list, list | None]) -> None:
                if result[0]:
                    self.output.emit(*result)

            self._first = lambda v, t: emit(first(v, t))
            self._second = lambda v, t: emit(second(v, t))

    def process_batch(self, values: list, timestamps: list | None) -> None:
        self._first(values, timestamps)

    def process_batch2(self, values: list, timestamps: list | None) -> None:
        self._second(values, timestamps)


class CoMapOperator(_CoMapMixin, Operator):
    def open(self) -> None:
        super().open()
        self._open_co_map(None, None, None)


class KeyedCoMapOperator(_CoMapMixin, KeyedOperator):
    """CoMap/CoFlatMap on a keyed connected stream: the functions may use keyed state."""

    def open(self) -> None:
        super().open()
        key_of1, key_of2 = self.spec.args["key_selectors"]
        self._open_co_map(key_of1, key_of2, self.backend)


class CoProcessOperator(Operator):
    """``CoProcessFunction``: ``process_element1/2(value, ctx)`` yield outputs."""

    def open(self) -> None:
        super().open()
        self.call1 = _required(self.function, "process_element1", "CoProcessFunction")
        self.call2 = _required(self.function, "process_element2", "CoProcessFunction")
        self.ctx = ProcessContext(self.context, None, self)

    def process_batch(self, values, timestamps):
        run_process_function(self, values, timestamps, call=self.call1)

    def process_batch2(self, values, timestamps):
        run_process_function(self, values, timestamps, call=self.call2)


class KeyedCoProcessOperator(KeyedProcessOperator):
    """``KeyedCoProcessFunction``: keyed state and timers shared by both inputs."""

    def open(self) -> None:
        super().open()
        self.call1 = _required(self.function, "process_element1", "KeyedCoProcessFunction")
        self.call2 = _required(self.function, "process_element2", "KeyedCoProcessFunction")
        self.key_of1, self.key_of2 = self.spec.args["key_selectors"]

    def process_batch(self, values, timestamps):
        run_process_function(self, values, timestamps, self.key_of1, self.backend, self.call1)

    def process_batch2(self, values, timestamps):
        run_process_function(self, values, timestamps, self.key_of2, self.backend, self.call2)


# ------------------------------------------------------------------ broadcast state


class HeapBroadcastState(api.BroadcastState):
    """One ``MapStateDescriptor``'s broadcast state: a dict, writable or a read-only view."""

    def __init__(self, entries: dict, writable: bool) -> None:
        self._entries = entries
        self._writable = writable

    def _check_writable(self) -> None:
        if not self._writable:
            raise RuntimeError(
                "broadcast state is read-only in process_element (every subtask must keep the "
                "same copy); change it in process_broadcast_element"
            )

    def get(self, key: Any) -> Any:
        return self._entries.get(key)

    def contains(self, key: Any) -> bool:
        return key in self._entries

    def items(self) -> Iterable[tuple[Any, Any]]:
        return list(self._entries.items())

    def keys(self) -> Iterable[Any]:
        return list(self._entries.keys())

    def values(self) -> Iterable[Any]:
        return list(self._entries.values())

    def is_empty(self) -> bool:
        return not self._entries

    def put(self, key: Any, value: Any) -> None:
        self._check_writable()
        self._entries[key] = value

    def put_all(self, dict_value: dict) -> None:
        self._check_writable()
        self._entries.update(dict_value)

    def remove(self, key: Any) -> None:
        self._check_writable()
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._check_writable()
        self._entries.clear()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class BroadcastContext(ProcessContext):
    """The ``ctx`` of a broadcast process function: the record's timestamp, the times, the
    broadcast state (writable only for broadcast records) and, when keyed, key and timers."""

    def __init__(self, operator: Any, backend: Any, writable: bool) -> None:
        super().__init__(operator.context, backend, operator)
        self._states = operator.broadcast_states
        self._declared = operator.declared
        self._views: dict[str, HeapBroadcastState] = {}
        self._writable = writable
        self._keyed_operator = operator if backend is not None else None

    def get_broadcast_state(self, state_descriptor: Any) -> HeapBroadcastState:
        name = state_descriptor.get_name()
        view = self._views.get(name)
        if view is None:
            if name not in self._declared:
                raise ValueError(
                    f"no broadcast state '{name}': pass its MapStateDescriptor to "
                    f"broadcast() (declared: {sorted(self._declared) or 'none'})"
                )
            view = HeapBroadcastState(self._states.setdefault(name, {}), self._writable)
            self._views[name] = view
        return view

    def current_processing_time(self) -> int:
        return self.timer_service().current_processing_time()

    def current_watermark(self) -> int:
        return self.timer_service().current_watermark()

    def apply_to_keyed_state(self, state_descriptor: Any, function: Callable) -> None:
        """Call ``function(key, state)`` for every key of this subtask that has the state."""
        if self._keyed_operator is None or not self._writable:
            raise RuntimeError(
                "apply_to_keyed_state() is available in process_broadcast_element of a "
                "KeyedBroadcastProcessFunction"
            )
        backend = self._backend
        keys = list(backend.table(state_descriptor.get_name()))
        previous = backend.current_key
        try:
            for key in keys:
                backend.current_key = key
                function(key, backend.get_state(state_descriptor))
        finally:
            backend.current_key = previous


class _BroadcastStateMixin:
    """Holds, snapshots and restores the broadcast states of an operator, and switches the
    context between read-only (regular input) and writable (broadcast input)."""

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        self.declared = {d.get_name() for d in self.spec.args.get("broadcast_descriptors", [])}
        self.broadcast_states: dict[str, dict] = {}
        if restore is not None:
            for snapshot in restore.all():
                if "broadcast" in snapshot:
                    self.broadcast_states = {
                        name: dict(entries) for name, entries in snapshot["broadcast"].items()
                    }
                    break
        super().initialize_state(restore)

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        state = super().snapshot_state(checkpoint_id, timestamp)
        state["broadcast"] = {name: dict(e) for name, e in self.broadcast_states.items()}
        return state

    def _open_contexts(self, backend: Any, kind: str) -> None:
        self.call2 = _required(self.function, "process_broadcast_element", kind)
        self.ctx = self.read_only = BroadcastContext(self, backend, writable=False)
        self.writable = BroadcastContext(self, backend, writable=True)

    def process_batch2(self, values, timestamps):
        self.ctx = self.writable
        try:
            run_process_function(self, values, timestamps, call=self.call2)
        finally:
            self.ctx = self.read_only


class BroadcastProcessOperator(_BroadcastStateMixin, Operator):
    """``BroadcastProcessFunction``: the first input is the regular one, the second the
    broadcast one."""

    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, "process_element")
        self._open_contexts(None, "BroadcastProcessFunction")

    def process_batch(self, values, timestamps):
        run_process_function(self, values, timestamps)


class KeyedBroadcastProcessOperator(_BroadcastStateMixin, KeyedProcessOperator):
    """``KeyedBroadcastProcessFunction``: keyed state and timers for the keyed input,
    broadcast state written by the broadcast input."""

    def open(self) -> None:
        super().open()
        self._open_contexts(self.backend, "KeyedBroadcastProcessFunction")


TWO_INPUT_OPERATORS: dict[str, type[Operator]] = {
    "co_map": CoMapOperator,
    "co_flat_map": CoMapOperator,
    "co_process": CoProcessOperator,
    "keyed_co_process": KeyedCoProcessOperator,
    "broadcast_process": BroadcastProcessOperator,
    "keyed_broadcast_process": KeyedBroadcastProcessOperator,
}


def create_two_input_operator(spec: Any, context: Any) -> Operator:
    if spec.kind in ("co_map", "co_flat_map") and spec.is_keyed:
        return KeyedCoMapOperator(spec, context)
    return TWO_INPUT_OPERATORS[spec.kind](spec, context)
