"""User function base classes, as in ``pyflink.datastream.functions``.

Every operator also accepts a plain callable where PyFlink does; a class is for functions that
need ``open``/``close``, state or timers. The runtime implements the abstract contexts
(``RuntimeContext``, ``TimerService``, the ``Context`` of each process function).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from enum import Enum
from typing import Any, Generic, TypeVar

from strom._unsupported import NOT_BUILT, module_getattr

__all__ = [
    "AggregateFunction",
    "AllWindowFunction",
    "BaseBroadcastProcessFunction",
    "BroadcastProcessFunction",
    "CheckpointedFunction",
    "CoFlatMapFunction",
    "CoGroupFunction",
    "CoMapFunction",
    "CoProcessFunction",
    "FilterFunction",
    "FlatJoinFunction",
    "FlatMapFunction",
    "Function",
    "JoinFunction",
    "KeySelector",
    "KeyedBroadcastProcessFunction",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "MapFunction",
    "MetricGroup",
    "NullByteKeySelector",
    "ParallelSourceFunction",
    "Partitioner",
    "ProcessAllWindowFunction",
    "ProcessFunction",
    "ProcessJoinFunction",
    "ProcessWindowFunction",
    "ReduceFunction",
    "RuntimeContext",
    "SinkFunction",
    "SourceFunction",
    "TimeDomain",
    "TimerService",
    "WindowFunction",
]

# PyFlink's type variables, so that ``WindowFunction[tuple, tuple, str, TimeWindow]`` and
# ``from pyflink.datastream.functions import KEY`` work unchanged.
W = TypeVar("W")
W2 = TypeVar("W2")
IN = TypeVar("IN")
IN1 = TypeVar("IN1")
IN2 = TypeVar("IN2")
OUT = TypeVar("OUT")
KEY = TypeVar("KEY")

# ------------------------------------------------------------------ time and timers


class TimeDomain(Enum):
    """Whether a timer fired on event time (watermarks) or on processing time (the clock)."""

    EVENT_TIME = 0
    PROCESSING_TIME = 1


class TimerService(ABC):
    """The current times, and timers of the current key (keyed streams only)."""

    @abstractmethod
    def current_processing_time(self) -> int:
        """The processing time (wall clock) in epoch milliseconds."""

    @abstractmethod
    def current_watermark(self) -> int:
        """The current event-time watermark of this operator."""

    @abstractmethod
    def register_processing_time_timer(self, timestamp: int) -> None:
        """Call ``on_timer`` once the processing time reaches ``timestamp``."""

    @abstractmethod
    def register_event_time_timer(self, timestamp: int) -> None:
        """Call ``on_timer`` once the watermark passes ``timestamp``."""

    @abstractmethod
    def delete_processing_time_timer(self, timestamp: int) -> None:
        """Remove a processing-time timer of the current key, if it is set."""

    @abstractmethod
    def delete_event_time_timer(self, timestamp: int) -> None:
        """Remove an event-time timer of the current key, if it is set."""


# ------------------------------------------------------------------ runtime context


class MetricGroup:
    """Metrics of a function; this one accepts every metric and reports none."""

    def add_group(self, name: str, extra: str | None = None) -> MetricGroup:
        return self

    def counter(self, name: str) -> _Counter:
        return _Counter()

    def gauge(self, name: str, obj: Any) -> None:
        return None

    def meter(self, name: str, time_span_in_seconds: int = 60) -> _Counter:
        return _Counter()

    def distribution(self, name: str) -> _Counter:
        return _Counter()


class _Counter:
    """A counter, meter or distribution that only counts locally."""

    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n

    def dec(self, n: int = 1) -> None:
        self.count -= n

    def mark_event(self, value: int = 1) -> None:
        self.count += value

    def update(self, value: int) -> None:
        self.count = value

    def get_count(self) -> int:
        return self.count


class RuntimeContext(ABC):
    """What a function sees of the subtask running it: ``self.runtime_context`` in ``open``.

    Example::

        class CountPerKey(KeyedProcessFunction):
            def open(self, runtime_context: RuntimeContext):
                self.count = runtime_context.get_state(
                    ValueStateDescriptor("count", Types.LONG()))
    """

    @abstractmethod
    def get_task_name(self) -> str:
        """The name of the task running the function."""

    @abstractmethod
    def get_number_of_parallel_subtasks(self) -> int:
        """The parallelism of the operator."""

    @abstractmethod
    def get_max_number_of_parallel_subtasks(self) -> int:
        """The max parallelism (number of key groups) of the operator."""

    @abstractmethod
    def get_index_of_this_subtask(self) -> int:
        """This subtask's index, from 0 to parallelism - 1."""

    @abstractmethod
    def get_attempt_number(self) -> int:
        """How many times this subtask was restarted (0 on the first run)."""

    @abstractmethod
    def get_task_name_with_subtasks(self) -> str:
        """The task name with the subtask, e.g. ``Map (2/4)``."""

    @abstractmethod
    def get_job_parameter(self, key: str, default_value: str | None = None) -> str | None:
        """A global job parameter (``env.get_config().set_global_job_parameters``)."""

    def get_metrics_group(self) -> MetricGroup:
        """The function's metric group (metrics are accepted and not reported yet)."""
        return MetricGroup()

    @abstractmethod
    def get_state(self, state_descriptor: Any) -> Any:
        """The ``ValueState`` of a ``ValueStateDescriptor``, scoped to the current key."""

    @abstractmethod
    def get_list_state(self, state_descriptor: Any) -> Any:
        """The ``ListState`` of a ``ListStateDescriptor``, scoped to the current key."""

    @abstractmethod
    def get_map_state(self, state_descriptor: Any) -> Any:
        """The ``MapState`` of a ``MapStateDescriptor``, scoped to the current key."""

    @abstractmethod
    def get_reducing_state(self, state_descriptor: Any) -> Any:
        """The ``ReducingState`` of a ``ReducingStateDescriptor``, scoped to the current key."""

    @abstractmethod
    def get_aggregating_state(self, state_descriptor: Any) -> Any:
        """The ``AggregatingState`` of an ``AggregatingStateDescriptor``, scoped to the
        current key."""


