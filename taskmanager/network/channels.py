"""Output channels: how a producer subtask hands stream elements to one consumer channel.

Two implementations pass the same tests (tests/test_network.py):

- ``LocalOutputChannel``: the consumer runs in this TaskManager; ``send`` puts the element
  straight into the consumer's input gate. Nothing is copied or serialised, so the *same list
  objects* reach the consumer: a producer must not touch a list after sending it, and a
  consumer must treat what it receives as read-only (a broadcast hands one list to several).
- ``RemoteOutputChannel``: the consumer runs in another TaskManager; one gRPC stream per
  channel pair carries the elements, each serialised once (DESIGN.md §5).

Both block in ``send`` while the consumer's channel is full (back pressure) and raise
``ChannelError`` once the consumer is gone, so a producer never waits forever on a dead peer
and never drops data silently.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any

import grpc

from strom.errors import StromError
from strom.rpc import data_pb2 as pb
from strom.rpc import data_pb2_grpc
from taskmanager.network.elements import encode
from taskmanager.network.input_gate import GateClosed, InputGate

__all__ = [
    "ChannelError",
    "ChannelKey",
    "LocalOutputChannel",
    "OutputChannel",
    "RemoteOutputChannel",
    "close_all_channels",
]


class ChannelError(StromError):
    """A data channel failed: its consumer or the TaskManager hosting it is gone."""


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
            raise ChannelError(
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


# ---------------------------------------------------------------------- gRPC channel cache

_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # A restarted TaskManager at the same address should be reachable again quickly.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

_channels_lock = threading.Lock()
_channels: dict[str, list[Any]] = {}  # address -> [grpc.Channel, users]


def _acquire_channel(address: str) -> grpc.Channel:
    """The process's one gRPC channel to ``address``; counts a user."""
    with _channels_lock:
        entry = _channels.get(address)
        if entry is None:
            entry = _channels[address] = [grpc.insecure_channel(address, _CHANNEL_OPTIONS), 0]
        entry[1] += 1
        return entry[0]


def _release_channel(address: str, channel: grpc.Channel) -> None:
    """Drops a user; the last one closes the gRPC channel."""
    with _channels_lock:
        entry = _channels.get(address)
        if entry is None or entry[0] is not channel:
            return  # closed by close_all_channels meanwhile
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _channels[address]
    # Closing a gRPC channel to a host that is gone can block for seconds: a cancelled task
    # would report CANCELED only then (seen with thread dumps in the multi-host failover test).
    threading.Thread(target=channel.close, name=f"close channel to {address}", daemon=True).start()


def close_all_channels() -> None:
    """Close every cached gRPC channel (process shutdown); streams on them fail."""
    with _channels_lock:
        entries = list(_channels.values())
        _channels.clear()
    for channel, _users in entries:
        channel.close()


def open_channel_count() -> int:
    """How many gRPC channels to other TaskManagers this process holds (tests, metrics)."""
    with _channels_lock:
        return len(_channels)


# ---------------------------------------------------------------------- remote channel

#: elements queued together travel in one gRPC message up to this many bytes
_MAX_COALESCED_BYTES = 1024 * 1024

_REASONS = {
    grpc.StatusCode.ABORTED: "the consumer closed its input (it finished, failed or was cancelled)",
    grpc.StatusCode.NOT_FOUND: "the consumer subtask is not deployed on that TaskManager",
    grpc.StatusCode.UNAVAILABLE: "the TaskManager is unreachable or went away",
    grpc.StatusCode.INVALID_ARGUMENT: "the receiving TaskManager rejected the data",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "a batch is larger than the receiver accepts",
    grpc.StatusCode.UNIMPLEMENTED: "the peer at that address serves no data exchange",
    grpc.StatusCode.CANCELLED: "the stream was cancelled",
}


