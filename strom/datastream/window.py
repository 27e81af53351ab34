"""Windows, window assigners and triggers, as in ``pyflink.datastream.window``.

Everything here is pure logic the window operator calls: an assigner maps an element (and its
timestamp, or the processing time) to windows, a merging assigner says which session windows
become one, and a trigger answers "fire, purge or wait?" for a window when an element, a timer
or a merge arrives. Timers and state go through the ``TriggerContext`` the runtime supplies,
so a trigger instance holds no per-window data and is shared by all keys and windows.

Sizes, slides, offsets and gaps accept a ``Time``, a ``Duration`` or an int of milliseconds.

Example::

    (
        ds.key_by(lambda v: v[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(10)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable
from enum import Enum
from typing import Any, Generic, NoReturn, TypeVar

from strom.common.serializer import PickleTypeSerializer
from strom.common.time import Duration, Time, to_milliseconds
from strom.common.typeinfo import Types
from strom.common.watermark_strategy import MAX_TIMESTAMP, MIN_TIMESTAMP
from strom.datastream.functions import MetricGroup, RuntimeContext
from strom.datastream.state import (
    ReducingState,
    ReducingStateDescriptor,
    State,
    StateDescriptor,
    ValueStateDescriptor,
)

__all__ = [
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountSlidingWindowAssigner",
    "CountTrigger",
    "CountTumblingWindowAssigner",
    "CountWindow",
    "CountWindowSerializer",
    "DynamicEventTimeSessionWindows",
    "DynamicProcessingTimeSessionWindows",
    "EventTimeSessionWindows",
    "EventTimeTrigger",
    "GlobalWindow",
    "GlobalWindowSerializer",
    "GlobalWindows",
    "MergingWindowAssigner",
    "NeverTrigger",
    "OnMergeContext",
    "ProcessingTimeSessionWindows",
    "ProcessingTimeTrigger",
    "PurgingTrigger",
    "SessionWindowTimeGapExtractor",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "TimeWindow",
    "TimeWindowSerializer",
    "Trigger",
    "TriggerContext",
    "TriggerResult",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "Window",
    "WindowAssigner",
    "WindowAssignerContext",
]

T = TypeVar("T")
W = TypeVar("W")
W2 = TypeVar("W2")
IN = TypeVar("IN")
OUT = TypeVar("OUT")
KEY = TypeVar("KEY")

#: A size, slide, offset or gap: ``Time.seconds(10)``, ``Duration.of_seconds(10)`` or 10_000.
TimeLike = Time | Duration | int
#: A ``SessionWindowTimeGapExtractor`` or a function ``element -> gap in milliseconds``.
GapExtractorLike = Any


# ------------------------------------------------------------------ argument checks


def _to_millis(value: Any, what: str) -> int:
    try:
        return to_milliseconds(value, what)
    except TypeError:
        raise TypeError(
            f"{what} must be a Time such as Time.seconds(10), a Duration or an int of "
            f"milliseconds; got {value!r}"
        ) from None


def _positive_millis(value: Any, what: str) -> int:
    millis = _to_millis(value, what)
    if millis <= 0:
        raise ValueError(f"{what} must be positive; got {millis} ms")
    return millis


def _positive_count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{what} must be a positive int (a number of elements); got {value!r}")
    return value


def _raise_missing_timestamp(assigner: str) -> NoReturn:
    raise ValueError(
        f"{assigner} got a record without a timestamp: did you forget "
        "ds.assign_timestamps_and_watermarks(WatermarkStrategy...) before the window, "
        "or did you mean the processing-time assigner?"
    )


class _Parameterized:
    """Equality, hash and repr of a built-in assigner or trigger from its parameters."""

    def _params(self) -> tuple[Any, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._params() == self._params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._params()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(p) for p in self._params())})"


# ------------------------------------------------------------------ windows


class Window(ABC):
    """A finite bucket of elements; once time passes ``max_timestamp()`` it is complete."""

    __slots__ = ()

    @abstractmethod
    def max_timestamp(self) -> int:
        """The largest timestamp that still belongs to the window."""


class TimeWindow(tuple, Window):
    """The time interval ``[start, end)`` in epoch milliseconds.

    Example::

        >>> w = TimeWindow(0, 10_000)
        >>> w.max_timestamp()
        9999
        >>> w.cover(TimeWindow(5_000, 12_000))
        TimeWindow(start=0, end=12000)
    """

    # A tuple underneath: hashing and comparing windows (done per record by the window
    # operator) then run in C.
    __slots__ = ()

    def __new__(cls, start: int, end: int) -> TimeWindow:
        return tuple.__new__(cls, (start, end))

    start = property(operator.itemgetter(0), doc="The first millisecond of the window.")
    end = property(operator.itemgetter(1), doc="The first millisecond after the window.")

    def max_timestamp(self) -> int:
        return self.end - 1

    def intersects(self, other: TimeWindow) -> bool:
        """Whether the two windows overlap or touch (so that sessions merge)."""
        return self.start <= other.end and self.end >= other.start

    def cover(self, other: TimeWindow) -> TimeWindow:
        """The smallest window that contains both windows."""
        return TimeWindow(min(self.start, other.start), max(self.end, other.end))

    @staticmethod
    def get_window_start_with_offset(timestamp: int, offset: int, window_size: int) -> int:
        """The start of the window of size ``window_size`` (shifted by ``offset``) that holds
        ``timestamp``; correct for negative timestamps too.

        Example::

            >>> TimeWindow.get_window_start_with_offset(12_345, 0, 5_000)
            10000
            >>> TimeWindow.get_window_start_with_offset(-1, 0, 5_000)
            -5000
        """
        return timestamp - (timestamp - offset) % window_size

    @staticmethod
    def merge_windows(
        windows: Iterable[TimeWindow],
        callback: MergingWindowAssigner.MergeCallback | Callable[[list[TimeWindow], Any], Any],
    ) -> None:
        """Report each group of two or more overlapping windows to ``callback.merge(
        to_be_merged, merge_result)`` (or to a plain callable of the same arguments), with the
        covering window as the result. Groups of one window are not reported.

        Example::

            >>> merged = []
            >>> TimeWindow.merge_windows(
            ...     [TimeWindow(0, 10), TimeWindow(5, 15), TimeWindow(30, 40)],
            ...     lambda group, result: merged.append((group, result)))
            >>> [(len(group), result) for group, result in merged]
            [(2, TimeWindow(start=0, end=15))]
        """
        merge = getattr(callback, "merge", callback)
        groups: list[tuple[TimeWindow, list[TimeWindow]]] = []
        for candidate in sorted(windows):
            if groups and groups[-1][0].intersects(candidate):
                cover, members = groups[-1]
                groups[-1] = (cover.cover(candidate), members)
                members.append(candidate)
            else:
                groups.append((candidate, [candidate]))
        for cover, members in groups:
            if len(members) > 1:
                merge(members, cover)

    # Equality, hashing and order are the tuple's (start, end).

    def __reduce__(self) -> tuple[Any, ...]:
        return TimeWindow, (self.start, self.end)

    def __repr__(self) -> str:
        return f"TimeWindow(start={self.start}, end={self.end})"


class CountWindow(Window):
    """The ``id``-th window of a count window assigner; it never completes by time.

    Example::

        >>> CountWindow(3)
        CountWindow(id=3)
    """

    __slots__ = ("id",)

    def __init__(self, id: int) -> None:  # "id" as PyFlink names it
        self.id = id

    def max_timestamp(self) -> int:
        return MAX_TIMESTAMP

    def __eq__(self, other: object) -> bool:
        return type(other) is CountWindow and self.id == other.id  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(("CountWindow", self.id))

    def __lt__(self, other: CountWindow) -> bool:
        if type(other) is not CountWindow:
            return NotImplemented
        return self.id < other.id

    def __le__(self, other: CountWindow) -> bool:
        if type(other) is not CountWindow:
            return NotImplemented
        return self.id <= other.id

    def __gt__(self, other: CountWindow) -> bool:
        if type(other) is not CountWindow:
            return NotImplemented
        return self.id > other.id

    def __ge__(self, other: CountWindow) -> bool:
        if type(other) is not CountWindow:
            return NotImplemented
        return self.id >= other.id

    def __reduce__(self) -> tuple[Any, ...]:
        return CountWindow, (self.id,)

    def __repr__(self) -> str:
        return f"CountWindow(id={self.id})"


class GlobalWindow(Window):
    """The single window of ``GlobalWindows``: every element of a key is in it.

    Example::

        >>> GlobalWindow.get() == GlobalWindow()
        True
    """

    __slots__ = ()

    @staticmethod
    def get() -> GlobalWindow:
        """The global window."""
        return _GLOBAL_WINDOW

    def max_timestamp(self) -> int:
        return MAX_TIMESTAMP

    def __eq__(self, other: object) -> bool:
        return type(other) is GlobalWindow

    def __hash__(self) -> int:
        return 0

    def __lt__(self, other: GlobalWindow) -> bool:
        if type(other) is not GlobalWindow:
            return NotImplemented
        return False

    def __le__(self, other: GlobalWindow) -> bool:
        if type(other) is not GlobalWindow:
            return NotImplemented
        return True

    def __gt__(self, other: GlobalWindow) -> bool:
        if type(other) is not GlobalWindow:
            return NotImplemented
        return False

    def __ge__(self, other: GlobalWindow) -> bool:
        if type(other) is not GlobalWindow:
            return NotImplemented
        return True

    def __reduce__(self) -> tuple[Any, ...]:
        return GlobalWindow.get, ()

    def __repr__(self) -> str:
        return "GlobalWindow"


_GLOBAL_WINDOW = GlobalWindow()


# ------------------------------------------------------------------ triggers


class TriggerResult(Enum):
    """What happens to a window after a trigger call: ``(fire, purge)``.

    - ``CONTINUE``: nothing.
    - ``FIRE``: evaluate the window function and emit; keep the elements.
    - ``PURGE``: drop the elements without emitting.
    - ``FIRE_AND_PURGE``: evaluate, emit, then drop the elements.

    A window with no elements emits nothing even when it fires.
    """

    CONTINUE = (False, False)
    FIRE_AND_PURGE = (True, True)
    FIRE = (True, False)
    PURGE = (False, True)

    def is_fire(self) -> bool:
        return self.value[0]

    def is_purge(self) -> bool:
        return self.value[1]


class TriggerContext(ABC):
    """Times, timers and window-scoped state for a trigger call; the runtime implements it for
    the current key and window."""

    @abstractmethod
    def get_current_processing_time(self) -> int:
        """The processing time (wall clock) in epoch milliseconds."""

    def get_metric_group(self) -> MetricGroup:
        """The metric group of the window operator."""
        return MetricGroup()

    @abstractmethod
    def get_current_watermark(self) -> int:
        """The current event-time watermark."""

    @abstractmethod
    def register_processing_time_timer(self, time: int) -> None:
        """Call ``on_processing_time(time, window, ctx)`` once the processing time reaches
        ``time``."""

    @abstractmethod
    def register_event_time_timer(self, time: int) -> None:
        """Call ``on_event_time(time, window, ctx)`` once the watermark reaches ``time``."""

    @abstractmethod
    def delete_processing_time_timer(self, time: int) -> None:
        """Remove the processing-time timer at ``time`` of this key and window, if set."""

    @abstractmethod
    def delete_event_time_timer(self, time: int) -> None:
        """Remove the event-time timer at ``time`` of this key and window, if set."""

    @abstractmethod
    def get_partitioned_state(self, state_descriptor: StateDescriptor) -> State:
        """The state of ``state_descriptor`` scoped to the current key and window."""


class OnMergeContext(TriggerContext):
    """The context of ``Trigger.on_merge``: the current window is the merge result."""

    @abstractmethod
    def merge_partitioned_state(self, state_descriptor: StateDescriptor) -> None:
        """Merge the state of ``state_descriptor`` of the merged windows into the result
        window (a merging state: ``ReducingState``, ``AggregatingState`` or ``ListState``)."""


class Trigger(ABC, Generic[T, W]):
    """Decides when a window (of one key) is evaluated and when it is purged.

    A trigger instance serves every key and window, so it keeps nothing in attributes beyond
    its configuration: counters go in ``ctx.get_partitioned_state(...)``, deadlines in timers.
    To be used with session windows it returns True from ``can_merge`` and implements
    ``on_merge``.

    Example::

        class FireOnDone(Trigger):
            def on_element(self, element, timestamp, window, ctx):
                return TriggerResult.FIRE_AND_PURGE if element == "done" else TriggerResult.CONTINUE
            def on_processing_time(self, time, window, ctx):
                return TriggerResult.CONTINUE
            def on_event_time(self, time, window, ctx):
                return TriggerResult.CONTINUE
            def clear(self, window, ctx):
                pass

        ds.key_by(lambda v: v[0]).window(GlobalWindows.create()).trigger(FireOnDone())
    """

    TriggerContext = TriggerContext
    OnMergeContext = OnMergeContext

    @abstractmethod
    def on_element(
        self, element: T, timestamp: int | None, window: W, ctx: TriggerContext
    ) -> TriggerResult:
        """Called for every element added to ``window``."""

    @abstractmethod
    def on_processing_time(self, time: int, window: W, ctx: TriggerContext) -> TriggerResult:
        """Called when a processing-time timer of ``window`` fires."""

    @abstractmethod
    def on_event_time(self, time: int, window: W, ctx: TriggerContext) -> TriggerResult:
        """Called when an event-time timer of ``window`` fires."""

    def can_merge(self) -> bool:
        """Whether the trigger supports merging windows (then ``on_merge`` is implemented)."""
        return False

    def on_merge(self, window: W, ctx: OnMergeContext) -> None:
        """Called when windows were merged into ``window``: merge state, re-register timers."""
        raise NotImplementedError(
            f"{type(self).__name__} does not support merging windows (session windows): "
            "implement can_merge() returning True and on_merge()"
        )

    @abstractmethod
    def clear(self, window: W, ctx: TriggerContext) -> None:
        """Called when ``window`` is removed: delete its timers and its partitioned state."""


class EventTimeTrigger(_Parameterized, Trigger[T, Window]):
    """Fires once the watermark passes the end of the window; the default trigger of the
    event-time assigners.

    An element that arrives when the watermark is already past the window (late but within
    the allowed lateness) fires the window again at once.
    """

    @staticmethod
    def create() -> EventTimeTrigger:
        return EventTimeTrigger()

    def on_element(
        self, element: Any, timestamp: int | None, window: Window, ctx: TriggerContext
    ) -> TriggerResult:
        if window.max_timestamp() <= ctx.get_current_watermark():
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.FIRE if time == window.max_timestamp() else TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: OnMergeContext) -> None:
        # A merged window whose end already passed is fired by the element that caused the
        # merge (on_element); only a future end needs a timer.
        if window.max_timestamp() > ctx.get_current_watermark():
            ctx.register_event_time_timer(window.max_timestamp())

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        ctx.delete_event_time_timer(window.max_timestamp())


class ProcessingTimeTrigger(_Parameterized, Trigger[T, Window]):
    """Fires once the processing time passes the end of the window; the default trigger of
    the processing-time assigners."""

    @staticmethod
    def create() -> ProcessingTimeTrigger:
        return ProcessingTimeTrigger()

    def on_element(
        self, element: Any, timestamp: int | None, window: Window, ctx: TriggerContext
    ) -> TriggerResult:
        ctx.register_processing_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.FIRE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: OnMergeContext) -> None:
        if window.max_timestamp() > ctx.get_current_processing_time():
            ctx.register_processing_time_timer(window.max_timestamp())

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        ctx.delete_processing_time_timer(window.max_timestamp())


class CountTrigger(_Parameterized, Trigger[T, Window]):
    """Fires each time the window has received ``count`` more elements.

    Example::

        ds.key_by(lambda v: v[0]).window(GlobalWindows.create()).trigger(CountTrigger.of(100))
    """

    def __init__(self, window_size: int) -> None:
        self._count = _positive_count(window_size, "CountTrigger.of(window_size)")
        self._count_state_descriptor = ReducingStateDescriptor("count", operator.add, Types.LONG())

    @staticmethod
    def of(window_size: int) -> CountTrigger:
        return CountTrigger(window_size)

    def get_count(self) -> int:
        return self._count

    def _params(self) -> tuple[Any, ...]:
        return (self._count,)

    def on_element(
        self, element: Any, timestamp: int | None, window: Window, ctx: TriggerContext
    ) -> TriggerResult:
        count: ReducingState = ctx.get_partitioned_state(self._count_state_descriptor)  # type: ignore[assignment]
        count.add(1)
        if count.get() >= self._count:
            count.clear()
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: OnMergeContext) -> None:
        ctx.merge_partitioned_state(self._count_state_descriptor)

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        ctx.get_partitioned_state(self._count_state_descriptor).clear()


class PurgingTrigger(_Parameterized, Trigger[T, Window]):
    """Turns every FIRE of ``nested_trigger`` into FIRE_AND_PURGE.

    Example::

        .window(GlobalWindows.create()).trigger(PurgingTrigger.of(CountTrigger.of(100)))
    """

    def __init__(self, nested_trigger: Trigger) -> None:
        if not isinstance(nested_trigger, Trigger):
            raise TypeError(
                "PurgingTrigger.of() takes a Trigger such as CountTrigger.of(10); "
                f"got {nested_trigger!r}"
            )
        self.nested_trigger = nested_trigger

    @staticmethod
    def of(nested_trigger: Trigger) -> PurgingTrigger:
        return PurgingTrigger(nested_trigger)

    def _params(self) -> tuple[Any, ...]:
        return (self.nested_trigger,)

    @staticmethod
    def _purging(result: TriggerResult) -> TriggerResult:
        return TriggerResult.FIRE_AND_PURGE if result.is_fire() else result

    def on_element(
        self, element: Any, timestamp: int | None, window: Window, ctx: TriggerContext
    ) -> TriggerResult:
        return self._purging(self.nested_trigger.on_element(element, timestamp, window, ctx))

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return self._purging(self.nested_trigger.on_processing_time(time, window, ctx))

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return self._purging(self.nested_trigger.on_event_time(time, window, ctx))

    def can_merge(self) -> bool:
        return self.nested_trigger.can_merge()

    def on_merge(self, window: Window, ctx: OnMergeContext) -> None:
        self.nested_trigger.on_merge(window, ctx)

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        self.nested_trigger.clear(window, ctx)


class _ContinuousTimeTrigger(_Parameterized, Trigger[T, TimeWindow]):
    """Shared part of the continuous triggers: the next early firing is kept in a
    ``ReducingState`` (min) and set as a timer, never later than the window's end."""

    def __init__(self, interval: Any) -> None:
        self._interval = _positive_millis(interval, f"{type(self).__name__}.of(interval)")
        self._fire_time_descriptor = ReducingStateDescriptor("fire-time", min, Types.LONG())

    def get_interval(self) -> int:
        return self._interval

    def _params(self) -> tuple[Any, ...]:
        return (self._interval,)

    def _fire_time(self, ctx: TriggerContext) -> ReducingState:
        return ctx.get_partitioned_state(self._fire_time_descriptor)  # type: ignore[return-value]

    def _register_next(
        self, time: int, window: TimeWindow, ctx: TriggerContext, state: ReducingState
    ) -> None:
        next_fire = min(time + self._interval, window.max_timestamp())
        state.add(next_fire)
        self._register_timer(ctx, next_fire)

    @abstractmethod
    def _register_timer(self, ctx: TriggerContext, time: int) -> None: ...

    @abstractmethod
    def _delete_timer(self, ctx: TriggerContext, time: int) -> None: ...

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: TimeWindow, ctx: OnMergeContext) -> None:
        ctx.merge_partitioned_state(self._fire_time_descriptor)
        next_fire = self._fire_time(ctx).get()
        if next_fire is not None:
            self._register_timer(ctx, next_fire)

    def clear(self, window: TimeWindow, ctx: TriggerContext) -> None:
        state = self._fire_time(ctx)
        next_fire = state.get()
        if next_fire is not None:
            self._delete_timer(ctx, next_fire)
            state.clear()


