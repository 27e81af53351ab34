"""Joins of two streams as Flink offers them: window joins and co-groups
(``JoinedStreams``, ``CoGroupedStreams``) and interval joins (``IntervalJoin``).

Both run on a *tagged union* of the two inputs, as Flink builds them: each input's records
become ``(side, record)`` pairs (0 for the first stream, 1 for the second), the union of both is
keyed by each side's own key selector, and one keyed operator sees the records of both sides of
a key. A window join is a window over that union whose window function splits a window's records
by side; an interval join is a keyed operator that buffers each side in keyed state
(``taskmanager.runtime.joins``).

PyFlink has no Python spelling of these joins; the names are those of Flink's Java API in
snake_case (``where``/``equal_to``, ``between``, ``lower_bound_exclusive``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from strom.common.time import to_milliseconds
from strom.datastream.data_stream import (
    DataStream,
    KeyedStream,
    WindowedStream,
    _check_function,
    _key_selector,
)
from strom.datastream.functions import FlatJoinFunction, WindowFunction
from strom.graph.stream_graph import OperatorSpec

__all__ = [
    "CoGroupedStreams",
    "IntervalJoin",
    "IntervalJoined",
    "JoinedStreams",
]

FIRST, SECOND = 0, 1


# ---------------------------------------------------------------------- the tagged union


class _Tagger:
    """Turns a record of one side into ``(side, record)``."""

    def __init__(self, side: int) -> None:
        self.side = side

    def map(self, value: Any) -> tuple[int, Any]:
        return (self.side, value)


class UnionKeySelector:
    """The key of a tagged record: the first side's key selector for records of the first
    stream, the second side's for the second."""

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any], Any]) -> None:
        self.first, self.second = first, second

    def get_key(self, tagged: tuple[int, Any]) -> Any:
        side, value = tagged
        return self.first(value) if side == FIRST else self.second(value)

    __call__ = get_key


def _check_stream(stream: Any, other: DataStream, api: str, kind: type = DataStream) -> None:
    if not isinstance(stream, kind):
        raise TypeError(f"{api}() takes a {kind.__name__}; got {type(stream).__name__}")
    if stream._env is not other._env:
        raise ValueError(f"{api}() of streams from different environments")


def _tagged(stream: DataStream, side: int) -> DataStream:
    """``stream``'s records tagged with ``side``, at ``stream``'s parallelism so that the
    tagging chains to it (a keyed stream is tagged before its own partitioning, which the
    union's keying replaces)."""
    if isinstance(stream, KeyedStream):
        stream = stream._origin
    tagged = stream.map(_Tagger(side))
    tagged.name(f"Tag({'first' if side == FIRST else 'second'})")
    upstream = stream._transformation
    if not upstream.is_virtual and upstream.parallelism is not None:
        tagged.set_parallelism(upstream.parallelism)
    return tagged


def _keyed_union(
    first: DataStream,
    second: DataStream,
    first_key: Callable[[Any], Any],
    second_key: Callable[[Any], Any],
) -> KeyedStream:
    union = _tagged(first, FIRST).union(_tagged(second, SECOND))
    return union.key_by(UnionKeySelector(first_key, second_key))


# ---------------------------------------------------------------------- window joins


class _Wrapper:
    """Hands ``open``/``close`` on to the user's function it wraps (``self.function``)."""

    function: Any

    def open(self, runtime_context: Any) -> None:
        opener = getattr(self.function, "open", None)
        if callable(opener):
            opener(runtime_context)

    def close(self) -> None:
        closer = getattr(self.function, "close", None)
        if callable(closer):
            closer()


class CoGroupWindowFunction(_Wrapper, WindowFunction):
    """Splits a window's tagged records by side and hands both to the co-group function."""

    def __init__(self, co_group: Any) -> None:
        self.function = co_group
        bound = getattr(co_group, "co_group", None)
        self.co_group = bound if callable(bound) else co_group

    def apply(self, key: Any, window: Any, inputs: Iterable[Any]) -> Iterable[Any]:
        first: list = []
        second: list = []
        for side, value in inputs:
            (first if side == FIRST else second).append(value)
        result = self.co_group(first, second)
        return () if result is None else result


class JoinCoGroupFunction(_Wrapper):
    """A join as a co-group: the join function over every pair of a window's two sides, so
    a key with records on one side only yields nothing (an inner join)."""

    def __init__(self, join: Any) -> None:
        self.function = join
        bound = getattr(join, "join", None)
        self.join = bound if callable(bound) else join
        self.flat = isinstance(join, FlatJoinFunction)

    def co_group(self, first: list, second: list) -> list:
        join = self.join
        if self.flat:
            out: list = []
            for a in first:
                for b in second:
                    result = join(a, b)
                    if result is not None:
                        out.extend(result)
            return out
        return [join(a, b) for a in first for b in second]