# ------------------------------------------------------------------ basic functions


class Function(ABC):  # noqa: B024 - no abstract method: open/close are optional hooks
    """The base of all user functions: ``open`` before the first record, ``close`` after
    the last."""

    def open(self, runtime_context: RuntimeContext) -> None:  # noqa: B027 - optional hook
        """Set up the function (e.g. obtain state); called once per subtask."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``open`` acquired; called once per subtask."""


class MapFunction(Function):
    """One output per input.

    Example::

        class Double(MapFunction):
            def map(self, value):
                return value * 2

        ds.map(Double())  # or ds.map(lambda v: v * 2)
    """

    @abstractmethod
    def map(self, value: Any) -> Any:
        """The output for ``value``."""


class FlatMapFunction(Function):
    """Zero, one or many outputs per input: ``flat_map`` returns or yields an iterable.

    Example::

        class Split(FlatMapFunction):
            def flat_map(self, value):
                yield from value.split()
    """

    @abstractmethod
    def flat_map(self, value: Any) -> Iterable[Any]:
        """The outputs for ``value``."""


class FilterFunction(Function):
    """Keeps the records for which ``filter`` is true.

    Example::

        class Positive(FilterFunction):
            def filter(self, value):
                return value > 0
    """

    @abstractmethod
    def filter(self, value: Any) -> bool:
        """Whether to keep ``value``."""


class ReduceFunction(Function):
    """Combines two values of a key into one, e.g. a running sum.

    Example::

        class Sum(ReduceFunction):
            def reduce(self, value1, value2):
                return value1[0], value1[1] + value2[1]

        ds.key_by(lambda v: v[0]).reduce(Sum())
    """

    @abstractmethod
    def reduce(self, value1: Any, value2: Any) -> Any:
        """The combination of ``value1`` (the result so far) and ``value2``."""