class RemoteOutputChannel(OutputChannel):
    """A channel to a consumer in another TaskManager, over one gRPC stream.

    ``send`` encodes the element and queues the bytes in a buffer of ``capacity`` elements
    that feeds the stream; gRPC takes whatever is queued as one message. When the consumer's
    channel is full the receiver stops reading, HTTP/2 flow control stops gRPC from pulling
    messages, the buffer fills and ``send`` blocks: back pressure reaches the producer without
    anything growing without bound.

    The stream opens in the constructor (without blocking) with a header-only frame, so the
    receiver starts looking for the consumer's gate before the first record exists.
    """

    def __init__(
        self,
        target_address: str,
        key: ChannelKey,
        capacity: int = 8,
        close_timeout: float | None = 60.0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.target_address = target_address
        self.key = key
        self.capacity = capacity
        self.close_timeout = close_timeout
        self.elements_sent = 0
        self._cond = threading.Condition()
        self._buffer: deque[bytes] = deque()
        self._senders_waiting = 0
        self._frames_waiting = False
        self._closed = False  # no more sends; the stream ends once the buffer is drained
        self._released = False
        self._frames_done = False  # the request iterator has ended
        self._last_progress = time.monotonic()  # when gRPC last took a frame
        self._error: str | None = None  # why the stream failed, once it did
        self._grpc_channel = _acquire_channel(target_address)
        stub = data_pb2_grpc.DataExchangeStub(self._grpc_channel)
        try:
            self._call = stub.Transfer.future(self._frames())
        except BaseException:
            self._release()
            raise
        self._call.add_done_callback(self._on_done)

    # ------------------------------------------------------------------ producer side

    def send(self, element: Any) -> None:
        """Encode ``element`` and queue it for the stream; blocks while the buffer is full."""
        payload = encode(element)
        cond = self._cond
        with cond:
            buffer = self._buffer
            while len(buffer) >= self.capacity and self._error is None and not self._closed:
                self._senders_waiting += 1
                try:
                    cond.wait()
                finally:
                    self._senders_waiting -= 1
            if self._error is not None:
                raise ChannelError(self._error)
            if self._closed:
                raise ChannelError(f"send on closed data channel {self.key.describe()}")
            buffer.append(payload)
            self.elements_sent += 1
            if self._frames_waiting:
                cond.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """End the stream after everything queued was sent; wait for the receiver's ack.

        ``timeout`` (default: ``close_timeout``; None waits as long as the stream is healthy)
        bounds two waits: for the queued frames, how long gRPC may go without taking one —
        a slow but live consumer is waited for — and then how long the receiver may take to
        confirm. Raises ``ChannelError`` when the stream failed or a wait ran out.
        Idempotent; a second call only reports a failure again.
        """
        wait = self.close_timeout if timeout is None else timeout
        cond = self._cond
        try:
            with cond:
                self._closed = True
                self._last_progress = time.monotonic()
                cond.notify_all()
                while not self._frames_done and self._error is None:
                    if wait is None:
                        cond.wait()
                        continue
                    remaining = self._last_progress + wait - time.monotonic()
                    if remaining <= 0:
                        break
                    cond.wait(remaining)
                stalled = not self._frames_done and self._error is None
            if stalled:
                self._call.cancel()
                raise ChannelError(
                    f"data channel {self.key.describe()} to {self.target_address}: the receiver "
                    f"took nothing for {wait}s while the producer was closing the channel"
                )
            self._call.result(timeout=wait)
        except grpc.FutureTimeoutError:
            self._call.cancel()
            raise ChannelError(
                f"data channel {self.key.describe()} to {self.target_address}: the receiver "
                f"did not confirm the end of the stream within {wait}s"
            ) from None
        except grpc.FutureCancelledError:
            raise ChannelError(
                self._error or f"data channel {self.key.describe()} was cancelled"
            ) from None
        except grpc.RpcError as error:
            raise ChannelError(self._describe_failure(error)) from None
        finally:
            self._release()

    def abandon(self) -> None:
        with self._cond:
            self._closed = True
            if self._error is None:
                self._error = f"data channel {self.key.describe()} was cancelled"
            self._buffer.clear()
            self._cond.notify_all()

    def cancel(self) -> None:
        """Abandon the stream at once; the receiver drops nothing already delivered."""
        self.abandon()
        self._call.cancel()
        self._release()

    @property
    def backpressured(self) -> bool:
        return self._senders_waiting > 0

    @property
    def failed(self) -> bool:
        """Whether the stream has failed (sends raise ``ChannelError``)."""
        return self._error is not None

    def _release(self) -> None:
        with self._cond:
            if self._released:
                return
            self._released = True
        _release_channel(self.target_address, self._grpc_channel)

    # ------------------------------------------------------------------ gRPC side

    def _frames(self):
        """The request iterator gRPC pulls from; it blocks while the buffer is empty."""
        key = self.key
        yield pb.DataFrame(
            header=pb.ChannelHeader(
                job_id=key.job_id,
                attempt=key.attempt,
                vertex_id=key.vertex_id,
                subtask=key.subtask,
                channel=key.channel,
            )
        )
        cond, buffer, clock = self._cond, self._buffer, time.monotonic
        try:
            while True:
                with cond:
                    while not buffer:
                        if self._closed or self._error is not None:
                            return
                        self._frames_waiting = True
                        try:
                            cond.wait()
                        finally:
                            self._frames_waiting = False
                    if self._error is not None:
                        return
                    # What is queued goes in one message, gRPC's cost being per message, up
                    # to a size every receiver accepts (one element always goes).
                    payloads = [buffer.popleft()]
                    size = len(payloads[0])
                    while buffer and size + len(buffer[0]) <= _MAX_COALESCED_BYTES:
                        size += len(buffer[0])
                        payloads.append(buffer.popleft())
                    self._last_progress = clock()
                    if self._senders_waiting:
                        cond.notify_all()
                yield pb.DataFrame(payloads=payloads)
        finally:
            with cond:
                self._frames_done = True
                cond.notify_all()

    def _on_done(self, call: grpc.Future) -> None:
        if call.cancelled():
            error = f"data channel {self.key.describe()} was cancelled"
        else:
            exception = call.exception()
            if exception is None:
                if self._closed and not self._buffer:
                    return  # the normal end
                error = (
                    f"data channel {self.key.describe()} at {self.target_address}: the "
                    "receiver ended the stream before the producer did"
                )
            else:
                error = self._describe_failure(exception)
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    def _describe_failure(self, error: BaseException) -> str:
        code = getattr(error, "code", lambda: None)()
        details = getattr(error, "details", lambda: None)() or str(error)
        reason = _REASONS.get(code, "the stream failed")
        name = code.name if code is not None else type(error).__name__
        return (
            f"data channel {self.key.describe()} to {self.target_address} failed: {reason} "
            f"({name}: {details})"
        )

    def __repr__(self) -> str:
        return f"RemoteOutputChannel({self.target_address}, {self.key.describe()})"
