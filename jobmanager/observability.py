"""The JobManager's side of observability: TaskManagers' logs and metrics, and its own log.

The JobManager asks a TaskManager over gRPC, at the address it registered with, through the
``TaskManagerObservability`` service (taskmanager/observability.py), so the REST API needs no
port of the TaskManagers beyond the one they already serve. Calls are short and bounded: a
TaskManager that does not answer in time is reported, never waited for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from strom.rpc import observability_pb2 as pb
from strom.rpc import observability_pb2_grpc, tls

__all__ = ["LogFile", "TaskManagerObserver", "TaskManagerUnavailable", "own_log_file"]

DEFAULT_TAIL_BYTES = 1024 * 1024
MAX_TAIL_BYTES = 8 * 1024 * 1024
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 2 * MAX_TAIL_BYTES)]


class TaskManagerUnavailable(Exception):
    """A TaskManager did not answer, or does not serve the observability service."""


@dataclass
class LogFile:
    """The tail of a log or stdout file, or why there is none."""

    available: bool
    text: str
    path: str = ""
    size: int = 0
    truncated: bool = False


def own_log_file(kind: str = "log", max_bytes: int = DEFAULT_TAIL_BYTES) -> LogFile:
    """This process's log (``STROM_LOG_FILE``) or the ``.out`` file beside it."""
    value = os.environ.get("STROM_LOG_FILE")
    if not value:
        return LogFile(
            False,
            f"The JobManager writes no {kind} file: STROM_LOG_FILE is not set, so it logs to "
            "stderr (it runs in the foreground or embedded). Start it with bin/jobmanager.sh "
            "or bin/start-cluster.sh to get log/strom-<user>-jobmanager-<n>-<host>.log and "
            ".out.\n",
        )
    path = Path(value) if kind == "log" else Path(value).with_suffix(".out")
    limit = max(1, min(max_bytes, MAX_TAIL_BYTES))
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            start = max(0, size - limit)
            file.seek(start)
            data = file.read(limit)
    except OSError as error:
        return LogFile(False, f"Cannot read the JobManager's {kind} file {path}: {error}\n")
    if start > 0:
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data = data[newline + 1 :]
    return LogFile(True, data.decode("utf-8", "replace"), str(path), size, start > 0)


class TaskManagerObserver:
    """Asks TaskManagers for their log tails and metrics, several at once when needed."""

    def __init__(self, max_workers: int = 8) -> None:
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()
        self._pool = futures.ThreadPoolExecutor(max_workers, thread_name_prefix="jm-observe")

    def _stub(self, address: str) -> observability_pb2_grpc.TaskManagerObservabilityStub:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = tls.channel(address, _CHANNEL_OPTIONS)
        return observability_pb2_grpc.TaskManagerObservabilityStub(channel)

    def forget(self, live_addresses: Iterable[str]) -> None:
        """Close the channels of TaskManagers that are gone."""
        keep = set(live_addresses)
        with self._lock:
            gone = [a for a in self._channels if a not in keep]
            channels = [self._channels.pop(a) for a in gone]
        for channel in channels:
            channel.close()

    @staticmethod
    def _unavailable(address: str, error: grpc.RpcError) -> TaskManagerUnavailable:
        code = error.code() if hasattr(error, "code") else None
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return TaskManagerUnavailable(
                f"the TaskManager at {address} does not serve logs and metrics (it runs a "
                "Strom without the observability service)"
            )
        detail = error.details() if hasattr(error, "details") else str(error)
        name = code.name if code is not None else "error"
        return TaskManagerUnavailable(
            f"the TaskManager at {address} did not answer: {name} {detail}"
        )

    def read_log(
        self, address: str, kind: str = "log", max_bytes: int = DEFAULT_TAIL_BYTES, timeout=5.0
    ) -> LogFile:
        request = pb.LogTailRequest(
            kind=pb.LOG_FILE_KIND_STDOUT if kind == "stdout" else pb.LOG_FILE_KIND_LOG,
            max_bytes=max(1, min(max_bytes, MAX_TAIL_BYTES)),
        )
        try:
            tail = self._stub(address).ReadLogTail(request, timeout=timeout)
        except grpc.RpcError as error:
            raise self._unavailable(address, error) from None
        if not tail.available:
            return LogFile(False, tail.message + "\n", tail.path)
        text = tail.data.decode("utf-8", "replace")
        return LogFile(True, text, tail.path, tail.file_size, tail.truncated)

    def metrics(self, address: str, job_id: str = "", timeout: float = 3.0) -> pb.ObservedMetrics:
        try:
            return self._stub(address).GetMetrics(
                pb.ObservedMetricsRequest(job_id=job_id), timeout=timeout
            )
        except grpc.RpcError as error:
            raise self._unavailable(address, error) from None

    def metrics_of(
        self, addresses: Iterable[str], job_id: str = "", timeout: float = 1.0
    ) -> dict[str, pb.ObservedMetrics]:
        """The metrics of each TaskManager that answered within ``timeout``."""
        pending = {
            self._pool.submit(self.metrics, address, job_id, timeout): address
            for address in set(addresses)
            if address
        }
        answers: dict[str, pb.ObservedMetrics] = {}
        done, _ = futures.wait(pending, timeout=timeout + 0.5)
        for future in done:
            if future.exception() is None:
                answers[pending[future]] = future.result()
        return answers

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()