class AggregateFunction(Function):
    """Aggregates values into an accumulator and reads a result from it.

    Example::

        class Average(AggregateFunction):
            def create_accumulator(self):
                return 0, 0
            def add(self, value, accumulator):
                return accumulator[0] + value, accumulator[1] + 1
            def get_result(self, accumulator):
                return accumulator[0] / accumulator[1]
            def merge(self, acc_a, acc_b):
                return acc_a[0] + acc_b[0], acc_a[1] + acc_b[1]
    """

    @abstractmethod
    def create_accumulator(self) -> Any:
        """A new, empty accumulator."""

    @abstractmethod
    def add(self, value: Any, accumulator: Any) -> Any:
        """The accumulator with ``value`` added (may be the same object, updated)."""

    @abstractmethod
    def get_result(self, accumulator: Any) -> Any:
        """The result of an accumulator."""

    @abstractmethod
    def merge(self, acc_a: Any, acc_b: Any) -> Any:
        """Two accumulators merged into one (for merging windows)."""


class KeySelector(Function):
    """Extracts the key of a record for ``key_by``.

    Example::

        class ByUser(KeySelector):
            def get_key(self, value):
                return value["user"]
    """

    @abstractmethod
    def get_key(self, value: Any) -> Any:
        """The key of ``value``: a str, int, float, bytes, bool, None, tuple or Row."""


class NullByteKeySelector(KeySelector):
    """Puts every record under one key (0)."""

    def get_key(self, value: Any) -> int:
        return 0


class Partitioner(Function):
    """Picks the downstream subtask of a key for ``partition_custom``.

    Example::

        class ByParity(Partitioner):
            def partition(self, key, num_partitions):
                return key % 2 % num_partitions
    """

    @abstractmethod
    def partition(self, key: Any, num_partitions: int) -> int:
        """A subtask index from 0 to ``num_partitions - 1``."""


# ------------------------------------------------------------------ process functions


class ProcessFunction(Function):
    """The most general function on a stream: any number of outputs per record, with access
    to the record's timestamp and the current time.

    Example::

        class Tag(ProcessFunction):
            def process_element(self, value, ctx):
                yield value, ctx.timestamp()
    """

    class Context(ABC):
        """What ``process_element`` knows about the current record."""

        @abstractmethod
        def timer_service(self) -> TimerService:
            """The current times."""

        @abstractmethod
        def timestamp(self) -> int:
            """The event time of the current record (or of the firing timer); Long.MIN_VALUE,
            -2**63, for a record without one, as in PyFlink."""

        @abstractmethod
        def output(self, output_tag: Any, value: Any) -> None:
            """Emit ``value`` to the side output ``output_tag``."""

    @abstractmethod
    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Iterable[Any] | None:
        """The outputs for ``value`` (return or yield them)."""


class KeyedProcessFunction(Function):
    """A process function on a keyed stream: keyed state and timers per key.

    Example::

        class Timeout(KeyedProcessFunction):
            def open(self, runtime_context):
                self.last = runtime_context.get_state(
                    ValueStateDescriptor("last", Types.LONG()))

            def process_element(self, value, ctx):
                self.last.update(ctx.timestamp())
                ctx.timer_service().register_event_time_timer(ctx.timestamp() + 60_000)

            def on_timer(self, timestamp, ctx):
                if self.last.value() + 60_000 == timestamp:
                    yield ctx.get_current_key(), "idle"
    """

    class Context(ABC):
        """What ``process_element`` knows about the current record and key."""

        @abstractmethod
        def get_current_key(self) -> Any:
            """The key of the current record."""

        @abstractmethod
        def timer_service(self) -> TimerService:
            """Times, and timers of the current key."""

        @abstractmethod
        def timestamp(self) -> int:
            """The event time of the current record (or of the firing timer); Long.MIN_VALUE,
            -2**63, for a record without one, as in PyFlink."""

    class OnTimerContext(Context):
        """What ``on_timer`` knows about the firing timer."""

        @abstractmethod
        def time_domain(self) -> TimeDomain:
            """Whether the timer was an event-time or a processing-time timer."""

    @abstractmethod
    def process_element(
        self, value: Any, ctx: KeyedProcessFunction.Context
    ) -> Iterable[Any] | None:
        """The outputs for ``value`` (return or yield them)."""

    def on_timer(
        self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext
    ) -> Iterable[Any] | None:
        """Called when a timer set through the timer service fires; may emit outputs."""