class ContinuousEventTimeTrigger(_ContinuousTimeTrigger[T]):
    """Fires every ``interval`` of event time while the window is open (early results), and
    at the window's end.

    Example::

        .window(TumblingEventTimeWindows.of(Time.hours(1)))
        .trigger(ContinuousEventTimeTrigger.of(Time.minutes(5)))
    """

    @staticmethod
    def of(interval: Any) -> ContinuousEventTimeTrigger:
        return ContinuousEventTimeTrigger(interval)

    def _register_timer(self, ctx: TriggerContext, time: int) -> None:
        ctx.register_event_time_timer(time)

    def _delete_timer(self, ctx: TriggerContext, time: int) -> None:
        ctx.delete_event_time_timer(time)

    def on_element(
        self, element: Any, timestamp: int | None, window: TimeWindow, ctx: TriggerContext
    ) -> TriggerResult:
        if window.max_timestamp() <= ctx.get_current_watermark():
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        state = self._fire_time(ctx)
        if state.get() is None:
            start = window.start if timestamp is None else timestamp
            self._register_next(start - start % self._interval, window, ctx, state)
        return TriggerResult.CONTINUE

    def on_processing_time(
        self, time: int, window: TimeWindow, ctx: TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: TimeWindow, ctx: TriggerContext) -> TriggerResult:
        if time == window.max_timestamp():
            return TriggerResult.FIRE
        state = self._fire_time(ctx)
        if state.get() == time:
            state.clear()
            self._register_next(time, window, ctx, state)
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_merge(self, window: TimeWindow, ctx: OnMergeContext) -> None:
        super().on_merge(window, ctx)
        if window.max_timestamp() > ctx.get_current_watermark():
            ctx.register_event_time_timer(window.max_timestamp())


