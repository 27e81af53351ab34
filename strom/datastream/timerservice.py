"""``TimerService``, as ``pyflink.datastream.timerservice``."""

from strom.datastream.functions import TimerService

__all__ = ["TimerService"]
