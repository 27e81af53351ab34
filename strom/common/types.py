"""``Row`` and ``RowKind``, as in ``pyflink.common.types``."""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any, NoReturn

__all__ = ["Row", "RowKind"]


class RowKind(Enum):
    """What a row means in a changelog: an insert, the two halves of an update, or a delete."""

    INSERT = 0
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3

    def short_string(self) -> str:
        """``+I``, ``-U``, ``+U`` or ``-D``, as Flink prints changelog rows."""
        return _SHORT_STRINGS[self]

    @staticmethod
    def from_short_string(text: str) -> RowKind:
        """The kind whose :meth:`short_string` is ``text``."""
        for kind, short in _SHORT_STRINGS.items():
            if short == text:
                return kind
        raise ValueError(f"unknown row kind {text!r}; expected one of +I, -U, +U, -D")

    def __str__(self) -> str:
        return self.short_string()

    def to_j_row_kind(self) -> NoReturn:
        from strom._unsupported import raise_unsupported

        raise_unsupported("pyflink.common.RowKind.to_j_row_kind", "Strom has no JVM")


_SHORT_STRINGS = {
    RowKind.INSERT: "+I",
    RowKind.UPDATE_BEFORE: "-U",
    RowKind.UPDATE_AFTER: "+U",
    RowKind.DELETE: "-D",
}

_OWN_ATTRIBUTES = ("_values", "_fields", "_row_kind")


def _create_row(fields: list[str] | None, values: Any, row_kind: RowKind | None = None) -> Row:
    """Rebuild a row (the target of ``Row.__reduce__`` and of calling a row "class")."""
    row = Row(*values)
    if fields is not None:
        row._fields = list(fields)
    if row_kind is not None:
        row._row_kind = row_kind
    return row


class Row:
    """A record of fields reachable by position, and by name when the row has names.

    Rows are made from positional values, from keyword values (their order is kept), or used
    as a "class" of named rows::

        >>> row = Row(name="Alice", age=11)
        >>> row
        Row(name='Alice', age=11)
        >>> row["name"], row.age, row[1]
        ('Alice', 11, 11)
        >>> Person = Row("name", "age")
        >>> Person("Bob", 12)
        Row(name='Bob', age=12)
        >>> Row(1, "a")[0]
        1
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and kwargs:
            raise ValueError("Row takes positional or keyword values, not both")
        if kwargs:
            self._fields = list(kwargs)
            self._values = list(kwargs.values())
        else:
            self._values = list(args)
        self._row_kind = RowKind.INSERT

    # -------------------------------------------------------------- kind and names

    def get_row_kind(self) -> RowKind:
        """The changelog kind of this row (``RowKind.INSERT`` unless set)."""
        return self._row_kind

    def set_row_kind(self, row_kind: RowKind) -> None:
        """Set the changelog kind of this row."""
        if not isinstance(row_kind, RowKind):
            raise TypeError(f"set_row_kind() takes a RowKind; got {row_kind!r}")
        self._row_kind = row_kind

    def set_field_names(self, field_names: list[str]) -> None:
        """Name the fields of this row (as many names as values)."""
        names = list(field_names)
        if len(names) != len(self._values):
            raise ValueError(f"{len(names)} field names for a row of {len(self._values)} values")
        self._fields = names

    def as_dict(self, recursive: bool = False) -> dict[str, Any]:
        """The row as ``{name: value}``; with ``recursive``, nested rows become dicts too."""
        fields = self.__dict__.get("_fields")
        if fields is None:
            raise TypeError("as_dict() needs a row with field names, e.g. Row(name='a', age=1)")
        if not recursive:
            return dict(zip(fields, self._values, strict=True))

        def convert(value: Any) -> Any:
            if isinstance(value, Row):
                return value.as_dict(True) if "_fields" in value.__dict__ else value
            if isinstance(value, list):
                return [convert(v) for v in value]
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            return value

        return {name: convert(value) for name, value in zip(fields, self._values, strict=True)}

    @staticmethod
    def of_kind(row_kind: RowKind, *args: Any, **kwargs: Any) -> Row:
        """A row of the given kind: ``Row.of_kind(RowKind.DELETE, 1, "a")``."""
        row = Row(*args, **kwargs)
        row.set_row_kind(row_kind)
        return row

    def get_fields_by_names(self, names: list[str]) -> list[Any]:
        """The values of the fields ``names``, in that order."""
        fields = self.__dict__.get("_fields")
        if fields is None or list(names) == fields:
            return list(self._values)
        unknown = [name for name in names if name not in fields]
        if unknown:
            raise ValueError(f"Field names {unknown} not exist in {fields}.")
        return [self._values[fields.index(name)] for name in names]

    # -------------------------------------------------------------- access

    def _index_of(self, name: str) -> int:
        fields = self.__dict__.get("_fields")
        if fields is None:
            raise KeyError(f"{name!r}: this row has no field names (it was made positionally)")
        try:
            return fields.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not a field of this row; fields are {fields}") from None

    def __getitem__(self, item: int | slice | str) -> Any:
        if isinstance(item, (int, slice)):
            return self._values[item]
        return self._values[self._index_of(item)]

    def __setitem__(self, key: int | slice | str, value: Any) -> None:
        if isinstance(key, (int, slice)):
            self._values[key] = value
        else:
            self._values[self._index_of(key)] = value

    def __getattr__(self, item: str) -> Any:
        # Called only when normal lookup fails: a field by name.
        if item.startswith("_"):
            raise AttributeError(item)
        fields = self.__dict__.get("_fields")
        if fields is None or item not in fields:
            raise AttributeError(f"Row has no field {item!r}")
        return self._values[fields.index(item)]

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in _OWN_ATTRIBUTES:
            raise AttributeError(f"cannot set {key!r} on a Row; use row[{key!r}] = value")
        self.__dict__[key] = value

    def __call__(self, *args: Any) -> Row:
        """Use this row's values as field names: ``Row("name", "age")("Alice", 11)``."""
        if len(args) != len(self):
            raise ValueError(
                f"cannot create a Row with fields {list(self._values)}: expected "
                f"{len(self)} values but got {len(args)}"
            )
        return _create_row(list(self._values), args, self._row_kind)

    def __contains__(self, item: Any) -> bool:
        fields = self.__dict__.get("_fields")
        return item in (fields if fields is not None else self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    # -------------------------------------------------------------- value semantics

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return False
        return (
            self.__dict__.get("_fields") == other.__dict__.get("_fields")
            and self._row_kind == other._row_kind
            and list(self._values) == list(other._values)
        )

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __reduce__(self) -> tuple[Any, ...]:
        return _create_row, (self.__dict__.get("_fields"), tuple(self._values), self._row_kind)

    def __repr__(self) -> str:
        fields = self.__dict__.get("_fields")
        if fields is not None:
            inner = ", ".join(f"{k}={v!r}" for k, v in zip(fields, self._values, strict=True))
            return f"Row({inner})"
        # as PyFlink shows a row without field names
        return f"<Row({', '.join(repr(v) for v in self._values)})>"
