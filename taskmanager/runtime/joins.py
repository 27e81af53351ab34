"""The interval join operator: a keyed operator over the tagged union of two keyed streams.

Records arrive as ``(side, record)`` (0: left, 1: right), keyed by their side's key. Each is
buffered in keyed state under its timestamp and joined with the other side's buffered records
of the same key whose timestamps lie in the interval: ``[t + lower, t + upper]`` of a left
record's ``t`` (so ``[t - upper, t - lower]`` of a right one's). A record is kept until the
watermark makes it unjoinable; an event-time cleanup timer per buffered timestamp removes it
then. Records behind the watermark are late and dropped (or go to a side output). All of it is
Flink's ``IntervalJoinOperator``.

Buffers and cleanup timers live in the operator's keyed state, so they are snapshotted by key
group with the rest of the keyed state and restored with their keys:

- ``__interval_join_left`` / ``__interval_join_right``: key -> {timestamp: [records]}
- ``__interval_join_timers``: key -> {(cleanup time, side)}
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from strom.graph.stream_graph import OperatorSpec
from taskmanager.runtime.context import OperatorContext
from taskmanager.runtime.operators import KeyedOperator, user_function
from taskmanager.state.operator_state import OperatorRestore

LEFT_BUFFER = "__interval_join_left"
RIGHT_BUFFER = "__interval_join_right"
CLEANUP_TIMERS = "__interval_join_timers"
LEFT, RIGHT = 0, 1


class _JoinContext:
    """``ctx`` of ``ProcessJoinFunction.process_element``."""

    __slots__ = ("_operator", "left_timestamp", "right_timestamp")

    def __init__(self, operator: IntervalJoinOperator) -> None:
        self._operator = operator
        self.left_timestamp = 0
        self.right_timestamp = 0

    def get_left_timestamp(self) -> int:
        return self.left_timestamp

    def get_right_timestamp(self) -> int:
        return self.right_timestamp

    def get_timestamp(self) -> int:
        return max(self.left_timestamp, self.right_timestamp)

    def output(self, output_tag: Any, value: Any) -> None:
        """Emit ``value`` to a side output, with the pair's timestamp."""
        self._operator.output.tagged_output(output_tag, value, self.get_timestamp())


