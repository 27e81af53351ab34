"""``ConfigOption`` and ``ConfigOptions``, as ``pyflink.common.config_options``.

Example::

    >>> option = ConfigOptions.key("parallelism.default").int_type().default_value(1)
    >>> option.key(), option.default_value()
    ('parallelism.default', 1)
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["ConfigOption", "ConfigOptions"]

T = TypeVar("T")


class ConfigOption(Generic[T]):
    """A configuration key with its default value and description."""

    def __init__(self, key: str, default: Any = None, description: str = "") -> None:
        self._key = key
        self._default = default
        self._description = description

    def key(self) -> str:
        return self._key

    def default_value(self) -> Any:
        return self._default

    def has_default_value(self) -> bool:
        return self._default is not None

    def description(self) -> str:
        return self._description

    def with_description(self, description: str) -> ConfigOption:
        return ConfigOption(self._key, self._default, description)

    def __repr__(self) -> str:
        return f"ConfigOption({self._key!r}, default={self._default!r})"


class ConfigOptions:
    """Builds ``ConfigOption``s: ``ConfigOptions.key(k).string_type().default_value(v)``."""

    class OptionBuilder:
        def __init__(self, key: str) -> None:
            self._key = key

        def _typed(self) -> ConfigOptions.TypedConfigOptionBuilder:
            return ConfigOptions.TypedConfigOptionBuilder(self._key)

        boolean_type = int_type = long_type = float_type = double_type = _typed
        string_type = duration_type = memory_type = map_type = _typed

    class TypedConfigOptionBuilder(Generic[T]):
        def __init__(self, key: str) -> None:
            self._key = key

        def default_value(self, value: Any) -> ConfigOption:
            return ConfigOption(self._key, value)

        def no_default_value(self) -> ConfigOption:
            return ConfigOption(self._key)

    @staticmethod
    def key(key: str) -> ConfigOptions.OptionBuilder:
        return ConfigOptions.OptionBuilder(key)
