from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hardware(_message.Message):
    __slots__ = ("cpu_cores", "physical_memory", "free_memory")
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_MEMORY_FIELD_NUMBER: _ClassVar[int]
    FREE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    cpu_cores: int
    physical_memory: int
    free_memory: int
    def __init__(self, cpu_cores: _Optional[int] = ..., physical_memory: _Optional[int] = ..., free_memory: _Optional[int] = ...) -> None: ...

class RegisterTaskManager(_message.Message):
    __slots__ = ("resource_id", "address", "hostname", "num_slots", "hardware", "pid", "data_port", "previous_jobmanager_id", "jobs_of_previous_session", "nonce")
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    NUM_SLOTS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    DATA_PORT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_JOBMANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_OF_PREVIOUS_SESSION_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    resource_id: str
    address: str
    hostname: str
    num_slots: int
    hardware: Hardware
    pid: int
    data_port: str
    previous_jobmanager_id: str
    jobs_of_previous_session: _containers.RepeatedScalarFieldContainer[str]
    nonce: str
    def __init__(self, resource_id: _Optional[str] = ..., address: _Optional[str] = ..., hostname: _Optional[str] = ..., num_slots: _Optional[int] = ..., hardware: _Optional[_Union[Hardware, _Mapping]] = ..., pid: _Optional[int] = ..., data_port: _Optional[str] = ..., previous_jobmanager_id: _Optional[str] = ..., jobs_of_previous_session: _Optional[_Iterable[str]] = ..., nonce: _Optional[str] = ...) -> None: ...

class TaskMetrics(_message.Message):
    __slots__ = ("job_id", "attempt", "vertex_id", "subtask", "records_in", "records_out", "input_bytes_read", "input_bytes_total")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    RECORDS_IN_FIELD_NUMBER: _ClassVar[int]
    RECORDS_OUT_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    records_in: int
    records_out: int
    input_bytes_read: int
    input_bytes_total: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., records_in: _Optional[int] = ..., records_out: _Optional[int] = ..., input_bytes_read: _Optional[int] = ..., input_bytes_total: _Optional[int] = ...) -> None: ...

class TaskManagerHeartbeat(_message.Message):
    __slots__ = ("sequence", "metrics")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    metrics: _containers.RepeatedCompositeFieldContainer[TaskMetrics]
    def __init__(self, sequence: _Optional[int] = ..., metrics: _Optional[_Iterable[_Union[TaskMetrics, _Mapping]]] = ...) -> None: ...

class TaskManagerMessage(_message.Message):
    __slots__ = ("register", "heartbeat")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    register: RegisterTaskManager
    heartbeat: TaskManagerHeartbeat
    def __init__(self, register: _Optional[_Union[RegisterTaskManager, _Mapping]] = ..., heartbeat: _Optional[_Union[TaskManagerHeartbeat, _Mapping]] = ...) -> None: ...

class RegistrationAccepted(_message.Message):
    __slots__ = ("instance_id", "jobmanager_id", "heartbeat_interval_ms", "heartbeat_timeout_ms", "report_token", "command_token")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    JOBMANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    REPORT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMMAND_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    jobmanager_id: str
    heartbeat_interval_ms: int
    heartbeat_timeout_ms: int
    report_token: str
    command_token: str
    def __init__(self, instance_id: _Optional[str] = ..., jobmanager_id: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., heartbeat_timeout_ms: _Optional[int] = ..., report_token: _Optional[str] = ..., command_token: _Optional[str] = ...) -> None: ...