class CoMapFunction(Function):
    """A map over two connected streams: ``map1`` for the first, ``map2`` for the second.

    Example::

        class Merge(CoMapFunction):
            def map1(self, value):
                return "left", value
            def map2(self, value):
                return "right", value
    """

    @abstractmethod
    def map1(self, value: Any) -> Any:
        """The output for a record of the first stream."""

    @abstractmethod
    def map2(self, value: Any) -> Any:
        """The output for a record of the second stream."""


class CoFlatMapFunction(Function):
    """A flat map over two connected streams."""

    @abstractmethod
    def flat_map1(self, value: Any) -> Iterable[Any]:
        """The outputs for a record of the first stream."""

    @abstractmethod
    def flat_map2(self, value: Any) -> Iterable[Any]:
        """The outputs for a record of the second stream."""


class CoProcessFunction(Function):
    """A process function over two connected streams."""

    class Context(ABC):
        """What ``process_element1/2`` know about the current record."""

        @abstractmethod
        def timer_service(self) -> TimerService:
            """The current times."""

        @abstractmethod
        def timestamp(self) -> int:
            """The event time of the current record (or of the firing timer); Long.MIN_VALUE,
            -2**63, for a record without one, as in PyFlink."""

    @abstractmethod
    def process_element1(self, value: Any, ctx: CoProcessFunction.Context) -> Any:
        """The outputs for a record of the first stream."""

    @abstractmethod
    def process_element2(self, value: Any, ctx: CoProcessFunction.Context) -> Any:
        """The outputs for a record of the second stream."""


class KeyedCoProcessFunction(Function):
    """A process function over two connected keyed streams, with keyed state and timers."""

    class Context(ABC):
        """What ``process_element1/2`` know about the current record and key."""

        @abstractmethod
        def get_current_key(self) -> Any:
            """The key of the current record."""

        @abstractmethod
        def timer_service(self) -> TimerService:
            """Times, and timers of the current key."""

        @abstractmethod
        def timestamp(self) -> int:
            """The event time of the current record (or of the firing timer); Long.MIN_VALUE,
            -2**63, for a record without one, as in PyFlink."""

    class OnTimerContext(Context):
        """What ``on_timer`` knows about the firing timer."""

        @abstractmethod
        def time_domain(self) -> TimeDomain:
            """Whether the timer was an event-time or a processing-time timer."""

    @abstractmethod
    def process_element1(self, value: Any, ctx: KeyedCoProcessFunction.Context) -> Any:
        """The outputs for a record of the first stream."""

    @abstractmethod
    def process_element2(self, value: Any, ctx: KeyedCoProcessFunction.Context) -> Any:
        """The outputs for a record of the second stream."""

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Any:
        """Called when a timer fires; may emit outputs."""


# ------------------------------------------------------------------ window functions


class WindowFunction(Function, Generic[IN, OUT, KEY, W]):
    """Computes the outputs of one window of a key from all its elements.

    Example::

        class Count(WindowFunction):
            def apply(self, key, window, inputs):
                yield key, window.end, len(list(inputs))
    """

    @abstractmethod
    def apply(self, key: Any, window: Any, inputs: Iterable[Any]) -> Iterable[Any]:
        """The outputs of ``window`` for ``key``."""


class AllWindowFunction(Function, Generic[IN, OUT, W]):
    """Computes the outputs of one window of a non-keyed stream."""

    @abstractmethod
    def apply(self, window: Any, inputs: Iterable[Any]) -> Iterable[Any]:
        """The outputs of ``window``."""


