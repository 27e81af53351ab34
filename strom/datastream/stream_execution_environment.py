"""``StreamExecutionEnvironment``: where a program creates sources and runs its job.

Run with plain ``python job.py`` it executes on an embedded mini-cluster in the same process;
run with ``strom run job.py`` it is submitted to the cluster the CLI names.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from strom.datastream.data_stream import DataStream
from strom.datastream.execution_mode import RuntimeExecutionMode
from strom.graph.batch import BATCH, resolve_runtime_mode
from strom.graph.job_graph import JobGraph, build_job_graph
from strom.graph.stream_graph import OperatorSpec, StreamGraph

__all__ = ["StreamExecutionEnvironment", "JobExecutionResult", "JobClient"]


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

    def get_accumulator_result(self, name: str) -> Any:
        return self._accumulators.get(name)

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

    # ------------------------------------------------------------ sources

    def from_collection(self, collection: Any, type_info: Any = None) -> DataStream:
        """A bounded stream of the given elements, in order (a non-parallel source)."""
        from strom.datastream.connectors.collection import CollectionSource

        values = list(collection)
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
        spec = OperatorSpec("source", args={"source": source, "strategy": watermark_strategy})
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
        spec = OperatorSpec("source_function", source_func, args={"non_parallel": not parallel})
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
            self._stream_graph,
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
