"""The receiving end of connections: a process's data endpoint, feeding its input gates.

Each peer that sends records to this process opens one ``DataConnection.Connect`` stream to
the process's data endpoint and multiplexes its channels over it (proto/strom/rpc/data.proto).
The endpoint is a gRPC asyncio server on the process's one data-plane loop (``event_loop.py``),
so any number of peers and channels costs no thread. For each channel the receiver finds the
consumer's gate in the ``GateRegistry`` (waiting for it: producers may be deployed first),
grants the producer one credit per free slot of that gate channel, and one more each time the
consumer takes an element. Elements only come against credits, so ``InputGate.put`` never
waits and one full channel never holds up the others on the connection.

Whatever a peer sends, the process stays up: an element that does not decode, or data sent
without credit, fails that channel (``BAD_DATA``, with a log line); a stream that breaks the
protocol itself is ended with INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import grpc

from strom.rpc import data_pb2 as pb
from strom.rpc import data_pb2_grpc
from taskmanager.network.elements import DecodeError, decode
from taskmanager.network.event_loop import data_plane_loop
from taskmanager.network.gate_registry import GateRegistry
from taskmanager.network.input_gate import GateClosed, InputGate

__all__ = ["ENDPOINT_OPTIONS", "SERVER_OPTIONS", "DataExchangeService"]

log = logging.getLogger(__name__)

#: Options for the process's main gRPC server, which answers ``DataExchange.Locate``.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
]

#: Options for the data endpoint. Credits bound what is in flight per channel, so HTTP/2's own
#: window (grown by bandwidth-delay probing) only decides how fast a connection may go.
ENDPOINT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]

# How often a channel whose consumer is not registered yet looks again (seconds, doubling).
_LOOKUP_FIRST_INTERVAL_S = 0.005
_LOOKUP_MAX_INTERVAL_S = 0.1


class DataExchangeService(data_pb2_grpc.DataExchangeServicer):
    """A process's data endpoint for the gates in ``registry``, and where to find it.

    ``start`` (or ``add_to_server``, which starts it and makes the process's main gRPC server
    answer ``Locate`` with its port) binds the endpoint on ``bind_host``. A channel whose
    consumer is not registered waits up to ``lookup_timeout`` seconds for it, then fails with
    ``NOT_DEPLOYED``.
    """

    def __init__(
        self, registry: GateRegistry, lookup_timeout: float = 30.0, bind_host: str = "0.0.0.0"
    ) -> None:
        self.registry = registry
        self.lookup_timeout = lookup_timeout
        self.bind_host = bind_host
        self.port = 0
        self._server: Any = None
        self._lock = threading.Lock()

    def add_to_server(self, server: grpc.Server) -> None:
        """Start the data endpoint and have ``server`` (before it starts) say where it is."""
        self.start()
        data_pb2_grpc.add_DataExchangeServicer_to_server(self, server)

    def start(self) -> int:
        """Start the data endpoint (once); returns its port."""
        with self._lock:
            if self._server is None:
                self._server, self.port = data_plane_loop().run(self._start())
            return self.port

    async def _start(self) -> tuple[Any, int]:
        server = grpc.aio.server(options=ENDPOINT_OPTIONS)
        data_pb2_grpc.add_DataConnectionServicer_to_server(_ConnectionServicer(self), server)
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        return server, port

    def stop(self) -> None:
        """Stop the data endpoint; open connections end. Idempotent."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            data_plane_loop().run(server.stop(None))

    def Locate(self, request: pb.LocateRequest, context: Any) -> pb.DataEndpoint:
        """Where this process's data endpoint listens."""
        return pb.DataEndpoint(port=self.port)


class _ConnectionServicer(data_pb2_grpc.DataConnectionServicer):
    def __init__(self, service: DataExchangeService) -> None:
        self.service = service

    async def Connect(self, request_iterator: Any, context: Any) -> None:
        await _InboundConnection(self.service, context).serve()


class _ProtocolError(Exception):
    """The peer broke the connection protocol; the stream ends."""


