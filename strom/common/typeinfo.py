"""Type information, as in ``pyflink.common.typeinfo``.

Strom pickles records, so a type information does not choose a serializer; it describes what
a stream carries (for people reading a job, for ``Row`` field names, and for checks). Every
type information compares by value, prints readably and pickles.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = [
    "BasicArrayTypeInfo",
    "BasicType",
    "BasicTypeInfo",
    "InstantTypeInfo",
    "ListTypeInfo",
    "LocalTimeTypeInfo",
    "MapTypeInfo",
    "ObjectArrayTypeInfo",
    "PickledBytesTypeInfo",
    "PrimitiveArrayTypeInfo",
    "RowTypeInfo",
    "SqlTimeTypeInfo",
    "TupleTypeInfo",
    "TypeInformation",
    "Types",
]


class TypeInformation:
    """The description of the type of the records of a stream or of a state."""

    def _key(self) -> tuple[Any, ...]:
        """What makes two type informations of this class equal."""
        return ()

    def need_conversion(self) -> bool:
        """Whether values of this type change form between Python and the runtime (never:
        Strom's runtime holds the Python values)."""
        return False

    def to_internal_type(self, obj: Any) -> Any:
        return obj

    def from_internal_type(self, obj: Any) -> Any:
        return obj

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        return type(self).__name__

    __str__ = __repr__


def _check_type_info(value: Any, what: str) -> TypeInformation:
    if not isinstance(value, TypeInformation):
        raise TypeError(f"{what} must be a TypeInformation such as Types.INT(); got {value!r}")
    return value


class BasicType(Enum):
    """The basic (atomic) types, named as Flink names them."""

    STRING = "String"
    BYTE = "Byte"
    BOOLEAN = "Boolean"
    SHORT = "Short"
    INT = "Integer"
    LONG = "Long"
    FLOAT = "Float"
    DOUBLE = "Double"
    CHAR = "Char"
    BIG_INT = "BigInteger"
    BIG_DEC = "BigDecimal"
    INSTANT = "Instant"


class BasicTypeInfo(TypeInformation):
    """Strings, numbers, booleans, characters and big numbers."""

    def __init__(self, basic_type: BasicType) -> None:
        self._basic_type = basic_type

    def get_basic_type(self) -> BasicType:
        return self._basic_type

    def _key(self) -> tuple[Any, ...]:
        return (self._basic_type,)

    def __repr__(self) -> str:
        return self._basic_type.value

    __str__ = __repr__

    @staticmethod
    def STRING_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.STRING)

    @staticmethod
    def BOOLEAN_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.BOOLEAN)

    @staticmethod
    def BYTE_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.BYTE)

    @staticmethod
    def SHORT_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.SHORT)

    @staticmethod
    def INT_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.INT)

    @staticmethod
    def LONG_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.LONG)

    @staticmethod
    def FLOAT_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.FLOAT)

    @staticmethod
    def DOUBLE_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.DOUBLE)

    @staticmethod
    def CHAR_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.CHAR)

    @staticmethod
    def BIG_INT_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.BIG_INT)

    @staticmethod
    def BIG_DEC_TYPE_INFO() -> BasicTypeInfo:
        return BasicTypeInfo(BasicType.BIG_DEC)

    @staticmethod
    def INSTANT_TYPE_INFO() -> InstantTypeInfo:
        return InstantTypeInfo()


class InstantTypeInfo(BasicTypeInfo):
    """A point on the time line (``pyflink.common.time.Instant``)."""

    def __init__(self) -> None:
        super().__init__(BasicType.INSTANT)