class ContinuousProcessingTimeTrigger(_ContinuousTimeTrigger[T]):
    """Fires every ``interval`` of processing time while the window has elements.

    Example::

        .window(GlobalWindows.create())
        .trigger(ContinuousProcessingTimeTrigger.of(Time.seconds(10)))
    """

    @staticmethod
    def of(interval: Any) -> ContinuousProcessingTimeTrigger:
        return ContinuousProcessingTimeTrigger(interval)

    def _register_timer(self, ctx: TriggerContext, time: int) -> None:
        ctx.register_processing_time_timer(time)

    def _delete_timer(self, ctx: TriggerContext, time: int) -> None:
        ctx.delete_processing_time_timer(time)

    def on_element(
        self, element: Any, timestamp: int | None, window: TimeWindow, ctx: TriggerContext
    ) -> TriggerResult:
        state = self._fire_time(ctx)
        if state.get() is None:
            now = ctx.get_current_processing_time()
            self._register_next(now - now % self._interval, window, ctx, state)
        return TriggerResult.CONTINUE

    def on_processing_time(
        self, time: int, window: TimeWindow, ctx: TriggerContext
    ) -> TriggerResult:
        state = self._fire_time(ctx)
        if state.get() == time:
            state.clear()
            self._register_next(time, window, ctx, state)
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: TimeWindow, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE


