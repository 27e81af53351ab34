"""Write ``pyflink_names.json``: every public name of PyFlink's DataStream-side modules, with
the signature of every public function and method, from an installed ``apache-flink``.

Run with the Python that has PyFlink installed::

    /path/to/pyflink-venv/bin/python tests/pyflink_compat/list_names.py

A module's public names are its ``__all__``, else the names it defines that do not start with
``_``. Importing PyFlink's modules starts no JVM.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "pyflink_names.json"

MODULES = [
    "pyflink.common",
    "pyflink.common.config_options",
    "pyflink.common.configuration",
    "pyflink.common.execution_config",
    "pyflink.common.input_dependency_constraint",
    "pyflink.common.job_client",
    "pyflink.common.job_execution_result",
    "pyflink.common.job_id",
    "pyflink.common.job_status",
    "pyflink.common.restart_strategy",
    "pyflink.common.serialization",
    "pyflink.common.time",
    "pyflink.common.typeinfo",
    "pyflink.common.types",
    "pyflink.common.watermark_strategy",
    "pyflink.datastream",
    "pyflink.datastream.checkpoint_config",
    "pyflink.datastream.checkpoint_storage",
    "pyflink.datastream.checkpointing_mode",
    "pyflink.datastream.data_stream",
    "pyflink.datastream.execution_mode",
    "pyflink.datastream.externalized_checkpoint_retention",
    "pyflink.datastream.functions",
    "pyflink.datastream.output_tag",
    "pyflink.datastream.slot_sharing_group",
    "pyflink.datastream.state",
    "pyflink.datastream.state_backend",
    "pyflink.datastream.stream_execution_environment",
    "pyflink.datastream.time_domain",
    "pyflink.datastream.timerservice",
    "pyflink.datastream.window",
    "pyflink.datastream.connectors",
    "pyflink.datastream.connectors.base",
    "pyflink.datastream.connectors.file_system",
    "pyflink.datastream.connectors.number_seq",
    "pyflink.datastream.connectors.cassandra",
    "pyflink.datastream.connectors.dynamic_kafka",
    "pyflink.datastream.connectors.elasticsearch",
    "pyflink.datastream.connectors.hybrid_source",
    "pyflink.datastream.connectors.jdbc",
    "pyflink.datastream.connectors.kafka",
    "pyflink.datastream.connectors.kinesis",
    "pyflink.datastream.connectors.pulsar",
    "pyflink.datastream.connectors.rabbitmq",
    "pyflink.datastream.formats",
    "pyflink.datastream.formats.avro",
    "pyflink.datastream.formats.csv",
    "pyflink.datastream.formats.json",
    "pyflink.datastream.formats.orc",
    "pyflink.datastream.formats.parquet",
]


def _signature(function: object) -> str | None:
    """The parameters with their defaults, without annotations (names and defaults are what
    a call depends on)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    empty = inspect.Parameter.empty
    bare = [p.replace(annotation=empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=bare, return_annotation=empty))


def _public_names(module: object) -> list[str]:
    """``__all__`` (else the classes and functions the module defines); for a package, also
    the PyFlink classes its ``_install()`` puts on it (``connectors.FileSink``, ...)."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", None) == module.__name__
            and (inspect.isclass(value) or inspect.isfunction(value))
        ]
    if hasattr(module, "__path__"):
        names = list(names) + [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", "").startswith("pyflink.")
        ]
    return sorted(set(names))


def _describe(value: object) -> dict:
    if inspect.isclass(value):
        methods = {}
        for name, member in vars(value).items():
            if name.startswith("_") and name != "__init__":
                continue
            function = member.__func__ if isinstance(member, staticmethod | classmethod) else member
            if inspect.isfunction(function):
                methods[name] = {"signature": _signature(function)}
        parameters = [str(p) for p in getattr(value, "__parameters__", ())]
        nested = {
            name: _describe(member)
            for name, member in vars(value).items()
            if inspect.isclass(member)
            and not name.startswith("_")
            and member.__qualname__ == f"{value.__qualname__}.{name}"
        }
        described = {
            "kind": "class",
            "methods": methods,
            "generic": bool(parameters),
            "type_parameters": parameters,
        }
        if nested:
            described["nested"] = nested
        return described
    if inspect.isfunction(value):
        return {"kind": "function", "signature": _signature(value)}
    if inspect.ismodule(value):
        return {"kind": "module"}
    return {"kind": "value"}


def main() -> int:
    import pyflink

    listing: dict = {"version": pyflink.version.__version__, "modules": {}}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        listing["modules"][module_name] = {
            name: _describe(getattr(module, name)) for name in _public_names(module)
        }
    OUTPUT.write_text(json.dumps(listing, indent=0, sort_keys=True, separators=(",", ":")) + "\n")
    count = sum(len(names) for names in listing["modules"].values())
    print(f"{count} names of {len(MODULES)} modules written to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
