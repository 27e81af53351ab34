"""Where checkpoints and savepoints live: state files of the tasks, then the metadata, last.

A checkpoint is a folder ``<state.checkpoints.dir>/<job id>/chk-<n>/`` holding one state file
per task and ``_metadata``. The metadata is written last (to a temporary name, then renamed),
so a folder without it is an unfinished checkpoint and is never used for recovery. A savepoint
is the same in a self-contained folder of its own. Storage goes through
:class:`CheckpointStorage`, so another backend (object storage) can plug in beside the file
system one.

``_metadata`` is versioned JSON (:data:`METADATA_FORMAT`, :data:`METADATA_VERSION`): the
JobManager reads it from a path a client chooses (``strom run -s``), and a pickle there would
run whatever code it names. Metadata pickled by an older Strom is refused with a message that
says so; an operator who trusts such a file converts it once, on their own machine, with
``python -m strom.checkpoint_storage convert <folder>``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import tempfile
import uuid
from abc import ABC, abstractmethod
from typing import Any

from strom.errors import StromError

METADATA_FILE = "_metadata"
METADATA_FORMAT = "strom-checkpoint-metadata"
METADATA_VERSION = 1
_PICKLE_PROTOCOL_MARK = 0x80


class MetadataFormatError(StromError, ValueError):
    """A ``_metadata`` file this Strom will not read: pickled by an older one, or newer."""


def encode_metadata(metadata: dict[str, Any]) -> bytes:
    """The metadata as versioned JSON (subtask numbers become strings, as JSON keys are)."""
    document = {"format": METADATA_FORMAT, "version": METADATA_VERSION, **metadata}
    return json.dumps(document, indent=1, sort_keys=True).encode()


def decode_metadata(data: bytes, path: str = METADATA_FILE) -> dict[str, Any] | None:
    """The metadata written by :func:`encode_metadata`; None for a torn or foreign file.

    Raises :class:`MetadataFormatError` for a pickle (never unpickled) or another version.
    """
    if data[:1] == bytes([_PICKLE_PROTOCOL_MARK]):
        raise MetadataFormatError(
            f"'{path}' holds checkpoint metadata pickled by an older Strom. Strom no longer "
            "reads pickled metadata: unpickling a file runs whatever code it names. If you "
            "trust the file, convert it once with: python -m strom.checkpoint_storage convert "
            f"{os.path.dirname(path) or '.'}"
        )
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != METADATA_FORMAT:
        return None
    version = document.pop("version", None)
    document.pop("format")
    if version != METADATA_VERSION:
        raise MetadataFormatError(
            f"'{path}' holds checkpoint metadata of version {version!r}; this Strom reads "
            f"version {METADATA_VERSION}"
        )
    operators = document.get("operators")
    if not isinstance(operators, dict) or not isinstance(document.get("checkpoint_id"), int):
        return None
    for entry in operators.values():
        if not isinstance(entry, dict) or not isinstance(entry.get("files", {}), dict):
            return None
        entry["files"] = {int(subtask): str(file) for subtask, file in entry["files"].items()}
        entry["finished"] = [int(subtask) for subtask in entry.get("finished", [])]
    return document


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
            handle.write(encode_metadata(metadata))
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
                data = handle.read()
        except OSError:
            return None
        return decode_metadata(data, path)

    def local_path(self, location: str) -> str:
        """The file system path of a location (a path or ``file://`` URI)."""
        return _local(location)

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
            try:
                if self.read_metadata(location) is not None:
                    return location
            except MetadataFormatError:
                continue  # not one this Strom can restore
        return None


def storage_for(base: str | None) -> CheckpointStorage:
    return FileSystemCheckpointStorage(base)


def convert_pickled_metadata(folder: str) -> str:
    """Rewrite the pickled ``_metadata`` of a trusted checkpoint or savepoint as JSON.

    This unpickles the file: run it only on a file you wrote yourself. Returns its path.
    """
    path = os.path.join(_local(folder), METADATA_FILE)
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:1] != bytes([_PICKLE_PROTOCOL_MARK]):
        raise MetadataFormatError(f"'{path}' is not pickled metadata; nothing to convert")
    metadata = pickle.loads(data)  # the operator's own, trusted file (see the docstring)
    if not isinstance(metadata, dict):
        raise MetadataFormatError(f"'{path}' does not hold checkpoint metadata")
    FileSystemCheckpointStorage(None).write_metadata(os.path.dirname(path), metadata)
    return path


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "convert":
        print("usage: python -m strom.checkpoint_storage convert <checkpoint folder>")
        return 2
    try:
        print(f"converted {convert_pickled_metadata(argv[1])} to JSON")
    except (OSError, StromError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