class NeverTrigger(_Parameterized, Trigger[T, Window]):
    """Never fires; the default trigger of ``GlobalWindows`` (set another with
    ``.trigger(...)``)."""

    @staticmethod
    def create() -> NeverTrigger:
        return NeverTrigger()

    def on_element(
        self, element: Any, timestamp: int | None, window: Window, ctx: TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: OnMergeContext) -> None:
        pass

    def clear(self, window: Window, ctx: TriggerContext) -> None:
        pass


# ------------------------------------------------------------------ assigners


class WindowAssignerContext(ABC):
    """What an assigner may ask the runtime: the processing time and the keyed runtime context
    (count assigners keep their element counter there)."""

    @abstractmethod
    def get_current_processing_time(self) -> int:
        """The processing time (wall clock) in epoch milliseconds."""

    @abstractmethod
    def get_runtime_context(self) -> RuntimeContext:
        """The runtime context of the window operator, scoped to the current key."""


class WindowAssigner(ABC, Generic[T, W]):
    """Assigns each element to zero or more windows; the elements of one key and one window
    form a pane that the trigger fires.

    Example::

        class EvenOdd(WindowAssigner):
            def assign_windows(self, element, timestamp, context):
                return [CountWindow(element % 2)]
            def get_default_trigger(self, env=None):
                return CountTrigger.of(10)
            def is_event_time(self):
                return False
    """

    WindowAssignerContext = WindowAssignerContext

    @abstractmethod
    def assign_windows(
        self, element: T, timestamp: int | None, context: WindowAssignerContext
    ) -> Collection[W]:
        """The windows of ``element`` whose timestamp is ``timestamp`` (None if it has none)."""

    @abstractmethod
    def get_default_trigger(self, env: Any = None) -> Trigger[T, W]:
        """The trigger used when ``.trigger(...)`` is not called."""

    def get_window_serializer(self) -> Any:
        """A serializer of the windows, or None to let the runtime encode them (pickle)."""
        return None

    @abstractmethod
    def is_event_time(self) -> bool:
        """Whether windows follow event time (watermarks) rather than processing time."""


