"""The producer side of one edge: partition record batches and send them in batches.

A ``RecordWriter`` serves one producing subtask on one outgoing edge. ``emit`` spreads a batch
over the consumer channels with the edge's partitioner and collects each channel's share in a
pending buffer, which is sent as one RECORDS element when it holds ``batch_size`` records (fewer
for large records: about ``record_sizes.BATCH_BYTES`` at most) or when ``buffer_timeout_ms``
has passed since the oldest pending record arrived (DESIGN.md §5, ``execution.buffer-timeout``).
The writer has no thread: the task's mailbox loop asks for ``next_deadline`` and calls
``flush_if_due`` — which keeps every send on the task's thread.

A hash edge's partitioner computes every record's key; the writer sends those keys with the
batch, as ``(RECORDS, values, timestamps, keys)``, so the keyed operator downstream need not
call the key selector a second time (issue 12).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from strom.graph.partitioning import Partitioner
from taskmanager.network.channels import OutputChannel
from taskmanager.network.elements import RECORDS
from taskmanager.network.record_sizes import batch_limit

__all__ = ["RecordWriter"]


class RecordWriter:
    """Partitions, batches and sends one producer's records over one edge's channels.

    Elements are sent without copying where possible: a batch the partitioner hands over
    whole may travel as is, so the caller of ``emit`` must not modify a list after emitting it.
    """

    def __init__(
        self,
        partitioner: Partitioner,
        channels: Sequence[OutputChannel],
        producer_index: int,
        producer_parallelism: int,
        batch_size: int = 1024,
        buffer_timeout_ms: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if buffer_timeout_ms < 0:
            raise ValueError(f"buffer_timeout_ms must be >= 0, not {buffer_timeout_ms}")
        self.partitioner = partitioner
        self.channels = list(channels)
        self.batch_size = batch_size
        #: records per batch for the records emitted last: ``batch_size``, or fewer when they
        #: are large (``record_sizes``)
        self._limit = batch_size
        self.buffer_timeout_ms = buffer_timeout_ms
        self.records_out = 0  # records emitted (a broadcast record counts once)
        self.batches_out = 0  # RECORDS elements sent over all channels
        self._clock = clock
        self._timeout_s = buffer_timeout_ms / 1000.0
        n = len(self.channels)
        partitioner.setup(producer_index, producer_parallelism, n)
        self._sends = [channel.send for channel in self.channels]
        self._values: list[list] = [[] for _ in range(n)]
        self._stamps: list[list | None] = [None] * n
        #: per channel: the keys of the pending records (parallel to them), or None
        self._keys: list[list | None] = [None] * n
        #: per channel: the pending list is not the writer's own (append to a copy)
        self._shared = [False] * n
        self._pending_channels = 0  # how many channels have pending records
        self._deadline: float | None = None
        self._closed = False

    @property
    def next_deadline(self) -> float | None:
        """The clock time by which the oldest pending record must be sent; None if none is."""
        return self._deadline

    @property
    def pending_records(self) -> int:
        """Records waiting in buffers, over all channels."""
        return sum(len(values) for values in self._values)

    def emit(self, values: list, timestamps: list | None = None) -> None:
        """Partition a batch and buffer or send its shares.

        ``timestamps`` is parallel to ``values`` or None. ``values`` may be sent without a
        copy, so the caller must not modify it afterwards.
        """
        if not values:
            return
        self.records_out += len(values)
        batch_size = self._limit = batch_limit(values, self.batch_size)
        if self._timeout_s == 0:
            for channel, share, stamps, keys in self.partitioner.split_with_keys(
                values, timestamps
            ):
                self._send_batch(channel, share, stamps, keys)
            return
        pending_values = self._values
        pending_keys = self._keys
        shared = self._shared
        for channel, share, stamps, keys in self.partitioner.split_with_keys(values, timestamps):
            pending = pending_values[channel]
            if not pending:
                if len(share) >= batch_size:
                    self._send_batch(channel, share, stamps, keys)  # nothing to merge: no copy
                    continue
                # Kept as it is. The caller's own list (forward, broadcast: a partitioner
                # may hand it to several channels, and chained operators get it too) is
                # copied only if more records must be appended to it before it is sent.
                pending_values[channel] = share
                self._stamps[channel] = stamps
                # A partitioner's key lists are its own, made for this call: never shared.
                pending_keys[channel] = keys
                shared[channel] = share is values
                self._pending_channels += 1
                if self._deadline is None:
                    self._deadline = self._clock() + self._timeout_s
                continue
            if shared[channel]:
                shared[channel] = False
                pending = pending_values[channel] = pending[:]
                if self._stamps[channel] is not None:
                    self._stamps[channel] = self._stamps[channel][:]
            pending_stamps = self._stamps[channel]
            if stamps is not None:
                if pending_stamps is None:
                    pending_stamps = self._stamps[channel] = [None] * len(pending)
                pending_stamps.extend(stamps)
            elif pending_stamps is not None:
                pending_stamps.extend([None] * len(share))
            if keys is not None and pending_keys[channel] is not None:
                pending_keys[channel].extend(keys)
            else:
                pending_keys[channel] = None  # the consumer computes the keys itself
            pending.extend(share)
            if len(pending) >= batch_size:
                self._send_pending(channel)

    def _send_pending(self, channel: int) -> None:
        values = self._values[channel]
        stamps = self._stamps[channel]
        keys = self._keys[channel]
        self._values[channel] = []
        self._stamps[channel] = None
        self._keys[channel] = None
        self._pending_channels -= 1
        if not self._pending_channels:
            self._deadline = None
        self._send_batch(channel, values, stamps, keys)

    def _send_batch(
        self, channel: int, values: list, stamps: list | None, keys: list | None = None
    ) -> None:
        # A very large share goes out in pieces of ``batch_size``, so one element never
        # carries an unbounded number of records (gate slots and gRPC messages stay bounded).
        send = self._sends[channel]
        size = self._limit
        total = len(values)
        if total < 2 * size:
            self.batches_out += 1
            send((RECORDS, values, stamps) if keys is None else (RECORDS, values, stamps, keys))
            return
        start = 0
        while total - start >= 2 * size:
            end = start + size
            self._send_piece(send, values, stamps, keys, start, end)
            start = end
        self._send_piece(send, values, stamps, keys, start, total)

    def _send_piece(
        self,
        send: Callable[[Any], None],
        values: list,
        stamps: list | None,
        keys: list | None,
        start: int,
        end: int,
    ) -> None:
        self.batches_out += 1
        piece_stamps = None if stamps is None else stamps[start:end]
        if keys is None:
            send((RECORDS, values[start:end], piece_stamps))
        else:
            send((RECORDS, values[start:end], piece_stamps, keys[start:end]))

    def flush(self) -> None:
        """Send every pending buffer now."""
        if not self._pending_channels:
            self._deadline = None
            return
        for channel, pending in enumerate(self._values):
            if pending:
                self._send_pending(channel)
        self._deadline = None

    def flush_if_due(self, now: float) -> bool:
        """Flush when ``now`` (a reading of the writer's clock) passed the deadline.

        Returns whether it flushed. All pending buffers go out together, so a record may leave
        earlier than its own timeout, never later.
        """
        deadline = self._deadline
        if deadline is None or now < deadline:
            return False
        self.flush()
        return True

    def broadcast(self, element: Any) -> None:
        """Flush, then send ``element`` to every channel (watermarks, barriers, end of input).

        Flushing first keeps the order: no record emitted before the element arrives after it.
        """
        self.flush()
        for send in self._sends:
            send(element)

    def close(self) -> None:
        """Flush and close every channel; raises the first channel failure after trying all."""
        if self._closed:
            return
        self._closed = True
        first_error: BaseException | None = None
        try:
            self.flush()
        except Exception as error:
            first_error = error
        for channel in self.channels:
            try:
                channel.close()
            except Exception as error:
                if first_error is None:
                    first_error = error
        if first_error is not None:
            raise first_error

    def cancel(self) -> None:
        """Drop pending records and abandon every channel at once (failover, cancellation)."""
        self._closed = True
        self._values = [[] for _ in self.channels]
        self._stamps = [None] * len(self.channels)
        self._keys = [None] * len(self.channels)
        self._pending_channels = 0
        self._deadline = None
        # First wake every send waiting for room (never blocks), then tear the channels down:
        # cancelling a gRPC stream to a lost host can block, and must not keep a producer
        # blocked on another of its channels waiting.
        for channel in self.channels:
            channel.abandon()
        for channel in self.channels:
            try:
                channel.cancel()
            except Exception:
                pass
