"""``WatermarkStrategy`` and ``TimestampAssigner``, as in ``pyflink.common.watermark_strategy``.

A strategy is a description the runtime reads: ``kind``, ``max_out_of_orderness_ms``,
``timestamp_assigner`` (a callable ``(value, record_timestamp) -> int`` or None) and
``idleness_ms``.
"""

from __future__ import annotations

import copy
from typing import Any

from strom._unsupported import module_getattr
from strom.common.time import Duration, to_milliseconds

__all__ = ["TimestampAssigner", "Watermark", "WatermarkStrategy"]

MIN_TIMESTAMP = -(2**63)
MAX_TIMESTAMP = 2**63 - 1


class TimestampAssigner:
    """Extracts the event time of a record, in epoch milliseconds.

    Example::

        class FirstField(TimestampAssigner):
            def extract_timestamp(self, value, record_timestamp):
                return value[0]

        strategy = WatermarkStrategy.for_monotonous_timestamps() \\
            .with_timestamp_assigner(FirstField())
    """

    def extract_timestamp(self, value: Any, record_timestamp: int | None) -> int:
        """The event time of ``value``; ``record_timestamp`` is its previous one, if any."""
        raise NotImplementedError


class Watermark:
    """A watermark: no record with an earlier event time is expected after it."""

    __slots__ = ("_timestamp",)

    def __init__(self, timestamp: int) -> None:
        self._timestamp = int(timestamp)

    def get_timestamp(self) -> int:
        return self._timestamp

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Watermark) and other._timestamp == self._timestamp

    def __hash__(self) -> int:
        return hash(("Watermark", self._timestamp))

    def __reduce__(self) -> tuple[Any, ...]:
        return Watermark, (self._timestamp,)

    def __repr__(self) -> str:
        return f"Watermark({self._timestamp})"


Watermark.MAX_WATERMARK = Watermark(MAX_TIMESTAMP)  # type: ignore[attr-defined]
Watermark.UNINITIALIZED = Watermark(MIN_TIMESTAMP)  # type: ignore[attr-defined]

_KINDS = ("bounded_out_of_orderness", "monotonous", "none")


class WatermarkStrategy:
    """How a stream gets event timestamps and watermarks.

    Example::

        strategy = (
            WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(5))
            .with_timestamp_assigner(lambda event, _: event["ts"])
            .with_idleness(Duration.of_minutes(1))
        )
        stream = env.from_source(source, strategy, "events")
    """

    def __init__(self, kind: str = "none", max_out_of_orderness_ms: int = 0) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown watermark strategy kind {kind!r}; expected one of {_KINDS}")
        if max_out_of_orderness_ms < 0:
            raise ValueError(
                f"the maximum out-of-orderness must not be negative; got {max_out_of_orderness_ms}"
            )
        self.kind = kind
        self.max_out_of_orderness_ms = int(max_out_of_orderness_ms)
        self.timestamp_assigner: Any = None
        self.idleness_ms: int | None = None
        self.watermark_alignment: dict[str, Any] | None = None

    @staticmethod
    def for_bounded_out_of_orderness(max_out_of_orderness: Duration) -> WatermarkStrategy:
        """Watermarks that trail the highest timestamp seen by ``max_out_of_orderness``."""
        millis = to_milliseconds(max_out_of_orderness, "max_out_of_orderness")
        return WatermarkStrategy("bounded_out_of_orderness", millis)

    @staticmethod
    def for_monotonous_timestamps() -> WatermarkStrategy:
        """Watermarks for timestamps that never decrease: the highest timestamp seen."""
        return WatermarkStrategy("monotonous", 0)

    @staticmethod
    def no_watermarks() -> WatermarkStrategy:
        """No watermarks at all (timestamps may still be assigned)."""
        return WatermarkStrategy("none", 0)

    def with_timestamp_assigner(self, timestamp_assigner: Any) -> WatermarkStrategy:
        """Take event times from ``timestamp_assigner``: a ``TimestampAssigner`` or a callable
        ``(value, record_timestamp) -> int``. Sets it on this strategy and returns it."""
        if isinstance(timestamp_assigner, TimestampAssigner):
            assigner = timestamp_assigner.extract_timestamp
        elif callable(getattr(timestamp_assigner, "extract_timestamp", None)):
            assigner = timestamp_assigner.extract_timestamp
        elif callable(timestamp_assigner):
            assigner = timestamp_assigner
        else:
            raise TypeError(
                "with_timestamp_assigner() takes a TimestampAssigner or a function "
                f"(value, record_timestamp) -> int; got {timestamp_assigner!r}"
            )
        self.timestamp_assigner = assigner
        return self

    def with_idleness(self, idle_timeout: Duration) -> WatermarkStrategy:
        """A copy that marks an input idle after ``idle_timeout`` without records, so it no
        longer holds back the watermark."""
        millis = to_milliseconds(idle_timeout, "idle_timeout")
        if millis <= 0:
            raise ValueError(f"the idle timeout must be positive; got {millis} ms")
        strategy = copy.copy(self)
        strategy.idleness_ms = millis
        return strategy

    def with_watermark_alignment(
        self,
        watermark_group: str,
        max_allowed_watermark_drift: Duration,
        update_interval: Duration | None = None,
    ) -> WatermarkStrategy:
        """A copy that records a watermark alignment group (accepted; sources of one group
        are not yet paused by Strom)."""
        strategy = copy.copy(self)
        strategy.watermark_alignment = {
            "group": watermark_group,
            "max_drift_ms": to_milliseconds(
                max_allowed_watermark_drift, "max_allowed_watermark_drift"
            ),
            "update_interval_ms": (
                1000 if update_interval is None else to_milliseconds(update_interval)
            ),
        }
        return strategy

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WatermarkStrategy) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((self.kind, self.max_out_of_orderness_ms, self.idleness_ms))

    def __repr__(self) -> str:
        parts = [self.kind]
        if self.kind == "bounded_out_of_orderness":
            parts.append(f"max_out_of_orderness_ms={self.max_out_of_orderness_ms}")
        if self.timestamp_assigner is not None:
            parts.append(f"timestamp_assigner={self.timestamp_assigner!r}")
        if self.idleness_ms is not None:
            parts.append(f"idleness_ms={self.idleness_ms}")
        return f"WatermarkStrategy({', '.join(parts)})"


__getattr__ = module_getattr(
    __name__,
    {
        "AssignerWithPeriodicWatermarksWrapper": "it wraps a Java watermark assigner; use "
        "WatermarkStrategy with a TimestampAssigner",
    },
)