class MergingWindowAssigner(WindowAssigner[T, W]):
    """An assigner whose windows can merge, such as session windows."""

    class MergeCallback(ABC, Generic[W2]):
        """Receives the merges that ``merge_windows`` decides."""

        @abstractmethod
        def merge(self, to_be_merged: Collection[W], merge_result: W) -> None:
            """The windows ``to_be_merged`` become ``merge_result``."""

    @abstractmethod
    def merge_windows(
        self, windows: Iterable[W], callback: MergingWindowAssigner.MergeCallback[W]
    ) -> None:
        """Call ``callback.merge(to_be_merged, merge_result)`` for each group of ``windows``
        that must become one window."""


class _TumblingWindows(_Parameterized, WindowAssigner[T, TimeWindow]):
    """Shared part of the tumbling assigners: size and offset."""

    def __init__(self, size: TimeLike, offset: TimeLike = 0) -> None:
        name = type(self).__name__
        self._size = _positive_millis(size, f"the size of {name}")
        self._offset = _to_millis(offset, f"the offset of {name}")
        if abs(self._offset) >= self._size:
            raise ValueError(
                f"{name} needs abs(offset) < size; got size {self._size} ms, "
                f"offset {self._offset} ms"
            )

    def get_size(self) -> int:
        return self._size

    def get_offset(self) -> int:
        return self._offset

    def _params(self) -> tuple[Any, ...]:
        return (self._size, self._offset)

    def _window_at(self, time: int) -> list[TimeWindow]:
        start = time - (time - self._offset) % self._size
        return [TimeWindow(start, start + self._size)]