class SqlTimeTypeInfo(TypeInformation):
    """``datetime.date``, ``datetime.time`` and ``datetime.datetime`` as SQL types."""

    def __init__(self, kind: str) -> None:
        self._kind = kind

    def _key(self) -> tuple[Any, ...]:
        return (self._kind,)

    def __repr__(self) -> str:
        return f"SqlTimeTypeInfo({self._kind})"

    __str__ = __repr__

    @staticmethod
    def DATE() -> SqlTimeTypeInfo:
        return SqlTimeTypeInfo("Date")

    @staticmethod
    def TIME() -> SqlTimeTypeInfo:
        return SqlTimeTypeInfo("Time")

    @staticmethod
    def TIMESTAMP() -> SqlTimeTypeInfo:
        return SqlTimeTypeInfo("Timestamp")


class LocalTimeTypeInfo(TypeInformation):
    """``datetime.date``, ``datetime.time`` and ``datetime.datetime`` as Java local times."""

    class TimeType(Enum):
        LOCAL_DATE = "LocalDate"
        LOCAL_TIME = "LocalTime"
        LOCAL_DATE_TIME = "LocalDateTime"

    def __init__(self, time_type: LocalTimeTypeInfo.TimeType) -> None:
        self._time_type = time_type

    def _key(self) -> tuple[Any, ...]:
        return (self._time_type,)

    def __repr__(self) -> str:
        return self._time_type.value

    __str__ = __repr__


class PrimitiveArrayTypeInfo(TypeInformation):
    """An array of a primitive element type (e.g. ``Types.PRIMITIVE_ARRAY(Types.INT())``)."""

    def __init__(self, element_type: TypeInformation) -> None:
        self._element_type = _check_type_info(element_type, "the element type")

    def get_element_type(self) -> TypeInformation:
        return self._element_type

    def _key(self) -> tuple[Any, ...]:
        return (self._element_type,)

    def __repr__(self) -> str:
        return f"{self._element_type!r}[]"

    __str__ = __repr__


class BasicArrayTypeInfo(PrimitiveArrayTypeInfo):
    """An array of boxed basic values (e.g. ``Types.BASIC_ARRAY(Types.STRING())``)."""

    def __repr__(self) -> str:
        return f"BasicArrayTypeInfo<{self._element_type!r}>"

    __str__ = __repr__


class ObjectArrayTypeInfo(PrimitiveArrayTypeInfo):
    """An array of any element type."""

    def __repr__(self) -> str:
        return f"ObjectArrayTypeInfo<{self._element_type!r}>"

    __str__ = __repr__


class PickledBytesTypeInfo(TypeInformation):
    """Any picklable Python object (the type of a stream whose type is not declared)."""

    def __repr__(self) -> str:
        return "PickledByteArrayTypeInfo"

    __str__ = __repr__

    @staticmethod
    def PICKLED_BYTE_ARRAY_TYPE_INFO() -> PickledBytesTypeInfo:
        return PickledBytesTypeInfo()


class RowTypeInfo(TypeInformation):
    """Rows (``strom.common.Row``) with named, typed fields; names default to f0, f1, ..."""

    def __init__(self, field_types: list[TypeInformation], field_names: list[str] | None = None):
        types = [_check_type_info(t, f"field type {i}") for i, t in enumerate(field_types)]
        if field_names is None:
            names = [f"f{i}" for i in range(len(types))]
        else:
            names = [str(n) for n in field_names]
            if len(names) != len(types):
                raise ValueError(f"{len(names)} field names for {len(types)} field types")
            if len(set(names)) != len(names):
                raise ValueError(f"field names must be unique; got {names}")
        self._field_types = types
        self._field_names = names

    def get_field_names(self) -> list[str]:
        return list(self._field_names)

    def get_field_types(self) -> list[TypeInformation]:
        return list(self._field_types)

    def get_field_index(self, field_name: str) -> int:
        """The position of ``field_name``, or -1 when the row has no such field."""
        try:
            return self._field_names.index(field_name)
        except ValueError:
            return -1

    def get_field_type(self, index: int) -> TypeInformation:
        return self._field_types[index]

    def get_arity(self) -> int:
        return len(self._field_types)

    def _key(self) -> tuple[Any, ...]:
        return (tuple(self._field_names), tuple(self._field_types))

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{n}: {t!r}" for n, t in zip(self._field_names, self._field_types, strict=True)
        )
        return f"RowTypeInfo({fields})"

    __str__ = __repr__


