"""``CheckpointConfig`` and ``CheckpointingMode``, as PyFlink names them."""

from __future__ import annotations

from enum import Enum
from typing import Any


class CheckpointingMode(Enum):
    """EXACTLY_ONCE aligns barriers of all inputs; AT_LEAST_ONCE does not (faster, may
    repeat records after a failure)."""

    EXACTLY_ONCE = 0
    AT_LEAST_ONCE = 1


class ExternalizedCheckpointRetention(Enum):
    DELETE_ON_CANCELLATION = 0
    RETAIN_ON_CANCELLATION = 1
    NO_EXTERNALIZED_CHECKPOINTS = 2


#: PyFlink's older name
ExternalizedCheckpointCleanup = ExternalizedCheckpointRetention


class CheckpointConfig:
    """Checkpoint settings of one job; ``env.get_checkpoint_config()``.

    Example::

        env.enable_checkpointing(1000)
        env.get_checkpoint_config().set_min_pause_between_checkpoints(500)
    """

    def __init__(self) -> None:
        self.interval_ms: int | None = None
        self.mode = CheckpointingMode.EXACTLY_ONCE
        self.min_pause_ms = 0
        self.timeout_ms = 600_000
        self.max_concurrent = 1
        self.tolerable_failures = 0
        self.retention = ExternalizedCheckpointRetention.DELETE_ON_CANCELLATION
        self.storage: str | None = None

    def is_checkpointing_enabled(self) -> bool:
        return self.interval_ms is not None and self.interval_ms > 0

    def get_checkpointing_mode(self) -> CheckpointingMode:
        return self.mode

    def set_checkpointing_mode(self, checkpointing_mode: CheckpointingMode) -> CheckpointConfig:
        if not isinstance(checkpointing_mode, CheckpointingMode):
            raise TypeError("set_checkpointing_mode() takes a CheckpointingMode")
        self.mode = checkpointing_mode
        return self

    def get_checkpoint_interval(self) -> int:
        return self.interval_ms or -1

    def set_checkpoint_interval(self, checkpoint_interval: int) -> CheckpointConfig:
        if checkpoint_interval < 1:
            raise ValueError("the checkpoint interval must be at least 1 ms")
        self.interval_ms = checkpoint_interval
        return self

    def get_checkpoint_timeout(self) -> int:
        return self.timeout_ms

    def set_checkpoint_timeout(self, checkpoint_timeout: int) -> CheckpointConfig:
        if checkpoint_timeout < 1:
            raise ValueError("the checkpoint timeout must be at least 1 ms")
        self.timeout_ms = checkpoint_timeout
        return self

    def get_min_pause_between_checkpoints(self) -> int:
        return self.min_pause_ms

    def set_min_pause_between_checkpoints(
        self, min_pause_between_checkpoints: int
    ) -> CheckpointConfig:
        if min_pause_between_checkpoints < 0:
            raise ValueError("the pause between checkpoints must be 0 or more ms")
        self.min_pause_ms = min_pause_between_checkpoints
        return self

    def get_max_concurrent_checkpoints(self) -> int:
        return self.max_concurrent

    def set_max_concurrent_checkpoints(self, max_concurrent_checkpoints: int) -> CheckpointConfig:
        if max_concurrent_checkpoints < 1:
            raise ValueError("at least one checkpoint must be allowed at a time")
        self.max_concurrent = max_concurrent_checkpoints
        return self

    def get_tolerable_checkpoint_failure_number(self) -> int:
        return self.tolerable_failures

    def set_tolerable_checkpoint_failure_number(
        self, tolerable_checkpoint_failure_number: int
    ) -> CheckpointConfig:
        if tolerable_checkpoint_failure_number < 0:
            raise ValueError("the tolerable checkpoint failure number must be 0 or more")
        self.tolerable_failures = tolerable_checkpoint_failure_number
        return self

    def set_externalized_checkpoint_retention(self, retention_mode: Any) -> CheckpointConfig:
        self.retention = ExternalizedCheckpointRetention[retention_mode.name]
        return self

    enable_externalized_checkpoints = set_externalized_checkpoint_retention

    def is_externalized_checkpoints_enabled(self) -> bool:
        return self.retention.name != "NO_EXTERNALIZED_CHECKPOINTS"

    # Unaligned checkpoints: Strom aligns barriers (exactly-once) or does not wait for them
    # (at-least-once); these settings are kept for programs that set and read them.

    def _option(self, name: str, default: Any = False) -> Any:
        return self.__dict__.setdefault("_options", {}).get(name, default)

    def _set_option(self, name: str, value: Any) -> CheckpointConfig:
        self.__dict__.setdefault("_options", {})[name] = value
        return self

    def enable_unaligned_checkpoints(self, enabled: bool = True) -> CheckpointConfig:
        return self._set_option("unaligned", enabled)

    def disable_unaligned_checkpoints(self) -> CheckpointConfig:
        return self._set_option("unaligned", False)

    def is_unaligned_checkpoints_enabled(self) -> bool:
        return self._option("unaligned")

    def set_force_unaligned_checkpoints(
        self, force_unaligned_checkpoints: bool = True
    ) -> CheckpointConfig:
        return self._set_option("force_unaligned", force_unaligned_checkpoints)

    def is_force_unaligned_checkpoints(self) -> bool:
        return self._option("force_unaligned")

    def set_aligned_checkpoint_timeout(self, alignment_timeout: Any) -> CheckpointConfig:
        return self._set_option("aligned_timeout", alignment_timeout)

    def get_aligned_checkpoint_timeout(self) -> Any:
        from strom.common.time import Duration

        return self._option("aligned_timeout", Duration.of_millis(0))

    set_alignment_timeout = set_aligned_checkpoint_timeout
    get_alignment_timeout = get_aligned_checkpoint_timeout

    def set_fail_on_checkpointing_errors(
        self, fail_on_checkpointing_errors: bool
    ) -> CheckpointConfig:
        """As in Flink: failing checkpoints fail the job (tolerable failures 0) or not."""
        self.tolerable_failures = 0 if fail_on_checkpointing_errors else 2**31 - 1
        return self

    def is_fail_on_checkpointing_errors(self) -> bool:
        return self.tolerable_failures == 0

    def get_externalized_checkpoint_retention(self) -> ExternalizedCheckpointRetention:
        return self.retention

    def set_checkpoint_storage_dir(self, checkpoint_path: str) -> CheckpointConfig:
        self.storage = checkpoint_path
        return self

    def set_checkpoint_storage(self, storage: Any) -> CheckpointConfig:
        """Where checkpoints go: a ``FileSystemCheckpointStorage`` (or a directory path)."""
        path = storage.get_checkpoint_path() if hasattr(storage, "get_checkpoint_path") else storage
        self._storage_object = storage
        self.storage = None if path is None else str(path)
        return self

    def get_checkpoint_storage(self) -> Any:
        """The storage set with ``set_checkpoint_storage`` (else the directory, if any)."""
        return getattr(self, "_storage_object", None) or self.storage

    def to_configuration(self) -> dict[str, str]:
        """The same settings under Flink's configuration keys."""
        settings = {
            "execution.checkpointing.mode": self.mode.name.lower(),
            "execution.checkpointing.timeout": f"{self.timeout_ms} ms",
            "execution.checkpointing.min-pause": f"{self.min_pause_ms} ms",
            "execution.checkpointing.max-concurrent-checkpoints": str(self.max_concurrent),
            "execution.checkpointing.tolerable-failed-checkpoints": str(self.tolerable_failures),
            "execution.checkpointing.externalized-checkpoint-retention": self.retention.name,
        }
        if self.is_checkpointing_enabled():
            settings["execution.checkpointing.interval"] = f"{self.interval_ms} ms"
        if self.storage:
            settings["state.checkpoints.dir"] = self.storage
        return settings