class TumblingEventTimeWindows(_TumblingWindows[T]):
    """Fixed-size, non-overlapping windows of event time.

    ``offset`` shifts the window starts, e.g. daily windows in UTC+8 with
    ``of(Time.days(1), Time.hours(-8))``.

    Example::

        >>> TumblingEventTimeWindows.of(Time.seconds(10)).assign_windows(None, 12_500, None)
        [TimeWindow(start=10000, end=20000)]

        ds.key_by(lambda v: v[0]).window(TumblingEventTimeWindows.of(Time.minutes(1)))
    """

    @staticmethod
    def of(size: TimeLike, offset: TimeLike | None = None) -> TumblingEventTimeWindows:
        """Windows of ``size``, starting at multiples of ``size`` shifted by ``offset``."""
        return TumblingEventTimeWindows(size, 0 if offset is None else offset)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext | None
    ) -> list[TimeWindow]:
        if timestamp is None or timestamp <= MIN_TIMESTAMP:
            _raise_missing_timestamp(type(self).__name__)
        return self._window_at(timestamp)  # type: ignore[arg-type]

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return EventTimeTrigger()

    def is_event_time(self) -> bool:
        return True


class TumblingProcessingTimeWindows(_TumblingWindows[T]):
    """Fixed-size, non-overlapping windows of processing time (the clock when the element
    reaches the window operator).

    Example::

        ds.key_by(lambda v: v[0]).window(TumblingProcessingTimeWindows.of(Time.seconds(5)))
    """

    @staticmethod
    def of(size: TimeLike, offset: TimeLike | None = None) -> TumblingProcessingTimeWindows:
        """Windows of ``size``, starting at multiples of ``size`` shifted by ``offset``."""
        return TumblingProcessingTimeWindows(size, 0 if offset is None else offset)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[TimeWindow]:
        return self._window_at(context.get_current_processing_time())

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return ProcessingTimeTrigger()

    def is_event_time(self) -> bool:
        return False


class _SlidingWindows(_Parameterized, WindowAssigner[T, TimeWindow]):
    """Shared part of the sliding assigners: size, slide and offset."""

    def __init__(self, size: TimeLike, slide: TimeLike, offset: TimeLike = 0) -> None:
        name = type(self).__name__
        self._size = _positive_millis(size, f"the size of {name}")
        self._slide = _positive_millis(slide, f"the slide of {name}")
        self._offset = _to_millis(offset, f"the offset of {name}")
        if abs(self._offset) >= self._slide:
            raise ValueError(
                f"{name} needs abs(offset) < slide; got slide {self._slide} ms, "
                f"offset {self._offset} ms"
            )

    def get_size(self) -> int:
        return self._size

    def get_slide(self) -> int:
        return self._slide

    def get_offset(self) -> int:
        return self._offset

    def _params(self) -> tuple[Any, ...]:
        return (self._size, self._slide, self._offset)

    def _windows_at(self, time: int) -> list[TimeWindow]:
        size = self._size
        last_start = time - (time - self._offset) % self._slide
        return [
            TimeWindow(start, start + size)
            for start in range(last_start, time - size, -self._slide)
        ]


class SlidingEventTimeWindows(_SlidingWindows[T]):
    """Windows of ``size`` that start every ``slide`` of event time, latest first; an element
    is in about ``size / slide`` windows (in none if it falls in a gap when ``slide > size``).

    Example::

        >>> SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5)).assign_windows(
        ...     None, 12_000, None)
        [TimeWindow(start=10000, end=20000), TimeWindow(start=5000, end=15000)]

        ds.key_by(lambda v: v[0]).window(
            SlidingEventTimeWindows.of(Time.minutes(1), Time.seconds(10)))
    """

    @staticmethod
    def of(
        size: TimeLike, slide: TimeLike, offset: TimeLike | None = None
    ) -> SlidingEventTimeWindows:
        """Windows of ``size`` starting every ``slide``, shifted by ``offset``."""
        return SlidingEventTimeWindows(size, slide, 0 if offset is None else offset)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext | None
    ) -> list[TimeWindow]:
        if timestamp is None or timestamp <= MIN_TIMESTAMP:
            _raise_missing_timestamp(type(self).__name__)
        return self._windows_at(timestamp)  # type: ignore[arg-type]

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return EventTimeTrigger()

    def is_event_time(self) -> bool:
        return True


class SlidingProcessingTimeWindows(_SlidingWindows[T]):
    """Windows of ``size`` that start every ``slide`` of processing time.

    Example::

        ds.key_by(lambda v: v[0]).window(
            SlidingProcessingTimeWindows.of(Time.minutes(1), Time.seconds(10)))
    """

    @staticmethod
    def of(
        size: TimeLike, slide: TimeLike, offset: TimeLike | None = None
    ) -> SlidingProcessingTimeWindows:
        """Windows of ``size`` starting every ``slide``, shifted by ``offset``."""
        return SlidingProcessingTimeWindows(size, slide, 0 if offset is None else offset)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[TimeWindow]:
        return self._windows_at(context.get_current_processing_time())

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return ProcessingTimeTrigger()

    def is_event_time(self) -> bool:
        return False


class SessionWindowTimeGapExtractor(ABC):
    """Gives the session gap of an element, for ``with_dynamic_gap``.

    Example::

        class GapOfUser(SessionWindowTimeGapExtractor):
            def extract(self, element):
                return 60_000 if element[0] == "slow" else 5_000
    """

    @abstractmethod
    def extract(self, element: Any) -> int:
        """The session gap after ``element``, in milliseconds (positive)."""


