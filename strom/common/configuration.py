"""``Configuration``, as in ``pyflink.common.configuration``: a map of string keys to strings.

The keys are the ones of ``conf/strom-conf.yaml`` (Flink's names); a job that uses a
configuration has its keys checked by the engine, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Configuration"]

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


class Configuration:
    """Lightweight key/value settings, stored as strings.

    Example::

        >>> config = Configuration().set_integer("parallelism.default", 4)
        >>> config.get_integer("parallelism.default", 1)
        4
        >>> config.get_string("parallelism.default")
        '4'
        >>> env = StreamExecutionEnvironment.get_execution_environment(config)  # doctest: +SKIP
    """

    def __init__(self, other: Configuration | Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, str] = {}
        if other is not None:
            items = other.to_dict() if isinstance(other, Configuration) else dict(other)
            for key, value in items.items():
                self._data[str(key)] = _to_string(value)

    # -------------------------------------------------------------- typed access

    @classmethod
    def from_dict(cls, map: dict[str, str]) -> Configuration:  # noqa: A002 - PyFlink's name
        """A configuration holding the entries of ``map``."""
        configuration = cls()
        for key, value in map.items():
            configuration.set_string(key, str(value))
        return configuration

    @staticmethod
    def parse_list_value(value: str) -> list[str]:
        """The items of a ``;``-separated list value (quoted items may hold ``;``)."""
        items, current, quote = [], "", None
        for char in value:
            if quote:
                if char == quote:
                    quote = None
                else:
                    current += char
            elif char in "'\"":
                quote = char
            elif char == ";":
                items.append(current)
                current = ""
            else:
                current += char
        if current or items:
            items.append(current)
        return items

    def get_string(self, key: str, default_value: str | None = None) -> str | None:
        """The value of ``key``, or ``default_value`` when it is not set."""
        return self._data.get(key, default_value)

    def set_string(self, key: str, value: str) -> Configuration:
        self._data[key] = _to_string(value)
        return self

    def get_integer(self, key: str, default_value: int | None = None) -> int | None:
        """The value of ``key`` as an int; raises ``ValueError`` naming the key when it is
        not one."""
        text = self._data.get(key)
        if text is None:
            return default_value
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(
                f"configuration key '{key}' has value {text!r}, not an integer"
            ) from None

    def set_integer(self, key: str, value: int) -> Configuration:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"set_integer('{key}', ...) takes an int; got {value!r}")
        self._data[key] = str(value)
        return self

    def get_boolean(self, key: str, default_value: bool | None = None) -> bool | None:
        """The value of ``key`` as a bool (``true``/``false``, case-insensitive)."""
        text = self._data.get(key)
        if text is None:
            return default_value
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"configuration key '{key}' has value {text!r}, not true or false")

    def set_boolean(self, key: str, value: bool) -> Configuration:
        self._data[key] = "true" if value else "false"
        return self

    def get_float(self, key: str, default_value: float | None = None) -> float | None:
        """The value of ``key`` as a float."""
        text = self._data.get(key)
        if text is None:
            return default_value
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError(
                f"configuration key '{key}' has value {text!r}, not a number"
            ) from None

    def set_float(self, key: str, value: float) -> Configuration:
        self._data[key] = repr(float(value))
        return self

    def get_bytearray(self, key: str, default_value: bytearray | None = None) -> bytearray | None:
        text = self._data.get(key)
        if text is None:
            return default_value
        return bytearray(bytes.fromhex(text))

    def set_bytearray(self, key: str, value: bytes | bytearray) -> Configuration:
        self._data[key] = bytes(value).hex()
        return self

    def get(self, key: str, default_value: Any = None) -> Any:
        """The string value of ``key``, or ``default_value``."""
        return self._data.get(key, default_value)

    def set(self, key: str, value: Any) -> Configuration:
        """Set ``key`` to ``value`` written as Flink writes it (``true``, ``4``, ``10 s``)."""
        self._data[key] = _to_string(value)
        return self

    # -------------------------------------------------------------- the whole map

    def contains_key(self, key: str) -> bool:
        return key in self._data

    def key_set(self) -> set[str]:
        return set(self._data)

    def to_dict(self) -> dict[str, str]:
        """A copy of the settings as ``{key: string value}``."""
        return dict(self._data)

    def add_all_to_dict(self, target_dict: dict) -> None:
        target_dict.update(self._data)

    def add_all(self, other: Configuration, prefix: str | None = None) -> Configuration:
        """Copy every entry of ``other`` into this configuration, keys prefixed by ``prefix``."""
        for key, value in other.to_dict().items():
            self._data[(prefix or "") + key] = value
        return self

    def remove_config(self, key: str) -> bool:
        """Remove ``key``; True when it was set."""
        return self._data.pop(key, None) is not None

    def remove_key(self, key: str) -> bool:
        return self.remove_config(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Configuration) and other._data == self._data

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __deepcopy__(self, memo: Any = None) -> Configuration:
        return Configuration(self)

    def __repr__(self) -> str:
        return f"Configuration({self._data!r})"

    __str__ = __repr__


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
