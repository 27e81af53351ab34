from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_UNSPECIFIED: _ClassVar[FailureReason]
    CONSUMER_CLOSED: _ClassVar[FailureReason]
    NOT_DEPLOYED: _ClassVar[FailureReason]
    BAD_DATA: _ClassVar[FailureReason]
FAILURE_UNSPECIFIED: FailureReason
CONSUMER_CLOSED: FailureReason
NOT_DEPLOYED: FailureReason
BAD_DATA: FailureReason

class ChannelHeader(_message.Message):
    __slots__ = ("job_id", "attempt", "vertex_id", "subtask", "channel", "ring")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    RING_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    channel: int
    ring: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., channel: _Optional[int] = ..., ring: _Optional[str] = ...) -> None: ...

class ChannelFailure(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: FailureReason
    message: str
    def __init__(self, reason: _Optional[_Union[FailureReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ChannelMessage(_message.Message):
    __slots__ = ("channel_id", "open", "payloads", "close", "cancel", "credit", "closed", "delivered", "failure", "ring_attached")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    RING_ATTACHED_FIELD_NUMBER: _ClassVar[int]
    channel_id: int
    open: ChannelHeader
    payloads: _containers.RepeatedScalarFieldContainer[bytes]
    close: bool
    cancel: bool
    credit: int
    closed: bool
    delivered: int
    failure: ChannelFailure
    ring_attached: bool
    def __init__(self, channel_id: _Optional[int] = ..., open: _Optional[_Union[ChannelHeader, _Mapping]] = ..., payloads: _Optional[_Iterable[bytes]] = ..., close: _Optional[bool] = ..., cancel: _Optional[bool] = ..., credit: _Optional[int] = ..., closed: _Optional[bool] = ..., delivered: _Optional[int] = ..., failure: _Optional[_Union[ChannelFailure, _Mapping]] = ..., ring_attached: _Optional[bool] = ...) -> None: ...

class ConnectionFrame(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChannelMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[ChannelMessage, _Mapping]]] = ...) -> None: ...

class LocateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DataEndpoint(_message.Message):
    __slots__ = ("port",)
    PORT_FIELD_NUMBER: _ClassVar[int]
    port: int
    def __init__(self, port: _Optional[int] = ...) -> None: ...

class PartitionRequest(_message.Message):
    __slots__ = ("job_id", "producer_vertex", "producer_subtask", "edge", "consumer_subtask")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_VERTEX_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_SUBTASK_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_SUBTASK_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    producer_vertex: str
    producer_subtask: int
    edge: int
    consumer_subtask: int
    def __init__(self, job_id: _Optional[str] = ..., producer_vertex: _Optional[str] = ..., producer_subtask: _Optional[int] = ..., edge: _Optional[int] = ..., consumer_subtask: _Optional[int] = ...) -> None: ...

class PartitionChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...
