"""What a TaskManager tells about itself: its log and stdout files, and its metrics.

:class:`ObservabilityService` serves ``TaskManagerObservability`` on the TaskManager's gRPC
server, where the JobManager asks for it on behalf of the REST API and dashboard. With
``metrics.reporter.prom.port`` set it also serves the same metrics over HTTP in the Prometheus
text format, as Flink's PrometheusReporter does.

Ratios (busy, back pressure) come from a sampler that looks at every task's input gate ten
times a second while someone is asking for metrics, and covers the last second: a producer is
back-pressured while it waits for room in a consumer's input channel, a consumer is busy while
it has input queued. The sampler stops by itself when nobody asked for a minute.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import psutil

from strom.errors import ConfigurationError
from strom.prometheus import MetricFamily
from strom.prometheus import render as render_prometheus
from strom.rpc import observability_pb2 as pb
from strom.rpc import observability_pb2_grpc

if TYPE_CHECKING:
    from taskmanager.task_executor import TaskExecutor

__all__ = ["ObservabilityService", "parse_port_range", "read_log_tail", "render_prometheus"]

log = logging.getLogger(__name__)

PROM_PORT_KEY = "metrics.reporter.prom.port"
DEFAULT_TAIL_BYTES = 1024 * 1024
MAX_TAIL_BYTES = 8 * 1024 * 1024
SAMPLE_INTERVAL_S = 0.1
SAMPLE_WINDOW = 10  # samples: one second
SAMPLER_IDLE_S = 60.0
CPU_MIN_INTERVAL_S = 0.5
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SERVER_MARK = "_strom_observability"
_PORT_RANGE = re.compile(r"^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$")


# ---------------------------------------------------------------- files


def log_paths() -> tuple[Path | None, Path | None]:
    """This process's log file (``STROM_LOG_FILE``) and the ``.out`` file beside it."""
    value = os.environ.get("STROM_LOG_FILE")
    if not value:
        return None, None
    path = Path(value)
    return path, path.with_suffix(".out")


def read_log_tail(path: Path | None, max_bytes: int, what: str) -> pb.LogTail:
    """The last ``max_bytes`` of ``path``, starting at a line when the file is longer."""
    if path is None:
        return pb.LogTail(
            available=False,
            message=(
                f"This process writes no {what} file: STROM_LOG_FILE is not set (it runs in "
                "the foreground or embedded). Start it with bin/taskmanager.sh or "
                "bin/jobmanager.sh to get log/strom-<user>-<role>-<n>-<host>.log and .out."
            ),
        )
    limit = max(1, min(max_bytes or DEFAULT_TAIL_BYTES, MAX_TAIL_BYTES))
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            start = max(0, size - limit)
            file.seek(start)
            data = file.read(limit)
    except OSError as error:
        return pb.LogTail(
            available=False, path=str(path), message=f"cannot read the {what} file: {error}"
        )
    truncated = start > 0
    if truncated:
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data = data[newline + 1 :]
    return pb.LogTail(
        available=True, path=str(path), file_size=size, data=data, truncated=truncated
    )


# ---------------------------------------------------------------- Prometheus text


# ---------------------------------------------------------------- configuration


def parse_port_range(value: Any) -> range | None:
    """``metrics.reporter.prom.port``: None (off), ``0`` (any free port), ``9249`` or
    ``9249-9260`` (the first free one)."""
    if value is None:
        return None
    match = _PORT_RANGE.match(str(value))
    low = int(match.group(1)) if match else -1
    high = int(match.group(2) or low) if match else -1
    if not match or high > 65535 or high < low:
        raise ConfigurationError(
            f"Invalid value {value!r} for configuration key '{PROM_PORT_KEY}': expected a "
            "port from 0 to 65535, or a range such as 9249-9260."
        )
    return range(low, high + 1)


# ---------------------------------------------------------------- sampling


@dataclass
class _TaskSamples:
    busy: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    blocked: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    sending: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))


