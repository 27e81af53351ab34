"""``StreamExecutionEnvironment``: where a program creates sources and runs its job.

Run with plain ``python job.py`` it executes on an embedded mini-cluster in the same process;
run with ``strom run job.py`` it is submitted to the cluster the CLI names.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from strom.datastream.data_stream import DataStream
from strom.datastream.execution_mode import RuntimeExecutionMode
from strom.graph.batch import BATCH, resolve_runtime_mode
from strom.graph.job_graph import JobGraph, build_job_graph
from strom.graph.stream_graph import OperatorSpec, StreamGraph

__all__ = ["StreamExecutionEnvironment", "JobExecutionResult", "JobClient"]

_log = logging.getLogger(__name__)


class JobExecutionResult:
    """What ``execute()`` returns once a job has finished."""

    def __init__(self, job_id: str, net_runtime_ms: int, accumulators: dict | None = None):
        self._job_id = job_id
        self._net_runtime_ms = net_runtime_ms
        self._accumulators = accumulators or {}

    def get_job_id(self) -> str:
        return self._job_id

    def get_net_runtime(self) -> int:
        """The job's run time in milliseconds."""
        return self._net_runtime_ms

    def get_all_accumulator_results(self) -> dict:
        return dict(self._accumulators)

    def result(self, timeout: float | None = None) -> JobExecutionResult:
        """This result: PyFlink's ``get_job_execution_result()`` returns a future of it, so
        programs call ``.result()`` on it; Strom's returns it once the job has ended."""
        return self

    def get_accumulator_result(self, accumulator_name: str) -> Any:
        return self._accumulators.get(accumulator_name)

    def is_job_execution_result(self) -> bool:
        return True

    def get_job_execution_result(self) -> JobExecutionResult:
        return self

    def __repr__(self) -> str:
        return f"JobExecutionResult(job_id={self._job_id}, net_runtime={self._net_runtime_ms} ms)"


class JobClient:
    """A handle on a submitted job (``execute_async``); implemented by the client layer."""

    def get_job_id(self) -> str:
        raise NotImplementedError

    def get_job_status(self) -> str:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def get_job_execution_result(self) -> JobExecutionResult:
        raise NotImplementedError

    def trigger_savepoint(self, savepoint_directory: str | None = None) -> Any:
        """Take a savepoint; a ``CompletableFuture`` of its location."""
        raise NotImplementedError

    def stop_with_savepoint(
        self, advance_to_end_of_event_time: bool, savepoint_directory: str | None = None
    ) -> Any:
        """Take a savepoint and stop the job; a ``CompletableFuture`` of its location."""
        raise NotImplementedError


