"""Encoders and schemas, as in ``pyflink.common.serialization``."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable
from typing import Any

from strom._unsupported import module_getattr

__all__ = [
    "ByteArraySchema",
    "DeserializationSchema",
    "Encoder",
    "SerializationSchema",
    "SimpleStringSchema",
]


def _check_charset(charset: str) -> str:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        raise ValueError(f"unknown charset {charset!r} (try 'UTF-8')") from None


class Encoder:
    """Turns one record into the bytes a row-format ``FileSink`` writes for it.

    Example::

        >>> Encoder.simple_string_encoder().encode(("a", 1))
        b"('a', 1)\\n"

    A custom encoder passes a function from value to bytes: ``Encoder(lambda v: ...)``.
    """

    def __init__(self, encode: Callable[[Any], bytes] | None = None) -> None:
        self._encode = encode

    def encode(self, value: Any) -> bytes:
        """The bytes written for ``value``."""
        if self._encode is None:
            raise NotImplementedError("an Encoder needs an encode function")
        return self._encode(value)

    def encode_batch(self, values: Iterable[Any]) -> bytes:
        """The bytes written for all ``values``, in order (what the file sink writes)."""
        encode = self.encode
        return b"".join([encode(v) for v in values])

    def for_type(self, type_info: Any) -> Encoder:
        """This encoder for a stream of ``type_info`` (the simple string encoder writes a typed
        value as PyFlink's Java sink does: ``(a,1)`` for a tuple)."""
        return self

    @staticmethod
    def simple_string_encoder(charset_name: str = "UTF-8") -> Encoder:
        """Writes ``str(value)`` in ``charset_name`` followed by a newline, per record."""
        return _SimpleStringEncoder(charset_name)


class _SimpleStringEncoder(Encoder):
    def __init__(self, charset_name: str, text: Callable[[Any], str] = str) -> None:
        super().__init__()
        self.charset = _check_charset(charset_name)
        self.text = text

    def encode(self, value: Any) -> bytes:
        return (self.text(value) + "\n").encode(self.charset)

    def encode_batch(self, values: Iterable[Any]) -> bytes:
        text = self.text
        strings = [text(v) for v in values]
        if not strings:
            return b""
        strings.append("")
        return "\n".join(strings).encode(self.charset)

    def for_type(self, type_info: Any) -> Encoder:
        from strom.common.type_values import java_string

        return _SimpleStringEncoder(self.charset, java_string(type_info))

    def __repr__(self) -> str:
        return f"Encoder.simple_string_encoder({self.charset!r})"


class SerializationSchema:
    """Turns a record into bytes (for connectors that send messages)."""

    def serialize(self, element: Any) -> bytes:
        raise NotImplementedError


class DeserializationSchema:
    """Turns bytes into a record (for connectors that receive messages)."""

    def deserialize(self, message: bytes) -> Any:
        raise NotImplementedError

    def is_end_of_stream(self, next_element: Any) -> bool:
        return False


class ByteArraySchema(SerializationSchema, DeserializationSchema):
    """Messages as they are: bytes in, bytes out."""

    def serialize(self, element: Any) -> bytes:
        return bytes(element)

    def deserialize(self, message: bytes) -> bytes:
        return bytes(message)


class SimpleStringSchema(SerializationSchema, DeserializationSchema):
    """Strings to and from bytes in one charset (UTF-8 by default).

    Example::

        >>> SimpleStringSchema().serialize("héllo")
        b'h\\xc3\\xa9llo'
    """

    def __init__(self, charset: str = "UTF-8") -> None:
        self.charset = _check_charset(charset)

    def serialize(self, element: Any) -> bytes:
        return str(element).encode(self.charset)

    def deserialize(self, message: bytes) -> str:
        return bytes(message).decode(self.charset)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimpleStringSchema) and other.charset == self.charset

    def __hash__(self) -> int:
        return hash(self.charset)

    def __repr__(self) -> str:
        return f"SimpleStringSchema({self.charset!r})"


__getattr__ = module_getattr(
    __name__,
    {
        "BulkWriterFactory": "bulk writers (Parquet, ORC, Avro) are Java libraries in PyFlink; "
        "use FileSink.for_row_format with an Encoder",
        "RowFieldExtractorSchema": "it belongs to PyFlink's Java Kafka and Kinesis sinks",
    },
)
