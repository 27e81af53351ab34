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

    def set_checkpointing_mode(self, mode: CheckpointingMode) -> CheckpointConfig:
        if not isinstance(mode, CheckpointingMode):
            raise TypeError("set_checkpointing_mode() takes a CheckpointingMode")
        self.mode = mode
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

    def set_min_pause_between_checkpoints(self, min_pause: int) -> CheckpointConfig:
        if min_pause < 0:
            raise ValueError("the pause between checkpoints must be 0 or more ms")
        self.min_pause_ms = min_pause
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

    def set_tolerable_checkpoint_failure_number(self, number: int) -> CheckpointConfig:
        if number < 0:
            raise ValueError("the tolerable checkpoint failure number must be 0 or more")
        self.tolerable_failures = number
        return self

    def set_externalized_checkpoint_retention(self, retention: Any) -> CheckpointConfig:
        self.retention = ExternalizedCheckpointRetention[retention.name]
        return self

    enable_externalized_checkpoints = set_externalized_checkpoint_retention

    def get_externalized_checkpoint_retention(self) -> ExternalizedCheckpointRetention:
        return self.retention

    def set_checkpoint_storage_dir(self, checkpoint_path: str) -> CheckpointConfig:
        self.storage = checkpoint_path
        return self

    def get_checkpoint_storage(self) -> str | None:
        return self.storage

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
