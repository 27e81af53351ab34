from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CollectBatch(_message.Message):
    __slots__ = ("token", "subtask", "parallelism", "attempt", "payload", "end")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    token: str
    subtask: int
    parallelism: int
    attempt: int
    payload: bytes
    end: bool
    def __init__(self, token: _Optional[str] = ..., subtask: _Optional[int] = ..., parallelism: _Optional[int] = ..., attempt: _Optional[int] = ..., payload: _Optional[bytes] = ..., end: _Optional[bool] = ...) -> None: ...

class CollectAck(_message.Message):
    __slots__ = ("ok",)
    OK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    def __init__(self, ok: _Optional[bool] = ...) -> None: ...