class TupleTypeInfo(TypeInformation):
    """Python tuples with typed positions."""

    def __init__(self, field_types: list[TypeInformation]) -> None:
        self._field_types = [
            _check_type_info(t, f"field type {i}") for i, t in enumerate(field_types)
        ]

    def get_field_types(self) -> list[TypeInformation]:
        return list(self._field_types)

    def get_arity(self) -> int:
        return len(self._field_types)

    def _key(self) -> tuple[Any, ...]:
        return tuple(self._field_types)

    def __repr__(self) -> str:
        return f"TupleTypeInfo({', '.join(repr(t) for t in self._field_types)})"

    __str__ = __repr__


class ListTypeInfo(TypeInformation):
    """Python lists of one element type."""

    def __init__(self, element_type: TypeInformation) -> None:
        self.elem_type = _check_type_info(element_type, "the element type")

    def get_element_type(self) -> TypeInformation:
        return self.elem_type

    def _key(self) -> tuple[Any, ...]:
        return (self.elem_type,)

    def __repr__(self) -> str:
        return f"ListTypeInfo<{self.elem_type!r}>"

    __str__ = __repr__


class MapTypeInfo(TypeInformation):
    """Python dicts of one key type and one value type."""

    def __init__(self, key_type_info: TypeInformation, value_type_info: TypeInformation):
        self._key_type_info = _check_type_info(key_type_info, "the key type")
        self._value_type_info = _check_type_info(value_type_info, "the value type")

    def get_key_type(self) -> TypeInformation:
        return self._key_type_info

    def get_value_type(self) -> TypeInformation:
        return self._value_type_info

    def _key(self) -> tuple[Any, ...]:
        return (self._key_type_info, self._value_type_info)

    def __repr__(self) -> str:
        return f"MapTypeInfo<{self._key_type_info!r}, {self._value_type_info!r}>"

    __str__ = __repr__


