"""The receiving end of connections: a process's data endpoint, feeding its input gates.

Each peer that sends records to this process opens one ``DataConnection.Connect`` stream to
the process's data endpoint and multiplexes its channels over it (proto/strom/rpc/data.proto).
The endpoint is a gRPC asyncio server on the process's one data-plane loop (``event_loop.py``),
so any number of peers and channels costs no thread. For each channel the receiver finds the
consumer's gate in the ``GateRegistry`` (waiting for it: producers may be deployed first),
grants the producer one credit per free slot of that gate channel, and one more each time the
consumer takes an element. Elements only come against credits, so ``InputGate.put`` never
waits and one full channel never holds up the others on the connection.

Small elements (a record each, at ``execution.buffer-timeout`` 0) would make every few gate
slots a gRPC message each way, which costs far more than the elements; so while a channel's
recent elements are small, the receiver grants up to ``EXTRA_CREDITS`` more than the gate's
capacity, about ``BACKLOG_BYTES`` in all (as HTTP/2's window did when each channel was its own
stream), and announces credits a quarter of the window at a time. The gate channel of a remote
producer then holds up to its capacity plus those extra elements; once the elements are large,
its capacity only.

Only a peer that sends a data token this process admitted (``data_tokens.py``: its job's,
handed out by the JobManager) as ``strom-data-token`` metadata gets a connection or a BATCH
partition: anyone else is refused PERMISSION_DENIED before a byte of the stream is read, once
per connection, so the check costs nothing per record.

Whatever a peer sends, the process stays up: an element that does not decode, or data sent
without credit, fails that channel (``BAD_DATA``, with a log line); a stream that breaks the
protocol itself is ended with INVALID_ARGUMENT. Record batches are handed to the gate as they
came (``ENCODED_RECORDS``) and decoded by the consuming task, which fails if one does not
decode (elements.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc

from strom.rpc import data_pb2 as pb
from strom.rpc import data_pb2_grpc, roles, tls
from taskmanager.network import data_tokens
from taskmanager.network.channels import BURST_BYTES
from taskmanager.network.elements import DecodeError, decode_on_receipt
from taskmanager.network.event_loop import data_plane_loop
from taskmanager.network.gate_registry import GateRegistry
from taskmanager.network.input_gate import GateClosed, InputGate
from taskmanager.network.shared_rings import Ring, RingRefused

if TYPE_CHECKING:
    from taskmanager.network.result_partitions import ResultPartitions

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

#: how many credits a channel of small elements gets beyond its gate's free slots, at most
EXTRA_CREDITS = 248
#: about how many bytes of recent-sized elements those extra credits may bring
BACKLOG_BYTES = 64 * 1024
# The largest recent element size, forgetting by this factor per element: a few hundred small
# elements after a large one earn the extra credits back.
_SIZE_MEMORY = 0.9

# How often a channel whose consumer is not registered yet looks again (seconds, doubling).
_LOOKUP_FIRST_INTERVAL_S = 0.005
_LOOKUP_MAX_INTERVAL_S = 0.1


class DataExchangeService(data_pb2_grpc.DataExchangeServicer):
    """A process's data endpoint for the gates in ``registry``, and where to find it.

    ``start`` binds the endpoint on ``bind_host`` and returns its port; ``host:port`` is then
    an address producers can use. ``add_to_server`` starts it too and makes the process's main
    gRPC server answer ``Locate`` with that port, so the main server's address serves as well.
    A channel whose consumer is not registered waits up to ``lookup_timeout`` seconds for it,
    then fails with ``NOT_DEPLOYED``.
    """

    def __init__(
        self,
        registry: GateRegistry,
        lookup_timeout: float = 30.0,
        bind_host: str = "0.0.0.0",
        partitions: ResultPartitions | None = None,
    ) -> None:
        self.registry = registry
        #: the finished BATCH partitions this process serves (a TaskManager's), if any
        self.partitions = partitions
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
        # The endpoint says where it is too, so its own address serves as a process's address.
        data_pb2_grpc.add_DataExchangeServicer_to_server(_EndpointLocator(self), server)
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        port = tls.add_port(server, f"{host}:0")
        await server.start()
        return server, port

    def stop(self) -> None:
        """Stop the data endpoint; open connections end. Idempotent."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            try:
                data_plane_loop().run(server.stop(None))
            except RuntimeError:  # the loop stopped at exit, and the server with it
                pass

    def Locate(self, request: pb.LocateRequest, context: Any) -> pb.DataEndpoint:
        """Where this process's data endpoint listens."""
        return pb.DataEndpoint(port=self.port)

    def FetchPartition(self, request: pb.PartitionRequest, context: Any) -> Iterator[Any]:
        """Stream a finished BATCH result partition kept by this TaskManager, to a peer with
        the data token of the partition's job."""
        if not data_tokens.admits(_sent_token(context), request.job_id):
            log.warning(
                "refused a partition fetch of job %s from %s: no data token of that job",
                request.job_id,
                context.peer(),
            )
            context.abort(grpc.StatusCode.PERMISSION_DENIED, _refusal(request.job_id))
        if self.partitions is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "this process keeps no result partitions")
        yield from self.partitions.serve(request, context)


