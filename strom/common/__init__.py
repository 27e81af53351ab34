"""Common types of the API, with PyFlink's names (``pyflink.common`` → ``strom.common``)."""

from strom.common.configuration import Configuration
from strom.common.execution_config import ExecutionConfig
from strom.common.restart_strategy import RestartStrategies
from strom.common.serialization import (
    DeserializationSchema,
    Encoder,
    SerializationSchema,
    SimpleStringSchema,
)
from strom.common.time import Duration, Instant, Time
from strom.common.typeinfo import TypeInformation, Types
from strom.common.types import Row, RowKind
from strom.common.watermark_strategy import TimestampAssigner, Watermark, WatermarkStrategy

__all__ = [
    "Configuration",
    "DeserializationSchema",
    "Duration",
    "Encoder",
    "ExecutionConfig",
    "Instant",
    "RestartStrategies",
    "Row",
    "RowKind",
    "SerializationSchema",
    "SimpleStringSchema",
    "Time",
    "TimestampAssigner",
    "TypeInformation",
    "Types",
    "Watermark",
    "WatermarkStrategy",
]