class GateSampler:
    """Samples the input gates of a TaskManager's tasks while metrics are being asked for."""

    def __init__(self, tasks_source) -> None:
        self._tasks_source = tasks_source
        self._samples: dict[Any, _TaskSamples] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._last_request = 0.0

    def touch(self) -> None:
        """Note a request; starts the sampling thread if it is not running."""
        with self._lock:
            self._last_request = time.monotonic()
            if self._stopped.is_set() or (self._thread and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="tm-gate-sampler", daemon=True)
            self._thread.start()
        self.sample()  # something to show on the first request already

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(SAMPLE_INTERVAL_S):
            if time.monotonic() - self._last_request > SAMPLER_IDLE_S:
                with self._lock:
                    self._thread = None
                    self._samples.clear()
                return
            try:
                self.sample()
            except Exception:  # never let a half-deployed task stop the sampling
                log.debug("gate sampling failed", exc_info=True)

    def sample(self) -> None:
        tasks = self._tasks_source()
        with self._lock:
            live = set()
            for task in tasks:
                live.add(task.id)
                samples = self._samples.setdefault(task.id, _TaskSamples())
                busy, blocked = _inspect_gate(task)
                samples.busy.append(busy)
                samples.blocked.append(blocked)
                samples.sending.append(_waits_to_send(task))
            for task_id in [t for t in self._samples if t not in live]:
                del self._samples[task_id]

    def ratios(self, task: Any) -> tuple[float, dict[tuple[str, int], float], float]:
        """The task's busy ratio; per producer it held back, the ratio of samples in which
        that producer waited for room in its gate; and the ratio in which the task itself
        waited to send."""
        with self._lock:
            samples = self._samples.get(task.id)
            if samples is None or not samples.busy:
                return 0.0, {}, 0.0
            count = len(samples.busy)
            busy = sum(samples.busy) / count
            blocked: dict[tuple[str, int], int] = {}
            for producers in samples.blocked:
                for producer in producers:
                    blocked[producer] = blocked.get(producer, 0) + 1
            sending = sum(samples.sending) / len(samples.sending)
            return busy, {producer: n / count for producer, n in blocked.items()}, sending


def _waits_to_send(task: Any) -> bool:
    """Whether the task is blocked in a send now: a consumer's gate is full, or a remote
    consumer has granted no credit. Seen from the producer, this is back pressure wherever the
    consumer runs; the consumer's gate only knows of producers in its own process for sure (a
    remote producer may wait for credit while the gate still has room, see data_service)."""
    for writer in getattr(task, "writers", None) or ():
        for channel in writer.channels:
            if channel.backpressured:
                return True
    return False


def _inspect_gate(task: Any) -> tuple[bool, frozenset[tuple[str, int]]]:
    """Whether the task has input waiting, and which producers wait for room in its gate."""
    gate = getattr(task, "gate", None)
    if gate is None:
        return False, frozenset()
    channels = gate.num_channels
    if channels == 0:  # a source: busy while it runs (the JobManager discounts back pressure)
        return task.state == "RUNNING", frozenset()
    queued = any(gate.pending(channel) for channel in range(channels))
    blocked = set()
    layout = getattr(task, "layout", ())
    edges = {edge.id: edge.source_vertex for edge in task.graph.edges}
    for channel in range(min(channels, len(layout))):
        if gate.backpressured(channel):
            edge_id, producer_subtask = layout[channel]
            vertex = edges.get(edge_id)
            if vertex is not None:
                blocked.add((vertex, producer_subtask))
    return queued, frozenset(blocked)


# ---------------------------------------------------------------- the service


