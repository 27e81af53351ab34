"""State backends, as ``pyflink.datastream.state_backend``.

Strom keeps keyed state in the task's memory and snapshots it to the checkpoint storage, which
is what Flink's ``HashMapStateBackend`` does. ``EmbeddedRocksDBStateBackend`` is accepted so
that programs run unchanged; Strom then logs that state stays on the heap (RocksDB is a native
library PyFlink drives from its JVM).
"""

from __future__ import annotations

import logging
from enum import Enum

from strom._unsupported import module_getattr

__all__ = [
    "EmbeddedRocksDBStateBackend",
    "HashMapStateBackend",
    "PredefinedOptions",
    "StateBackend",
]

log = logging.getLogger(__name__)


class StateBackend:
    """Where a job's working state lives (``env.set_state_backend(...)``)."""


class HashMapStateBackend(StateBackend):
    """State as Python objects in the task's memory: Strom's state backend."""

    def __repr__(self) -> str:
        return "HashMapStateBackend()"


class PredefinedOptions(Enum):
    """RocksDB tuning presets (accepted; Strom has no RocksDB)."""

    DEFAULT = 0
    SPINNING_DISK_OPTIMIZED = 1
    SPINNING_DISK_OPTIMIZED_HIGH_MEM = 2
    FLASH_SSD_OPTIMIZED = 3


class EmbeddedRocksDBStateBackend(StateBackend):
    """Accepted for PyFlink programs; Strom keeps the state on the heap as
    ``HashMapStateBackend`` does (and says so in the log)."""

    def __init__(self, enable_incremental_checkpointing: bool | None = None) -> None:
        self._incremental = bool(enable_incremental_checkpointing)
        self._paths: list[str] = []
        self._transfer_threads = 4
        self._options: str | None = None
        self._predefined = PredefinedOptions.DEFAULT
        log.info(
            "EmbeddedRocksDBStateBackend: Strom keeps keyed state in memory (as "
            "HashMapStateBackend) and snapshots it to the checkpoint storage"
        )

    def is_incremental_checkpoints_enabled(self) -> bool:
        return self._incremental

    def set_db_storage_paths(self, *paths: str) -> None:
        self._paths = list(paths)

    def get_db_storage_paths(self) -> list[str]:
        return list(self._paths)

    def set_predefined_options(self, options: PredefinedOptions) -> None:
        self._predefined = options

    def get_predefined_options(self) -> PredefinedOptions:
        return self._predefined

    def set_options(self, options_factory_class_name: str) -> None:
        self._options = options_factory_class_name

    def get_options(self) -> str | None:
        return self._options

    def get_number_of_transfer_threads(self) -> int:
        return self._transfer_threads

    def set_number_of_transfer_threads(self, number_of_transfering_threads: int) -> None:
        self._transfer_threads = number_of_transfering_threads

    def __repr__(self) -> str:
        return "EmbeddedRocksDBStateBackend()"


__getattr__ = module_getattr(
    __name__, {"CustomStateBackend": "it wraps a state backend written in Java"}
)
