"""Every public name of PyFlink 2.3's DataStream-side modules is importable from the same path
under ``strom`` (or says clearly that Strom does not support it), and PyFlink's public methods
exist with its parameter names and defaults.

``tests/pyflink_compat/pyflink_names.json`` lists them, generated from the 2.3 wheel by
``tests/pyflink_compat/list_names.py``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

from strom.errors import UnsupportedFeatureError

LISTING = json.loads(
    (Path(__file__).resolve().parent / "pyflink_compat" / "pyflink_names.json").read_text()
)
MODULES: dict[str, dict] = LISTING["modules"]


def strom_path(pyflink_module: str) -> str:
    return "strom" + pyflink_module[len("pyflink") :]


def test_the_listing_is_pyflink_2_3():
    assert LISTING["version"].startswith("2.3")
    assert sum(len(names) for names in MODULES.values()) > 300


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_every_name_is_importable_or_clearly_unsupported(module_name: str):
    module = importlib.import_module(strom_path(module_name))
    missing, unclear = [], []
    for name in MODULES[module_name]:
        try:
            getattr(module, name)
        except UnsupportedFeatureError as error:
            text = str(error)
            if not (text.startswith("not supported in Strom: pyflink.") and f".{name}: " in text):
                unclear.append(f"{name}: {error}")
        except AttributeError:
            missing.append(name)
    assert not missing, f"{strom_path(module_name)} lacks {missing}"
    assert not unclear, unclear


def test_unsupported_name_fails_at_the_import_with_the_reason():
    with pytest.raises(UnsupportedFeatureError, match="not supported in Strom: .*JVM"):
        exec("from strom.datastream.connectors.kafka import KafkaSource", {})
    with pytest.raises(UnsupportedFeatureError, match="use FileSink"):
        exec("from strom.datastream.connectors.file_system import StreamingFileSink", {})
    with pytest.raises(ImportError):  # a typo stays an ImportError
        exec("from strom.datastream.connectors.kafka import _Typo", {})
    with pytest.raises(ImportError):
        exec("from strom.datastream import NoSuchThing", {})


# ------------------------------------------------------------------ signatures

#: methods whose difference from PyFlink is deliberate, with the reason
SIGNATURE_EXCEPTIONS = {
    "StreamExecutionEnvironment.execute_async": "unnamed jobs are 'Strom Streaming Job'",
}

#: PyFlink methods Strom does not have yet, with the reason
MISSING_METHODS = {
    "DataStream.cache": "cached intermediate results (batch) are not built",
    "KeyedStream.cache": "cached intermediate results (batch) are not built",
    "StreamExecutionEnvironment.create_input": "Java InputFormats need a JVM",
    "FileSink.for_bulk_format": "bulk formats are Java libraries in PyFlink",
    "FileSource.for_bulk_file_format": "bulk formats are Java libraries in PyFlink",
    "FileSourceBuilder.set_file_enumerator": "Java file enumerators need a JVM",
    "FileSourceBuilder.set_split_assigner": "Java split assigners need a JVM",
    "ContinuousEventTimeTrigger.register_next_fire_timestamp": "an internal helper",
    "ContinuousProcessingTimeTrigger.register_next_fire_timestamp": "an internal helper",
    "JobClient.get_accumulators": "Strom has no accumulators",
}


def _pyflink_parameters(signature: str) -> list[tuple[str, str | None]] | None:
    """``[(name, default source or None)]`` of a PyFlink signature string, without ``self``
    and without the ``j_*`` parameters that carry Java objects."""
    source = "def f" + re.sub(r"\)\s*->.*$", ")", signature, flags=re.S) + ": pass"
    try:
        arguments = ast.parse(source).body[0].args
    except SyntaxError:
        return None
    positional = arguments.posonlyargs + arguments.args
    defaults = [None] * (len(positional) - len(arguments.defaults)) + arguments.defaults
    result = [
        (a.arg, None if d is None else ast.unparse(d))
        for a, d in zip(positional, defaults, strict=True)
    ]
    if arguments.vararg:
        result.append(("*" + arguments.vararg.arg, None))
    result += [
        (a.arg, None if d is None else ast.unparse(d))
        for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    ]
    if arguments.kwarg:
        result.append(("**" + arguments.kwarg.arg, None))
    return [p for p in result if p[0] not in ("self", "cls") and not p[0].startswith("j_")]


def _strom_parameters(function: object) -> list[tuple[str, str | None]]:
    result = []
    for parameter in inspect.signature(function).parameters.values():
        name = parameter.name
        if parameter.kind is parameter.VAR_POSITIONAL:
            name = "*" + name
        elif parameter.kind is parameter.VAR_KEYWORD:
            name = "**" + name
        default = None if parameter.default is parameter.empty else repr(parameter.default)
        result.append((name, default))
    return [p for p in result if p[0] not in ("self", "cls")]


def _compatible(pyflink: list, strom: list) -> str | None:
    """Why a call written for PyFlink's parameters could fail or mean something else on
    Strom's, or None. Strom may add parameters with defaults after PyFlink's, and may give a
    default where PyFlink has none."""
    if [name for name, _ in strom[: len(pyflink)]] != [name for name, _ in pyflink]:
        return "parameter names differ"
    for (name, default), (_, ours) in zip(pyflink, strom, strict=False):
        if default is not None and (ours or "").replace('"', "'") != default.replace('"', "'"):
            return f"default of {name} is {ours}, PyFlink's is {default}"
    for name, default in strom[len(pyflink) :]:
        if default is None and not name.startswith("*"):
            return f"extra parameter {name} has no default"
    return None


def _classes():
    seen = set()
    for module_name, names in sorted(MODULES.items()):
        module = importlib.import_module(strom_path(module_name))
        for name, info in sorted(names.items()):
            if info["kind"] != "class":
                continue
            try:
                cls = getattr(module, name)
            except UnsupportedFeatureError:
                continue
            yield from _with_nested(name, cls, info, seen)


def _with_nested(name: str, cls: type, info: dict, seen: set):
    """The class and its nested classes (``ProcessWindowFunction.Context``, ...)."""
    if id(cls) in seen:
        return
    seen.add(id(cls))
    yield name, cls, info["methods"]
    for nested_name, nested in sorted(info.get("nested", {}).items()):
        nested_cls = getattr(cls, nested_name, None)
        if nested_cls is None:
            _MISSING_NESTED.append(f"{name}.{nested_name}")
        else:
            yield from _with_nested(f"{name}.{nested_name}", nested_cls, nested, seen)


_MISSING_NESTED: list[str] = []
_NESTED_NOT_PROVIDED = {
    "AsyncFunctionDescriptor.OutputMode": "async I/O is not built",
    "FileSink.BulkFormatBuilder": "bulk formats are Java libraries in PyFlink",
}


def test_nested_classes_exist():
    """The contexts programs annotate with (``KeyedProcessFunction.Context``, ...)."""
    _MISSING_NESTED.clear()
    list(_classes())
    assert [n for n in _MISSING_NESTED if n not in _NESTED_NOT_PROVIDED] == []


#: classes the API builds for the program (PyFlink's take Java objects): not constructed by users
BUILT_BY_THE_API = {
    "BroadcastConnectedStream",
    "BroadcastStream",
    "CloseableIterator",
    "FileSink",
    "KeyedStream",
    "Sink",
    "SinkFunction",
    "Source",
    "SourceFunction",
    "StreamExecutionEnvironment",
}


def test_constructors_take_pyflink_parameters():
    problems = []
    for class_name, cls, methods in _classes():
        info = methods.get("__init__")
        if info is None or class_name in BUILT_BY_THE_API:
            continue
        expected = _pyflink_parameters(info["signature"] or "()")
        if expected:
            why = _compatible(expected, _strom_parameters(cls))
            if why:
                problems.append(f"{class_name}(): {why}: PyFlink {info['signature']}")
    assert not problems, "\n".join(problems)


def test_pyflink_methods_exist_with_its_parameters():
    problems = []
    for class_name, cls, methods in _classes():
        for method, info in sorted(methods.items()):
            qualified = f"{class_name}.{method}"
            if "java" in method or method == "__init__" or qualified in SIGNATURE_EXCEPTIONS:
                continue
            function = getattr(cls, method, None)
            if function is None:
                if qualified not in MISSING_METHODS:
                    problems.append(f"missing: {qualified}{info['signature']}")
                continue
            expected = _pyflink_parameters(info["signature"] or "()")
            if expected is None:
                continue
            why = _compatible(expected, _strom_parameters(function))
            if why:
                problems.append(f"{qualified}: {why}: PyFlink {info['signature']}")
    assert not problems, "\n".join(problems)


def test_classes_pyflink_makes_generic_are_subscriptable():
    """``class F(ProcessWindowFunction[tuple, tuple, str, TimeWindow])`` as in PyFlink."""
    generic = [(name, cls) for name, cls, _ in _classes() if _is_generic(name)]
    assert len(generic) > 30
    not_subscriptable = []
    for name, cls in generic:
        parameters = len(_GENERIC[name])
        try:
            cls[(object,) * parameters if parameters > 1 else object]
        except TypeError as error:
            not_subscriptable.append(f"{name}: {error}")
    assert not not_subscriptable, not_subscriptable


_GENERIC = {
    name: info.get("type_parameters", [])
    for names in MODULES.values()
    for name, info in names.items()
    if info.get("generic")
}


def _is_generic(name: str) -> bool:
    return name in _GENERIC


def test_the_known_gaps_are_still_gaps():
    """An entry of MISSING_METHODS that Strom now has must leave the list."""
    present = []
    for class_name, cls, methods in _classes():
        for method in methods:
            if f"{class_name}.{method}" in MISSING_METHODS and hasattr(cls, method):
                present.append(f"{class_name}.{method}")
    assert not present
