from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogFileKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_FILE_KIND_LOG: _ClassVar[LogFileKind]
    LOG_FILE_KIND_STDOUT: _ClassVar[LogFileKind]
LOG_FILE_KIND_LOG: LogFileKind
LOG_FILE_KIND_STDOUT: LogFileKind

class LogTailRequest(_message.Message):
    __slots__ = ("kind", "max_bytes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    kind: LogFileKind
    max_bytes: int
    def __init__(self, kind: _Optional[_Union[LogFileKind, str]] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class LogTail(_message.Message):
    __slots__ = ("available", "path", "file_size", "data", "truncated", "message")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    available: bool
    path: str
    file_size: int
    data: bytes
    truncated: bool
    message: str
    def __init__(self, available: _Optional[bool] = ..., path: _Optional[str] = ..., file_size: _Optional[int] = ..., data: _Optional[bytes] = ..., truncated: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class ObservedMetricsRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class BlockedProducer(_message.Message):
    __slots__ = ("vertex_id", "subtask", "ratio")
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    vertex_id: str
    subtask: int
    ratio: float
    def __init__(self, vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., ratio: _Optional[float] = ...) -> None: ...

class ObservedSubtask(_message.Message):
    __slots__ = ("job_id", "attempt", "vertex_id", "subtask", "task_name", "state", "records_in", "records_out", "queued_batches", "queue_capacity", "busy_ratio", "blocked_producers", "has_watermark", "watermark", "last_checkpoint_duration_ms", "is_source", "pid", "rss_bytes", "backpressured_ratio")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_IN_FIELD_NUMBER: _ClassVar[int]
    RECORDS_OUT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    BUSY_RATIO_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_PRODUCERS_FIELD_NUMBER: _ClassVar[int]
    HAS_WATERMARK_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    IS_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    BACKPRESSURED_RATIO_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    task_name: str
    state: str
    records_in: int
    records_out: int
    queued_batches: int
    queue_capacity: int
    busy_ratio: float
    blocked_producers: _containers.RepeatedCompositeFieldContainer[BlockedProducer]
    has_watermark: bool
    watermark: int
    last_checkpoint_duration_ms: int
    is_source: bool
    pid: int
    rss_bytes: int
    backpressured_ratio: float
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., task_name: _Optional[str] = ..., state: _Optional[str] = ..., records_in: _Optional[int] = ..., records_out: _Optional[int] = ..., queued_batches: _Optional[int] = ..., queue_capacity: _Optional[int] = ..., busy_ratio: _Optional[float] = ..., blocked_producers: _Optional[_Iterable[_Union[BlockedProducer, _Mapping]]] = ..., has_watermark: _Optional[bool] = ..., watermark: _Optional[int] = ..., last_checkpoint_duration_ms: _Optional[int] = ..., is_source: _Optional[bool] = ..., pid: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., backpressured_ratio: _Optional[float] = ...) -> None: ...

class SlotProcessStatus(_message.Message):
    __slots__ = ("pid", "job_id", "attempt", "slot", "address", "rss_bytes", "threads", "tasks")
    PID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    job_id: str
    attempt: int
    slot: int
    address: str
    rss_bytes: int
    threads: int
    tasks: int
    def __init__(self, pid: _Optional[int] = ..., job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., slot: _Optional[int] = ..., address: _Optional[str] = ..., rss_bytes: _Optional[int] = ..., threads: _Optional[int] = ..., tasks: _Optional[int] = ...) -> None: ...

class ProcessStatus(_message.Message):
    __slots__ = ("pid", "cpu_percent", "rss_bytes", "threads", "cpu_cores", "physical_memory", "available_memory", "uptime_ms", "open_files")
    PID_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_MEMORY_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FILES_FIELD_NUMBER: _ClassVar[int]
    pid: int
    cpu_percent: float
    rss_bytes: int
    threads: int
    cpu_cores: int
    physical_memory: int
    available_memory: int
    uptime_ms: int
    open_files: int
    def __init__(self, pid: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., threads: _Optional[int] = ..., cpu_cores: _Optional[int] = ..., physical_memory: _Optional[int] = ..., available_memory: _Optional[int] = ..., uptime_ms: _Optional[int] = ..., open_files: _Optional[int] = ...) -> None: ...

class ObservedMetrics(_message.Message):
    __slots__ = ("resource_id", "timestamp_ms", "process", "num_slots", "subtasks", "prometheus_port", "prometheus_text", "sample_window_ms", "slot_processes")
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    NUM_SLOTS_FIELD_NUMBER: _ClassVar[int]
    SUBTASKS_FIELD_NUMBER: _ClassVar[int]
    PROMETHEUS_PORT_FIELD_NUMBER: _ClassVar[int]
    PROMETHEUS_TEXT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    SLOT_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    resource_id: str
    timestamp_ms: int
    process: ProcessStatus
    num_slots: int
    subtasks: _containers.RepeatedCompositeFieldContainer[ObservedSubtask]
    prometheus_port: int
    prometheus_text: str
    sample_window_ms: int
    slot_processes: _containers.RepeatedCompositeFieldContainer[SlotProcessStatus]
    def __init__(self, resource_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., process: _Optional[_Union[ProcessStatus, _Mapping]] = ..., num_slots: _Optional[int] = ..., subtasks: _Optional[_Iterable[_Union[ObservedSubtask, _Mapping]]] = ..., prometheus_port: _Optional[int] = ..., prometheus_text: _Optional[str] = ..., sample_window_ms: _Optional[int] = ..., slot_processes: _Optional[_Iterable[_Union[SlotProcessStatus, _Mapping]]] = ...) -> None: ...
