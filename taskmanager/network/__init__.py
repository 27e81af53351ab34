"""The data plane (DESIGN.md §5): stream elements, input gates, local and remote channels.

A producing subtask writes through a ``RecordWriter`` (partition, batch, flush on size or
buffer timeout) into one ``OutputChannel`` per consumer: a ``LocalOutputChannel`` puts
elements straight into the consumer's ``InputGate`` when both run in one process; a
``RemoteOutputChannel`` is multiplexed, with every other channel from this process to the
consumer's process, over one gRPC connection (``connection.py``) to that process's data
endpoint, the ``DataExchangeService``, which finds the gate in its ``GateRegistry``. Flow
control is credit-based per channel, as in Flink: the receiver grants one credit per element
the gate has room for, so a slow channel holds up neither its connection nor the other
channels on it, and a slow consumer slows its producers without anything growing without
bound. Every connection of a process, in and out, runs on one event-loop thread
(``event_loop.py``): threads do not grow with parallelism or with the number of peers.
"""

from taskmanager.network.channels import (
    ChannelError,
    ChannelKey,
    ConsumerGone,
    LocalOutputChannel,
    OutputChannel,
    RemoteOutputChannel,
    close_all_channels,
)
from taskmanager.network.data_service import DataExchangeService
from taskmanager.network.elements import (
    BARRIER,
    ENCODED_RECORDS,
    END_OF_PARTITION,
    RECORDS,
    WATERMARK,
    DecodeError,
    decode,
    decoded,
    encode,
)
from taskmanager.network.gate_registry import GateRegistry
from taskmanager.network.input_gate import GateClosed, InputGate
from taskmanager.network.record_writer import RecordWriter

__all__ = [
    "BARRIER",
    "ENCODED_RECORDS",
    "END_OF_PARTITION",
    "RECORDS",
    "WATERMARK",
    "ChannelError",
    "ConsumerGone",
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
    "decoded",
    "encode",
]
