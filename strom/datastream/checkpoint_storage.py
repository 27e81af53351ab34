"""Checkpoint storages, as ``pyflink.datastream.checkpoint_storage``.

They choose where checkpoints go; Strom writes them to a directory
(``state.checkpoints.dir``). Set one with ``env.get_checkpoint_config().set_checkpoint_storage(
FileSystemCheckpointStorage("file:///checkpoints"))``.
"""

from __future__ import annotations

from strom._unsupported import module_getattr

__all__ = ["CheckpointStorage", "FileSystemCheckpointStorage", "JobManagerCheckpointStorage"]


class CheckpointStorage:
    """Where checkpoints are written."""

    def get_checkpoint_path(self) -> str | None:
        return None


class JobManagerCheckpointStorage(CheckpointStorage):
    """Flink keeps such checkpoints in the JobManager's memory; Strom writes them under
    ``checkpoint_path`` when given, else to its default checkpoint directory."""

    def __init__(self, checkpoint_path: str | None = None, max_state_size: int | None = None):
        self._path = checkpoint_path
        self._max_state_size = max_state_size if max_state_size is not None else 5 * 1024 * 1024

    def get_checkpoint_path(self) -> str | None:
        return self._path

    def get_max_state_size(self) -> int:
        return self._max_state_size

    def get_savepoint_path(self) -> str | None:
        return None

    def __repr__(self) -> str:
        return f"JobManagerCheckpointStorage({self._path!r})"


class FileSystemCheckpointStorage(CheckpointStorage):
    """Checkpoints as files under ``checkpoint_path`` (a path or ``file://`` URI)."""

    def __init__(
        self,
        checkpoint_path: str | None = None,
        file_state_size_threshold: int | None = None,
        write_buffer_size: int = -1,
    ) -> None:
        if checkpoint_path is None:
            raise ValueError("FileSystemCheckpointStorage needs a checkpoint_path")
        self._path = str(checkpoint_path)
        self._threshold = file_state_size_threshold if file_state_size_threshold else 20 * 1024
        self._write_buffer_size = write_buffer_size

    def get_checkpoint_path(self) -> str:
        return self._path

    def get_savepoint_path(self) -> str | None:
        return None

    def get_min_file_size_threshold(self) -> int:
        return self._threshold

    def get_write_buffer_size(self) -> int:
        return self._write_buffer_size

    def __repr__(self) -> str:
        return f"FileSystemCheckpointStorage({self._path!r})"


__getattr__ = module_getattr(
    __name__, {"CustomCheckpointStorage": "it wraps a checkpoint storage written in Java"}
)
