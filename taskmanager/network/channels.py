"""Output channels: how a producer subtask hands stream elements to one consumer channel.

Two implementations pass the same tests (tests/test_network.py):

- ``LocalOutputChannel``: the consumer runs in this TaskManager; ``send`` puts the element
  straight into the consumer's input gate. Nothing is copied or serialised, so the *same list
  objects* reach the consumer: a producer must not touch a list after sending it, and a
  consumer must treat what it receives as read-only (a broadcast hands one list to several).
- ``RemoteOutputChannel``: the consumer runs in another process; the process's one connection
  to that process carries the elements, each serialised once, with credit-based flow control
  per channel (``connection.py``, DESIGN.md §5). When the consumer is on this host, the
  elements go through a shared-memory ring instead, written by the producer's thread and read
  by the consumer's (``shared_rings.py``); the connection still opens, ends and fails the
  channel.

Both block in ``send`` while the consumer's channel is full (back pressure) and raise
``ChannelError`` once the consumer is gone, so a producer never waits forever on a dead peer
and never drops data silently.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any

from strom.errors import StromError
from strom.rpc import data_pb2 as pb
from taskmanager.network import connection as _connection
from taskmanager.network import shared_rings
from taskmanager.network.elements import encode
from taskmanager.network.input_gate import GateClosed, InputGate
from taskmanager.network.shared_rings import Ring

__all__ = [
    "ChannelError",
    "ChannelKey",
    "LocalOutputChannel",
    "OutputChannel",
    "RemoteOutputChannel",
    "close_all_channels",
]


log = logging.getLogger(__name__)


class ChannelError(StromError):
    """A data channel failed: its consumer or the TaskManager hosting it is gone."""


class ConsumerGone(ChannelError):
    """The consumer closed its input before the producer was done: it failed, was cancelled
    or finished early. A producer failing on it fails as a consequence; the job's cause is
    the consumer's own failure (``Task`` reports it as consequential)."""


@dataclass(frozen=True)
class ChannelKey:
    """Names a consumer's input gate (job, attempt, vertex, subtask) and a channel in it."""

    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    channel: int

    def describe(self) -> str:
        return (
            f"channel {self.channel} of subtask {self.subtask} of vertex {self.vertex_id} "
            f"(job {self.job_id}, attempt {self.attempt})"
        )


class OutputChannel(ABC):
    """One producer's end of one consumer channel."""

    @abstractmethod
    def send(self, element: Any) -> None:
        """Hand ``element`` on; blocks while the consumer's channel is full.

        Raises ``ChannelError`` when the consumer is gone or the channel was closed.
        """

    @abstractmethod
    def close(self) -> None:
        """Finish the channel once everything sent has been delivered."""

    def cancel(self) -> None:
        """Abandon the channel at once, dropping what was not delivered (failover)."""
        self.close()

    def abandon(self) -> None:  # noqa: B027 - optional: most channels never block for long
        """Wake a ``send`` waiting for room, which then raises; never blocks. ``cancel``
        follows (and may block on the network)."""

    @property
    def backpressured(self) -> bool:
        """Whether a ``send`` is waiting right now for the consumer to make room."""
        return False


class LocalOutputChannel(OutputChannel):
    """A channel to a consumer in this process: ``send`` puts into its input gate."""

    __slots__ = ("gate", "channel_index", "_put", "_closed")

    def __init__(self, gate: InputGate, channel_index: int) -> None:
        if not 0 <= channel_index < gate.num_channels:
            raise ValueError(f"channel {channel_index} out of range for {gate!r}")
        self.gate = gate
        self.channel_index = channel_index
        self._put = gate.put
        self._closed = False

    def send(self, element: Any) -> None:
        """Put ``element`` (not a copy) into the consumer's gate; do not reuse it afterwards."""
        if self._closed:
            raise ChannelError(f"send on closed local channel {self.channel_index}")
        try:
            self._put(self.channel_index, element)
        except GateClosed:
            raise ConsumerGone(
                f"local channel {self.channel_index}: the consumer closed its input "
                "(it finished, failed or was cancelled)"
            ) from None

    def close(self) -> None:
        """Refuse further sends; what was sent is already in the consumer's gate."""
        self._closed = True

    @property
    def backpressured(self) -> bool:
        return self.gate.backpressured(self.channel_index)

    def __repr__(self) -> str:
        return f"LocalOutputChannel({self.channel_index})"