class _EndpointLocator(data_pb2_grpc.DataExchangeServicer):
    def __init__(self, service: DataExchangeService) -> None:
        self.service = service

    async def Locate(self, request: pb.LocateRequest, context: Any) -> pb.DataEndpoint:
        return pb.DataEndpoint(port=self.service.port)


class _ConnectionServicer(data_pb2_grpc.DataConnectionServicer):
    def __init__(self, service: DataExchangeService) -> None:
        self.service = service

    async def Connect(self, request_iterator: Any, context: Any) -> None:
        reason = roles.refusal(context, _SENDERS, "Connect")
        if reason is not None:  # with TLS: a TaskManager's certificate, not a client's
            log.warning("refused a data connection from %s: %s", context.peer(), reason)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)
        if not data_tokens.admits(_sent_token(context)):
            log.warning("refused a data connection from %s: no data token", context.peer())
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, _refusal(None))
        # Taken: the sender waits for these headers before it writes (connection.py).
        await context.send_initial_metadata(())
        await _InboundConnection(self.service, context).serve()


#: with TLS, whose certificates may send records: slot processes show their TaskManager's
_SENDERS = frozenset({roles.TASKMANAGER})


def _sent_token(context: Any) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == data_tokens.METADATA_KEY:
            return value if isinstance(value, str) else ""
    return ""