class ProcessWindowFunction(Function, Generic[IN, OUT, KEY, W]):
    """Computes the outputs of one window of a key, with a context of times and state.

    Example::

        class MaxPerWindow(ProcessWindowFunction):
            def process(self, key, context, elements):
                yield key, context.window().end, max(elements)
    """

    class Context(ABC, Generic[W2]):
        """The window being evaluated, the times, and per-window and global state."""

        @abstractmethod
        def window(self) -> Any:
            """The window being evaluated."""

        @abstractmethod
        def current_processing_time(self) -> int:
            """The current processing time."""

        @abstractmethod
        def current_watermark(self) -> int:
            """The current event-time watermark."""

        @abstractmethod
        def window_state(self) -> Any:
            """Keyed state scoped to the key and this window."""

        @abstractmethod
        def global_state(self) -> Any:
            """Keyed state scoped to the key, across windows."""

    @abstractmethod
    def process(
        self, key: Any, context: ProcessWindowFunction.Context, elements: Iterable[Any]
    ) -> Iterable[Any]:
        """The outputs of the window for ``key``."""

    def clear(self, context: ProcessWindowFunction.Context) -> None:
        """Called when the window is purged: clear its per-window state."""


class ProcessAllWindowFunction(Function, Generic[IN, OUT, W]):
    """Computes the outputs of one window of a non-keyed stream, with a context."""

    class Context(ABC, Generic[W2]):
        """The window being evaluated, and per-window and global state."""

        @abstractmethod
        def window(self) -> Any:
            """The window being evaluated."""

        @abstractmethod
        def window_state(self) -> Any:
            """State scoped to this window."""

        @abstractmethod
        def global_state(self) -> Any:
            """State across windows."""

    @abstractmethod
    def process(
        self, context: ProcessAllWindowFunction.Context, elements: Iterable[Any]
    ) -> Iterable[Any]:
        """The outputs of the window."""

    def clear(self, context: ProcessAllWindowFunction.Context) -> None:
        """Called when the window is purged: clear its per-window state."""


# ------------------------------------------------------------------ broadcast


class BaseBroadcastProcessFunction(Function):
    """The base of ``BroadcastProcessFunction`` and ``KeyedBroadcastProcessFunction``."""


class BroadcastProcessFunction(BaseBroadcastProcessFunction, Generic[IN1, IN2, OUT]):
    """Processes a non-keyed stream connected with a broadcast stream whose records update
    broadcast state that every parallel instance sees.

    Example::

        RULES = MapStateDescriptor("rules", Types.STRING(), Types.STRING())

        class ApplyRules(BroadcastProcessFunction):
            def process_element(self, value, ctx):
                rule = ctx.get_broadcast_state(RULES).get(value)
                yield value, rule

            def process_broadcast_element(self, value, ctx):
                ctx.get_broadcast_state(RULES).put(value[0], value[1])
    """

    class BaseContext(ABC):
        """The times and the record's timestamp."""

        @abstractmethod
        def timestamp(self) -> int:
            """The event time of the current record (or of the firing timer); Long.MIN_VALUE,
            -2**63, for a record without one, as in PyFlink."""

        @abstractmethod
        def current_processing_time(self) -> int:
            """The current processing time."""

        @abstractmethod
        def current_watermark(self) -> int:
            """The current event-time watermark."""

    class Context(BaseContext):
        """The context of a broadcast record: the broadcast state is writable."""

        @abstractmethod
        def get_broadcast_state(self, state_descriptor: Any) -> Any:
            """The ``BroadcastState`` of a ``MapStateDescriptor``."""

    class ReadOnlyContext(BaseContext):
        """The context of a regular record: the broadcast state is read-only."""

        @abstractmethod
        def get_broadcast_state(self, state_descriptor: Any) -> Any:
            """The ``ReadOnlyBroadcastState`` of a ``MapStateDescriptor``."""

    @abstractmethod
    def process_element(
        self, value: Any, ctx: BroadcastProcessFunction.ReadOnlyContext
    ) -> Iterable[Any] | None:
        """The outputs for a record of the non-broadcast stream."""

    @abstractmethod
    def process_broadcast_element(
        self, value: Any, ctx: BroadcastProcessFunction.Context
    ) -> Iterable[Any] | None:
        """Handle a record of the broadcast stream (typically: update broadcast state)."""


