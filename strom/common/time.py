"""``Duration``, ``Time`` and ``Instant``, as in ``pyflink.common.time``."""

from __future__ import annotations

import datetime
from typing import Any

__all__ = ["Duration", "Instant", "Time", "to_milliseconds"]

_NANOS_PER_MILLI = 1_000_000


class Duration:
    """An amount of time, e.g. the bound of out-of-orderness of a ``WatermarkStrategy``.

    Example::

        >>> Duration.of_seconds(5).to_milliseconds()
        5000
    """

    __slots__ = ("_nanos",)

    def __init__(self, nanos: int = 0) -> None:
        self._nanos = int(nanos)

    @staticmethod
    def of_days(days: int) -> Duration:
        return Duration(days * 86_400 * 10**9)

    @staticmethod
    def of_hours(hours: int) -> Duration:
        return Duration(hours * 3_600 * 10**9)

    @staticmethod
    def of_minutes(minutes: int) -> Duration:
        return Duration(minutes * 60 * 10**9)

    @staticmethod
    def of_seconds(seconds: int) -> Duration:
        return Duration(seconds * 10**9)

    @staticmethod
    def of_millis(millis: int) -> Duration:
        return Duration(millis * _NANOS_PER_MILLI)

    @staticmethod
    def of_nanos(nanos: int) -> Duration:
        return Duration(nanos)

    @staticmethod
    def zero() -> Duration:
        return Duration(0)

    def to_milliseconds(self) -> int:
        """Whole milliseconds (rounded towards zero)."""
        millis = abs(self._nanos) // _NANOS_PER_MILLI
        return millis if self._nanos >= 0 else -millis

    def to_nanos(self) -> int:
        return self._nanos

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other._nanos == self._nanos

    def __hash__(self) -> int:
        return hash(("Duration", self._nanos))

    def __lt__(self, other: Duration) -> bool:
        return self._nanos < other._nanos

    def __reduce__(self) -> tuple[Any, ...]:
        return Duration, (self._nanos,)

    def __repr__(self) -> str:
        nanos = self._nanos
        if nanos % _NANOS_PER_MILLI:
            return f"Duration.of_nanos({nanos})"
        millis = nanos // _NANOS_PER_MILLI
        for unit, size in (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000)):
            if millis and millis % size == 0:
                return f"Duration.of_{unit}({millis // size})"
        if millis and millis % 1000 == 0:
            return f"Duration.of_seconds({millis // 1000})"
        return f"Duration.of_millis({millis})"


class Time:
    """An amount of time in milliseconds (Flink's older ``Time``, used by state TTL).

    Example::

        >>> Time.minutes(1).to_milliseconds()
        60000
    """

    __slots__ = ("_millis",)

    def __init__(self, milliseconds: int) -> None:
        self._millis = int(milliseconds)

    @staticmethod
    def milliseconds(milliseconds: int) -> Time:
        return Time(milliseconds)

    @staticmethod
    def seconds(seconds: int) -> Time:
        return Time(seconds * 1000)

    @staticmethod
    def minutes(minutes: int) -> Time:
        return Time(minutes * 60_000)

    @staticmethod
    def hours(hours: int) -> Time:
        return Time(hours * 3_600_000)

    @staticmethod
    def days(days: int) -> Time:
        return Time(days * 86_400_000)

    def to_milliseconds(self) -> int:
        return self._millis

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Time) and other._millis == self._millis

    def __hash__(self) -> int:
        return hash(("Time", self._millis))

    def __reduce__(self) -> tuple[Any, ...]:
        return Time, (self._millis,)

    def __repr__(self) -> str:
        return f"Time.milliseconds({self._millis})"

    def __str__(self) -> str:
        return f"{self._millis} ms"


class Instant:
    """A point on the time line: seconds and nanoseconds since the epoch."""

    __slots__ = ("seconds", "nanos")

    def __init__(self, seconds: int, nanos: int) -> None:
        self.seconds = int(seconds)
        self.nanos = int(nanos)

    @staticmethod
    def of_epoch_milli(epoch_milli: int) -> Instant:
        seconds, millis = divmod(int(epoch_milli), 1000)
        return Instant(seconds, millis * _NANOS_PER_MILLI)

    def to_epoch_milli(self) -> int:
        return self.seconds * 1000 + self.nanos // _NANOS_PER_MILLI

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Instant)
            and other.seconds == self.seconds
            and other.nanos == self.nanos
        )

    def __hash__(self) -> int:
        return hash((self.seconds, self.nanos))

    def __reduce__(self) -> tuple[Any, ...]:
        return Instant, (self.seconds, self.nanos)

    def __repr__(self) -> str:
        return f"Instant<{self.seconds}, {self.nanos}>"


def to_milliseconds(value: Any, what: str = "a duration") -> int:
    """Milliseconds of a ``Duration``, ``Time``, ``datetime.timedelta`` or int of ms."""
    if isinstance(value, (Duration, Time)):
        return value.to_milliseconds()
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"{what} must be a Duration (e.g. Duration.of_seconds(5)); got {value!r}")