class StreamExecutionEnvironment:
    """The context a streaming program runs in; create one with
    :meth:`get_execution_environment`.

    Example::

        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        env.from_collection([1, 2, 3]).map(lambda x: x * 10).print()
        env.execute("times ten")
    """

    def __init__(self, configuration: Any = None) -> None:
        from strom.datastream import execution_context

        self._stream_graph = StreamGraph()
        self._configuration: dict[str, str] = {}
        if configuration is not None:
            to_dict = getattr(configuration, "to_dict", None)
            self._configuration = dict(to_dict() if callable(to_dict) else configuration)
        context = execution_context.current()
        if "parallelism.default" in self._configuration or not context.parallelism:
            self._parallelism: int = int(self._setting("parallelism.default"))
            if context.target == "embedded" and not execution_context.job_setting_given(
                self._configuration, "parallelism.default"
            ):
                # PyFlink's local default: the machine's cores
                self._parallelism = execution_context.local_default_parallelism()
        else:
            self._parallelism = context.parallelism  # strom run -p, as -D parallelism.default
        self._max_parallelism: int | None = None
        self._buffer_timeout_ms: int | None = None
        self._chaining = True
        #: None: the ``execution.runtime-mode`` of the configuration, -D or the cluster's
        self._runtime_mode: RuntimeExecutionMode | None = None
        from strom.datastream.checkpoint_config import CheckpointConfig

        self._checkpoint_config = CheckpointConfig()
        self._restart_strategy: Any = None
        self._job_parameters: dict[str, str] = {}
        from strom.common.execution_config import ExecutionConfig

        self._execution_config = ExecutionConfig(self)

    @staticmethod
    def get_execution_environment(configuration: Any = None) -> StreamExecutionEnvironment:
        """A new environment: embedded when run with ``python``, the cluster's under
        ``strom run``."""
        return StreamExecutionEnvironment(configuration)

    # ------------------------------------------------------------ settings

    def set_parallelism(self, parallelism: int) -> StreamExecutionEnvironment:
        """The default parallelism of this job's operators."""
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"parallelism must be an int of at least 1; got {parallelism!r}")
        self._parallelism = parallelism
        return self

    def get_parallelism(self) -> int:
        return self._parallelism

    def set_max_parallelism(self, max_parallelism: int) -> StreamExecutionEnvironment:
        """The number of key groups of keyed operators (the most they can ever scale to)."""
        if not isinstance(max_parallelism, int) or not 1 <= max_parallelism <= 32768:
            raise ValueError(f"max parallelism must be from 1 to 32768; got {max_parallelism!r}")
        self._max_parallelism = max_parallelism
        return self

    def get_max_parallelism(self) -> int:
        return self._max_parallelism or int(self._setting("pipeline.max-parallelism"))

    def set_buffer_timeout(self, timeout_millis: int) -> StreamExecutionEnvironment:
        """How long a batch of records may wait before it is sent; 0 sends every record."""
        if timeout_millis < -1:
            raise ValueError("buffer timeout must be -1 (flush when full only), 0 or more ms")
        self._buffer_timeout_ms = timeout_millis
        return self

    def get_buffer_timeout(self) -> int:
        """The job's buffer timeout in ms: set_buffer_timeout(), else
        ``execution.buffer-timeout`` of the job's configuration, -D or the cluster's."""
        if self._buffer_timeout_ms is not None:
            return self._buffer_timeout_ms
        return int(self._setting("execution.buffer-timeout"))

    def _setting(self, key: str) -> Any:
        from strom.datastream import execution_context

        return execution_context.job_setting(self._configuration, key)

    def disable_operator_chaining(self) -> StreamExecutionEnvironment:
        """Run every operator in a task of its own (for debugging; slower)."""
        self._chaining = False
        return self

    def is_chaining_enabled(self) -> bool:
        return self._chaining

    def set_runtime_mode(self, execution_mode: RuntimeExecutionMode) -> StreamExecutionEnvironment:
        """STREAMING (the default), BATCH (bounded input, final results only) or AUTOMATIC
        (BATCH when every source is bounded). Overrides ``execution.runtime-mode``.

        Example::

            env.set_runtime_mode(RuntimeExecutionMode.BATCH)
        """
        if not isinstance(execution_mode, RuntimeExecutionMode):
            raise TypeError("set_runtime_mode() takes a RuntimeExecutionMode")
        self._runtime_mode = execution_mode
        return self

    def _requested_runtime_mode(self) -> str:
        if self._runtime_mode is not None:
            return self._runtime_mode.name
        return str(self._setting("execution.runtime-mode")).upper()

    def get_config(self) -> Any:
        return self._execution_config

    def configure(self, configuration: Any) -> StreamExecutionEnvironment:
        to_dict = getattr(configuration, "to_dict", None)
        self._configuration.update(to_dict() if callable(to_dict) else dict(configuration))
        return self

    def enable_checkpointing(self, interval: int, mode: Any = None) -> StreamExecutionEnvironment:
        """Take a checkpoint every ``interval`` ms; ``mode`` is a ``CheckpointingMode``
        (EXACTLY_ONCE by default). With checkpoints a failed job restarts from the latest one.
        """
        self._checkpoint_config.set_checkpoint_interval(interval)
        if mode is not None:
            self._checkpoint_config.set_checkpointing_mode(mode)
        return self

    def get_checkpoint_interval(self) -> int:
        return self._checkpoint_config.get_checkpoint_interval()

    def get_checkpoint_config(self) -> Any:
        return self._checkpoint_config

    def get_checkpointing_mode(self) -> Any:
        return self._checkpoint_config.get_checkpointing_mode()

    def set_restart_strategy(self, restart_strategy_configuration: Any) -> None:
        """E.g. ``RestartStrategies.fixed_delay_restart(3, 1000)``."""
        if not callable(getattr(restart_strategy_configuration, "to_configuration", None)):
            raise TypeError("set_restart_strategy() takes a RestartStrategies configuration")
        self._restart_strategy = restart_strategy_configuration

    def set_stream_time_characteristic(self, characteristic: Any) -> None:
        """Deprecated in Flink; event time is always available."""

    # ------------------------------------------------------------ Python dependencies

    def _append_setting(self, key: str, item: str, separator: str) -> None:
        current = self._configuration.get(key)
        self._configuration[key] = f"{current}{separator}{item}" if current else item

    def add_python_file(self, file_path: str) -> None:
        """Make a Python file, package directory or zip importable by the job's functions.

        Recorded under Flink's ``python.files`` key (what ``strom run -pyfs`` sets), and, for
        the embedded mini-cluster that runs tasks in this process, put on ``sys.path`` now.
        """
        path = os.path.abspath(file_path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"add_python_file(): {file_path} does not exist")
        self._append_setting("python.files", path, ",")
        entry = os.path.dirname(path) if path.endswith(".py") else path
        if entry not in sys.path:
            sys.path.insert(0, entry)

    def add_python_archive(self, archive_path: str, target_dir: str | None = None) -> None:
        """An archive (zip) to extract for the job's functions, under ``target_dir`` (its file
        name by default); recorded under Flink's ``python.archives`` key."""
        path = os.path.abspath(archive_path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"add_python_archive(): {archive_path} does not exist")
        self._append_setting("python.archives", f"{path}#{target_dir}" if target_dir else path, ",")

    def set_python_requirements(
        self, requirements_file_path: str, requirements_cache_dir: str | None = None
    ) -> None:
        """The pip requirements of the job's functions (Flink's ``python.requirements``).

        The embedded mini-cluster runs in this interpreter, so they must be installed here;
        Strom logs a note rather than installing packages into the running environment.
        """
        path = os.path.abspath(requirements_file_path)
        value = (
            f"{path}#{os.path.abspath(requirements_cache_dir)}" if requirements_cache_dir else path
        )
        self._configuration["python.requirements"] = value
        _log.info(
            "set_python_requirements(%s): recorded as python.requirements; when run with "
            "python the job uses the packages of this interpreter",
            requirements_file_path,
        )

    def set_python_executable(self, python_exec: str) -> None:
        """The interpreter for the job's functions (Flink's ``python.executable``): on a
        cluster the job's slot processes start with it (an absolute path on the TaskManagers,
        of the client's Python version). The embedded mini-cluster runs in this interpreter
        and notes so when another is named."""
        self._configuration["python.executable"] = python_exec
        if os.path.realpath(python_exec) != os.path.realpath(sys.executable):
            _log.info(
                "set_python_executable(%s): recorded as python.executable; when run with "
                "python the job runs in this interpreter (%s)",
                python_exec,
                sys.executable,
            )

    def add_jars(self, *jars_path: str) -> None:
        """Accepted for PyFlink programs (``pipeline.jars``); Strom has no JVM to load jars."""
        for jar in jars_path:
            self._append_setting("pipeline.jars", jar, ";")
        _log.info("add_jars(%s): Strom has no JVM; the jars are not used", ", ".join(jars_path))

    def add_classpaths(self, *classpaths: str) -> None:
        """Accepted for PyFlink programs (``pipeline.classpaths``); Strom has no JVM."""
        for classpath in classpaths:
            self._append_setting("pipeline.classpaths", classpath, ";")
        _log.info("add_classpaths(%s): Strom has no JVM; not used", ", ".join(classpaths))

    def register_cached_file(self, file_path: str, name: str, executable: bool = False) -> None:
        """Recorded (Flink's ``pipeline.cached-files``); functions read the file by its path."""
        flag = ",executable:true" if executable else ""
        self._append_setting("pipeline.cached-files", f"name:{name},path:{file_path}{flag}", ";")

    # ------------------------------------------------------------ other PyFlink settings

    def register_slot_sharing_group(self, slot_sharing_group: Any) -> StreamExecutionEnvironment:
        """Accepted: Strom places by slot sharing group name; resource profiles are not used."""
        self.__dict__.setdefault("_slot_sharing_groups", {})[slot_sharing_group.get_name()] = (
            slot_sharing_group
        )
        return self

    def set_default_local_parallelism(self, parallelism: int) -> None:
        """The parallelism of environments created for local runs (this environment's)."""
        self.set_parallelism(parallelism)

    def get_default_local_parallelism(self) -> int:
        return self.get_parallelism()

    def set_default_savepoint_directory(self, directory: str) -> StreamExecutionEnvironment:
        self._configuration["state.savepoints.dir"] = directory
        return self

    def get_default_savepoint_directory(self) -> str | None:
        return self._configuration.get("state.savepoints.dir")

    def enable_changelog_state_backend(self, enabled: bool) -> StreamExecutionEnvironment:
        """Accepted; Strom's snapshots are not changelog-based."""
        self._configuration["state.changelog.enabled"] = "true" if enabled else "false"
        return self

    def is_changelog_state_backend_enabled(self) -> bool | None:
        value = self._configuration.get("state.changelog.enabled")
        return None if value is None else value == "true"

    def get_checkpointing_consistency_mode(self) -> Any:
        return self._checkpoint_config.get_checkpointing_mode()

    def is_unaligned_checkpoints_enabled(self) -> bool:
        return self._checkpoint_config.is_unaligned_checkpoints_enabled()

    def is_force_unaligned_checkpoints(self) -> bool:
        return self._checkpoint_config.is_force_unaligned_checkpoints()

    def is_chaining_of_operators_with_different_max_parallelism_enabled(self) -> bool:
        return True

    def set_state_backend(self, state_backend: Any) -> StreamExecutionEnvironment:
        """Accepts PyFlink's state backends; Strom keeps keyed state in memory and snapshots
        it to the checkpoint storage (``HashMapStateBackend``)."""
        self._state_backend = state_backend
        return self

    def get_state_backend(self) -> Any:
        return getattr(self, "_state_backend", None)

    # ------------------------------------------------------------ sources

    def from_collection(self, collection: Any, type_info: Any = None) -> DataStream:
        """A bounded stream of the given elements, in order (a non-parallel source)."""
        from strom.datastream.connectors.collection import CollectionSource

        values = list(collection)
        from strom.common.type_values import shaper

        shape = shaper(type_info)
        if shape is not None:  # the elements as PyFlink's encoding with type_info gives them
            values = [None if v is None else shape(v) for v in values]
        spec = OperatorSpec(
            "source", args={"source": CollectionSource(values), "non_parallel": True}
        )
        transformation = self._stream_graph.add(
            "Source: Collection Source",
            [],
            operator=spec,
            output_type=type_info,
            is_source=True,
            parallelism=1,
        )
        return DataStream(self, transformation)

    def from_source(
        self,
        source: Any,
        watermark_strategy: Any = None,
        source_name: str = "Source",
        type_info: Any = None,
    ) -> DataStream:
        """A stream from a connector ``Source`` such as ``FileSource`` or
        ``NumberSequenceSource``."""
        if not callable(getattr(source, "create_reader", None)):
            raise TypeError(
                f"from_source() needs a connector Source (e.g. FileSource); got "
                f"{type(source).__name__}. For a SourceFunction use add_source()"
            )
        spec = OperatorSpec(
            "source",
            args={"source": source, "strategy": watermark_strategy},
            output_type=type_info,  # shapes what the source reads, as PyFlink's type does
        )
        transformation = self._stream_graph.add(
            f"Source: {source_name}", [], operator=spec, output_type=type_info, is_source=True
        )
        stream = DataStream(self, transformation)
        # A source may chain an operator of its own after itself (the PostgreSQL CDC source
        # advances its replication slot from one when a checkpoint completes).
        attach = getattr(source, "attach_to_stream", None)
        return attach(stream) if callable(attach) else stream

    def add_source(
        self, source_func: Any, source_name: str = "Custom Source", type_info: Any = None
    ) -> DataStream:
        """A stream from a ``SourceFunction`` whose ``run(ctx)`` calls ``ctx.collect(value)``.

        A SourceFunction is non-parallel unless it is a ``ParallelSourceFunction``.
        """
        if not callable(getattr(source_func, "run", None)):
            raise TypeError("add_source() needs a SourceFunction with run(ctx) and cancel()")
        parallel = any(c.__name__ == "ParallelSourceFunction" for c in type(source_func).__mro__)
        spec = OperatorSpec(
            "source_function",
            source_func,
            args={"non_parallel": not parallel},
            output_type=type_info,  # shapes what the function collects, as PyFlink's type does
        )
        transformation = self._stream_graph.add(
            f"Source: {source_name}",
            [],
            operator=spec,
            output_type=type_info,
            is_source=True,
            parallelism=None if parallel else 1,
        )
        return DataStream(self, transformation)

    # ------------------------------------------------------------ running

    def _settings(self) -> dict[str, Any]:
        configuration = dict(self._configuration)
        if self._checkpoint_config.is_checkpointing_enabled():
            configuration.update(self._checkpoint_config.to_configuration())
        if self._restart_strategy is not None:
            configuration.update(self._restart_strategy.to_configuration())
        return {
            "buffer_timeout_ms": self.get_buffer_timeout(),
            "auto_watermark_interval_ms": self._execution_config.get_auto_watermark_interval(),
            "runtime_mode": self._requested_runtime_mode(),
            "configuration": configuration,
            "job_parameters": dict(self._job_parameters),
        }

    def get_job_graph(self, job_name: str | None = None, clear: bool = False) -> JobGraph:
        """The job graph of what has been recorded so far."""
        if not self._stream_graph.transformations:
            raise RuntimeError(
                "no operators were defined: create a source (e.g. from_collection) and a sink "
                "(e.g. print()) before calling execute()"
            )
        settings = self._settings()
        sources = [(t.name, t.operator) for t in self._stream_graph.transformations if t.is_source]
        mode = resolve_runtime_mode(settings["runtime_mode"], sources)
        settings["runtime_mode"] = mode
        # The resolved mode travels as the job's own setting: the JobManager reads it (no
        # checkpoints in BATCH) and the REST API shows it.
        settings["configuration"]["execution.runtime-mode"] = mode.lower()
        if mode == BATCH:
            settings["batch_memory_budget"] = int(self._setting("execution.sorted-inputs.memory"))
        default_name = "Strom Batch Job" if mode == BATCH else "Strom Streaming Job"
        graph = build_job_graph(
            self._stream_graph.with_inputs(),
            job_name or default_name,
            self._parallelism,
            self.get_max_parallelism(),
            self._chaining,
            settings,
        )
        if clear:
            self._stream_graph.clear()
        return graph

    def get_execution_plan(self) -> str:
        """The job's plan as JSON: vertices, their operators, parallelism and edges."""
        return self.get_job_graph().plan_json()

    def execute(self, job_name: str | None = None) -> JobExecutionResult:
        """Run the job and wait for it to finish; raises if it fails."""
        return self.execute_async(job_name).get_job_execution_result()

    def execute_async(self, job_name: str | None = None) -> JobClient:
        """Submit the job and return at once with a :class:`JobClient`."""
        from client.executor import submit_job  # the one import of the client layer

        graph = self.get_job_graph(job_name, clear=True)
        return submit_job(graph, _job_root())

    def close(self) -> None:
        self._stream_graph.clear()


def _job_root() -> str:
    """The folder of the program's main script: its files travel with the job."""
    from strom.datastream import execution_context

    if execution_context.current().job_root:
        return execution_context.current().job_root
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path:
        return os.path.dirname(os.path.abspath(path))
    return os.getcwd()
