"""Common types of the API, with PyFlink's names (``pyflink.common`` → ``strom.common``)."""

from typing import Any

from strom._unsupported import JVM_FORMAT, module_getattr
from strom.common.completable_future import CompletableFuture
from strom.common.config_options import ConfigOption, ConfigOptions
from strom.common.configuration import Configuration
from strom.common.execution_config import ExecutionConfig
from strom.common.input_dependency_constraint import InputDependencyConstraint
from strom.common.job_id import JobID
from strom.common.job_status import JobStatus
from strom.common.restart_strategy import RestartStrategies, RestartStrategyConfiguration
from strom.common.serialization import (
    ByteArraySchema,
    DeserializationSchema,
    Encoder,
    SerializationSchema,
    SimpleStringSchema,
)
from strom.common.serializer import TypeSerializer
from strom.common.time import Duration, Instant, Time
from strom.common.typeinfo import TypeInformation, Types
from strom.common.types import Row, RowKind
from strom.common.watermark_strategy import TimestampAssigner, Watermark, WatermarkStrategy

__all__ = [
    "ByteArraySchema",
    "CompletableFuture",
    "ConfigOption",
    "ConfigOptions",
    "Configuration",
    "DeserializationSchema",
    "Duration",
    "Encoder",
    "ExecutionConfig",
    "Instant",
    "InputDependencyConstraint",
    "JobClient",
    "JobExecutionResult",
    "JobID",
    "JobStatus",
    "RestartStrategies",
    "RestartStrategyConfiguration",
    "Row",
    "RowKind",
    "SerializationSchema",
    "SimpleStringSchema",
    "Time",
    "TimestampAssigner",
    "TypeInformation",
    "TypeSerializer",
    "Types",
    "Watermark",
    "WatermarkStrategy",
]

_unsupported = module_getattr(
    __name__,
    {
        "AssignerWithPeriodicWatermarksWrapper": "it wraps a Java watermark assigner; use "
        "WatermarkStrategy with a TimestampAssigner",
        **dict.fromkeys(
            [
                "AvroRowDeserializationSchema",
                "AvroRowSerializationSchema",
                "CsvRowDeserializationSchema",
                "CsvRowSerializationSchema",
                "JsonRowDeserializationSchema",
                "JsonRowSerializationSchema",
            ],
            JVM_FORMAT,
        ),
    },
)


def __getattr__(name: str) -> Any:
    # Defined with the environment, which imports this package: loaded on first use.
    if name in ("JobClient", "JobExecutionResult"):
        from strom.datastream import stream_execution_environment

        return getattr(stream_execution_environment, name)
    return _unsupported(name)
