"""The receiving end of remote channels: a gRPC service that feeds input gates.

Each ``Transfer`` stream serves one channel: its first frame names the consumer's gate and
channel; later frames carry elements, each decoded and put into the gate in order. ``put``
blocks while the channel is full, the handler then stops reading, and HTTP/2 flow control
carries the back pressure to the producer. Whatever a peer sends, the process stays up:
malformed frames end that stream with INVALID_ARGUMENT and a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc

from strom.rpc import data_pb2 as pb
from strom.rpc import data_pb2_grpc
from taskmanager.network.elements import DecodeError, decode
from taskmanager.network.gate_registry import GateRegistry
from taskmanager.network.input_gate import GateClosed, InputGate

__all__ = ["SERVER_OPTIONS", "DataExchangeService"]

log = logging.getLogger(__name__)

#: Options for the gRPC server hosting this service. gRPC's bandwidth-delay probing otherwise
#: grows each stream's receive window to several MB, so that much data per channel would sit
#: in flight ahead of a full input gate; without it a stream holds about 64 KB beyond the gate,
#: which keeps back pressure and checkpoint barriers prompt. Large batches still pass.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
]

# How often a handler blocked on a full channel checks whether its producer is still there.
_LIVENESS_INTERVAL_S = 1.0


class _StreamEnded(Exception):
    """The producer cancelled or went away; nothing to answer."""


class DataExchangeService(data_pb2_grpc.DataExchangeServicer):
    """Serves ``DataExchange.Transfer`` for the gates in ``registry``.

    A stream whose consumer is not registered yet waits up to ``lookup_timeout`` seconds for
    it (producers may be deployed first), then fails with NOT_FOUND.
    """

    def __init__(self, registry: GateRegistry, lookup_timeout: float = 30.0) -> None:
        self.registry = registry
        self.lookup_timeout = lookup_timeout

    def add_to_server(self, server: grpc.Server) -> None:
        """Register this service with ``server`` (before it starts)."""
        data_pb2_grpc.add_DataExchangeServicer_to_server(self, server)

    def Transfer(self, request_iterator: Iterator[pb.DataFrame], context) -> pb.TransferAck:
        peer = context.peer()
        try:
            first = next(request_iterator, None)
        except grpc.RpcError:
            return pb.TransferAck()  # the producer went away before saying anything
        if first is None or not first.HasField("header"):
            self._reject(context, peer, "the first frame of a stream must carry a channel header")
        header = first.header
        where = (
            f"channel {header.channel} of subtask {header.subtask} of vertex "
            f"{header.vertex_id} (job {header.job_id}, attempt {header.attempt})"
        )
        try:
            gate = self.registry.get(
                header.job_id, header.attempt, header.vertex_id, header.subtask, self.lookup_timeout
            )
        except LookupError as error:
            context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        if not 0 <= header.channel < gate.num_channels:
            self._reject(
                context,
                peer,
                f"{where} does not exist: that gate has {gate.num_channels} channel(s)",
            )

        channel = header.channel
        delivered = 0
        try:
            for frame in _chain(first, request_iterator):
                for payload in frame.payloads:
                    try:
                        element = decode(payload)
                    except DecodeError as error:
                        self._reject(context, peer, f"bad frame for {where}: {error}")
                    _put(gate, channel, element, context)
                    delivered += 1
        except GateClosed:
            context.abort(
                grpc.StatusCode.ABORTED,
                f"{where} closed its input (the consumer finished, failed or was cancelled)",
            )
        except (_StreamEnded, grpc.RpcError):
            log.debug("producer %s of %s went away after %d elements", peer, where, delivered)
            return pb.TransferAck(elements=delivered)
        return pb.TransferAck(elements=delivered)

    @staticmethod
    def _reject(context, peer: str, message: str) -> None:
        log.warning("rejected a data stream from %s: %s", peer, message)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


def _chain(first: pb.DataFrame, rest: Iterator[pb.DataFrame]) -> Iterator[pb.DataFrame]:
    yield first  # a header frame may carry elements too
    yield from rest


def _put(gate: InputGate, channel: int, element: object, context) -> None:
    # Blocks while the channel is full, but notices a producer that cancelled meanwhile, so a
    # dead stream does not pin a server thread for as long as the consumer stalls.
    while True:
        try:
            gate.put(channel, element, timeout=_LIVENESS_INTERVAL_S)
            return
        except TimeoutError:
            if not context.is_active():
                raise _StreamEnded() from None