class _TwoStreams:
    """What ``CoGroupedStreams`` and ``JoinedStreams`` share: two inputs, two key selectors,
    a window assigner, a trigger and an allowed lateness."""

    _api = "co_group"

    def __init__(self, input1: DataStream, input2: DataStream) -> None:
        _check_stream(input2, input1, self._api)
        self._input1, self._input2 = input1, input2

    def where(self, key_selector: Any, key_type: Any = None) -> Any:
        """The key of the first stream's records."""
        return self.Where(self, _key_selector(key_selector, "where"))


class _Where:
    def __init__(self, streams: _TwoStreams, key1: Callable[[Any], Any]) -> None:
        self._streams, self._key1 = streams, key1

    def equal_to(self, key_selector: Any, key_type: Any = None) -> Any:
        """The key of the second stream's records; records with equal keys are matched."""
        return self.EqualTo(self._streams, self._key1, _key_selector(key_selector, "equal_to"))


class _EqualTo:
    def __init__(self, streams: _TwoStreams, key1: Callable, key2: Callable) -> None:
        self._streams, self._key1, self._key2 = streams, key1, key2

    def window(self, assigner: Any) -> Any:
        """Match records of the same key that fall into the same window of ``assigner``."""
        return self.WithWindow(self._streams, self._key1, self._key2, assigner)


class _WithWindow:
    def __init__(self, streams: _TwoStreams, key1: Callable, key2: Callable, assigner: Any):
        if not callable(getattr(assigner, "assign_windows", None)):
            raise TypeError(
                f"window() takes a WindowAssigner such as TumblingEventTimeWindows.of(...); "
                f"got {type(assigner).__name__}"
            )
        self._streams, self._key1, self._key2 = streams, key1, key2
        self._assigner = assigner
        self._trigger: Any = None
        self._allowed_lateness: Any = None

    def trigger(self, trigger: Any) -> Any:
        """Decide when windows fire with this ``Trigger`` instead of the assigner's default."""
        if not callable(getattr(trigger, "on_element", None)):
            raise TypeError("trigger() takes a Trigger such as CountTrigger.of(5)")
        self._trigger = trigger
        return self

    def allowed_lateness(self, time_ms: Any) -> Any:
        """Keep windows this long after the watermark passed their end: late records fire
        them again, with all records of the window (instead of being dropped)."""
        self._allowed_lateness = to_milliseconds(time_ms, "allowed_lateness")
        return self

    def _windowed(self) -> WindowedStream:
        s = self._streams
        keyed = _keyed_union(s._input1, s._input2, self._key1, self._key2)
        windowed = keyed.window(self._assigner)
        if self._trigger is not None:
            windowed.trigger(self._trigger)
        if self._allowed_lateness is not None:
            windowed.allowed_lateness(self._allowed_lateness)
        return windowed

    def _co_group(self, co_group: Any, output_type: Any, name: str) -> DataStream:
        result = self._windowed().apply(CoGroupWindowFunction(co_group), output_type)
        return result.name(name)


class CoGroupedStreams(_TwoStreams):
    """``first.co_group(second)``: per key and window, all records of both sides at once.

    Example::

        class Count(CoGroupFunction):
            def co_group(self, first, second):
                yield len(list(first)), len(list(second))

        orders.co_group(payments) \\
              .where(lambda o: o[0]).equal_to(lambda p: p[0]) \\
              .window(TumblingEventTimeWindows.of(Time.seconds(10))) \\
              .apply(Count())
    """

    class Where(_Where):
        """``co_group(...).where(key)``: next, ``equal_to`` the second stream's key."""

        class EqualTo(_EqualTo):
            """``...equal_to(key)``: next, the ``window``."""

            class WithWindow(_WithWindow):
                """``...window(assigner)``: optionally ``trigger``/``allowed_lateness``,
                then ``apply`` a ``CoGroupFunction``."""

                def apply(self, function: Any, output_type: Any = None) -> DataStream:
                    """Call ``function.co_group(first, second)`` (or a callable of both)
                    with each key's records of a window from the first and the second
                    stream; it yields (or returns) the outputs."""
                    _check_function(function, "co_group", "apply")
                    return self._co_group(function, output_type, "Window CoGroup")


class JoinedStreams(_TwoStreams):
    """``first.join(second)``: an inner join of the records of equal key in the same window.

    Each pair of records (one of each side) with equal keys in one window is handed to a
    ``JoinFunction`` (or a callable of both), whose result is emitted with the window's
    last timestamp, as in Flink.

    Example::

        orders.join(payments) \\
              .where(lambda o: o[0]).equal_to(lambda p: p[0]) \\
              .window(TumblingEventTimeWindows.of(Time.seconds(10))) \\
              .apply(lambda order, payment: (order[0], order[1], payment[1]))
    """

    _api = "join"

    class Where(_Where):
        """``join(...).where(key)``: next, ``equal_to`` the second stream's key."""

        class EqualTo(_EqualTo):
            """``...equal_to(key)``: next, the ``window``."""

            class WithWindow(_WithWindow):
                """``...window(assigner)``: optionally ``trigger``/``allowed_lateness``,
                then ``apply`` a ``JoinFunction`` or ``FlatJoinFunction``."""

                def apply(self, function: Any, output_type: Any = None) -> DataStream:
                    """Call ``function.join(first, second)`` for each matched pair: a
                    ``JoinFunction`` (or plain callable) returns one output, a
                    ``FlatJoinFunction`` yields any number."""
                    _check_function(function, "join", "apply")
                    return self._co_group(JoinCoGroupFunction(function), output_type, "Window Join")


