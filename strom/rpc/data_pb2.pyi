from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelHeader(_message.Message):
    __slots__ = ("job_id", "attempt", "vertex_id", "subtask", "channel")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    channel: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., channel: _Optional[int] = ...) -> None: ...

class DataFrame(_message.Message):
    __slots__ = ("header", "payloads")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    header: ChannelHeader
    payloads: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, header: _Optional[_Union[ChannelHeader, _Mapping]] = ..., payloads: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TransferAck(_message.Message):
    __slots__ = ("elements",)
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    elements: int
    def __init__(self, elements: _Optional[int] = ...) -> None: ...