class KeyedBroadcastProcessFunction(BaseBroadcastProcessFunction, Generic[KEY, IN1, IN2, OUT]):
    """Processes a keyed stream connected with a broadcast stream: keyed state, timers and
    broadcast state."""

    class BaseContext(ABC):
        """The times and the record's timestamp."""

        @abstractmethod
        def timestamp(self) -> int:
            """The event time of the current record (or of the firing timer); Long.MIN_VALUE,
            -2**63, for a record without one, as in PyFlink."""

        @abstractmethod
        def current_processing_time(self) -> int:
            """The current processing time."""

        @abstractmethod
        def current_watermark(self) -> int:
            """The current event-time watermark."""

    class Context(BaseContext):
        """The context of a broadcast record: the broadcast state is writable."""

        @abstractmethod
        def get_broadcast_state(self, state_descriptor: Any) -> Any:
            """The ``BroadcastState`` of a ``MapStateDescriptor``."""

    class ReadOnlyContext(BaseContext):
        """The context of a keyed record: read-only broadcast state, key and timers."""

        @abstractmethod
        def get_broadcast_state(self, state_descriptor: Any) -> Any:
            """The ``ReadOnlyBroadcastState`` of a ``MapStateDescriptor``."""

        @abstractmethod
        def timer_service(self) -> TimerService:
            """Times, and timers of the current key."""

        @abstractmethod
        def get_current_key(self) -> Any:
            """The key of the current record."""

    class OnTimerContext(ReadOnlyContext):
        """What ``on_timer`` knows about the firing timer."""

        @abstractmethod
        def time_domain(self) -> TimeDomain:
            """Whether the timer was an event-time or a processing-time timer."""

    @abstractmethod
    def process_element(
        self, value: Any, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext
    ) -> Iterable[Any] | None:
        """The outputs for a record of the keyed stream."""

    @abstractmethod
    def process_broadcast_element(
        self, value: Any, ctx: KeyedBroadcastProcessFunction.Context
    ) -> Iterable[Any] | None:
        """Handle a record of the broadcast stream."""

    def on_timer(
        self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext
    ) -> Iterable[Any] | None:
        """Called when a timer fires; may emit outputs."""


# ------------------------------------------------------------------ checkpoints


class CheckpointedFunction(ABC):
    """A function with operator (non-keyed) state it snapshots and restores itself.

    Example::

        class Buffering(SinkFunction, CheckpointedFunction):
            def initialize_state(self, context):
                self.saved = context.get_operator_state_store().get_list_state(
                    ListStateDescriptor("buffer", Types.PICKLED_BYTE_ARRAY()))
                self.buffer = list(self.saved.get())

            def snapshot_state(self, context):
                self.saved.update(self.buffer)
    """

    @abstractmethod
    def snapshot_state(self, context: Any) -> None:
        """Copy what must survive a failure into operator state (at a checkpoint)."""

    @abstractmethod
    def initialize_state(self, context: Any) -> None:
        """Obtain operator state and, on recovery, restore from it (before ``open``)."""


# ------------------------------------------------------------------ sources and sinks


class SinkFunction(Function):
    """A sink called once per record (``ds.add_sink(...)``).

    Example::

        class PrintSink(SinkFunction):
            def invoke(self, value, context):
                print(value, context.timestamp())
    """

    @abstractmethod
    def invoke(self, value: Any, context: Any) -> None:
        """Consume ``value``; ``context.timestamp()`` is its event time, if any."""


class SourceFunction(Function):
    """A source that pushes records from ``run(ctx)`` (``env.add_source(...)``); non-parallel.

    ``ctx`` has ``collect(value)``, ``collect_with_timestamp(value, timestamp)`` and
    ``emit_watermark(watermark)``. ``cancel()`` is called from another thread: make ``run``
    return soon after.

    Example::

        class Counter(SourceFunction):
            def __init__(self, n):
                self.n, self.running = n, True

            def run(self, ctx):
                i = 0
                while self.running and i < self.n:
                    ctx.collect(i)
                    i += 1

            def cancel(self):
                self.running = False
    """

    @abstractmethod
    def run(self, ctx: Any) -> None:
        """Emit records through ``ctx`` until done or cancelled."""

    def cancel(self) -> None:
        """Ask ``run`` to stop."""


