"""``TypeSerializer``, as ``pyflink.common.serializer``.

Strom sends records and windows as pickles and never asks for a serializer; programs that
define one (e.g. a custom ``WindowAssigner.get_window_serializer``) still run: these
serializers write and read pickles.
"""

from __future__ import annotations

import pickle
from io import BytesIO
from typing import Any, Generic, TypeVar

__all__ = ["TypeSerializer", "PickleTypeSerializer"]

T = TypeVar("T")


class TypeSerializer(Generic[T]):
    """Writes values of one type to a stream and reads them back."""

    def serialize(self, element: T, stream: BytesIO) -> None:
        raise NotImplementedError

    def deserialize(self, stream: BytesIO) -> T:
        raise NotImplementedError

    def _get_coder(self) -> Any:
        return None

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PickleTypeSerializer(TypeSerializer[Any]):
    """Any picklable value, length-prefixed."""

    def serialize(self, element: Any, stream: BytesIO) -> None:
        data = pickle.dumps(element)
        stream.write(len(data).to_bytes(4, "big"))
        stream.write(data)

    def deserialize(self, stream: BytesIO) -> Any:
        size = int.from_bytes(stream.read(4), "big")
        return pickle.loads(stream.read(size))