class RegistrationRejected(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class HeartbeatAck(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class JobManagerMessage(_message.Message):
    __slots__ = ("accepted", "rejected", "heartbeat_ack")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_ACK_FIELD_NUMBER: _ClassVar[int]
    accepted: RegistrationAccepted
    rejected: RegistrationRejected
    heartbeat_ack: HeartbeatAck
    def __init__(self, accepted: _Optional[_Union[RegistrationAccepted, _Mapping]] = ..., rejected: _Optional[_Union[RegistrationRejected, _Mapping]] = ..., heartbeat_ack: _Optional[_Union[HeartbeatAck, _Mapping]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskManagerInfo(_message.Message):
    __slots__ = ("id", "address", "hostname", "slots_number", "free_slots", "hardware", "last_heartbeat_ms", "pid")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    SLOTS_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    hostname: str
    slots_number: int
    free_slots: int
    hardware: Hardware
    last_heartbeat_ms: int
    pid: int
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., hostname: _Optional[str] = ..., slots_number: _Optional[int] = ..., free_slots: _Optional[int] = ..., hardware: _Optional[_Union[Hardware, _Mapping]] = ..., last_heartbeat_ms: _Optional[int] = ..., pid: _Optional[int] = ...) -> None: ...

class TaskManagerList(_message.Message):
    __slots__ = ("taskmanagers",)
    TASKMANAGERS_FIELD_NUMBER: _ClassVar[int]
    taskmanagers: _containers.RepeatedCompositeFieldContainer[TaskManagerInfo]
    def __init__(self, taskmanagers: _Optional[_Iterable[_Union[TaskManagerInfo, _Mapping]]] = ...) -> None: ...

class ClusterOverview(_message.Message):
    __slots__ = ("taskmanagers", "slots_total", "slots_available", "jobs_running", "jobs_finished", "jobs_cancelled", "jobs_failed", "strom_version", "jobmanager_id", "job_defaults")
    class JobDefaultsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASKMANAGERS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SLOTS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    JOBS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    JOBS_FINISHED_FIELD_NUMBER: _ClassVar[int]
    JOBS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    JOBS_FAILED_FIELD_NUMBER: _ClassVar[int]
    STROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOBMANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    taskmanagers: int
    slots_total: int
    slots_available: int
    jobs_running: int
    jobs_finished: int
    jobs_cancelled: int
    jobs_failed: int
    strom_version: str
    jobmanager_id: str
    job_defaults: _containers.ScalarMap[str, str]
    def __init__(self, taskmanagers: _Optional[int] = ..., slots_total: _Optional[int] = ..., slots_available: _Optional[int] = ..., jobs_running: _Optional[int] = ..., jobs_finished: _Optional[int] = ..., jobs_cancelled: _Optional[int] = ..., jobs_failed: _Optional[int] = ..., strom_version: _Optional[str] = ..., jobmanager_id: _Optional[str] = ..., job_defaults: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobFile(_message.Message):
    __slots__ = ("path", "content")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    path: str
    content: bytes
    def __init__(self, path: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("job_id", "job_name", "job_graph", "files", "config", "plan_json")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_GRAPH_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    job_name: str
    job_graph: bytes
    files: _containers.RepeatedCompositeFieldContainer[JobFile]
    config: _containers.ScalarMap[str, str]
    plan_json: str
    def __init__(self, job_id: _Optional[str] = ..., job_name: _Optional[str] = ..., job_graph: _Optional[bytes] = ..., files: _Optional[_Iterable[_Union[JobFile, _Mapping]]] = ..., config: _Optional[_Mapping[str, str]] = ..., plan_json: _Optional[str] = ...) -> None: ...

class JobId(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class AwaitJobRequest(_message.Message):
    __slots__ = ("job_id", "timeout_ms")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    timeout_ms: int
    def __init__(self, job_id: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class JobSummary(_message.Message):
    __slots__ = ("job_id", "name", "state", "start_time", "end_time", "duration", "tasks")
    class TasksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    state: str
    start_time: int
    end_time: int
    duration: int
    tasks: _containers.ScalarMap[str, int]
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., start_time: _Optional[int] = ..., end_time: _Optional[int] = ..., duration: _Optional[int] = ..., tasks: _Optional[_Mapping[str, int]] = ...) -> None: ...

class JobList(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobSummary]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobSummary, _Mapping]]] = ...) -> None: ...

class VertexDetails(_message.Message):
    __slots__ = ("id", "name", "parallelism", "status", "records_in", "records_out", "tasks", "input_bytes_read", "input_bytes_total")
    class TasksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_IN_FIELD_NUMBER: _ClassVar[int]
    RECORDS_OUT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    parallelism: int
    status: str
    records_in: int
    records_out: int
    tasks: _containers.ScalarMap[str, int]
    input_bytes_read: int
    input_bytes_total: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., parallelism: _Optional[int] = ..., status: _Optional[str] = ..., records_in: _Optional[int] = ..., records_out: _Optional[int] = ..., tasks: _Optional[_Mapping[str, int]] = ..., input_bytes_read: _Optional[int] = ..., input_bytes_total: _Optional[int] = ...) -> None: ...

class JobDetails(_message.Message):
    __slots__ = ("summary", "vertices", "failure", "status_message", "plan", "restarts", "attempt", "exceptions", "executions")
    class ExecutionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    VERTICES_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXCEPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    summary: JobSummary
    vertices: _containers.RepeatedCompositeFieldContainer[VertexDetails]
    failure: str
    status_message: str
    plan: bytes
    restarts: int
    attempt: int
    exceptions: _containers.RepeatedCompositeFieldContainer[JobException]
    executions: _containers.ScalarMap[str, int]
    def __init__(self, summary: _Optional[_Union[JobSummary, _Mapping]] = ..., vertices: _Optional[_Iterable[_Union[VertexDetails, _Mapping]]] = ..., failure: _Optional[str] = ..., status_message: _Optional[str] = ..., plan: _Optional[bytes] = ..., restarts: _Optional[int] = ..., attempt: _Optional[int] = ..., exceptions: _Optional[_Iterable[_Union[JobException, _Mapping]]] = ..., executions: _Optional[_Mapping[str, int]] = ...) -> None: ...

class JobException(_message.Message):
    __slots__ = ("exception", "location", "timestamp")
    EXCEPTION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    exception: str
    location: str
    timestamp: int
    def __init__(self, exception: _Optional[str] = ..., location: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("ok", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class TaskLocation(_message.Message):
    __slots__ = ("vertex_id", "subtask", "address")
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    vertex_id: str
    subtask: int
    address: str
    def __init__(self, vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("vertex_id", "subtask")
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    vertex_id: str
    subtask: int
    def __init__(self, vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ...) -> None: ...

class DeployTasksRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "job_name", "job_graph", "files", "tasks", "locations", "config", "jobmanager_address", "restore", "checkpointing")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_GRAPH_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    JOBMANAGER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    job_name: str
    job_graph: bytes
    files: _containers.RepeatedCompositeFieldContainer[JobFile]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    locations: _containers.RepeatedCompositeFieldContainer[TaskLocation]
    config: _containers.ScalarMap[str, str]
    jobmanager_address: str
    restore: bytes
    checkpointing: bool
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., job_name: _Optional[str] = ..., job_graph: _Optional[bytes] = ..., files: _Optional[_Iterable[_Union[JobFile, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ..., locations: _Optional[_Iterable[_Union[TaskLocation, _Mapping]]] = ..., config: _Optional[_Mapping[str, str]] = ..., jobmanager_address: _Optional[str] = ..., restore: _Optional[bytes] = ..., checkpointing: _Optional[bool] = ...) -> None: ...

class SlotAssignment(_message.Message):
    __slots__ = ("slot", "tasks")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    slot: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    def __init__(self, slot: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ...) -> None: ...

class PrepareSlotsRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "slots", "jobmanager_address", "python_executable")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    JOBMANAGER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    slots: _containers.RepeatedCompositeFieldContainer[SlotAssignment]
    jobmanager_address: str
    python_executable: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., slots: _Optional[_Iterable[_Union[SlotAssignment, _Mapping]]] = ..., jobmanager_address: _Optional[str] = ..., python_executable: _Optional[str] = ...) -> None: ...

class PreparedSlot(_message.Message):
    __slots__ = ("slot", "address", "pid")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    slot: int
    address: str
    pid: int
    def __init__(self, slot: _Optional[int] = ..., address: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class PrepareSlotsResponse(_message.Message):
    __slots__ = ("ok", "message", "slots")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    slots: _containers.RepeatedCompositeFieldContainer[PreparedSlot]
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ..., slots: _Optional[_Iterable[_Union[PreparedSlot, _Mapping]]] = ...) -> None: ...

class CancelTasksRequest(_message.Message):
    __slots__ = ("job_id", "attempt")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ReleasePartitionsRequest(_message.Message):
    __slots__ = ("job_id", "producer_vertex", "producer_subtask")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_VERTEX_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_SUBTASK_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    producer_vertex: str
    producer_subtask: int
    def __init__(self, job_id: _Optional[str] = ..., producer_vertex: _Optional[str] = ..., producer_subtask: _Optional[int] = ...) -> None: ...

class TaskExecutionState(_message.Message):
    __slots__ = ("job_id", "attempt", "vertex_id", "subtask", "state", "failure", "resource_id", "metrics", "pid", "lost_partitions", "consequential")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    LOST_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    CONSEQUENTIAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    state: str
    failure: str
    resource_id: str
    metrics: TaskMetrics
    pid: int
    lost_partitions: _containers.RepeatedScalarFieldContainer[str]
    consequential: bool
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., state: _Optional[str] = ..., failure: _Optional[str] = ..., resource_id: _Optional[str] = ..., metrics: _Optional[_Union[TaskMetrics, _Mapping]] = ..., pid: _Optional[int] = ..., lost_partitions: _Optional[_Iterable[str]] = ..., consequential: _Optional[bool] = ...) -> None: ...

class CheckpointTrigger(_message.Message):
    __slots__ = ("job_id", "attempt", "checkpoint_id", "timestamp", "location", "is_savepoint", "exactly_once")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    IS_SAVEPOINT_FIELD_NUMBER: _ClassVar[int]
    EXACTLY_ONCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    checkpoint_id: int
    timestamp: int
    location: str
    is_savepoint: bool
    exactly_once: bool
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., checkpoint_id: _Optional[int] = ..., timestamp: _Optional[int] = ..., location: _Optional[str] = ..., is_savepoint: _Optional[bool] = ..., exactly_once: _Optional[bool] = ...) -> None: ...

class CheckpointNotice(_message.Message):
    __slots__ = ("job_id", "attempt", "checkpoint_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    checkpoint_id: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., checkpoint_id: _Optional[int] = ...) -> None: ...

class TaskStateHandle(_message.Message):
    __slots__ = ("path", "operators", "parallelism", "max_parallelism")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    path: str
    operators: _containers.RepeatedScalarFieldContainer[str]
    parallelism: int
    max_parallelism: int
    def __init__(self, path: _Optional[str] = ..., operators: _Optional[_Iterable[str]] = ..., parallelism: _Optional[int] = ..., max_parallelism: _Optional[int] = ...) -> None: ...

class CheckpointAck(_message.Message):
    __slots__ = ("job_id", "attempt", "vertex_id", "subtask", "checkpoint_id", "state_size", "handle")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    checkpoint_id: int
    state_size: int
    handle: TaskStateHandle
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., checkpoint_id: _Optional[int] = ..., state_size: _Optional[int] = ..., handle: _Optional[_Union[TaskStateHandle, _Mapping]] = ...) -> None: ...

class CheckpointDecline(_message.Message):
    __slots__ = ("job_id", "attempt", "vertex_id", "subtask", "checkpoint_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    checkpoint_id: int
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., checkpoint_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SplitRef(_message.Message):
    __slots__ = ("index", "offset", "resume")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    index: int
    offset: int
    resume: bool
    def __init__(self, index: _Optional[int] = ..., offset: _Optional[int] = ..., resume: _Optional[bool] = ...) -> None: ...

class SplitRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "vertex_id", "subtask", "initial", "split_count", "pool", "count")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERTEX_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    SPLIT_COUNT_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int
    initial: bool
    split_count: int
    pool: _containers.RepeatedCompositeFieldContainer[SplitRef]
    count: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., vertex_id: _Optional[str] = ..., subtask: _Optional[int] = ..., initial: _Optional[bool] = ..., split_count: _Optional[int] = ..., pool: _Optional[_Iterable[_Union[SplitRef, _Mapping]]] = ..., count: _Optional[int] = ...) -> None: ...