class _SessionWindows(_Parameterized, MergingWindowAssigner[T, TimeWindow]):
    """Shared part of the session assigners: windows that overlap or touch merge."""

    def merge_windows(
        self, windows: Iterable[TimeWindow], callback: MergingWindowAssigner.MergeCallback
    ) -> None:
        TimeWindow.merge_windows(windows, callback)


class _FixedGapSessionWindows(_SessionWindows[T]):
    def __init__(self, session_gap: TimeLike) -> None:
        self._session_gap = _positive_millis(session_gap, f"the gap of {type(self).__name__}")

    def get_session_gap(self) -> int:
        return self._session_gap

    def _params(self) -> tuple[Any, ...]:
        return (self._session_gap,)


class EventTimeSessionWindows(_FixedGapSessionWindows[T]):
    """Sessions of event time: an element opens ``[timestamp, timestamp + gap)`` and windows
    that overlap or touch merge, so a session ends after ``gap`` without elements.

    Example::

        >>> EventTimeSessionWindows.with_gap(Time.seconds(30)).assign_windows(None, 1_000, None)
        [TimeWindow(start=1000, end=31000)]

        ds.key_by(lambda v: v[0]).window(EventTimeSessionWindows.with_gap(Time.minutes(5)))
    """

    @staticmethod
    def with_gap(size: TimeLike) -> EventTimeSessionWindows:
        """Sessions that end after ``size`` without elements."""
        return EventTimeSessionWindows(size)

    @staticmethod
    def with_dynamic_gap(extractor: GapExtractorLike) -> DynamicEventTimeSessionWindows:
        """Sessions whose gap after each element is ``extractor.extract(element)`` (or
        ``extractor(element)``) milliseconds."""
        return DynamicEventTimeSessionWindows(extractor)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext | None
    ) -> list[TimeWindow]:
        if timestamp is None or timestamp <= MIN_TIMESTAMP:
            _raise_missing_timestamp(type(self).__name__)
        return [TimeWindow(timestamp, timestamp + self._session_gap)]  # type: ignore[operator]

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return EventTimeTrigger()

    def is_event_time(self) -> bool:
        return True


class ProcessingTimeSessionWindows(_FixedGapSessionWindows[T]):
    """Sessions of processing time: a key's session ends after ``gap`` without elements.

    Example::

        ds.key_by(lambda v: v[0]).window(ProcessingTimeSessionWindows.with_gap(Time.minutes(5)))
    """

    @staticmethod
    def with_gap(size: TimeLike) -> ProcessingTimeSessionWindows:
        """Sessions that end after ``size`` without elements."""
        return ProcessingTimeSessionWindows(size)

    @staticmethod
    def with_dynamic_gap(extractor: GapExtractorLike) -> DynamicProcessingTimeSessionWindows:
        """Sessions whose gap after each element is ``extractor.extract(element)`` (or
        ``extractor(element)``) milliseconds."""
        return DynamicProcessingTimeSessionWindows(extractor)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[TimeWindow]:
        now = context.get_current_processing_time()
        return [TimeWindow(now, now + self._session_gap)]

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return ProcessingTimeTrigger()

    def is_event_time(self) -> bool:
        return False


class _DynamicGapSessionWindows(_SessionWindows[T]):
    def __init__(self, session_window_time_gap_extractor: GapExtractorLike) -> None:
        extractor = session_window_time_gap_extractor
        if callable(getattr(extractor, "extract", None)):
            self._extract = extractor.extract  # type: ignore[union-attr]
        elif callable(extractor):
            self._extract = extractor
        else:
            raise TypeError(
                f"{type(self).__name__} takes a SessionWindowTimeGapExtractor or a function "
                f"element -> gap in milliseconds; got {extractor!r}"
            )
        self._extractor = extractor

    def get_extractor(self) -> GapExtractorLike:
        return self._extractor

    def _params(self) -> tuple[Any, ...]:
        return (self._extractor,)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self._extractor,)

    def _window_at(self, time: int, element: Any) -> list[TimeWindow]:
        gap = self._extract(element)
        if type(gap) is not int:
            gap = _to_millis(gap, f"the session gap returned by {self._extractor!r}")
        if gap <= 0:
            raise ValueError(
                f"the session gap extractor {self._extractor!r} returned {gap} for "
                f"{element!r}; a session gap must be positive milliseconds"
            )
        return [TimeWindow(time, time + gap)]


class DynamicEventTimeSessionWindows(_DynamicGapSessionWindows[T]):
    """Event-time sessions whose gap depends on the element: an element opens
    ``[timestamp, timestamp + gap(element))``.

    Example::

        >>> sessions = DynamicEventTimeSessionWindows.with_dynamic_gap(lambda e: e * 1000)
        >>> sessions.assign_windows(5, 1_000, None)
        [TimeWindow(start=1000, end=6000)]

        ds.key_by(lambda v: v[0]).window(
            EventTimeSessionWindows.with_dynamic_gap(lambda v: v[2]))
    """

    @staticmethod
    def with_dynamic_gap(extractor: GapExtractorLike) -> DynamicEventTimeSessionWindows:
        """Sessions whose gap after each element is ``extractor.extract(element)`` (or
        ``extractor(element)``) milliseconds."""
        return DynamicEventTimeSessionWindows(extractor)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext | None
    ) -> list[TimeWindow]:
        if timestamp is None or timestamp <= MIN_TIMESTAMP:
            _raise_missing_timestamp(type(self).__name__)
        return self._window_at(timestamp, element)  # type: ignore[arg-type]

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return EventTimeTrigger()

    def is_event_time(self) -> bool:
        return True


