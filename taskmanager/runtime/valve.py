"""The watermark valve: one task's event time from the watermarks of its input channels.

An operator's watermark is the minimum over its inputs, idle inputs excluded (DESIGN.md §6).
The valve keeps, per input channel, the highest watermark it delivered and whether it is idle
or finished, and answers what the task's combined watermark and idleness become after each
input event. It does no I/O: the task loop feeds it and forwards what it returns.
"""

from __future__ import annotations

from taskmanager.runtime.context import MIN_WATERMARK

__all__ = ["WatermarkValve"]


class WatermarkValve:
    """Combines the watermarks and idleness of ``num_channels`` input channels."""

    def __init__(self, num_channels: int) -> None:
        self.watermarks = [MIN_WATERMARK] * num_channels
        self.idle = [False] * num_channels
        self.finished = [False] * num_channels
        #: the combined watermark last returned (event time never goes backwards)
        self.current = MIN_WATERMARK
        #: whether every input is idle or finished (the task then reports itself idle)
        self.all_idle = False

    def on_watermark(self, channel: int, timestamp: int) -> int | None:
        """``channel`` delivered a watermark; the new combined watermark, if it advanced."""
        if timestamp > self.watermarks[channel]:
            self.watermarks[channel] = timestamp
        return self._advance(self._low())

    def on_status(self, channel: int, idle: bool) -> tuple[bool | None, int | None]:
        """``channel`` went idle or active: ``(new idleness of the task or None if it did not
        change, new combined watermark or None)``.

        Event time goes on without the idle channels; when the last one goes idle, to the
        highest any unfinished channel reached (as Flink's valve does).
        """
        self.idle[channel] = idle
        all_idle = all(i or f for i, f in zip(self.idle, self.finished, strict=True))
        change = None
        if all_idle != self.all_idle:
            self.all_idle = change = all_idle
        if all_idle:
            low = max(
                (w for w, f in zip(self.watermarks, self.finished, strict=True) if not f),
                default=self.current,
            )
        else:
            low = self._low()
        return change, self._advance(low)

    def on_end(self, channel: int) -> None:
        """``channel`` ended: it no longer holds event time back (from its next event on)."""
        self.finished[channel] = True

    def _low(self) -> int:
        """The minimum watermark over the channels neither finished nor idle."""
        return min(
            (
                w
                for w, i, f in zip(self.watermarks, self.idle, self.finished, strict=True)
                if not (i or f)
            ),
            default=self.current,
        )

    def _advance(self, low: int) -> int | None:
        if low > self.current:
            self.current = low
            return low
        return None