class ObservabilityService(observability_pb2_grpc.TaskManagerObservabilityServicer):
    """A TaskManager's log, stdout and metrics, over gRPC and optionally Prometheus HTTP."""

    def __init__(self, executor: TaskExecutor) -> None:
        self.executor = executor
        self.sampler = GateSampler(self._tasks)
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the next call measures from here
        self._cpu_lock = threading.Lock()
        self._cpu = (time.monotonic(), 0.0)  # (when measured, percent of one core)
        self._started = time.time()
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self.prometheus_port = 0

    # -------------------------------------------------------------- lifecycle

    def add_to_server(self, server: grpc.Server) -> ObservabilityService:
        """Serve on ``server`` (before it starts, or after: then by its generic handlers) and
        start the Prometheus endpoint if configured. Idempotent per server: answers the
        service already registered there."""
        existing = getattr(server, _SERVER_MARK, None)
        if existing is not None:
            return existing
        observability_pb2_grpc.add_TaskManagerObservabilityServicer_to_server(self, server)
        try:
            setattr(server, _SERVER_MARK, self)
        except AttributeError:  # pragma: no cover - a server type without a __dict__
            pass
        self.start_http()
        return self

    def start_http(self) -> None:
        ports = parse_port_range(self.executor.config[PROM_PORT_KEY])
        if ports is None or self._http is not None:
            return
        host = self.executor.config["taskmanager.bind-host"] or self.executor.host
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] not in ("/", "/metrics"):
                    self._answer(HTTPStatus.NOT_FOUND, b"not found: try /metrics\n", "text/plain")
                    return
                body = service.prometheus_text().encode()
                self._answer(HTTPStatus.OK, body, PROMETHEUS_CONTENT_TYPE)

            def _answer(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("prometheus endpoint: " + format, *args)

        last_error: OSError | None = None
        for port in ports:
            try:
                self._http = ThreadingHTTPServer((host, port), Handler)
                break
            except OSError as error:
                last_error = error
        if self._http is None:
            log.warning(
                "no free port for the Prometheus endpoint in %s=%s on %s (%s); metrics stay "
                "available through the JobManager",
                PROM_PORT_KEY,
                self.executor.config[PROM_PORT_KEY],
                host,
                last_error,
            )
            return
        self._http.daemon_threads = True
        self.prometheus_port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="tm-prometheus",
            daemon=True,
        )
        self._http_thread.start()
        log.info("Prometheus metrics at http://%s:%d/metrics", host, self.prometheus_port)

    def close(self) -> None:
        self.sampler.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    # -------------------------------------------------------------- gRPC

    def ReadLogTail(self, request: pb.LogTailRequest, context) -> pb.LogTail:
        log_file, out_file = log_paths()
        if request.kind == pb.LOG_FILE_KIND_STDOUT:
            return read_log_tail(out_file, request.max_bytes, "stdout")
        return read_log_tail(log_file, request.max_bytes, "log")

    def GetMetrics(self, request: pb.ObservedMetricsRequest, context) -> pb.ObservedMetrics:
        metrics = self.metrics(request.job_id)
        metrics.prometheus_text = render_prometheus(self._families(metrics))
        return metrics

    # -------------------------------------------------------------- metrics

    def _tasks(self) -> list[Any]:
        deployer = self.executor.deployer
        with deployer.lock:
            return list(deployer.tasks.values())

    def _process_status(self) -> pb.ProcessStatus:
        process = self._process
        memory = psutil.virtual_memory()
        with self._cpu_lock:
            measured, cpu = self._cpu
            if time.monotonic() - measured >= CPU_MIN_INTERVAL_S:  # shorter spans read as 0
                cpu = process.cpu_percent(None)
                self._cpu = (time.monotonic(), cpu)
        try:
            open_files = process.num_fds()
        except (AttributeError, psutil.Error):
            open_files = 0
        return pb.ProcessStatus(
            pid=process.pid,
            cpu_percent=cpu,
            rss_bytes=process.memory_info().rss,
            threads=process.num_threads(),
            cpu_cores=psutil.cpu_count() or 1,
            physical_memory=memory.total,
            available_memory=memory.available,
            uptime_ms=int((time.time() - self._started) * 1000),
            open_files=open_files,
        )

    def metrics(self, job_id: str = "") -> pb.ObservedMetrics:
        """A snapshot of this TaskManager's process and of its tasks (of ``job_id`` if set)."""
        self.sampler.touch()
        subtasks = []
        for task in self._tasks():
            if job_id and task.id.job_id != job_id:
                continue
            subtasks.append(self._observe(task))
        status = self._process_status()
        for subtask in subtasks:
            subtask.pid, subtask.rss_bytes = status.pid, status.rss_bytes
        slot_processes = []
        slots = getattr(self.executor, "slots", None)
        if slots is not None:  # a TaskManager: its slot processes observe their own subtasks
            in_slots, slot_processes = slots.observed(job_id)
            subtasks.extend(in_slots)
        return pb.ObservedMetrics(
            resource_id=self.executor.resource_id or "",
            timestamp_ms=int(time.time() * 1000),
            process=status,
            num_slots=self.executor.num_slots,
            subtasks=subtasks,
            prometheus_port=self.prometheus_port,
            sample_window_ms=int(SAMPLE_WINDOW * SAMPLE_INTERVAL_S * 1000),
            slot_processes=slot_processes,
        )

    def _observe(self, task: Any) -> pb.ObservedSubtask:
        gate = task.gate
        queued = sum(gate.pending(channel) for channel in range(gate.num_channels))
        writers = getattr(task, "writers", None) or []
        records_out = max(task.records_out, sum(writer.records_out for writer in writers))
        busy, blocked, sending = self.sampler.ratios(task)
        watermark = getattr(task, "current_watermark", None)
        if callable(watermark):
            watermark = watermark()
        duration = getattr(task, "last_checkpoint_duration_ms", None)
        return pb.ObservedSubtask(
            job_id=task.id.job_id,
            attempt=task.id.attempt,
            vertex_id=task.id.vertex_id,
            subtask=task.id.subtask,
            task_name=task.vertex.name,
            state=task.state,
            records_in=task.records_in,
            records_out=records_out,
            queued_batches=queued,
            queue_capacity=gate.num_channels * gate.capacity_per_channel,
            busy_ratio=busy,
            blocked_producers=[
                pb.BlockedProducer(vertex_id=vertex, subtask=index, ratio=ratio)
                for (vertex, index), ratio in sorted(blocked.items())
            ],
            has_watermark=isinstance(watermark, int) and watermark > -(2**63),
            watermark=watermark if isinstance(watermark, int) and watermark > -(2**63) else 0,
            last_checkpoint_duration_ms=duration if isinstance(duration, int) else -1,
            is_source=bool(getattr(task.vertex, "is_source", False)),
            backpressured_ratio=sending,
        )

    def prometheus_text(self) -> str:
        return render_prometheus(self._families(self.metrics()))

    def _families(self, metrics: pb.ObservedMetrics) -> list[MetricFamily]:
        tm = {"tm_id": metrics.resource_id}
        process = metrics.process

        def gauge(name: str, help_text: str, value: float) -> MetricFamily:
            family = MetricFamily(f"strom_taskmanager_{name}", help_text)
            family.add(value, **tm)
            return family

        families = [
            gauge(
                "Status_Process_CPU_Load",
                "CPU use of the process, 1.0 = one core",
                process.cpu_percent / 100.0,
            ),
            gauge(
                "Status_Process_Memory_RSS",
                "Resident memory of the process in bytes",
                process.rss_bytes,
            ),
            gauge("Status_Process_Threads_Count", "Threads of the process", process.threads),
            gauge("Status_Process_OpenFiles", "Open file descriptors", process.open_files),
            gauge("Status_Process_Uptime", "Milliseconds since start", process.uptime_ms),
            gauge("Status_Hardware_CPU_Cores", "CPU cores of the host", process.cpu_cores),
            gauge(
                "Status_Hardware_Memory_Available",
                "Available memory of the host in bytes",
                process.available_memory,
            ),
            gauge("Status_NumberOfSlots", "Task slots this TaskManager offers", metrics.num_slots),
            gauge(
                "Status_NumberOfRunningTasks",
                "Subtasks deployed here and not ended",
                len(metrics.subtasks),
            ),
        ]
        per_task = {
            "numRecordsIn": ("Records the subtask has read", lambda s: s.records_in),
            "numRecordsOut": ("Records the subtask has written", lambda s: s.records_out),
            "buffers_inputQueueLength": (
                "Batches queued in the subtask's input gate",
                lambda s: s.queued_batches,
            ),
            "buffers_inPoolUsage": (
                "Share of the input gate's capacity in use",
                lambda s: s.queued_batches / s.queue_capacity if s.queue_capacity else 0.0,
            ),
            "busyRatio": (
                "Share of the last second the subtask had work to do",
                lambda s: s.busy_ratio,
            ),
            "backPressuredTimeMsPerSecond": (
                "Milliseconds of the last second the subtask waited to send (Flink's name)",
                lambda s: s.backpressured_ratio * 1000.0,
            ),
        }
        for suffix, (help_text, value_of) in per_task.items():
            family = MetricFamily(f"strom_taskmanager_job_task_{suffix}", help_text)
            for subtask in metrics.subtasks:
                family.add(value_of(subtask), **tm, **_task_labels(subtask))
            families.append(family)
        waiting = MetricFamily(
            "strom_taskmanager_job_task_producerBackPressuredRatio",
            "Share of the last second a producer subtask waited for room in this subtask's input",
        )
        watermarks = MetricFamily(
            "strom_taskmanager_job_task_currentInputWatermark",
            "The subtask's input watermark (epoch millis)",
        )
        checkpoints = MetricFamily(
            "strom_taskmanager_job_task_lastCheckpointDuration",
            "Milliseconds the subtask's last checkpoint took",
        )
        for subtask in metrics.subtasks:
            labels = _task_labels(subtask)
            for producer in subtask.blocked_producers:
                waiting.add(
                    producer.ratio,
                    **tm,
                    **labels,
                    producer_task_id=producer.vertex_id,
                    producer_subtask_index=producer.subtask,
                )
            if subtask.has_watermark:
                watermarks.add(subtask.watermark, **tm, **labels)
            if subtask.last_checkpoint_duration_ms >= 0:
                checkpoints.add(subtask.last_checkpoint_duration_ms, **tm, **labels)
        families += [waiting, watermarks, checkpoints]
        return families


def _task_labels(subtask: pb.ObservedSubtask) -> dict[str, Any]:
    return {
        "job_id": subtask.job_id,
        "task_id": subtask.vertex_id,
        "task_name": subtask.task_name,
        "subtask_index": subtask.subtask,
        "attempt": subtask.attempt,
    }