def _refusal(job_id: str | None) -> str:
    whose = f"job {job_id}" if job_id else "a job this process runs"
    return (
        f"this data endpoint takes records only from peers with the data token of {whose}, "
        f"which the JobManager hands to that job's TaskManagers"
    )


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
        "recent_size",
        "unanswered",
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
        self.recent_size = float(1 << 30)  # no extra credits until small elements were seen
        self.unanswered = 0  # bytes received since the last message to the producer
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
        # Written by consumer threads (elements taken) and the loop (answers), read by the writer.
        self._lock = threading.Lock()
        self._consumed: dict[int, int] = {}
        # Only the loop touches these two.
        self._credits_out: dict[int, int] = {}
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
            self._maybe_confirm_close(channel)

    def _maybe_confirm_close(self, channel: _InboundChannel) -> None:
        if channel.close_requested and channel.gate is not None:
            self._answer(channel, pb.ChannelMessage(closed=True, delivered=channel.delivered))

    def _deliver(self, channel: _InboundChannel, payloads: Any) -> None:
        gate = channel.gate
        if gate is None or len(payloads) > channel.credit:
            self._reject(channel, f"{len(payloads)} element(s) sent without credit")
            return
        put, index = gate.put_credited, channel.index
        recent = channel.recent_size
        for payload in payloads:
            size = len(payload)
            channel.unanswered += size
            recent = recent * _SIZE_MEMORY
            if size > recent:
                recent = size
            try:
                element = decode_on_receipt(payload)
            except DecodeError as error:
                self._reject(channel, f"bad frame: {error}")
                return
            try:
                put(index, element)
            except GateClosed:
                self._fail(channel, pb.CONSUMER_CLOSED, f"{channel.where} closed its input")
                return
            channel.credit -= 1
            channel.delivered += 1
        channel.recent_size = recent

    def _top_up(self, channel: _InboundChannel) -> None:
        """Grant the producer the credits the channel has room for (see the module's doc)."""
        gate = channel.gate
        if gate is None:
            return
        extra = min(EXTRA_CREDITS, int(BACKLOG_BYTES // max(channel.recent_size, 1.0)))
        window = gate.capacity_per_channel + extra
        grant = window - channel.credit - gate.pending(channel.index)
        # A quarter of the window at a time, or whatever there is when the producer runs short:
        # every credit message makes the producer send a gRPC message.
        quarter = window // 4
        pending = self._credits_out
        if grant > 0 and (grant >= quarter or channel.credit <= quarter):
            channel.credit += grant
            pending[channel.id] = pending.get(channel.id, 0) + grant
        elif (
            channel.unanswered >= BURST_BYTES
            and channel.credit > 0
            and not gate.pending(channel.index)
        ):
            # The producer sent a burst's worth since it last heard from us and holds credits it
            # does not use: it waits for a word (channels.BURST_BYTES), which the consumer,
            # having taken everything, can now afford.
            pending.setdefault(channel.id, 0)
        else:
            return
        channel.unanswered = 0

    async def _find_gate(self, channel: _InboundChannel) -> None:
        header, registry = channel.header, self.service.registry
        key = (header.job_id, header.attempt, header.vertex_id, header.subtask)
        started = self.loop.loop.time()
        deadline = started + self.service.lookup_timeout
        interval = _LOOKUP_FIRST_INTERVAL_S
        while True:
            found = registry.find(*key)
            if isinstance(found, InputGate):
                gate = found
                break
            # A subtask this process was prepared for is being deployed (``found`` is True):
            # wait for it, however long that takes.
            if not found and self.loop.loop.time() >= deadline:
                waited = self.loop.loop.time() - started
                self._fail(
                    channel,
                    pb.NOT_DEPLOYED,
                    f"the consumer of {channel.where} is not deployed here: no input "
                    f"gate for it was registered in {waited:.1f} s",
                )
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
            self._taken(channel_id)

        def on_closed() -> None:
            self.loop.call_soon(self._gate_closed, channel_id)

        try:
            gate.watch(channel.index, on_consumed, on_closed)
        except GateClosed:
            self._fail(channel, pb.CONSUMER_CLOSED, f"{channel.where} closed its input")
            return
        channel.gate, channel.on_consumed = gate, on_consumed
        if channel.header.ring and self._attach_ring(channel, gate):
            return
        if channel.close_requested:
            self._answer(channel, pb.ChannelMessage(closed=True, delivered=0))
        else:
            self._top_up(channel)
            self._wake()

    def _attach_ring(self, channel: _InboundChannel, gate: InputGate) -> bool:
        """Have the consumer read the ring the producer offered; False to go on over this
        connection instead (credits tell the producer so)."""
        try:
            ring = Ring.attach(channel.header.ring)
        except RingRefused as error:
            log.info("%s goes over the connection: %s", channel.where, error)
            return False
        try:
            gate.attach_ring(channel.index, ring)
        except GateClosed:
            ring.release()
            self._fail(channel, pb.CONSUMER_CLOSED, f"{channel.where} closed its input")
            return True
        except RingRefused as error:
            ring.release()
            log.warning("%s goes over the connection: %s", channel.where, error)
            return False
        self._answers.append(pb.ChannelMessage(channel_id=channel.id, ring_attached=True))
        if channel.close_requested:
            self._answer(channel, pb.ChannelMessage(closed=True, delivered=0))
        self._wake()
        return True

    # ------------------------------------------------------------------ outcomes

    def _taken(self, channel_id: int) -> None:
        # A consumer thread took an element from a watched channel: room for more.
        with self._lock:
            if self._ended:
                return
            self._consumed[channel_id] = self._consumed.get(channel_id, 0) + 1
            if not self._wake_pending:
                self._wake_pending = True
                self.loop.call_soon(self._event.set)

    def _wake(self) -> None:
        # On the loop: have the writer look at what is to send.
        with self._lock:
            if not self._wake_pending:
                self._wake_pending = True
                self._event.set()

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
        self._answers.append(message)
        self._wake()

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
        channels = self.channels
        while True:
            await event.wait()
            event.clear()
            with self._lock:
                self._wake_pending = False
                consumed, self._consumed = self._consumed, {}
            for channel_id in consumed:
                channel = channels.get(channel_id)
                if channel is not None and not channel.finished:
                    self._top_up(channel)
            credits, self._credits_out = self._credits_out, {}
            answers, self._answers = self._answers, []
            messages = [
                pb.ChannelMessage(channel_id=channel_id, credit=count)
                for channel_id, count in credits.items()
                if channel_id in channels and not channels[channel_id].finished
            ]
            messages.extend(answers)
            if messages:
                await self.context.write(pb.ConnectionFrame(messages=messages))
