"""Connectors, with PyFlink's names (``pyflink.datastream.connectors``)."""

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

__all__ = [
    "DeliveryGuarantee",
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
