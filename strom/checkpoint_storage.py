"""Where checkpoints and savepoints live: state files of the tasks, then the metadata, last.

A checkpoint is a folder ``<state.checkpoints.dir>/<job id>/chk-<n>/`` holding one state file
per task and ``_metadata``. The metadata is written last (to a temporary name, then renamed),
so a folder without it is an unfinished checkpoint and is never used for recovery. A savepoint
is the same in a self-contained folder of its own. Storage goes through
:class:`CheckpointStorage`, so another backend (object storage) can plug in beside the file
system one.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from typing import Any

METADATA_FILE = "_metadata"


class CheckpointStorage(ABC):
    """Reads and writes checkpoint data at locations named by strings."""

    @abstractmethod
    def checkpoint_location(self, job_id: str, checkpoint_id: int) -> str: ...

    @abstractmethod
    def savepoint_location(self, target: str, job_id: str) -> str: ...

    @abstractmethod
    def write_state(self, location: str, name: str, data: bytes) -> str:
        """Write one task's state; returns its path."""

    @abstractmethod
    def read_state(self, path: str) -> bytes: ...

    @abstractmethod
    def write_metadata(self, location: str, metadata: dict[str, Any]) -> str: ...

    @abstractmethod
    def read_metadata(self, location: str) -> dict[str, Any] | None:
        """The metadata of a finished checkpoint or savepoint, or None if unfinished."""

    @abstractmethod
    def discard(self, location: str) -> None: ...


def _local(uri: str) -> str:
    if uri.startswith("file://"):
        return uri[len("file://") :] or "/"
    if uri.startswith("file:"):
        return uri[len("file:") :]
    if "://" in uri:
        raise ValueError(
            f"checkpoint storage '{uri}' is not supported: use a local or shared folder path "
            "or a file:// URI"
        )
    return uri


class FileSystemCheckpointStorage(CheckpointStorage):
    """Checkpoints in a folder every process can reach (local for one host, shared else)."""

    def __init__(self, base: str | None) -> None:
        self.base = (
            os.path.abspath(_local(base))
            if base
            else os.path.join(tempfile.gettempdir(), "strom-checkpoints")
        )

    def checkpoint_location(self, job_id: str, checkpoint_id: int) -> str:
        return os.path.join(self.base, job_id, f"chk-{checkpoint_id}")

    def savepoint_location(self, target: str, job_id: str) -> str:
        folder = os.path.abspath(_local(target))
        return os.path.join(folder, f"savepoint-{job_id[:6]}-{uuid.uuid4().hex[:12]}")

    def write_state(self, location: str, name: str, data: bytes) -> str:
        folder = _local(location)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        temporary = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return path

    def read_state(self, path: str) -> bytes:
        with open(_local(path), "rb") as handle:
            return handle.read()

    def write_metadata(self, location: str, metadata: dict[str, Any]) -> str:
        folder = _local(location)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, METADATA_FILE)
        temporary = f"{path}.inprogress"
        with open(temporary, "wb") as handle:
            pickle.dump(metadata, handle, protocol=5)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return path

    def read_metadata(self, location: str) -> dict[str, Any] | None:
        folder = _local(location)
        path = os.path.join(folder, METADATA_FILE)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, "rb") as handle:
                metadata = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError):
            return None
        return metadata if isinstance(metadata, dict) else None

    def discard(self, location: str) -> None:
        shutil.rmtree(_local(location), ignore_errors=True)

    def latest_complete(self, job_id: str) -> str | None:
        """The newest finished checkpoint of a job in this storage, if any."""
        folder = os.path.join(self.base, job_id)
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        numbered = sorted(
            (int(n[4:]), n) for n in names if n.startswith("chk-") and n[4:].isdigit()
        )
        for _, name in reversed(numbered):
            location = os.path.join(folder, name)
            if self.read_metadata(location) is not None:
                return location
        return None


def storage_for(base: str | None) -> CheckpointStorage:
    return FileSystemCheckpointStorage(base)
