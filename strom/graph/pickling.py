"""Pickling a job graph with its user functions, keeping their source file names.

cloudpickle writes ``<dynamic-code>`` as the file name of functions it pickles by value (those
of the job's main script), so a failure on a TaskManager would not say where in the user's
file it happened. This pickler writes the real file name back.
"""

from __future__ import annotations

import io
import types
from typing import Any

import cloudpickle
from cloudpickle import cloudpickle as _cloudpickle

_PLACEHOLDER = "<dynamic-code>"


class _SourceKeepingPickler(cloudpickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.CodeType):
            code_reduce = getattr(_cloudpickle, "_code_reduce", None)
            if code_reduce is not None:
                constructor, args = code_reduce(obj)
                args = tuple(
                    obj.co_filename if isinstance(a, str) and a == _PLACEHOLDER else a for a in args
                )
                return constructor, args
        return super().reducer_override(obj)


def dumps(value: Any) -> bytes:
    """cloudpickle ``value``; functions pickled by value keep their file names."""
    buffer = io.BytesIO()
    _SourceKeepingPickler(buffer, protocol=5).dump(value)
    return buffer.getvalue()
