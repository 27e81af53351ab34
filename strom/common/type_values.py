"""What a declared type does to the values of a stream, as in PyFlink.

In PyFlink a stream declared ``Types.ROW_NAMED(...)`` carries ``Row`` objects, ``Types.FLOAT()``
rounds to 32 bits, ``Types.INT()`` refuses numbers beyond 32 bits and ``Types.TUPLE`` gives
tuples, because each value is encoded with the declared type on its way to the JVM. Strom has no
JVM; :func:`shaper` gives the same values directly. A stream without a declared type (or
``Types.PICKLED_BYTE_ARRAY()``) keeps any Python object as it is.

PyFlink prints (and ``Encoder.simple_string_encoder()`` writes) a typed value as Java's
``toString()`` of the Java object it became: ``(apple,2)`` for a tuple, ``true`` for a boolean,
``1.0E10`` for a double. :func:`formatter` gives that text.
"""

from __future__ import annotations

import datetime
import decimal
import math
import struct
from collections.abc import Callable
from typing import Any

from strom.common.typeinfo import (
    BasicType,
    BasicTypeInfo,
    ListTypeInfo,
    LocalTimeTypeInfo,
    MapTypeInfo,
    PickledBytesTypeInfo,
    PrimitiveArrayTypeInfo,
    RowTypeInfo,
    SqlTimeTypeInfo,
    TupleTypeInfo,
    TypeInformation,
)
from strom.common.types import Row

__all__ = ["formatter", "java_double_string", "java_float_string", "java_string", "shaper"]

_INT_RANGES = {
    BasicType.BYTE: (-(2**7), 2**7 - 1, "BYTE"),
    BasicType.SHORT: (-(2**15), 2**15 - 1, "SHORT"),
    BasicType.INT: (-(2**31), 2**31 - 1, "INT"),
    BasicType.LONG: (-(2**63), 2**63 - 1, "LONG"),
}
_FLOAT32 = struct.Struct("f")


def _integer(low: int, high: int, name: str) -> Callable[[Any], int]:
    def shape(value: Any) -> int:
        if not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise TypeError(
                    f"Types.{name}() needs an int; got {type(value).__name__} {value!r}"
                )
        if not low <= value <= high:
            raise OverflowError(f"{value} is out of range for Types.{name}() ({low}..{high})")
        return int(value)

    return shape


def _float32(value: Any) -> float:
    try:
        return _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    except struct.error as error:
        raise TypeError(f"Types.FLOAT() needs a number; got {value!r} ({error})") from None
    except OverflowError:
        raise OverflowError(f"{value} is out of range for Types.FLOAT()") from None


def _double(value: Any) -> float:
    if not isinstance(value, (int, float)):
        raise TypeError(f"Types.DOUBLE() needs a number; got {type(value).__name__} {value!r}")
    return float(value)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"Types.STRING() needs a str; got {type(value).__name__} {value!r}")
    return value


def _basic_shaper(basic: BasicType) -> Callable[[Any], Any] | None:
    if basic in _INT_RANGES:
        return _integer(*_INT_RANGES[basic])
    return {
        BasicType.FLOAT: _float32,
        BasicType.DOUBLE: _double,
        BasicType.STRING: _string,
        BasicType.BOOLEAN: bool,
        BasicType.BIG_INT: int,
        BasicType.BIG_DEC: lambda v: v if isinstance(v, decimal.Decimal) else decimal.Decimal(v),
    }.get(basic)