class _InboundChannel:
    __slots__ = (
        "id",
        "header",
        "where",
        "gate",
        "index",
        "credit",
        "delivered",
        "close_requested",
        "finished",
        "lookup",
        "on_consumed",
    )

    def __init__(self, channel_id: int, header: pb.ChannelHeader) -> None:
        self.id = channel_id
        self.header = header
        self.where = (
            f"channel {header.channel} of subtask {header.subtask} of vertex "
            f"{header.vertex_id} (job {header.job_id}, attempt {header.attempt})"
        )
        self.gate: InputGate | None = None
        self.index = header.channel
        self.credit = 0  # credits granted and not yet spent
        self.delivered = 0
        self.close_requested = False
        self.finished = False  # failed, closed or cancelled: later data is dropped
        self.lookup: asyncio.Task | None = None
        self.on_consumed: Any = None


class _InboundConnection:
    """One peer's channels into this process; everything but the callbacks runs on the loop."""

    def __init__(self, service: DataExchangeService, context: Any) -> None:
        self.service = service
        self.context = context
        self.peer = context.peer()
        self.loop = data_plane_loop()
        self.channels: dict[int, _InboundChannel] = {}
        # Written by consumer threads (credits) and the loop (answers), sent by the writer.
        self._lock = threading.Lock()
        self._credits: dict[int, int] = {}
        self._answers: list[pb.ChannelMessage] = []
        self._wake_pending = False
        self._event = asyncio.Event()
        self._ended = False

    async def serve(self) -> None:
        writer = asyncio.ensure_future(self._write())
        try:
            while True:
                frame = await self.context.read()
                if frame is grpc.aio.EOF:
                    break
                for message in frame.messages:
                    self._handle(message)
        except _ProtocolError as error:
            log.warning("rejected a data connection from %s: %s", self.peer, error)
            await self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        finally:
            self._end()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    # ------------------------------------------------------------------ incoming messages

    def _handle(self, message: pb.ChannelMessage) -> None:
        channel_id = message.channel_id
        channel = self.channels.get(channel_id)
        if message.HasField("open"):
            if channel is not None:
                raise _ProtocolError(f"channel id {channel_id} opened twice")
            channel = self.channels[channel_id] = _InboundChannel(channel_id, message.open)
            channel.lookup = asyncio.ensure_future(self._find_gate(channel))
        elif channel is None:
            raise _ProtocolError(f"a message for channel id {channel_id}, which was never opened")
        if message.cancel:
            self._finish(channel)
            return
        if channel.finished:
            return  # sent before the producer heard that the channel failed
        if message.payloads:
            self._deliver(channel, message.payloads)
        if message.close and not channel.finished:
            channel.close_requested = True
            if channel.gate is not None:
                self._answer(channel, pb.ChannelMessage(closed=True, delivered=channel.delivered))

    def _deliver(self, channel: _InboundChannel, payloads: Any) -> None:
        gate = channel.gate
        if gate is None or len(payloads) > channel.credit:
            self._reject(channel, f"{len(payloads)} element(s) sent without credit")
            return
        put, index = gate.put, channel.index
        for payload in payloads:
            try:
                element = decode(payload)
            except DecodeError as error:
                self._reject(channel, f"bad frame: {error}")
                return
            try:
                put(index, element, 0)
            except GateClosed:
                self._fail(channel, pb.CONSUMER_CLOSED, f"{channel.where} closed its input")
                return
            except TimeoutError:  # the gate had no room although credit was granted
                self._reject(channel, "an element arrived for a full channel")
                return
            channel.credit -= 1
            channel.delivered += 1

    async def _find_gate(self, channel: _InboundChannel) -> None:
        header, registry = channel.header, self.service.registry
        deadline = self.loop.loop.time() + self.service.lookup_timeout
        interval = _LOOKUP_FIRST_INTERVAL_S
        while True:
            try:
                gate = registry.get(
                    header.job_id, header.attempt, header.vertex_id, header.subtask, 0
                )
                break
            except LookupError as error:
                if self.loop.loop.time() >= deadline:
                    self._fail(channel, pb.NOT_DEPLOYED, str(error))
                    return
            await asyncio.sleep(interval)
            interval = min(interval * 2, _LOOKUP_MAX_INTERVAL_S)
        if channel.finished:
            return
        if not 0 <= channel.index < gate.num_channels:
            self._reject(
                channel, f"{channel.where} does not exist: that gate has {gate.num_channels}"
            )
            return
        channel_id = channel.id

        def on_consumed() -> None:
            self._grant(channel_id, 1)

        def on_closed() -> None:
            self.loop.call_soon(self._gate_closed, channel_id)

        try:
            free = gate.watch(channel.index, on_consumed, on_closed)
        except GateClosed:
            self._fail(channel, pb.CONSUMER_CLOSED, f"{channel.where} closed its input")
            return
        channel.gate, channel.on_consumed = gate, on_consumed
        if channel.close_requested:
            self._answer(channel, pb.ChannelMessage(closed=True, delivered=0))
        elif free:
            self._grant(channel_id, free)

    # ------------------------------------------------------------------ outcomes

    def _grant(self, channel_id: int, credits: int) -> None:
        # Any thread: a consumer took an element, or the loop opened a channel.
        with self._lock:
            if self._ended:
                return
            self._credits[channel_id] = self._credits.get(channel_id, 0) + credits
            if not self._wake_pending:
                self._wake_pending = True
                self.loop.call_soon(self._event.set)

    def _gate_closed(self, channel_id: int) -> None:
        channel = self.channels.get(channel_id)
        if channel is not None and not channel.finished:
            self._fail(channel, pb.CONSUMER_CLOSED, f"{channel.where} closed its input")

    def _reject(self, channel: _InboundChannel, reason: str) -> None:
        log.warning("rejected data from %s for %s: %s", self.peer, channel.where, reason)
        self._fail(channel, pb.BAD_DATA, f"{channel.where}: {reason}")

    def _fail(self, channel: _InboundChannel, reason: int, message: str) -> None:
        # ``delivered`` lets a producer whose every element arrived before the consumer closed
        # its input end the channel without an error.
        self._answer(
            channel,
            pb.ChannelMessage(
                failure=pb.ChannelFailure(reason=reason, message=message),
                delivered=channel.delivered,
            ),
        )

    def _answer(self, channel: _InboundChannel, message: pb.ChannelMessage) -> None:
        """Send a final word (closed or failed) about ``channel`` and forget it."""
        message.channel_id = channel.id
        self._finish(channel)
        with self._lock:
            self._answers.append(message)
            if not self._wake_pending:
                self._wake_pending = True
                self._event.set()

    def _finish(self, channel: _InboundChannel) -> None:
        if channel.finished:
            return
        channel.finished = True
        if channel.lookup is not None and not channel.lookup.done():
            channel.lookup.cancel()
        if channel.gate is not None:
            channel.gate.unwatch(channel.index, channel.on_consumed)
            # The entry stays (data the producer sent before it heard the end is dropped), but
            # holds on to nothing.
            channel.gate = channel.on_consumed = channel.lookup = None

    def _end(self) -> None:
        with self._lock:
            self._ended = True
        for channel in self.channels.values():
            self._finish(channel)
        self.channels.clear()

    async def _write(self) -> None:
        event = self._event
        while True:
            await event.wait()
            event.clear()
            with self._lock:
                self._wake_pending = False
                credits, self._credits = self._credits, {}
                answers, self._answers = self._answers, []
            messages = [
                pb.ChannelMessage(channel_id=channel_id, credit=count)
                for channel_id, count in credits.items()
                if channel_id in self.channels and not self.channels[channel_id].finished
            ]
            for channel_id, count in credits.items():
                channel = self.channels.get(channel_id)
                if channel is not None and not channel.finished:
                    channel.credit += count
            messages.extend(answers)
            if messages:
                await self.context.write(pb.ConnectionFrame(messages=messages))
