"""PyFlink names Strom does not provide, and the error that says so.

A PyFlink program that imports such a name gets :class:`~strom.errors.UnsupportedFeatureError`
("not supported in Strom: ...", with the reason) at the import, instead of an ``ImportError``
that would look like a typo or a broken installation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from strom.errors import UnsupportedFeatureError

JVM_CONNECTOR = (
    "this connector is a Java library that PyFlink runs in its JVM; Strom has no JVM. "
    "Read or write the system from a SourceFunction/SinkFunction (or a connector Source/Sink) "
    "with a Python client library instead"
)
JVM_FORMAT = (
    "this format is a Java library that PyFlink runs in its JVM; Strom has no JVM. Use a "
    "row format (FileSink.for_row_format with an Encoder) or parse records in a map()"
)
NO_SERIALIZERS = (
    "Strom sends records as pickles, so it has no type serializers to choose or configure"
)
NOT_BUILT = "Strom does not implement this yet"


def raise_unsupported(path: str, reason: str) -> NoReturn:
    raise UnsupportedFeatureError(f"not supported in Strom: {path}: {reason}")


def module_getattr(module: str, reasons: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that raises the clear error for each name of ``reasons``
    (``{"*": reason}`` covers every public name) and ``AttributeError`` for other names."""

    def __getattr__(name: str) -> Any:
        reason = reasons.get(name)
        if reason is None and not name.startswith("_"):
            reason = reasons.get("*")
        if reason is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        raise_unsupported(f"{module.replace('strom', 'pyflink', 1)}.{name}", reason)

    return __getattr__
