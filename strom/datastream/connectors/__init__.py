"""Connectors, with PyFlink's names (``pyflink.datastream.connectors``)."""

import importlib
from typing import Any

from strom.datastream.connectors import (
    base,
    collection,
    file_system,
    jdbc,
    number_seq,
    postgres_cdc,
    redis,
)
from strom.datastream.connectors.base import (
    DeliveryGuarantee,
    Sink,
    SinkWriter,
    Source,
    SourceReader,
)
from strom.datastream.connectors.file_system import (
    BucketAssigner,
    FileSink,
    FileSource,
    FileSourceBuilder,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
)
from strom.datastream.connectors.number_seq import NumberSequenceSource

__all__ = [
    "BucketAssigner",
    "DeliveryGuarantee",
    "FileSink",
    "FileSource",
    "FileSourceBuilder",
    "NumberSequenceSource",
    "OutputFileConfig",
    "RollingPolicy",
    "StreamFormat",
    "Sink",
    "SinkWriter",
    "Source",
    "SourceReader",
    "base",
    "collection",
    "file_system",
    "jdbc",
    "number_seq",
    "postgres_cdc",
    "redis",
]

# The other names PyFlink puts on this package, by the submodule that says why Strom lacks them.
_SUBMODULE_OF = {
    **dict.fromkeys(
        ["FileEnumeratorProvider", "FileSplitAssignerProvider", "StreamingFileSink"],
        "file_system",
    ),
    **dict.fromkeys(["JdbcConnectionOptions", "JdbcExecutionOptions", "JdbcSink"], "jdbc"),
    **dict.fromkeys(
        ["FlinkKafkaConsumer", "FlinkKafkaProducer", "KafkaSource", "Semantic"], "kafka"
    ),
    **dict.fromkeys(
        [
            "DynamicKafkaSource",
            "DynamicKafkaSourceBuilder",
            "KafkaMetadataService",
            "KafkaRecordDeserializationSchema",
            "KafkaStreamSetSubscriber",
            "KafkaStreamSubscriber",
            "SingleClusterTopicMetadataService",
            "StreamPatternSubscriber",
        ],
        "dynamic_kafka",
    ),
    **dict.fromkeys(["PulsarSource", "PulsarSourceBuilder", "StartCursor", "StopCursor"], "pulsar"),
    **dict.fromkeys(["RMQConnectionConfig", "RMQSink", "RMQSource"], "rabbitmq"),
}


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