class SplitAssignment(_message.Message):
    __slots__ = ("splits",)
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    splits: _containers.RepeatedCompositeFieldContainer[SplitRef]
    def __init__(self, splits: _Optional[_Iterable[_Union[SplitRef, _Mapping]]] = ...) -> None: ...

class SavepointRequest(_message.Message):
    __slots__ = ("job_id", "target_dir", "then")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_DIR_FIELD_NUMBER: _ClassVar[int]
    THEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    target_dir: str
    then: str
    def __init__(self, job_id: _Optional[str] = ..., target_dir: _Optional[str] = ..., then: _Optional[str] = ...) -> None: ...

class SavepointTriggerId(_message.Message):
    __slots__ = ("trigger_id",)
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    def __init__(self, trigger_id: _Optional[str] = ...) -> None: ...

class SavepointStatusRequest(_message.Message):
    __slots__ = ("job_id", "trigger_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    trigger_id: str
    def __init__(self, job_id: _Optional[str] = ..., trigger_id: _Optional[str] = ...) -> None: ...

class SavepointStatus(_message.Message):
    __slots__ = ("state", "location", "failure")
    STATE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    state: str
    location: str
    failure: str
    def __init__(self, state: _Optional[str] = ..., location: _Optional[str] = ..., failure: _Optional[str] = ...) -> None: ...

class RegistrationChallenge(_message.Message):
    __slots__ = ("resource_id", "challenge")
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    resource_id: str
    challenge: bytes
    def __init__(self, resource_id: _Optional[str] = ..., challenge: _Optional[bytes] = ...) -> None: ...

class RegistrationProof(_message.Message):
    __slots__ = ("proof",)
    PROOF_FIELD_NUMBER: _ClassVar[int]
    proof: bytes
    def __init__(self, proof: _Optional[bytes] = ...) -> None: ...
