"""Checkpoint barrier alignment of one task's input channels (DESIGN.md §7).

A task with several inputs snapshots checkpoint *n* once barrier *n* arrived on every channel
that has not ended. Exactly-once alignment holds each channel back from the moment its barrier
arrives until the snapshot is taken; at-least-once lets records pass. A newer checkpoint's
barrier supersedes one still being aligned. The aligner does no I/O: it calls ``block`` and
``unblock_all`` (the input gate's) and returns the checkpoint to snapshot when aligned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["BarrierAligner"]


class BarrierAligner:
    """Aligns the barriers of ``num_channels`` input channels."""

    def __init__(
        self,
        num_channels: int,
        block: Callable[[int], None],
        unblock_all: Callable[[], None],
    ) -> None:
        self._block = block
        self._unblock_all = unblock_all
        self.finished = [False] * num_channels
        #: the checkpoint whose barriers are being aligned, if any
        self.aligning: int | None = None
        self._arrived: set[int] = set()
        self._options: dict[str, Any] = {}

    def on_barrier(
        self, channel: int, checkpoint_id: int, options: dict[str, Any]
    ) -> tuple[int, dict[str, Any]] | None:
        """Barrier ``checkpoint_id`` arrived on ``channel``; ``(checkpoint, options)`` to
        snapshot now if that completed the alignment."""
        if self.aligning is not None and checkpoint_id < self.aligning:
            return None  # a barrier of a checkpoint already given up
        if self.aligning is None or checkpoint_id > self.aligning:
            self._unblock_all()  # a newer checkpoint supersedes one still aligning
            self.aligning, self._arrived = checkpoint_id, set()
        self._options = options
        self._arrived.add(channel)
        if options.get("exactly_once", True):
            self._block(channel)  # hold this input back until every input is aligned
        return self._aligned()

    def on_end(self, channel: int) -> tuple[int, dict[str, Any]] | None:
        """``channel`` ended; the checkpoint to snapshot now if it no longer waits for it."""
        self.finished[channel] = True
        return self._aligned()

    def _aligned(self) -> tuple[int, dict[str, Any]] | None:
        if self.aligning is None:
            return None
        arrived = self._arrived
        if all(done or c in arrived for c, done in enumerate(self.finished)):
            checkpoint = (self.aligning, self._options)
            self.aligning, self._arrived = None, set()
            self._unblock_all()
            return checkpoint
        return None
