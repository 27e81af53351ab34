"""What user functions see of the runtime: ``RuntimeContext`` and process-function contexts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from strom.common.watermark_strategy import MIN_TIMESTAMP
from strom.datastream import functions as api

MIN_WATERMARK = -(2**63)


class TaskCancelled(Exception):
    """Raised inside a task's thread to unwind it after a cancel."""


@dataclass
class OperatorContext:
    """The facts about one operator instance in one subtask."""

    job_id: str
    task_name: str
    operator_name: str
    operator_uid: str
    subtask_index: int
    parallelism: int
    max_parallelism: int
    attempt: int = 0
    job_parameters: dict[str, str] = field(default_factory=dict)
    keyed_backend: Any = None
    auto_watermark_interval_ms: int = 200
    #: asks the JobManager whether this attempt is still the job's current one
    attempt_is_current: Any = None
    #: the job takes checkpoints
    checkpointing: bool = False
    #: asks the JobManager for a source's next splits (``Task.request_splits``); None where
    #: splits are not handed out (BATCH, or a task without a JobManager)
    request_splits: Any = None
    _runtime_context: Any = None

    @property
    def runtime_context(self) -> StreamingRuntimeContext:
        if self._runtime_context is None:
            self._runtime_context = StreamingRuntimeContext(self)
        return self._runtime_context


class StreamingRuntimeContext(api.RuntimeContext):
    """``get_runtime_context()`` of a function: subtask facts and keyed state."""

    def __init__(self, context: OperatorContext) -> None:
        self._context = context

    def get_task_name(self) -> str:
        return self._context.task_name

    def get_number_of_parallel_subtasks(self) -> int:
        return self._context.parallelism

    def get_max_number_of_parallel_subtasks(self) -> int:
        return self._context.max_parallelism

    def get_index_of_this_subtask(self) -> int:
        return self._context.subtask_index

    def get_attempt_number(self) -> int:
        return self._context.attempt

    def get_task_name_with_subtasks(self) -> str:
        c = self._context
        return f"{c.task_name} ({c.subtask_index + 1}/{c.parallelism})"

    def get_job_parameter(self, key: str, default_value: str | None = None) -> str | None:
        return self._context.job_parameters.get(key, default_value)

    def _backend(self, what: str) -> Any:
        backend = self._context.keyed_backend
        if backend is None:
            raise RuntimeError(
                f"{what}: keyed state is only available on a keyed stream. Did you forget "
                f"key_by() before '{self._context.operator_name}'?"
            )
        return backend

    def get_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_state").get_state(state_descriptor)

    def get_list_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_list_state").get_state(state_descriptor)

    def get_map_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_map_state").get_state(state_descriptor)

    def get_reducing_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_reducing_state").get_state(state_descriptor)

    def get_aggregating_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_aggregating_state").get_state(state_descriptor)


class OperatorTimerService(api.TimerService):
    """``ctx.timer_service()``: time queries, and timers for the current key when keyed."""

    def __init__(self, operator: Any = None, backend: Any = None) -> None:
        self._operator = operator
        self._backend = backend

    def current_processing_time(self) -> int:
        return int(time.time() * 1000)

    def current_watermark(self) -> int:
        return self._operator.current_watermark if self._operator is not None else MIN_WATERMARK

    def _timers(self, what: str) -> Any:
        timers = getattr(self._operator, "timers", None)
        if timers is None:
            raise RuntimeError(
                f"{what}: timers need a keyed stream. Did you forget key_by() before process()?"
            )
        return timers

    def register_processing_time_timer(self, timestamp: int) -> None:
        timers = self._timers("register_processing_time_timer")
        timers.register_processing_time_timer(self._backend.current_key, int(timestamp))

    def register_event_time_timer(self, timestamp: int) -> None:
        timers = self._timers("register_event_time_timer")
        timers.register_event_time_timer(self._backend.current_key, int(timestamp))

    def delete_processing_time_timer(self, timestamp: int) -> None:
        timers = self._timers("delete_processing_time_timer")
        timers.delete_processing_time_timer(self._backend.current_key, int(timestamp))

    def delete_event_time_timer(self, timestamp: int) -> None:
        timers = self._timers("delete_event_time_timer")
        timers.delete_event_time_timer(self._backend.current_key, int(timestamp))


class ProcessContext:
    """The ``ctx`` of ``process_element`` and ``on_timer``: the record's (or timer's)
    timestamp, the timer service, the current key and the time domain of a firing timer."""

    def __init__(self, context: OperatorContext, backend: Any = None, operator: Any = None):
        self._context = context
        self._backend = backend
        self._operator = operator
        self.current_timestamp: int | None = None
        self.domain: str | None = None
        self._timer_service = OperatorTimerService(operator, backend)

    def timestamp(self) -> int:
        """The record's timestamp; Long.MIN_VALUE for a record without one, as PyFlink gives
        (its Java side sends that for "no timestamp"), so that ``ctx.timestamp() + delay``
        works on such records there and here alike."""
        stamp = self.current_timestamp
        return MIN_TIMESTAMP if stamp is None else stamp

    def timer_service(self) -> OperatorTimerService:
        return self._timer_service

    def get_current_key(self) -> Any:
        if self._backend is None:
            raise RuntimeError("get_current_key() is only available on a keyed stream")
        return self._backend.current_key

    def time_domain(self) -> Any:
        return getattr(api.TimeDomain, self.domain) if self.domain else None

    def output(self, output_tag: Any, value: Any) -> None:
        """Emit ``value`` to the side output ``output_tag``, with the current timestamp."""
        self._operator.output.tagged_output(output_tag, value, self.current_timestamp)