class ParallelSourceFunction(SourceFunction):
    """A ``SourceFunction`` that runs with the operator's parallelism; each instance reads
    its share, e.g. by ``runtime_context.get_index_of_this_subtask()``."""


# ------------------------------------------------------------------ joins


class JoinFunction(Function):
    """One output for each pair of records, one from each side, that a window join matched.

    Example::

        class Pair(JoinFunction):
            def join(self, first, second):
                return first[0], first[1], second[1]

        orders.join(payments).where(lambda o: o[0]).equal_to(lambda p: p[0]) \\
              .window(TumblingEventTimeWindows.of(Time.seconds(10))).apply(Pair())
    """

    @abstractmethod
    def join(self, first: Any, second: Any) -> Any:
        """The output for ``first`` (of the first stream) and ``second`` (of the second)."""


class FlatJoinFunction(Function):
    """Zero, one or many outputs for each pair of records a window join matched.

    Example::

        class PairIfPaid(FlatJoinFunction):
            def join(self, first, second):
                if second[1] >= first[1]:
                    yield first[0], second[1]
    """

    @abstractmethod
    def join(self, first: Any, second: Any) -> Iterable[Any]:
        """The outputs for ``first`` and ``second`` (return or yield them)."""


class CoGroupFunction(Function):
    """All records of one key and one window from both sides at once; also sees a key whose
    window holds records of one side only (an outer join, for instance).

    Example::

        class Totals(CoGroupFunction):
            def co_group(self, first, second):
                yield sum(o[1] for o in first), sum(p[1] for p in second)
    """

    @abstractmethod
    def co_group(self, first: Iterable[Any], second: Iterable[Any]) -> Iterable[Any]:
        """The outputs for the records of the first and of the second stream (either may
        be empty, not both)."""


class ProcessJoinFunction(Function):
    """Called for each pair of records an interval join matched, with their timestamps.

    Example::

        class Within(ProcessJoinFunction):
            def process_element(self, left, right, ctx):
                yield left, right, ctx.get_right_timestamp() - ctx.get_left_timestamp()

        clicks.key_by(lambda c: c[0]).interval_join(views.key_by(lambda v: v[0])) \\
              .between(Time.seconds(-5), Time.seconds(5)).process(Within())
    """

    class Context(ABC):
        """The timestamps of the pair being joined."""

        @abstractmethod
        def get_left_timestamp(self) -> int:
            """The event time of the left (first) record."""

        @abstractmethod
        def get_right_timestamp(self) -> int:
            """The event time of the right (second) record."""

        @abstractmethod
        def get_timestamp(self) -> int:
            """The event time of the outputs: the later of the two records' timestamps."""

        @abstractmethod
        def output(self, output_tag: Any, value: Any) -> None:
            """Emit ``value`` to the side output ``output_tag``."""

    @abstractmethod
    def process_element(
        self, left: Any, right: Any, ctx: ProcessJoinFunction.Context
    ) -> Iterable[Any] | None:
        """The outputs for a matched pair (return or yield them)."""


# PyFlink defines the broadcast contexts on the common base.
BaseBroadcastProcessFunction.BaseContext = BroadcastProcessFunction.BaseContext  # type: ignore[attr-defined]
BaseBroadcastProcessFunction.Context = BroadcastProcessFunction.Context  # type: ignore[attr-defined]
BaseBroadcastProcessFunction.ReadOnlyContext = BroadcastProcessFunction.ReadOnlyContext  # type: ignore[attr-defined]

_ASYNC = NOT_BUILT + " (async I/O); call the service from a map() or process() function"
__getattr__ = module_getattr(
    __name__,
    {
        "AsyncFunction": _ASYNC,
        "AsyncFunctionDescriptor": _ASYNC,
        "AsyncRetryPredicate": _ASYNC,
        "AsyncRetryStrategy": _ASYNC,
    },
)