# ---------------------------------------------------------------------- remote channel


def close_all_channels() -> None:
    """End every connection to another process (process shutdown); their channels fail."""
    _connection.close_all_connections()


def open_channel_count() -> int:
    """How many connections to other processes this process holds (tests, metrics)."""
    return _connection.connection_count()


#: a channel's queue takes more than ``capacity`` elements while they hold fewer bytes than this
QUEUE_BYTES = 64 * 1024
#: but never more elements than this
SMALL_QUEUE = 256
#: what a channel sends, credits or not, before it hears from the receiver again: credits
#: granted for small elements must not bring as many large ones (see data_service.py)
BURST_BYTES = 4 * 1024 * 1024
#: how long a producer waiting for room in a ring sleeps before it looks at its channel again
#: (a failure or cancellation wakes it at once; this only bounds a missed wake-up)
RING_WAIT_S = 0.5

# Which way a channel's elements go: over the connection (credits), through a ring, or not yet
# known (a ring was offered and the receiver has not answered).
_GRPC, _RING, _PENDING = "grpc", "ring", "pending"


def _never_full(need: int) -> None:
    raise AssertionError(f"a ring had no room for {need} bytes it was sized for")


class RemoteOutputChannel(OutputChannel):
    """A channel to a consumer in another process, multiplexed over the process's one
    connection to it.

    ``send`` encodes the element and queues the bytes in a buffer of ``capacity`` elements (or
    more while they hold less than ``QUEUE_BYTES``: small elements, up to ``SMALL_QUEUE``).
    The connection sends queued elements only against credits from the receiver, one per free
    slot of the consumer's gate channel, so when the consumer falls behind the buffer fills and
    ``send`` blocks: back pressure reaches the producer, at most ``capacity`` elements wait
    here and at most the gate's capacity there, and other channels on the same connection go on.

    The channel opens in the constructor (without blocking), so the receiver starts looking for
    the consumer's gate before the first record exists.

    ``shared_memory``: the consumer may be on this host; the channel offers it a ring
    (``shared_rings.py``) when it opens. Until the receiver answers, elements wait in the
    queue; then they go through the ring, or over the connection if the receiver declined it.
    Through a ring, ``send`` writes on the caller's thread and blocks while the ring is full.
    """

    def __init__(
        self,
        target_address: str,
        key: ChannelKey,
        capacity: int = 8,
        close_timeout: float | None = 60.0,
        shared_memory: bool = False,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.target_address = target_address
        self.key = key
        self.capacity = capacity
        self.close_timeout = close_timeout
        self.elements_sent = 0
        # Everything below is guarded by the connection's lock (``_cond`` shares it).
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._credit = 0
        self._taken = 0  # elements handed to the connection
        self._burst = 0  # bytes sent since the receiver's last credit message
        self._gone: str | None = None  # the consumer closed its input after taking everything
        self._open_sent = False
        self._closed = False  # no more sends; the channel ends once the queue is drained
        self._close_sent = False
        self._cancel_requested = False
        self._confirmed = False  # the receiver took everything, close and all
        self._released = False
        self._dirty = False  # in the connection's list of channels to look at
        self._senders_waiting = 0
        self._last_progress = time.monotonic()  # when the connection last took an element
        self._error: str | None = None  # why the channel failed, once it did
        self._consumer_closed = False  # the failure is the consumer closing its input
        self._ring: Ring | None = None
        self._lane = _GRPC
        self._queued_ring_bytes = 0  # what the queue will take of the ring, while offered
        if shared_memory and shared_rings.available():
            try:
                self._ring = Ring.create()
                self._lane = _PENDING
            except OSError as error:  # no room in /dev/shm, say: the connection carries it
                log.warning("no shared-memory ring for %s: %s", key.describe(), error)
        connection = _connection.acquire_connection(target_address)
        self._connection = connection
        self._cond = threading.Condition(connection.lock)
        with connection.lock:
            self._id = connection.add(self)
            connection.mark(self)  # the open message

    # ------------------------------------------------------------------ producer side

    def send(self, element: Any) -> None:
        """Encode ``element`` and queue it; blocks while ``capacity`` elements wait for credit
        (or, through a ring, while the ring is full)."""
        payload = encode(element)
        if self._lane is _RING:
            self._write_ring(payload)
            return
        cond = self._cond
        with cond:
            queue = self._queue
            while (
                (
                    len(queue) >= self.capacity
                    and (self._queued_bytes >= QUEUE_BYTES or len(queue) >= SMALL_QUEUE)
                    and self._lane is not _RING
                )
                or (
                    # A ring offered and not answered yet: queue only what the empty ring will
                    # take at once when the answer comes (a larger element waits for it).
                    self._lane is _PENDING
                    and self._queued_ring_bytes + self._ring.room_for(len(payload))
                    > self._ring.capacity
                )
            ) and (self._error is None and not self._closed):
                self._senders_waiting += 1
                try:
                    cond.wait()
                finally:
                    self._senders_waiting -= 1
            if self._error is not None:
                raise self._failure()
            if self._closed:
                raise ChannelError(f"send on closed data channel {self.key.describe()}")
            if self._gone is not None:
                raise ConsumerGone(self._gone)
            if self._lane is not _RING:
                queue.append(payload)
                self._queued_bytes += len(payload)
                if self._lane is _PENDING:
                    self._queued_ring_bytes += self._ring.room_for(len(payload))
                self.elements_sent += 1
                if self._credit and not self._dirty:
                    self._connection.mark(self)
                return
        self._write_ring(payload)  # the ring was attached while this waited

    def _write_ring(self, payload: bytes) -> None:
        """Write ``payload`` into the ring (the producer's thread: the ring's one writer)."""
        self._check_ring()
        self._ring.write(payload, self._wait_for_ring)
        self.elements_sent += 1

    def _wait_for_ring(self, need: int) -> None:
        # The ring is full: wait for the consumer, unless the channel failed or was cancelled
        # meanwhile (either sets the error and interrupts the wait).
        self._check_ring()
        self._senders_waiting += 1
        try:
            self._ring.wait_for_room(need, RING_WAIT_S)
        finally:
            self._senders_waiting -= 1

    def _check_ring(self) -> None:
        # Raises when the channel failed or was cancelled, or its consumer closed the ring.
        if self._error is not None:
            raise self._failure()
        if self._ring.consumer_closed:
            raise ConsumerGone(
                f"{self._describe()} to {self.target_address}: the consumer closed its input "
                "(it finished, failed or was cancelled)"
            )

    def close(self, timeout: float | None = None) -> None:
        """End the channel after everything queued was delivered; wait for the receiver's word.

        ``timeout`` (default: ``close_timeout``; None waits as long as the peer is healthy)
        bounds how long the connection may go without taking one of this channel's elements
        (a slow but live consumer is waited for) and then how long the receiver may take to
        confirm. Raises ``ChannelError`` when the channel failed or the wait ran out.
        Idempotent; a second call only reports a failure again.
        """
        wait = self.close_timeout if timeout is None else timeout
        cond = self._cond
        try:
            with cond:
                if not self._closed:
                    self._closed = True
                    self._last_progress = time.monotonic()
                    cond.notify_all()
                    if self._error is None:
                        self._connection.mark(self)
                while not self._confirmed and self._error is None:
                    if wait is None:
                        cond.wait()
                        continue
                    remaining = self._last_progress + wait - time.monotonic()
                    if remaining <= 0:
                        break
                    cond.wait(remaining)
                if self._error is not None:
                    raise self._failure()
                if not self._confirmed:
                    self._error = (
                        f"{self._describe()} to {self.target_address}: the receiver did not "
                        f"confirm the end of the channel within {wait}s (it took nothing "
                        "for that long)"
                    )
                    self._cancel_requested = True
                    self._queue.clear()
                    self._queued_bytes = 0
                    raise ChannelError(self._error)
        finally:
            self._release()
            if self._ring is not None:
                self._ring.release()  # this is the thread that writes to it

    def _failure(self) -> ChannelError:
        error_type = ConsumerGone if self._consumer_closed else ChannelError
        return error_type(self._error)

    def abandon(self) -> None:
        with self._cond:
            self._abandon()

    def _abandon(self) -> None:
        self._closed = True
        if self._error is None:
            self._error = f"data channel {self.key.describe()} was cancelled"
        self._queue.clear()
        self._queued_bytes = 0
        self._cond.notify_all()
        if self._ring is not None:
            self._ring.interrupt()  # a send waiting for room looks again, and raises

    def cancel(self) -> None:
        """Abandon the channel at once; the receiver drops nothing already delivered.
        Never blocks on the network."""
        with self._cond:
            self._abandon()
            if not self._confirmed:
                self._cancel_requested = True
        self._release()

    @property
    def backpressured(self) -> bool:
        return self._senders_waiting > 0

    @property
    def through_ring(self) -> bool:
        """Whether the channel's elements go through a shared-memory ring."""
        return self._lane is _RING

    @property
    def failed(self) -> bool:
        """Whether the channel has failed (sends raise ``ChannelError``)."""
        return self._error is not None

    def _release(self) -> None:
        with self._cond:
            if self._released:
                return
            self._released = True
        if self._ring is not None:
            # The files, if the consumer never took them; the memory and the FIFOs go with
            # the ring, on the thread that writes to it (``close``) or when it is collected.
            self._ring.discard()
        _connection.release_connection(self._connection, self)

    # ------------------------------------------------------------------ the connection's side
    # Called by the connection on its loop thread, with its lock held.

    def _collect(self, budget: int, now: float) -> tuple[pb.ChannelMessage | None, int]:
        """The message that sends what this channel may send now, and its payload bytes."""
        if self._cancel_requested:
            if not self._open_sent:
                return None, 0
            return pb.ChannelMessage(channel_id=self._id, cancel=True), 0
        message = pb.ChannelMessage(channel_id=self._id)
        useful = False
        if not self._open_sent:
            key = self.key
            message.open.job_id = key.job_id
            message.open.attempt = key.attempt
            message.open.vertex_id = key.vertex_id
            message.open.subtask = key.subtask
            message.open.channel = key.channel
            if self._ring is not None:
                message.open.ring = self._ring.path
            self._open_sent = useful = True
        queue = self._queue
        size = 0
        if (
            self._credit
            and queue
            and self._error is None
            and self._burst < BURST_BYTES
            and self._lane is _GRPC
        ):
            payloads = []
            credit = self._credit
            burst = self._burst
            while (
                queue
                and credit
                and burst < BURST_BYTES
                and (not payloads or size + len(queue[0]) <= budget)
            ):
                payload = queue.popleft()
                size += len(payload)
                burst += len(payload)
                payloads.append(payload)
                credit -= 1
            self._credit = credit
            self._burst = burst
            self._queued_bytes -= size
            self._taken += len(payloads)
            message.payloads.extend(payloads)
            self._last_progress = now
            useful = True
            if self._senders_waiting or self._closed:
                self._cond.notify_all()
        if self._closed and not queue and not self._close_sent and self._error is None:
            message.close = self._close_sent = useful = True
        return (message if useful else None), size

    def _dirty_again(self) -> bool:
        """Whether what is left still has credit to go (more than fitted one message)."""
        return bool(
            self._queue
            and self._credit
            and self._error is None
            and self._burst < BURST_BYTES
            and self._lane is _GRPC
        )

    def _ring_answered(self, attached: bool) -> None:
        """The receiver took the offered ring (elements go there from now on), or declined it
        and granted credits (they go over the connection)."""
        if self._lane is not _PENDING:
            return
        if attached:
            # What was sent meanwhile fits the empty ring (``send`` saw to it), so this never
            # waits; and the producer's thread writes only once the lane is set, after it.
            queue, ring = self._queue, self._ring
            while queue and self._error is None:
                ring.write(queue.popleft(), _never_full)
            queue.clear()
            self._queued_bytes = 0
            self._lane = _RING
            if self._closed and not self._close_sent and self._error is None:
                self._connection.mark(self)  # nothing is left to go before the close
        else:
            self._lane = _GRPC
            self._ring.discard()
        self._queued_ring_bytes = 0
        self._cond.notify_all()

    def _fail(self, error: str) -> None:
        if self._error is None and not self._confirmed:
            self._error = error
        self._queue.clear()
        self._queued_bytes = 0
        self._cond.notify_all()
        if self._ring is not None:
            self._ring.interrupt()

    def _consumer_gone(self, error: str) -> None:
        self._gone = error
        self._confirmed = True
        self._cond.notify_all()

    def _confirm(self, delivered: int) -> None:
        self._confirmed = True
        self._cond.notify_all()

    def _describe(self) -> str:
        return f"data channel {self.key.describe()}"

    def __repr__(self) -> str:
        return f"RemoteOutputChannel({self.target_address}, {self.key.describe()})"