def _nullable(shape: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    if shape is None:
        return lambda v: v
    return lambda v: None if v is None else shape(v)


def shaper(type_info: Any) -> Callable[[Any], Any] | None:
    """The function that turns a value into what a stream of ``type_info`` carries, or None
    when the type leaves values as they are."""
    if type_info is None or isinstance(type_info, PickledBytesTypeInfo):
        return None
    if isinstance(type_info, BasicTypeInfo):
        return _basic_shaper(type_info.get_basic_type())
    if isinstance(type_info, RowTypeInfo):
        return _row_shaper(type_info)
    if isinstance(type_info, TupleTypeInfo):
        fields = [_nullable(shaper(t)) for t in type_info.get_field_types()]

        def shape_tuple(value: Any) -> tuple:
            values = tuple(value)
            if len(values) != len(fields):
                raise ValueError(
                    f"{type_info!r} has {len(fields)} fields; got {len(values)}: {value!r}"
                )
            return tuple(f(v) for f, v in zip(fields, values, strict=True))

        return _fast_tuple(type_info.get_field_types(), fields, shape_tuple)
    if isinstance(type_info, ListTypeInfo | PrimitiveArrayTypeInfo):
        element_type = (
            type_info.get_element_type()
            if isinstance(type_info, PrimitiveArrayTypeInfo)
            else type_info.elem_type
        )
        element = _nullable(shaper(element_type))
        return lambda value: [element(v) for v in value]
    if isinstance(type_info, MapTypeInfo):
        key = _nullable(shaper(type_info.get_key_type()))
        item = _nullable(shaper(type_info.get_value_type()))
        return lambda value: {key(k): item(v) for k, v in value.items()}
    return None


def _fast_check(type_info: Any, name: str) -> str | None:
    """An expression true when ``name`` already is a value of ``type_info`` as shaped (so it
    can pass as it is), for the types where that test is cheap."""
    if not isinstance(type_info, BasicTypeInfo):
        return None
    basic = type_info.get_basic_type()
    if basic in _INT_RANGES:
        low, high, _ = _INT_RANGES[basic]
        return f"type({name}) is int and {low} <= {name} <= {high}"
    return {
        BasicType.STRING: f"type({name}) is str",
        BasicType.DOUBLE: f"type({name}) is float",
        BasicType.BOOLEAN: f"type({name}) is bool",
    }.get(basic)


def _fast_tuple(
    field_types: list, fields: list[Callable[[Any], Any]], slow: Callable[[Any], tuple]
) -> Callable[[Any], tuple]:
    """``slow`` with a fast path generated for the field types: a tuple whose fields already
    are what the types give passes through with one cheap test per field (a typed stream's
    records are shaped at every operator, so this path is per record)."""
    names = [f"x{i}" for i in range(len(fields))]
    parts = []
    for index, (name, field_type) in enumerate(zip(names, field_types, strict=True)):
        check = _fast_check(field_type, name)
        convert = f"_f{index}({name})"
        parts.append(f"({name} if {check} else {convert})" if check else convert)
    unpack = ", ".join(names) + ("," if len(names) == 1 else "")
    rebuilt = ", ".join(parts) + ("," if len(parts) == 1 else "")
    source = (
        "def shape_tuple(value):\n"
        "    if type(value) is not tuple or len(value) != _n:\n"
        "        return _slow(value)\n"
        f"    {unpack} = value\n"
        f"    return ({rebuilt})\n"
    )
    namespace: dict[str, Any] = {"_slow": slow, "_n": len(fields)}
    namespace.update({f"_f{i}": f for i, f in enumerate(fields)})
    exec(compile(source, "<strom tuple shaper>", "exec"), namespace)  # from the types only
    return namespace["shape_tuple"]


def _row_shaper(type_info: RowTypeInfo) -> Callable[[Any], Row]:
    names = type_info.get_field_names()
    fields = [_nullable(shaper(t)) for t in type_info.get_field_types()]

    def shape_row(value: Any) -> Row:
        if isinstance(value, Row):
            own = value.__dict__.get("_fields")
            if own is None or own == names:
                values = list(value)
            else:
                missing = [n for n in names if n not in own]
                if missing:
                    raise ValueError(f"Field names {missing} not exist in {own}.")
                values = [value[n] for n in names]
            kind = value.get_row_kind()
        elif isinstance(value, (tuple, list)):
            values, kind = list(value), None
        else:
            raise TypeError(f"{type_info!r} needs a Row; got {type(value).__name__} {value!r}")
        if len(values) != len(fields):
            raise ValueError(f"{type_info!r} has {len(fields)} fields; got {len(values)}")
        row = Row(*(f(v) for f, v in zip(fields, values, strict=True)))
        row._fields = list(names)
        if kind is not None:
            row._row_kind = kind
        return row

    return shape_row


# ------------------------------------------------------------------ Java's toString()


def _java_decimal(digits: str, exponent: int) -> str:
    """Java's ``Double.toString`` layout of ``0.<digits> * 10**exponent`` (digits shortest)."""
    if -3 < exponent <= 7:  # 1e-3 <= |x| < 1e7: plain notation
        if exponent <= 0:
            return "0." + "0" * -exponent + digits
        whole, fraction = digits[:exponent].ljust(exponent, "0"), digits[exponent:]
        return f"{whole}.{fraction or '0'}"
    return f"{digits[0]}.{digits[1:] or '0'}E{exponent - 1}"


def _java_floating(value: float, shortest: str) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digits, exponent = decimal.Decimal(shortest).normalize().as_tuple()
    text = "".join(map(str, digits))
    return ("-" if sign else "") + _java_decimal(text, exponent + len(text))


def java_double_string(value: float) -> str:
    """``Double.toString(value)``: ``1.0``, ``110.1``, ``1.0E10``, ``1.0E-4``."""
    return _java_floating(value, repr(float(value)))


def java_float_string(value: float) -> str:
    """``Float.toString(value)``: the shortest digits that give back the same 32-bit float."""
    value = _float32(value)
    shortest = repr(value)
    if math.isfinite(value):
        for precision in range(1, 10):
            candidate = f"{value:.{precision}g}"
            if _float32(float(candidate)) == value:
                shortest = candidate
                break
    return _java_floating(value, shortest)


def _java_string_of(type_info: Any) -> Callable[[Any], str]:
    """Java's ``toString()`` of a value of ``type_info`` nested in a tuple, row or list."""
    if isinstance(type_info, BasicTypeInfo):
        basic = type_info.get_basic_type()
        if basic is BasicType.BOOLEAN:
            text: Callable[[Any], str] = lambda v: "true" if v else "false"  # noqa: E731
        elif basic is BasicType.DOUBLE:
            text = java_double_string
        elif basic is BasicType.FLOAT:
            text = java_float_string
        elif basic is BasicType.INSTANT:
            text = _java_instant
        else:
            text = str
    elif isinstance(type_info, TupleTypeInfo):
        parts = [_java_string_of(t) for t in type_info.get_field_types()]
        text = lambda v: "(" + ",".join(p(x) for p, x in zip(parts, v, strict=True)) + ")"  # noqa: E731
    elif isinstance(type_info, RowTypeInfo):
        parts = [_java_string_of(t) for t in type_info.get_field_types()]
        text = lambda v: (  # noqa: E731
            f"{v.get_row_kind().short_string()}["
            + ", ".join(p(x) for p, x in zip(parts, v, strict=True))
            + "]"
        )
    elif isinstance(type_info, ListTypeInfo | PrimitiveArrayTypeInfo):
        element = _java_string_of(
            type_info.get_element_type()
            if isinstance(type_info, PrimitiveArrayTypeInfo)
            else type_info.elem_type
        )
        text = lambda v: "[" + ", ".join(element(x) for x in v) + "]"  # noqa: E731
    elif isinstance(type_info, MapTypeInfo):
        key = _java_string_of(type_info.get_key_type())
        item = _java_string_of(type_info.get_value_type())
        text = lambda v: "{" + ", ".join(f"{key(k)}={item(x)}" for k, x in v.items()) + "}"  # noqa: E731
    elif isinstance(type_info, SqlTimeTypeInfo | LocalTimeTypeInfo):
        text = _java_time(type_info)
    else:
        text = str
    return lambda v: "null" if v is None else text(v)


def _java_instant(value: Any) -> str:
    seconds = getattr(value, "seconds", None)
    nanos = getattr(value, "nanos", 0)
    if seconds is None:
        return str(value)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        fraction = f"{nanos:09d}"
        while fraction.endswith("000"):
            fraction = fraction[:-3]
        text += "." + fraction
    return text + "Z"


def _java_time(type_info: Any) -> Callable[[Any], str]:
    sql = isinstance(type_info, SqlTimeTypeInfo)

    def text(value: Any) -> str:
        if isinstance(value, datetime.datetime):
            if sql:  # java.sql.Timestamp: "2024-01-02 03:04:05.0"
                fraction = f"{value.microsecond:06d}".rstrip("0") or "0"
                return value.strftime("%Y-%m-%d %H:%M:%S") + "." + fraction
            text = value.isoformat()
            return text[:-3] if text.endswith(":00") and value.microsecond == 0 else text
        if isinstance(value, datetime.time) and not sql:
            text = value.isoformat()
            return text[:-3] if text.endswith(":00") and value.microsecond == 0 else text
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    return text


def _python_string(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _row_print(value: Any) -> str:
    return f"{value.get_row_kind()}[{','.join(str(item) for item in value)}]"


def formatter(type_info: TypeInformation | None) -> Callable[[Any], str]:
    """The text ``print()`` shows for a record of a stream of ``type_info``, as PyFlink: Python's
    ``str()`` of an untyped value, ``+I[a,1]`` for a row (PyFlink joins a row's fields itself),
    else Java's ``toString()`` of the value's Java form."""
    if type_info is None or isinstance(type_info, PickledBytesTypeInfo):
        return _python_string
    if isinstance(type_info, RowTypeInfo):
        return _row_print
    return _java_string_of(type_info)


def java_string(type_info: TypeInformation | None) -> Callable[[Any], str]:
    """The text a Java sink writes for a record of ``type_info`` (``Encoder.
    simple_string_encoder()`` in a ``FileSink``): Java's ``toString()`` of its Java form,
    ``+I[a, 1]`` for a row; Python's ``str()`` of an untyped value."""
    if type_info is None or isinstance(type_info, PickledBytesTypeInfo):
        return _python_string
    return _java_string_of(type_info)