class IntervalJoinOperator(KeyedOperator):
    """``left.interval_join(right).between(lower, upper).process(function)``.

    ``spec.args``: ``lower`` and ``upper``, the inclusive bounds in ms (exclusive bounds are
    already turned inclusive); optionally ``left_late_tag`` / ``right_late_tag``, side
    outputs (tag ids) for late records of each side.
    """

    def __init__(self, spec: OperatorSpec, context: OperatorContext) -> None:
        super().__init__(spec, context)
        self.lower = int(spec.args["lower"])
        self.upper = int(spec.args["upper"])
        if self.lower > self.upper:
            raise ValueError(f"interval join bounds out of order: {self.lower} > {self.upper}")
        self.late_tags = (spec.args.get("left_late_tag"), spec.args.get("right_late_tag"))
        self.late_records = 0

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        super().initialize_state(restore)
        backend = self.backend
        self.buffers = (backend.table(LEFT_BUFFER), backend.table(RIGHT_BUFFER))
        self.cleanup = backend.table(CLEANUP_TIMERS)
        self._sequence = itertools.count()
        self._timers = [
            (timestamp, next(self._sequence), key, side)
            for key, entries in self.cleanup.items()
            for timestamp, side in entries
        ]
        heapq.heapify(self._timers)

    def open(self) -> None:
        super().open()
        self.call = user_function(self.function, "process_element")
        self.ctx = _JoinContext(self)

    # -------------------------------------------------------------- records

    def process_batch(self, values, timestamps):
        if timestamps is None:
            raise _no_timestamps()
        key_of, backend, call, ctx = self.key_of, self.backend, self.call, self.ctx
        lower, upper = self.lower, self.upper
        watermark = self.current_watermark
        out: list = []
        stamps: list = []
        for index, tagged in enumerate(values):
            stamp = timestamps[index]
            if stamp is None:
                raise _no_timestamps()
            side, value = tagged
            if stamp < watermark:
                self._late(side, value, stamp)
                continue
            key = key_of(tagged)
            backend.current_key = key
            own, other = self.buffers[side], self.buffers[1 - side]
            buckets = own.get(key)
            if buckets is None:
                buckets = own[key] = {}
            bucket = buckets.get(stamp)
            if bucket is None:
                buckets[stamp] = [value]
                self._register_cleanup(key, stamp, side)
            else:
                bucket.append(value)
            candidates = other.get(key)
            if not candidates:
                continue
            if side == LEFT:
                low, high = stamp + lower, stamp + upper
                ctx.left_timestamp = stamp
                for other_stamp, others in candidates.items():
                    if low <= other_stamp <= high:
                        ctx.right_timestamp = other_stamp
                        at = stamp if stamp > other_stamp else other_stamp
                        for right in others:
                            _collect(call(value, right, ctx), at, out, stamps)
            else:
                low, high = stamp - upper, stamp - lower
                ctx.right_timestamp = stamp
                for other_stamp, others in candidates.items():
                    if low <= other_stamp <= high:
                        ctx.left_timestamp = other_stamp
                        at = stamp if stamp > other_stamp else other_stamp
                        for left in others:
                            _collect(call(left, value, ctx), at, out, stamps)
        if out:
            self.output.emit(out, stamps)

    def _late(self, side: int, value: Any, stamp: int) -> None:
        self.late_records += 1
        tag = self.late_tags[side]
        if tag is not None:
            self.output.side_output(tag, value, stamp)

    # -------------------------------------------------------------- cleanup

    def _cleanup_time(self, stamp: int, side: int) -> int:
        """When a record of ``side`` at ``stamp`` can no longer find a partner: once the
        watermark passed the last timestamp of the other side it could join with (never
        before its own timestamp)."""
        if side == LEFT:
            return stamp + max(self.upper, 0)
        return stamp + max(-self.lower, 0)

    def _register_cleanup(self, key: Any, stamp: int, side: int) -> None:
        timestamp = self._cleanup_time(stamp, side)
        entries = self.cleanup.get(key)
        if entries is None:
            entries = self.cleanup[key] = set()
        if (timestamp, side) not in entries:
            entries.add((timestamp, side))
            heapq.heappush(self._timers, (timestamp, next(self._sequence), key, side))

    def process_watermark(self, timestamp: int) -> None:
        self.current_watermark = timestamp
        timers, cleanup, buffers = self._timers, self.cleanup, self.buffers
        while timers and timers[0][0] <= timestamp:
            due, _, key, side = heapq.heappop(timers)
            entries = cleanup.get(key)
            if entries is None or (due, side) not in entries:
                continue
            entries.discard((due, side))
            if not entries:
                del cleanup[key]
            if side == LEFT:
                stamp = due - max(self.upper, 0)
            else:
                stamp = due - max(-self.lower, 0)
            buckets = buffers[side].get(key)
            if buckets is not None:
                buckets.pop(stamp, None)
                if not buckets:
                    del buffers[side][key]
        self.output.emit_watermark(timestamp)

    def buffered_records(self) -> int:
        """How many records both sides hold in state (for tests and metrics)."""
        return sum(
            len(bucket)
            for buffer in self.buffers
            for buckets in buffer.values()
            for bucket in buckets.values()
        )


def _collect(result: Any, at: int, out: list, stamps: list) -> None:
    if result is None:
        return
    before = len(out)
    out.extend(result)
    stamps.extend([at] * (len(out) - before))


def _no_timestamps() -> RuntimeError:
    return RuntimeError(
        "an interval join got a record without a timestamp: interval joins work in event "
        "time. Did you forget assign_timestamps_and_watermarks() or a WatermarkStrategy with "
        "a timestamp assigner on both inputs?"
    )