class DynamicProcessingTimeSessionWindows(_DynamicGapSessionWindows[T]):
    """Processing-time sessions whose gap depends on the element.

    Example::

        ds.key_by(lambda v: v[0]).window(
            ProcessingTimeSessionWindows.with_dynamic_gap(lambda v: v[2]))
    """

    @staticmethod
    def with_dynamic_gap(extractor: GapExtractorLike) -> DynamicProcessingTimeSessionWindows:
        """Sessions whose gap after each element is ``extractor.extract(element)`` (or
        ``extractor(element)``) milliseconds."""
        return DynamicProcessingTimeSessionWindows(extractor)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[TimeWindow]:
        return self._window_at(context.get_current_processing_time(), element)

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return ProcessingTimeTrigger()

    def is_event_time(self) -> bool:
        return False


class GlobalWindows(_Parameterized, WindowAssigner[T, GlobalWindow]):
    """Puts every element of a key into the one ``GlobalWindow``; it fires only through a
    trigger set with ``.trigger(...)`` (the default never fires).

    Example::

        >>> GlobalWindows.create().assign_windows("a", None, None)
        [GlobalWindow]

        ds.key_by(lambda v: v[0]).window(GlobalWindows.create()).trigger(CountTrigger.of(3))
    """

    @staticmethod
    def create() -> GlobalWindows:
        return GlobalWindows()

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext | None
    ) -> list[GlobalWindow]:
        return [_GLOBAL_WINDOW]

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return NeverTrigger()

    def is_event_time(self) -> bool:
        return False


class _CountWindows(_Parameterized, WindowAssigner[T, CountWindow]):
    """Shared part of the count assigners: a per-key element counter in keyed state (through
    ``context.get_runtime_context()``), so it is checkpointed with the window contents.

    The default trigger fires and purges a window at its ``size``-th element: a count window
    never receives another element after that, so purging only frees its state (PyFlink's
    plain ``CountTrigger`` would keep every fired window's elements forever).
    """

    _counter_name = "count-assigner"

    def __init__(self, window_size: int) -> None:
        self._window_size = _positive_count(window_size, f"the size of {type(self).__name__}")
        self._count_descriptor = ValueStateDescriptor(self._counter_name, Types.LONG())

    def get_window_size(self) -> int:
        return self._window_size

    def _next_index(self, context: WindowAssignerContext) -> int:
        counter = context.get_runtime_context().get_state(self._count_descriptor)
        index = counter.value() or 0
        counter.update(index + 1)
        return index

    def get_default_trigger(self, env: Any = None) -> Trigger:
        return PurgingTrigger(CountTrigger(self._window_size))

    def get_window_serializer(self) -> Any:
        return None

    def is_event_time(self) -> bool:
        return False


class CountTumblingWindowAssigner(_CountWindows[T]):
    """Windows of ``size`` consecutive elements of a key: elements 0..size-1 go to
    ``CountWindow(0)``, the next ``size`` to ``CountWindow(1)``, and so on.

    Example::

        ds.key_by(lambda v: v[0]).count_window(100)
        # the same as
        ds.key_by(lambda v: v[0]).window(CountTumblingWindowAssigner.of(100))
    """

    _counter_name = "tumble-count-assigner"

    @staticmethod
    def of(window_size: int) -> CountTumblingWindowAssigner:
        return CountTumblingWindowAssigner(window_size)

    def _params(self) -> tuple[Any, ...]:
        return (self._window_size,)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[CountWindow]:
        return [CountWindow(self._next_index(context) // self._window_size)]


class CountSlidingWindowAssigner(_CountWindows[T]):
    """Windows of ``size`` consecutive elements of a key, one starting every ``slide``
    elements: ``CountWindow(i)`` holds elements ``i*slide .. i*slide+size-1`` (latest window
    first in the result of ``assign_windows``).

    Example::

        ds.key_by(lambda v: v[0]).count_window(100, 10)
        # the same as
        ds.key_by(lambda v: v[0]).window(CountSlidingWindowAssigner.of(100, 10))
    """

    _counter_name = "slide-count-assigner"

    def __init__(self, window_size: int, window_slide: int) -> None:
        super().__init__(window_size)
        self._window_slide = _positive_count(window_slide, f"the slide of {type(self).__name__}")

    @staticmethod
    def of(window_size: int, window_slide: int) -> CountSlidingWindowAssigner:
        return CountSlidingWindowAssigner(window_size, window_slide)

    def get_window_slide(self) -> int:
        return self._window_slide

    def _params(self) -> tuple[Any, ...]:
        return (self._window_size, self._window_slide)

    def assign_windows(
        self, element: Any, timestamp: int | None, context: WindowAssignerContext
    ) -> list[CountWindow]:
        index = self._next_index(context)
        slide, size = self._window_slide, self._window_size
        window_id = index // slide
        windows = []
        while window_id >= 0 and window_id * slide + size > index:
            windows.append(CountWindow(window_id))
            window_id -= 1
        return windows


class TimeWindowSerializer(PickleTypeSerializer):
    """Accepted from ``get_window_serializer()``; Strom pickles windows itself."""


class CountWindowSerializer(PickleTypeSerializer):
    """Accepted from ``get_window_serializer()``; Strom pickles windows itself."""


class GlobalWindowSerializer(PickleTypeSerializer):
    """Accepted from ``get_window_serializer()``; Strom pickles windows itself."""