# ---------------------------------------------------------------------- interval joins


class IntervalJoin:
    """``left.interval_join(right)`` of two keyed streams: next, ``between(lower, upper)``.

    Joins each left record ``l`` with the right records ``r`` of the same key whose
    timestamps lie in ``[l.ts + lower, l.ts + upper]``; event time only, as in Flink.

    Example::

        clicks.key_by(lambda c: c[0]) \\
              .interval_join(views.key_by(lambda v: v[0])) \\
              .between(Time.milliseconds(-10), Time.milliseconds(10)) \\
              .process(Within())
    """

    def __init__(self, left: KeyedStream, right: KeyedStream) -> None:
        _check_stream(right, left, "interval_join", KeyedStream)
        self._left, self._right = left, right

    def in_event_time(self) -> IntervalJoin:
        """Join on event time (the only time an interval join knows)."""
        return self

    def in_processing_time(self) -> IntervalJoin:
        raise ValueError(
            "interval joins are only supported in event time (as in Flink): give both "
            "streams timestamps with a WatermarkStrategy and drop in_processing_time()"
        )

    def between(self, lower_bound: Any, upper_bound: Any) -> IntervalJoined:
        """The interval relative to a left record's timestamp: a ``Time``, ``Duration`` or ms
        each; ``lower_bound`` may be negative (right records before the left one)."""
        lower = to_milliseconds(lower_bound, "the lower bound of between()")
        upper = to_milliseconds(upper_bound, "the upper bound of between()")
        if lower > upper:
            raise ValueError(
                f"between() needs lower_bound <= upper_bound; got {lower} ms > {upper} ms"
            )
        return IntervalJoined(self._left, self._right, lower, upper)


class IntervalJoined:
    """An interval join with its bounds: optionally exclusive bounds, then ``process``."""

    def __init__(self, left: KeyedStream, right: KeyedStream, lower: int, upper: int) -> None:
        self._left, self._right = left, right
        self._lower, self._upper = lower, upper
        self._lower_inclusive = self._upper_inclusive = True
        self._late_tags: list[str | None] = [None, None]

    def lower_bound_exclusive(self) -> IntervalJoined:
        """Leave out right records exactly ``lower`` after the left record."""
        self._lower_inclusive = False
        return self

    def upper_bound_exclusive(self) -> IntervalJoined:
        """Leave out right records exactly ``upper`` after the left record."""
        self._upper_inclusive = False
        return self

    def side_output_left_late_data(self, output_tag: Any) -> IntervalJoined:
        """Send left records that arrive behind the watermark to ``output_tag`` instead of
        dropping them; read them with ``get_side_output(tag)`` on the join's result."""
        from strom.datastream.output_tag import tag_id_of

        self._late_tags[0] = tag_id_of(output_tag)
        return self

    def side_output_right_late_data(self, output_tag: Any) -> IntervalJoined:
        """Send late right records to ``output_tag`` instead of dropping them."""
        from strom.datastream.output_tag import tag_id_of

        self._late_tags[1] = tag_id_of(output_tag)
        return self

    def process(self, process_join_function: Any, output_type: Any = None) -> DataStream:
        """Call ``process_join_function.process_element(left, right, ctx)`` for each
        matched pair; its outputs carry the later of the two timestamps
        (``ctx.get_timestamp()``)."""
        _check_function(process_join_function, "process_element", "process")
        lower = self._lower + (0 if self._lower_inclusive else 1)
        upper = self._upper - (0 if self._upper_inclusive else 1)
        if lower > upper:
            raise ValueError(
                f"the interval of this join holds no timestamp: {self._describe()} "
                "(make a bound inclusive or widen the interval)"
            )
        left, right = self._left, self._right
        keyed = _keyed_union(left, right, left._key_selector, right._key_selector)
        args = {
            "lower": lower,
            "upper": upper,
            "left_late_tag": self._late_tags[0],
            "right_late_tag": self._late_tags[1],
        }
        spec = OperatorSpec("interval_join", process_join_function, args=args)
        return keyed._keyed("IntervalJoin", spec, output_type)

    def _describe(self) -> str:
        opening = "[" if self._lower_inclusive else "("
        closing = "]" if self._upper_inclusive else ")"
        return f"{opening}{self._lower} ms, {self._upper} ms{closing}"