class Types:
    """The type informations a job declares, e.g. ``output_type=Types.TUPLE([Types.STRING(),
    Types.INT()])``.

    Example::

        >>> Types.ROW_NAMED(["word", "count"], [Types.STRING(), Types.LONG()])
        RowTypeInfo(word: String, count: Long)
    """

    @staticmethod
    def STRING() -> TypeInformation:
        return BasicTypeInfo.STRING_TYPE_INFO()

    @staticmethod
    def BYTE() -> TypeInformation:
        return BasicTypeInfo.BYTE_TYPE_INFO()

    @staticmethod
    def BOOLEAN() -> TypeInformation:
        return BasicTypeInfo.BOOLEAN_TYPE_INFO()

    @staticmethod
    def SHORT() -> TypeInformation:
        return BasicTypeInfo.SHORT_TYPE_INFO()

    @staticmethod
    def INT() -> TypeInformation:
        return BasicTypeInfo.INT_TYPE_INFO()

    @staticmethod
    def LONG() -> TypeInformation:
        return BasicTypeInfo.LONG_TYPE_INFO()

    @staticmethod
    def FLOAT() -> TypeInformation:
        return BasicTypeInfo.FLOAT_TYPE_INFO()

    @staticmethod
    def DOUBLE() -> TypeInformation:
        return BasicTypeInfo.DOUBLE_TYPE_INFO()

    @staticmethod
    def CHAR() -> TypeInformation:
        return BasicTypeInfo.CHAR_TYPE_INFO()

    @staticmethod
    def BIG_INT() -> TypeInformation:
        return BasicTypeInfo.BIG_INT_TYPE_INFO()

    @staticmethod
    def BIG_DEC() -> TypeInformation:
        return BasicTypeInfo.BIG_DEC_TYPE_INFO()

    @staticmethod
    def INSTANT() -> TypeInformation:
        return InstantTypeInfo()

    @staticmethod
    def SQL_DATE() -> TypeInformation:
        return SqlTimeTypeInfo.DATE()

    @staticmethod
    def SQL_TIME() -> TypeInformation:
        return SqlTimeTypeInfo.TIME()

    @staticmethod
    def SQL_TIMESTAMP() -> TypeInformation:
        return SqlTimeTypeInfo.TIMESTAMP()

    @staticmethod
    def LOCAL_DATE() -> TypeInformation:
        return LocalTimeTypeInfo(LocalTimeTypeInfo.TimeType.LOCAL_DATE)

    @staticmethod
    def LOCAL_TIME() -> TypeInformation:
        return LocalTimeTypeInfo(LocalTimeTypeInfo.TimeType.LOCAL_TIME)

    @staticmethod
    def LOCAL_DATE_TIME() -> TypeInformation:
        return LocalTimeTypeInfo(LocalTimeTypeInfo.TimeType.LOCAL_DATE_TIME)

    @staticmethod
    def PICKLED_BYTE_ARRAY() -> TypeInformation:
        return PickledBytesTypeInfo()

    @staticmethod
    def ROW(field_types: list[TypeInformation]) -> RowTypeInfo:
        """Rows whose fields have these types and the names f0, f1, ..."""
        return RowTypeInfo(field_types)

    @staticmethod
    def ROW_NAMED(field_names: list[str], field_types: list[TypeInformation]) -> RowTypeInfo:
        """Rows whose fields have these names and types."""
        return RowTypeInfo(field_types, field_names)

    @staticmethod
    def TUPLE(field_types: list[TypeInformation]) -> TupleTypeInfo:
        """Tuples whose positions have these types."""
        return TupleTypeInfo(field_types)

    @staticmethod
    def PRIMITIVE_ARRAY(element_type: TypeInformation) -> TypeInformation:
        """Arrays of a primitive type (BOOLEAN, BYTE, SHORT, INT, LONG, FLOAT, DOUBLE, CHAR)."""
        _check_type_info(element_type, "the element type")
        if not isinstance(element_type, BasicTypeInfo) or element_type.get_basic_type() in (
            BasicType.STRING,
            BasicType.BIG_INT,
            BasicType.BIG_DEC,
            BasicType.INSTANT,
        ):
            raise TypeError(
                f"PRIMITIVE_ARRAY takes a primitive element type (e.g. Types.INT()); got "
                f"{element_type!r}. Use Types.BASIC_ARRAY or Types.OBJECT_ARRAY instead"
            )
        return PrimitiveArrayTypeInfo(element_type)

    @staticmethod
    def BASIC_ARRAY(element_type: TypeInformation) -> TypeInformation:
        """Arrays of a basic type (e.g. STRING, INT)."""
        _check_type_info(element_type, "the element type")
        if not isinstance(element_type, BasicTypeInfo):
            raise TypeError(
                f"BASIC_ARRAY takes a basic element type (e.g. Types.STRING()); got "
                f"{element_type!r}. Use Types.OBJECT_ARRAY instead"
            )
        return BasicArrayTypeInfo(element_type)

    @staticmethod
    def OBJECT_ARRAY(element_type: TypeInformation) -> TypeInformation:
        """Arrays of any element type."""
        return ObjectArrayTypeInfo(element_type)

    @staticmethod
    def LIST(element_type_info: TypeInformation) -> TypeInformation:
        """Lists of one element type."""
        return ListTypeInfo(element_type_info)

    @staticmethod
    def MAP(key_type_info: TypeInformation, value_type_info: TypeInformation) -> TypeInformation:
        """Dicts of one key type and one value type."""
        return MapTypeInfo(key_type_info, value_type_info)
