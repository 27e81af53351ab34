"""The sending end of a connection: every channel from this process to one peer, on one stream.

One ``OutboundConnection`` per peer address carries all of this process's remote channels to
that peer over one gRPC ``DataConnection.Connect`` stream, run by coroutines on the process's
data-plane loop (``event_loop.py``). Producer threads never touch gRPC: ``send`` queues encoded
bytes in its channel (bounded) and marks the channel; the loop's writer sends what each marked
channel has credit for, many channels' messages in one gRPC message, and its reader applies
credits, close confirmations and failures that the receiver sends back (proto/strom/rpc/data.proto).

The channel objects themselves (``RemoteOutputChannel``) live in ``channels.py``; this module
only reaches into their queue, credit and flags, under the connection's lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import grpc

from strom.rpc import data_pb2 as pb
from strom.rpc import data_pb2_grpc, tls
from taskmanager.network import data_tokens
from taskmanager.network.event_loop import DataPlaneLoop, data_plane_loop

if TYPE_CHECKING:
    from taskmanager.network.channels import RemoteOutputChannel

__all__ = ["OutboundConnection", "acquire_connection", "close_all_connections", "connection_count"]

log = logging.getLogger(__name__)

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # A restarted TaskManager at the same address should be reachable again quickly.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

#: what one gRPC message carries at most, over all channels (one element always goes)
MAX_FRAME_BYTES = 1024 * 1024

#: how long finding a peer's data endpoint may take before its channels fail
LOCATE_TIMEOUT_S = 30.0

#: how long a peer that refuses connections is tried again before its channels fail
LOCATE_RETRY_S = 5.0

_REASONS = {
    grpc.StatusCode.UNAVAILABLE: "the TaskManager is unreachable or went away",
    grpc.StatusCode.UNIMPLEMENTED: "the peer at that address serves no data exchange",
    grpc.StatusCode.INVALID_ARGUMENT: "the receiving process rejected the data",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "a batch is larger than the receiver accepts",
    grpc.StatusCode.CANCELLED: "the connection was cancelled",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the peer did not answer in time",
    grpc.StatusCode.PERMISSION_DENIED: "the receiver refused this process's data token",
}


class OutboundConnection:
    """All channels from this process to the process at ``address``, over one stream."""

    def __init__(self, address: str, loop: DataPlaneLoop) -> None:
        self.address = address
        self.lock = threading.Lock()
        self.users = 0
        self._loop = loop
        self._channels: dict[int, RemoteOutputChannel] = {}
        self._next_id = 0
        self._dirty: list[RemoteOutputChannel] = []  # channels with something to send
        self._wake_pending = False
        self._event: asyncio.Event | None = None
        self._error: str | None = None
        self._closing = False
        self._task = loop.submit(self._run())

    # ------------------------------------------------------------------ any thread

    def add(self, channel: RemoteOutputChannel) -> int:
        """Register ``channel``; returns its id on this connection. Lock held by the caller."""
        channel_id = self._next_id
        self._next_id += 1
        self._channels[channel_id] = channel
        if self._error is not None:
            channel._error = self._error
        return channel_id

    def mark(self, channel: RemoteOutputChannel) -> None:
        """``channel`` has something to send: have the writer look at it. Lock held."""
        if channel._dirty:
            return
        channel._dirty = True
        self._dirty.append(channel)
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._wake)

    def remove(self, channel: RemoteOutputChannel) -> bool:
        """Forget ``channel`` (closed or cancelled); True when it was the last user. Lock held."""
        self.users -= 1
        if channel._cancel_requested and not channel._dirty:
            self.mark(channel)  # the writer still tells the receiver, then forgets it
        elif not channel._cancel_requested:
            self._channels.pop(channel._id, None)
        if self.users > 0:
            return False
        self._closing = True
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._wake)
        return True

    # ------------------------------------------------------------------ the loop

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()

    async def _run(self) -> None:
        self._event = asyncio.Event()
        self._event.set()
        locate = data_channel = None
        try:
            host = self.address.rsplit(":", 1)[0]
            locate = tls.aio_channel(self.address, CHANNEL_OPTIONS)
            endpoint = await self._locate(locate)
            await locate.close()
            locate = None
            data_channel = tls.aio_channel(f"{host}:{endpoint.port}", CHANNEL_OPTIONS)
            # The peer answered just now: a connect that fails here is a moment's overload
            # (dozens of processes connecting at once), so wait for the connection to be up
            # before the stream takes any data.
            try:
                await asyncio.wait_for(data_channel.channel_ready(), LOCATE_TIMEOUT_S)
            except TimeoutError:
                self._fail(
                    f"the data endpoint of {self.address} (port {endpoint.port}) accepted no "
                    f"connection within {LOCATE_TIMEOUT_S:.0f}s"
                )
                return
            # The job's data token, once per connection: the receiver takes nothing without it.
            call = data_pb2_grpc.DataConnectionStub(data_channel).Connect(
                metadata=data_tokens.metadata()
            )
            reader = asyncio.ensure_future(self._read(call))
            # A receiver that ends the stream (one that refuses the token does so before it
            # grants a credit) must wake a writer waiting for credit, or nothing ever fails
            # the channels and their producers wait forever.
            reader.add_done_callback(lambda _: self._event.set())
            try:
                # Nothing is written before the receiver took the connection (its headers): a
                # write racing a refusal ended the call INTERNAL ("Internal error from Core")
                # instead of with the refusal's status (1 run in 25 of test_transport's).
                await asyncio.wait_for(call.initial_metadata(), LOCATE_TIMEOUT_S)
                if not call.done() and not reader.done():
                    await self._write(call, reader)
            except asyncio.InvalidStateError:
                # The call ended under the writer (the receiver refused it): the reader has
                # the receiver's reason.
                await asyncio.wait([reader], timeout=LOCATE_TIMEOUT_S)
            finally:
                if not reader.done():
                    call.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            if not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()
        except grpc.RpcError as error:
            self._fail(self._describe(error))
        except asyncio.CancelledError:
            self._fail(f"the connection to {self.address} was closed")
        except TimeoutError:
            self._fail(f"{self.address} took no data connection in {LOCATE_TIMEOUT_S:.0f}s")
        except Exception as error:  # never let a bug here hang producers
            log.exception("data connection to %s failed", self.address)
            self._fail(f"the connection to {self.address} failed: {error!r}")
        else:
            self._fail(f"the connection to {self.address} ended")
        finally:
            for channel in (locate, data_channel):
                if channel is not None:
                    await channel.close(grace=None)

    async def _locate(self, channel: Any) -> pb.DataEndpoint:
        """Where the peer's data endpoint is. A connect that fails for a moment (the peer's
        listen backlog full while dozens of processes connect at once, as at parallelism 64) is
        tried again for up to ``LOCATE_RETRY_S``; a peer that is gone fails after that."""
        stub = data_pb2_grpc.DataExchangeStub(channel)
        deadline = time.monotonic() + LOCATE_RETRY_S
        delay = 0.05
        while True:
            try:
                return await stub.Locate(pb.LocateRequest(), timeout=LOCATE_TIMEOUT_S)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                if time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _write(self, call: Any, reader: asyncio.Future) -> None:
        event = self._event
        while True:
            await event.wait()
            event.clear()
            while True:
                frame, closing = self._collect()
                if frame is not None:
                    await call.write(frame)
                if closing:
                    await call.done_writing()
                    return
                if frame is None or reader.done():
                    break
            if reader.done():
                return

    def _collect(self) -> tuple[pb.ConnectionFrame | None, bool]:
        """What the marked channels may send now, as one message; and whether to end."""
        messages = []
        size = 0
        now = time.monotonic()
        with self.lock:
            self._wake_pending = False
            dirty = self._dirty
            taken = 0
            for channel in dirty:
                if size >= MAX_FRAME_BYTES:
                    break
                taken += 1
                channel._dirty = False
                message, used = channel._collect(MAX_FRAME_BYTES - size, now)
                if message is not None:
                    messages.append(message)
                    size += used + 16
                if channel._cancel_requested:
                    self._channels.pop(channel._id, None)
                elif channel._dirty_again():
                    channel._dirty = True
                    dirty.append(channel)  # more than fitted: looked at again next frame
            self._dirty = dirty[taken:]
            if self._dirty:
                self._wake_pending = True
                self._event.set()
            closing = self._closing and not self._dirty and not self._channels
        if not messages:
            return None, closing
        return pb.ConnectionFrame(messages=messages), closing

    async def _read(self, call: Any) -> None:
        async for frame in call:
            with self.lock:
                for message in frame.messages:
                    channel = self._channels.get(message.channel_id)
                    if channel is None:
                        continue  # cancelled meanwhile, or a confused peer: nothing to do
                    if message.ring_attached:
                        channel._ring_answered(True)
                    elif not message.closed and not message.HasField("failure"):
                        # Credits, or none (the receiver's channel ran empty): either way the
                        # receiver has taken what came before, and the burst allowance renews.
                        # Credits for a channel that offered a ring: the receiver declined it.
                        channel._ring_answered(False)
                        channel._credit += message.credit
                        channel._burst = 0
                        if channel._queue or (channel._closed and not channel._close_sent):
                            self.mark(channel)
                    if message.HasField("failure"):
                        error = _describe_failure(channel, message.failure)
                        channel._consumer_closed = message.failure.reason == pb.CONSUMER_CLOSED
                        if (
                            message.failure.reason == pb.CONSUMER_CLOSED
                            and message.delivered == channel._taken
                            and not channel._queue
                        ):
                            channel._consumer_gone(error)  # everything sent had arrived
                        else:
                            channel._fail(error)
                        self._channels.pop(message.channel_id, None)
                    elif message.closed:
                        channel._confirm(message.delivered)
                        self._channels.pop(message.channel_id, None)

    def _fail(self, error: str) -> None:
        with self.lock:
            if self._error is None:
                self._error = error
            channels = list(self._channels.values())
            self._channels.clear()
            for channel in channels:
                channel._fail(f"{channel._describe()} to {self.address} failed: {error}")
        _forget(self)

    def _describe(self, error: grpc.RpcError) -> str:
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else str(error)
        reason = _REASONS.get(code, "the connection failed")
        name = code.name if code is not None else type(error).__name__
        return f"{reason} ({name}: {details})"


def _describe_failure(channel: RemoteOutputChannel, failure: pb.ChannelFailure) -> str:
    reasons = {
        pb.CONSUMER_CLOSED: "the consumer closed its input (it finished, failed or was cancelled)",
        pb.NOT_DEPLOYED: "the consumer subtask is not deployed on that TaskManager",
        pb.BAD_DATA: "the receiving TaskManager rejected the data",
    }
    reason = reasons.get(failure.reason, "the receiver failed the channel")
    return f"{channel._describe()} to {channel.target_address} failed: {reason} ({failure.message})"


# ---------------------------------------------------------------------- the process's connections

_connections_lock = threading.Lock()
_connections: dict[str, OutboundConnection] = {}


def acquire_connection(address: str) -> OutboundConnection:
    """The process's connection to ``address`` (opened on first use); counts a user."""
    with _connections_lock:
        connection = _connections.get(address)
        if connection is None:
            connection = _connections[address] = OutboundConnection(address, data_plane_loop())
        with connection.lock:
            connection.users += 1
        return connection


def release_connection(connection: OutboundConnection, channel: RemoteOutputChannel) -> None:
    """``channel`` is done with ``connection``; the last user ends it."""
    with _connections_lock:
        with connection.lock:
            last = connection.remove(channel)
        if last and _connections.get(connection.address) is connection:
            del _connections[connection.address]


def _forget(connection: OutboundConnection) -> None:
    # A failed connection is not reused: the next channel to that address opens a new one.
    with _connections_lock:
        if _connections.get(connection.address) is connection:
            del _connections[connection.address]


def close_all_connections() -> None:
    """End every connection (process shutdown); their channels fail."""
    with _connections_lock:
        connections = list(_connections.values())
        _connections.clear()
    for connection in connections:
        connection._task.cancel()


def connection_count() -> int:
    """How many connections to other processes this process holds (tests, metrics)."""
    with _connections_lock:
        return len(_connections)
