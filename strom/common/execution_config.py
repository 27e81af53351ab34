"""``ExecutionConfig``, as in ``pyflink.common.execution_config`` (the settings Strom uses).

``env.get_config()`` returns one bound to its environment: parallelism and job parameters
set here are the environment's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExecutionConfig"]

DEFAULT_AUTO_WATERMARK_INTERVAL_MS = 200


class ExecutionConfig:
    """Per-job execution settings.

    Example::

        config = env.get_config()
        config.set_auto_watermark_interval(100)
        config.set_global_job_parameters({"threshold": "10"})
    """

    def __init__(self, environment: Any = None) -> None:
        self._environment = environment
        self._auto_watermark_interval_ms = DEFAULT_AUTO_WATERMARK_INTERVAL_MS
        self._parallelism: int | None = None
        self._max_parallelism: int | None = None
        self._object_reuse = False
        self._job_parameters: dict[str, str] = (
            environment._job_parameters
            if isinstance(getattr(environment, "_job_parameters", None), dict)
            else {}
        )

    def set_auto_watermark_interval(self, interval: int) -> ExecutionConfig:
        """Emit watermarks every ``interval`` ms; 0 disables periodic watermarks."""
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
            raise ValueError(f"the auto watermark interval must be an int >= 0; got {interval!r}")
        self._auto_watermark_interval_ms = interval
        return self

    def get_auto_watermark_interval(self) -> int:
        return self._auto_watermark_interval_ms

    def set_parallelism(self, parallelism: int) -> ExecutionConfig:
        if self._environment is not None:
            self._environment.set_parallelism(parallelism)
        else:
            if not isinstance(parallelism, int) or parallelism < 1:
                raise ValueError(f"parallelism must be an int of at least 1; got {parallelism!r}")
            self._parallelism = parallelism
        return self

    def get_parallelism(self) -> int:
        if self._environment is not None:
            return self._environment.get_parallelism()
        return self._parallelism or 1

    def set_max_parallelism(self, max_parallelism: int) -> ExecutionConfig:
        if self._environment is not None:
            self._environment.set_max_parallelism(max_parallelism)
        else:
            if not isinstance(max_parallelism, int) or not 1 <= max_parallelism <= 32768:
                raise ValueError(
                    f"max parallelism must be from 1 to 32768; got {max_parallelism!r}"
                )
            self._max_parallelism = max_parallelism
        return self

    def get_max_parallelism(self) -> int:
        if self._environment is not None:
            return self._environment.get_max_parallelism()
        return self._max_parallelism or 128

    def enable_object_reuse(self) -> ExecutionConfig:
        """Accepted for compatibility; chained Strom operators always pass objects directly."""
        self._object_reuse = True
        return self

    def disable_object_reuse(self) -> ExecutionConfig:
        self._object_reuse = False
        return self

    def is_object_reuse_enabled(self) -> bool:
        return self._object_reuse

    def set_global_job_parameters(self, global_job_parameters_dict: dict) -> ExecutionConfig:
        """Parameters every function reads with ``runtime_context.get_job_parameter(key)``."""
        self._job_parameters.clear()
        self._job_parameters.update(
            {str(k): str(v) for k, v in dict(global_job_parameters_dict).items()}
        )
        return self

    def get_global_job_parameters(self) -> dict[str, str]:
        return dict(self._job_parameters)

    # Settings of Flink's JVM runtime (serializers, closure cleaning, latency markers) that
    # have no effect in Strom; kept so that programs setting and reading them run unchanged.

    def _flag(self, name: str, default: Any = False) -> Any:
        return self.__dict__.setdefault("_flags", {}).get(name, default)

    def _set(self, name: str, value: Any) -> ExecutionConfig:
        self.__dict__.setdefault("_flags", {})[name] = value
        return self

    def enable_closure_cleaner(self) -> ExecutionConfig:
        return self._set("closure_cleaner", True)

    def disable_closure_cleaner(self) -> ExecutionConfig:
        return self._set("closure_cleaner", False)

    def is_closure_cleaner_enabled(self) -> bool:
        return self._flag("closure_cleaner", True)

    def enable_generic_types(self) -> ExecutionConfig:
        return self._set("generic_types_disabled", False)

    def disable_generic_types(self) -> ExecutionConfig:
        return self._set("generic_types_disabled", True)

    def has_generic_types_disabled(self) -> bool:
        return self._flag("generic_types_disabled")

    def enable_auto_generated_uids(self) -> ExecutionConfig:
        return self._set("auto_uids", True)

    def disable_auto_generated_uids(self) -> ExecutionConfig:
        return self._set("auto_uids", False)

    def has_auto_generated_uids_enabled(self) -> bool:
        return self._flag("auto_uids", True)

    def enable_force_kryo(self) -> ExecutionConfig:
        return self._set("force_kryo", True)

    def disable_force_kryo(self) -> ExecutionConfig:
        return self._set("force_kryo", False)

    def is_force_kryo_enabled(self) -> bool:
        return self._flag("force_kryo")

    def enable_force_avro(self) -> ExecutionConfig:
        return self._set("force_avro", True)

    def disable_force_avro(self) -> ExecutionConfig:
        return self._set("force_avro", False)

    def is_force_avro_enabled(self) -> bool:
        return self._flag("force_avro")

    def get_default_kryo_serializer_classes(self) -> dict[str, str]:
        return {}

    def get_registered_kryo_types(self) -> list[str]:
        return []

    def get_registered_pojo_types(self) -> list[str]:
        return []

    def set_latency_tracking_interval(self, interval: int) -> ExecutionConfig:
        return self._set("latency_tracking_interval", interval)

    def get_latency_tracking_interval(self) -> int:
        return self._flag("latency_tracking_interval", 0)

    def set_task_cancellation_interval(self, interval: int) -> ExecutionConfig:
        return self._set("task_cancellation_interval", interval)

    def get_task_cancellation_interval(self) -> int:
        return self._flag("task_cancellation_interval", 30000)

    def set_task_cancellation_timeout(self, timeout: int) -> ExecutionConfig:
        return self._set("task_cancellation_timeout", timeout)

    def get_task_cancellation_timeout(self) -> int:
        return self._flag("task_cancellation_timeout", 180000)

    def set_use_snapshot_compression(self, use_snapshot_compression: bool) -> ExecutionConfig:
        return self._set("snapshot_compression", use_snapshot_compression)

    def is_use_snapshot_compression(self) -> bool:
        return self._flag("snapshot_compression")

    def __repr__(self) -> str:
        return (
            f"ExecutionConfig(parallelism={self.get_parallelism()}, "
            f"auto_watermark_interval={self._auto_watermark_interval_ms} ms)"
        )
