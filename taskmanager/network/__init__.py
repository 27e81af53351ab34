"""The data plane (DESIGN.md §5): stream elements, input gates, local and gRPC channels.

A producing subtask writes through a ``RecordWriter`` (partition, batch, flush on size or
buffer timeout) into one ``OutputChannel`` per consumer: a ``LocalOutputChannel`` puts
elements straight into the consumer's ``InputGate`` when both run in one TaskManager, a
``RemoteOutputChannel`` streams them over gRPC to the ``DataExchangeService`` of the
consumer's TaskManager, which finds the gate in its ``GateRegistry``. Every buffer on the way
is bounded, so a slow consumer slows its producers.
"""

from taskmanager.network.channels import (
    ChannelError,
    ChannelKey,
    LocalOutputChannel,
    OutputChannel,
    RemoteOutputChannel,
    close_all_channels,
)
from taskmanager.network.data_service import DataExchangeService
from taskmanager.network.elements import (
    BARRIER,
    END_OF_PARTITION,
    RECORDS,
    WATERMARK,
    DecodeError,
    decode,
    encode,
)
from taskmanager.network.gate_registry import GateRegistry
from taskmanager.network.input_gate import GateClosed, InputGate
from taskmanager.network.record_writer import RecordWriter

__all__ = [
    "BARRIER",
    "END_OF_PARTITION",
    "RECORDS",
    "WATERMARK",
    "ChannelError",
    "ChannelKey",
    "DataExchangeService",
    "DecodeError",
    "GateClosed",
    "GateRegistry",
    "InputGate",
    "LocalOutputChannel",
    "OutputChannel",
    "RecordWriter",
    "RemoteOutputChannel",
    "close_all_channels",
    "decode",
    "encode",
]
