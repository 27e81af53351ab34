"""``DataStream`` and ``KeyedStream``: PyFlink's stream API, recording a stream graph.

Every method records a transformation; nothing runs until ``env.execute()``. Mistakes made
while building a job raise here, at the call site, with a hint at the fix.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Any

from strom.datastream.output_tag import tag_id_of
from strom.graph.partitioning import (
    BroadcastPartitioner,
    CustomPartitioner,
    ForwardPartitioner,
    GlobalPartitioner,
    KeyGroupPartitioner,
    Partitioner,
    RebalancePartitioner,
    RescalePartitioner,
    ShufflePartitioner,
)
from strom.graph.stream_graph import HEAD, NEVER, OperatorSpec, Transformation

if TYPE_CHECKING:
    from strom.datastream.stream_execution_environment import StreamExecutionEnvironment

__all__ = [
    "AllWindowedStream",
    "BroadcastConnectedStream",
    "BroadcastStream",
    "ConnectedStreams",
    "CloseableIterator",
    "DataStream",
    "DataStreamSink",
    "KeyedStream",
    "WindowedStream",
]

_log = logging.getLogger(__name__)


def _describe(function: Any) -> str:
    """``module.name (file:line)`` of a user function, for error messages."""
    target = function
    if not inspect.isfunction(target) and not inspect.ismethod(target):
        target = type(function)
    name = getattr(target, "__qualname__", repr(target))
    try:
        where = f" ({inspect.getsourcefile(target)}:{inspect.getsourcelines(target)[1]})"
    except (OSError, TypeError):
        where = ""
    return f"{getattr(target, '__module__', '?')}.{name}{where}"


def _check_function(function: Any, method: str, api: str) -> Any:
    """A plain callable or an object with the function class's method ``method``."""
    if function is None:
        raise TypeError(f"{api}() needs a function; got None")
    if callable(function) or callable(getattr(function, method, None)):
        return function
    raise TypeError(
        f"{api}() needs a callable or an object with a '{method}' method; "
        f"got {type(function).__name__}"
    )


def _key_selector(key_selector: Any, api: str = "key_by") -> Callable[[Any], Any]:
    selector = getattr(key_selector, "get_key", None)
    if callable(selector):
        return selector
    if callable(key_selector):
        return key_selector
    raise TypeError(
        f"{api}() needs a callable or a KeySelector with get_key(value); "
        f"got {type(key_selector).__name__}"
    )


class _TypedKeySelector:
    """A key selector whose keys take the form ``key_by(..., key_type)`` gives them, as
    PyFlink's encoding of the key with that type does (a ``Row``, a 32-bit float, a
    range-checked int)."""

    def __init__(self, selector: Callable[[Any], Any], shape: Callable[[Any], Any], key_type: Any):
        self.selector = selector
        self.shape = shape
        self.key_type = key_type

    def __call__(self, value: Any) -> Any:
        key = self.selector(value)
        if key is None:
            return None
        try:
            return self.shape(key)
        except (TypeError, ValueError, OverflowError) as error:
            message = f"the key {key!r} does not fit key_type {self.key_type}: {error}"
            raise type(error)(message) from None


class DataStream:
    """A stream of records of one type, as recorded in the program's stream graph.

    Example::

        env = StreamExecutionEnvironment.get_execution_environment()
        env.from_collection(["a b", "b"]).flat_map(str.split).print()
        env.execute("words")
    """

    def __init__(self, env: StreamExecutionEnvironment, transformation: Transformation) -> None:
        self._env = env
        self._transformation = transformation

    # ------------------------------------------------------------ recording

    def _add(
        self,
        name: str,
        spec: OperatorSpec,
        output_type: Any = None,
        inputs: list[Transformation] | None = None,
        shape: bool = True,
    ) -> Transformation:
        """Record an operator; with ``shape`` its outputs take the form ``output_type`` gives
        values (as PyFlink's encoding with that type), else they pass as they are."""
        if shape and output_type is not None:
            spec.output_type = output_type
        return self._env._stream_graph.add(
            name,
            inputs if inputs is not None else [self._transformation],
            operator=spec,
            output_type=output_type,
        )

    def _physical(self) -> Transformation:
        """The transformation that settings like parallelism apply to."""
        transformation = self._transformation
        if transformation.is_virtual:
            raise TypeError(
                "this stream only re-partitions its input; set names, uids and parallelism "
                "on the operator before or after it"
            )
        return transformation

    def _partition(self, partitioner: Partitioner, name: str) -> DataStream:
        transformation = self._env._stream_graph.add(
            name, [self._transformation], partitioner=partitioner, output_type=self.get_type()
        )
        return DataStream(self._env, transformation)

    def get_execution_environment(self) -> StreamExecutionEnvironment:
        return self._env

    # ------------------------------------------------------------ settings

    def get_name(self) -> str:
        return self._transformation.name

    def name(self, name: str) -> DataStream:
        """Set the operator's name, shown in the plan, logs and dashboard."""
        self._physical().name = name
        return self

    def uid(self, uid: str) -> DataStream:
        """Set the operator's stable id, which savepoints use to match state to operators."""
        self._physical().uid = uid
        return self

    def set_uid_hash(self, uid_hash: str) -> DataStream:
        self._physical().uid = uid_hash
        return self

    def set_description(self, description: str) -> DataStream:
        return self

    def get_type(self) -> Any:
        """The declared type of the records; ``Types.PICKLED_BYTE_ARRAY()`` (any Python object)
        when none was declared, as in PyFlink."""
        declared = self._transformation.output_type
        if declared is None:
            from strom.common.typeinfo import Types

            return Types.PICKLED_BYTE_ARRAY()
        return declared

    def set_parallelism(self, parallelism: int) -> DataStream:
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"parallelism must be an int of at least 1; got {parallelism!r}")
        transformation = self._physical()
        if transformation.operator.args.get("non_parallel") and parallelism != 1:
            raise ValueError(
                f"'{transformation.name}' is a non-parallel source (as in Flink); its "
                "parallelism must be 1. rebalance() after it to spread its records, or use a "
                "parallel source (e.g. a ParallelSourceFunction)"
            )
        transformation.parallelism = parallelism
        return self

    def set_max_parallelism(self, max_parallelism: int) -> DataStream:
        if not isinstance(max_parallelism, int) or not 1 <= max_parallelism <= 32768:
            raise ValueError(f"max parallelism must be from 1 to 32768; got {max_parallelism!r}")
        self._physical().max_parallelism = max_parallelism
        return self

    def get_parallelism(self) -> int:
        return self._physical().parallelism or self._env.get_parallelism()

    def disable_chaining(self) -> DataStream:
        """Run this operator in a task of its own, neither chained to its input nor its output."""
        self._physical().chaining = NEVER
        return self

    def start_new_chain(self) -> DataStream:
        """Begin a new chain at this operator (it is not fused into its input's task)."""
        self._physical().chaining = HEAD
        return self

    def slot_sharing_group(self, slot_sharing_group: Any) -> DataStream:
        name = getattr(slot_sharing_group, "get_name", None)
        self._physical().slot_sharing_group = name() if callable(name) else str(slot_sharing_group)
        return self

    # ------------------------------------------------------------ operators

    def map(self, func: Any, output_type: Any = None) -> DataStream:
        """Apply ``func`` to every record: a callable or a ``MapFunction``.

        Example: ``ds.map(lambda x: x * 2)``
        """
        _check_function(func, "map", "map")
        return DataStream(self._env, self._add("Map", OperatorSpec("map", func), output_type))

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream:
        """Emit every element of the iterable ``func`` returns (or yields) for a record.

        Example: ``lines.flat_map(str.split)``
        """
        _check_function(func, "flat_map", "flat_map")
        spec = OperatorSpec("flat_map", func)
        return DataStream(self._env, self._add("FlatMap", spec, output_type))

    def filter(self, func: Any) -> DataStream:
        """Keep the records for which ``func`` is true. Example: ``ds.filter(lambda x: x > 0)``"""
        _check_function(func, "filter", "filter")
        spec = OperatorSpec("filter", func)
        return DataStream(self._env, self._add("Filter", spec, self.get_type(), shape=False))

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        """Run a ``ProcessFunction``: ``process_element(value, ctx)`` yields outputs."""
        _check_function(func, "process_element", "process")
        spec = OperatorSpec("process", func)
        return DataStream(self._env, self._add("Process", spec, output_type))

    def key_by(self, key_selector: Any, key_type: Any = None) -> KeyedStream:
        """Partition by key: records with equal keys go to the same subtask and share state.

        Example: ``words.key_by(lambda pair: pair[0])``
        """
        selector = _key_selector(key_selector)
        if key_type is not None:
            from strom.common.type_values import shaper

            shape = shaper(key_type)
            if shape is not None:  # PyFlink encodes the key with key_type: the same values
                selector = _TypedKeySelector(selector, shape, key_type)
        partitioner = KeyGroupPartitioner(selector, self._env.get_max_parallelism())
        transformation = self._env._stream_graph.add(
            "KeyBy", [self._transformation], partitioner=partitioner, output_type=self.get_type()
        )
        return KeyedStream(self._env, transformation, selector, self)

    def union(self, *streams: DataStream) -> DataStream:
        """Merge streams of the same type into one."""
        for stream in streams:
            if not isinstance(stream, DataStream):
                raise TypeError(f"union() takes DataStreams; got {type(stream).__name__}")
            if stream._env is not self._env:
                raise ValueError("union() of streams from different environments")
        transformation = self._env._stream_graph.add(
            "Union",
            [self._transformation] + [s._transformation for s in streams],
            output_type=self.get_type(),
        )
        return DataStream(self._env, transformation)

    def forward(self) -> DataStream:
        """Send each record to the subtask of the same index (equal parallelism needed)."""
        return self._partition(ForwardPartitioner(), "Forward")

    def rebalance(self) -> DataStream:
        """Spread records round-robin over all subtasks of the next operator."""
        return self._partition(RebalancePartitioner(), "Rebalance")

    def rescale(self) -> DataStream:
        """Round-robin over a local subset of the next operator's subtasks."""
        return self._partition(RescalePartitioner(), "Rescale")

    def shuffle(self) -> DataStream:
        """Send each record to a uniformly random subtask."""
        return self._partition(ShufflePartitioner(), "Shuffle")

    def broadcast(
        self, broadcast_state_descriptor: Any = None, *other_broadcast_state_descriptors: Any
    ) -> Any:
        """Send every record to every subtask of the next operator.

        With ``MapStateDescriptor``s, returns a ``BroadcastStream`` to ``connect`` another
        stream to: its records fill broadcast state every subtask sees.
        """
        if broadcast_state_descriptor is not None:
            from strom.datastream.connected_streams import BroadcastStream

            descriptors = (broadcast_state_descriptor, *other_broadcast_state_descriptors)
            return BroadcastStream(self, descriptors)
        return self._partition(BroadcastPartitioner(), "Broadcast")

    def force_non_parallel(self) -> DataStream:
        """Run this operator as one subtask, and keep it so (parallelism and max parallelism 1)."""
        self.set_parallelism(1)
        self.set_max_parallelism(1)
        self._physical().operator.args["non_parallel"] = True
        return self

    def set_buffer_timeout(self, timeout_millis: int) -> DataStream:
        """Accepted as in PyFlink; Strom flushes every operator's output by the job's buffer
        timeout (``env.set_buffer_timeout``)."""
        self._physical()
        _log.info(
            "set_buffer_timeout(%s) on '%s': Strom uses the job's buffer timeout "
            "(env.set_buffer_timeout) for every operator",
            timeout_millis,
            self.get_name(),
        )
        return self

    def get_execution_config(self) -> Any:
        return self._env.get_config()

    def project(self, *field_indexes: int) -> DataStream:
        """A stream of tuples of the given fields of this ``Types.TUPLE`` stream."""
        from strom.common.typeinfo import TupleTypeInfo, Types

        declared = self.get_type()
        if not isinstance(declared, TupleTypeInfo):
            raise TypeError("Only Tuple DataStreams can be projected.")
        field_types = declared.get_field_types()
        indexes = tuple(field_indexes)
        output_type = Types.TUPLE([field_types[i] for i in indexes])
        return self.map(lambda value: tuple(value[i] for i in indexes), output_type)

    def connect(self, ds: Any) -> Any:
        """Process this stream and ``ds`` together: ``ConnectedStreams`` (``map``/
        ``flat_map``/``process`` with a Co-function), or with a ``BroadcastStream`` a
        ``BroadcastConnectedStream``."""
        from strom.datastream.connected_streams import (
            BroadcastConnectedStream,
            BroadcastStream,
            ConnectedStreams,
        )

        if isinstance(ds, BroadcastStream):
            return BroadcastConnectedStream(self, ds)
        if not isinstance(ds, DataStream):
            raise TypeError(f"connect() takes a DataStream or BroadcastStream; got {ds!r}")
        return ConnectedStreams(self, ds)

    def global_(self) -> DataStream:
        return self._partition(GlobalPartitioner(), "Global")

    def partition_custom(self, partitioner: Any, key_selector: Any) -> DataStream:
        """Let ``partitioner.partition(key, num_partitions)`` pick each record's subtask."""
        _check_function(partitioner, "partition", "partition_custom")
        custom = CustomPartitioner(partitioner, _key_selector(key_selector))
        return self._partition(custom, "Custom")

    def assign_timestamps_and_watermarks(self, watermark_strategy: Any) -> DataStream:
        """Give records event timestamps (and, later, watermarks) from a ``WatermarkStrategy``."""
        spec = OperatorSpec("timestamps", args={"strategy": watermark_strategy})
        transformation = self._add("Timestamps/Watermarks", spec, self.get_type(), shape=False)
        return DataStream(self._env, transformation)

    def get_side_output(self, output_tag: Any) -> DataStream:
        """The records this operator sent to ``output_tag`` with ``ctx.output(tag, value)``
        (or a window's late records, see ``side_output_late_data``).

        Example: ``main.get_side_output(OutputTag("rejected")).print()``
        """
        tag_id = tag_id_of(output_tag)
        source = self._transformation
        if source.is_virtual:
            raise TypeError(
                "get_side_output() applies to the operator that emits the side output "
                "(e.g. the result of process()), not to a re-partitioned stream"
            )
        transformation = self._env._stream_graph.add(
            f"SideOutput({tag_id})",
            [source],
            side_output=tag_id,
            output_type=output_tag.type_info,
        )
        return DataStream(self._env, transformation)

    def window_all(self, window_assigner: Any) -> AllWindowedStream:
        """Windows over the whole stream (one subtask), e.g. ``TumblingEventTimeWindows``."""
        return AllWindowedStream(self.key_by(_constant_key), window_assigner)

    def join(self, other_stream: DataStream) -> Any:
        """Window join: ``join(other).where(key).equal_to(key).window(assigner).apply(f)``
        calls ``f`` for each pair of equal-keyed records in the same window (``JoinedStreams``)."""
        from strom.datastream.join import JoinedStreams

        return JoinedStreams(self, other_stream)

    def co_group(self, other_stream: DataStream) -> Any:
        """Like ``join``, but ``apply`` gets all of a key's records of a window from both
        streams at once (``CoGroupedStreams``)."""
        from strom.datastream.join import CoGroupedStreams

        return CoGroupedStreams(self, other_stream)

    # ------------------------------------------------------------ sinks

    def add_sink(self, sink_func: Any) -> DataStreamSink:
        """Hand every record to ``sink_func.invoke(value, context)`` (or a plain callable).

        A connector ``Sink`` given here (PyFlink's ``ds.add_sink(JdbcSink.sink(...))``) is
        used as ``sink_to`` uses it, with its two-phase commit.
        """
        if callable(getattr(sink_func, "create_writer", None)) and not callable(
            getattr(sink_func, "invoke", None)
        ):
            return self.sink_to(sink_func)
        _check_function(sink_func, "invoke", "add_sink")
        spec = OperatorSpec("sink_function", sink_func)
        return DataStreamSink(self._env, self._add("Sink: Unnamed", spec))

    def sink_to(self, sink: Any) -> DataStreamSink:
        """Write to a connector ``Sink`` such as ``FileSink``."""
        if not callable(getattr(sink, "create_writer", None)):
            raise TypeError(
                f"sink_to() needs a connector Sink (e.g. FileSink); got {type(sink).__name__}. "
                "For a function, use add_sink()"
            )
        transformer = getattr(sink, "get_transformer", None)
        if callable(transformer) and transformer() is not None:
            return transformer().apply(self).sink_to(_Preprocessed(sink))
        encoder = getattr(sink, "encoder", None)
        if callable(getattr(encoder, "for_type", None)):
            sink = copy.copy(sink)  # the user's sink may serve streams of other types too
            sink.encoder = encoder.for_type(self.get_type())
        name = f"Sink: {type(sink).__name__}"
        return DataStreamSink(self._env, self._add(name, OperatorSpec("sink_writer", sink)))

    def print(self, sink_identifier: str | None = None) -> DataStreamSink:
        """Print every record: to the console when run with ``python``, to the TaskManager's
        ``.out`` file on a cluster. With parallelism > 1 lines start with ``<subtask>> ``.
        At-least-once, as in Flink.
        """
        args = {"identifier": sink_identifier, "type_info": self.get_type()}
        spec = OperatorSpec("sink_print", args=args)
        return DataStreamSink(self._env, self._add("Sink: Print to Std. Out", spec))

    def execute_and_collect(
        self, job_execution_name: str | None = None, limit: int | None = None
    ) -> Any:
        """Run the job and iterate over this stream's records in the client.

        With ``limit`` the first ``limit`` records come back as a list. In BATCH exactly once:
        each sink subtask's records come from one complete execution of it, so they arrive
        when it finishes. In STREAMING at-least-once, as in Flink: after a restart records may
        repeat.
        """
        from strom.datastream.collect import CollectSinkSpec

        collect = CollectSinkSpec()
        self._add("Sink: Collect", OperatorSpec("sink_collect", args={"collect": collect}))
        job_client = self._env.execute_async(job_execution_name or "collect")
        iterator = collect.iterator(job_client)
        if limit is None:
            return iterator
        results: list = []
        if limit <= 0:
            iterator.close()
            return results
        with iterator:
            for value in iterator:
                results.append(value)
                if len(results) >= limit:
                    break  # not waiting for one more: an endless job may have no more
        return results


class DataStreamSink:
    """The end of a stream; settings apply to the sink operator."""

    def __init__(self, env: StreamExecutionEnvironment, transformation: Transformation) -> None:
        self._stream = DataStream(env, transformation)

    def name(self, name: str) -> DataStreamSink:
        self._stream.name(name)
        return self

    def uid(self, uid: str) -> DataStreamSink:
        self._stream.uid(uid)
        return self

    def set_uid_hash(self, uid_hash: str) -> DataStreamSink:
        self._stream.set_uid_hash(uid_hash)
        return self

    def set_description(self, description: str) -> DataStreamSink:
        return self

    def set_parallelism(self, parallelism: int) -> DataStreamSink:
        self._stream.set_parallelism(parallelism)
        return self

    def disable_chaining(self) -> DataStreamSink:
        self._stream.disable_chaining()
        return self

    def slot_sharing_group(self, slot_sharing_group: Any) -> DataStreamSink:
        self._stream.slot_sharing_group(slot_sharing_group)
        return self


class KeyedStream(DataStream):
    """A stream partitioned by key; its operators may keep keyed state.

    Example::

        counts = words.map(lambda w: (w, 1)).key_by(lambda p: p[0]) \\
                      .reduce(lambda a, b: (a[0], a[1] + b[1]))
    """

    class AccumulateType(Enum):
        """The built-in rolling aggregations (``sum``, ``min``, ``max``, ``min_by``,
        ``max_by``)."""

        MIN = 1
        MAX = 2
        MIN_BY = 3
        MAX_BY = 4
        SUM = 5

    def __init__(
        self,
        env: StreamExecutionEnvironment,
        transformation: Transformation,
        key_selector: Callable[[Any], Any],
        origin: DataStream,
    ) -> None:
        super().__init__(env, transformation)
        self._key_selector = key_selector
        self._origin = origin

    def _keyed(
        self, name: str, spec: OperatorSpec, output_type: Any = None, shape: bool = True
    ) -> DataStream:
        spec.key_selector = self._key_selector
        return DataStream(self._env, self._add(name, spec, output_type, shape=shape))

    def _not_on_partitioning(self, what: str) -> None:
        raise TypeError(
            f"{what} applies to an operator; a KeyedStream only partitions. "
            "Set it on the operator after key_by (e.g. .reduce(...).set_parallelism(2))"
        )

    def name(self, name: str) -> DataStream:
        self._not_on_partitioning("name()")

    def uid(self, uid: str) -> DataStream:
        self._not_on_partitioning("uid()")

    def set_parallelism(self, parallelism: int) -> DataStream:
        self._not_on_partitioning("set_parallelism()")

    def map(self, func: Any, output_type: Any = None) -> DataStream:
        _check_function(func, "map", "map")
        return self._keyed("Map", OperatorSpec("map", func), output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream:
        _check_function(func, "flat_map", "flat_map")
        return self._keyed("FlatMap", OperatorSpec("flat_map", func), output_type)

    def filter(self, func: Any) -> DataStream:
        _check_function(func, "filter", "filter")
        return self._keyed("Filter", OperatorSpec("filter", func), self.get_type(), shape=False)

    def reduce(self, func: Any) -> DataStream:
        """Combine each record with the key's running result: emits the new result each time.

        Example: ``pairs.key_by(lambda p: p[0]).reduce(lambda a, b: (a[0], a[1] + b[1]))``
        """
        _check_function(func, "reduce", "reduce")
        return self._keyed("Keyed Reduce", OperatorSpec("reduce", func), self.get_type())

    def _aggregate(self, name: str, kind: str, field: int | str) -> DataStream:
        if not isinstance(field, (int, str)):
            raise TypeError(f"{name}() takes a field position or name; got {field!r}")
        spec = OperatorSpec("aggregate", args={"aggregation": kind, "field": field})
        return self._keyed(name.capitalize(), spec, self.get_type())

    def sum(self, position_to_sum: int | str = 0) -> DataStream:
        """Rolling sum of a field (position or name) per key; a number stream sums itself."""
        return self._aggregate("sum", "sum", position_to_sum)

    def min(self, position_to_min: int | str = 0) -> DataStream:
        """Rolling minimum of a field per key; other fields keep the key's first record."""
        return self._aggregate("min", "min", position_to_min)

    def max(self, position_to_max: int | str = 0) -> DataStream:
        """Rolling maximum of a field per key; other fields keep the key's first record."""
        return self._aggregate("max", "max", position_to_max)

    def min_by(self, position_to_min_by: int | str = 0) -> DataStream:
        """The record with the smallest value of a field so far, per key."""
        return self._aggregate("min_by", "min_by", position_to_min_by)

    def max_by(self, position_to_max_by: int | str = 0) -> DataStream:
        """The record with the largest value of a field so far, per key."""
        return self._aggregate("max_by", "max_by", position_to_max_by)

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        """Run a ``KeyedProcessFunction`` with keyed state from its runtime context."""
        _check_function(func, "process_element", "process")
        return self._keyed("KeyedProcess", OperatorSpec("keyed_process", func), output_type)

    def key_by(self, key_selector: Any, key_type: Any = None) -> KeyedStream:
        return self._origin.key_by(key_selector, key_type)

    def broadcast(self, *args: Any) -> Any:
        raise TypeError("Cannot override partitioning for KeyedStream.")

    def force_non_parallel(self) -> DataStream:
        raise TypeError("Set force non-parallel for KeyedStream is not supported.")

    def set_buffer_timeout(self, timeout_millis: int) -> DataStream:
        raise TypeError("Set buffer timeout for KeyedStream is not supported.")

    def project(self, *field_indexes: int) -> DataStream:
        return self._as_stream().project(*field_indexes)

    def window(self, window_assigner: Any) -> WindowedStream:
        """Cut each key's records into windows, e.g. ``TumblingEventTimeWindows.of(...)``."""
        return WindowedStream(self, window_assigner)

    def count_window(self, size: int, slide: int = 0) -> WindowedStream:
        """Windows of ``size`` records per key (sliding by ``slide`` when given)."""
        from strom.datastream.window import (
            CountSlidingWindowAssigner,
            CountTumblingWindowAssigner,
        )

        if slide:
            return WindowedStream(self, CountSlidingWindowAssigner.of(size, slide))
        return WindowedStream(self, CountTumblingWindowAssigner.of(size))

    def interval_join(self, keyed_stream: KeyedStream) -> Any:
        """Join each record with the other keyed stream's records of the same key within a
        time interval of it: ``interval_join(other).between(lower, upper).process(f)``."""
        from strom.datastream.join import IntervalJoin

        return IntervalJoin(self, keyed_stream)

    def add_sink(self, sink_func: Any) -> DataStreamSink:
        return self._as_stream().add_sink(sink_func)

    def sink_to(self, sink: Any) -> DataStreamSink:
        return self._as_stream().sink_to(sink)

    def print(self, sink_identifier: str | None = None) -> DataStreamSink:
        return self._as_stream().print(sink_identifier)

    def _as_stream(self) -> DataStream:
        return DataStream(self._env, self._transformation)


class CloseableIterator(Iterator[Any]):
    """An iterator over collected results that also cancels the job when closed early."""

    def __init__(self, next_value: Callable[[], Any], close: Callable[[], None]) -> None:
        self._next = next_value
        self._close = close

    def __next__(self) -> Any:
        return self._next()

    def next(self) -> Any:
        return self._next()

    def close(self) -> None:
        self._close()

    def __enter__(self) -> CloseableIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WindowedStream:
    """A keyed stream cut into windows: ``key_by(...).window(assigner)``.

    Example::

        ds.key_by(lambda e: e[0]) \\
          .window(TumblingEventTimeWindows.of(Time.seconds(10))) \\
          .reduce(lambda a, b: (a[0], a[1] + b[1]))
    """

    def __init__(self, keyed_stream: KeyedStream, window_assigner: Any) -> None:
        if not callable(getattr(window_assigner, "assign_windows", None)):
            raise TypeError(
                f"window() takes a WindowAssigner such as TumblingEventTimeWindows.of(...); "
                f"got {type(window_assigner).__name__}"
            )
        self._keyed = keyed_stream
        self._args: dict[str, Any] = {
            "assigner": window_assigner,
            "trigger": None,
            "allowed_lateness": 0,
        }

    def get_execution_environment(self) -> StreamExecutionEnvironment:
        return self._keyed._env

    def get_input_type(self) -> Any:
        return self._keyed.get_type()

    def trigger(self, trigger: Any) -> WindowedStream:
        """Decide when windows fire with this ``Trigger`` instead of the assigner's default."""
        if not callable(getattr(trigger, "on_element", None)):
            raise TypeError("trigger() takes a Trigger such as CountTrigger.of(5)")
        self._args["trigger"] = trigger
        return self

    def allowed_lateness(self, time_ms: Any) -> WindowedStream:
        """Keep windows this long after the watermark passed their end: late records fire
        them again (instead of being dropped)."""
        to_ms = getattr(time_ms, "to_milliseconds", None)
        self._args["allowed_lateness"] = int(to_ms() if callable(to_ms) else time_ms)
        return self

    def side_output_late_data(self, output_tag: Any) -> WindowedStream:
        """Send records too late for every window (past watermark and allowed lateness) to
        ``output_tag`` instead of dropping them; read them with ``get_side_output(tag)`` on the
        window's result."""
        self._args["late_data_tag"] = tag_id_of(output_tag)
        return self

    def _window(self, name: str, args: dict[str, Any], output_type: Any) -> DataStream:
        spec = OperatorSpec("window", args={**self._args, **args})
        return self._keyed._keyed(name, spec, output_type)

    def reduce(
        self, reduce_function: Any, window_function: Any = None, output_type: Any = None
    ) -> DataStream:
        """Combine each window's records incrementally; optionally hand the result to a
        ``WindowFunction``/``ProcessWindowFunction``."""
        _check_function(reduce_function, "reduce", "reduce")
        if window_function is None and output_type is None:
            output_type = self._keyed.get_type()  # as PyFlink: the reduced values keep it
        return self._window(
            "Window(Reduce)",
            {"mode": "reduce", "function": reduce_function, "window_function": window_function},
            output_type,
        )

    def aggregate(
        self,
        aggregate_function: Any,
        window_function: Any = None,
        accumulator_type: Any = None,
        output_type: Any = None,
    ) -> DataStream:
        """Aggregate each window with an ``AggregateFunction`` (create_accumulator, add,
        get_result, merge); optionally hand the result to a window function."""
        if not callable(getattr(aggregate_function, "add", None)):
            raise TypeError("aggregate() takes an AggregateFunction")
        return self._window(
            "Window(Aggregate)",
            {
                "mode": "aggregate",
                "function": aggregate_function,
                "window_function": window_function,
            },
            output_type,
        )

    def apply(self, window_function: Any, output_type: Any = None) -> DataStream:
        """Call ``WindowFunction.apply(key, window, inputs)`` with all records of a window."""
        _check_function(window_function, "apply", "apply")
        return self._window(
            "Window(Apply)", {"mode": "list", "window_function": window_function}, output_type
        )

    def process(self, process_window_function: Any, output_type: Any = None) -> DataStream:
        """Call ``ProcessWindowFunction.process(key, context, elements)``; ``context.window()``
        is the window."""
        _check_function(process_window_function, "process", "process")
        return self._window(
            "Window(Process)",
            {"mode": "list", "window_function": process_window_function},
            output_type,
        )


class AllWindowedStream(WindowedStream):
    """Windows over a whole (non-keyed) stream: ``window_all(assigner)``; runs at
    parallelism 1, as in Flink."""

    def _window(self, name: str, args: dict[str, Any], output_type: Any) -> DataStream:
        name = name.replace("Window(", "AllWindow(")
        if args.get("window_function") is not None:
            args = {**args, "window_function": _AllWindowFunctionAdapter(args["window_function"])}
        return super()._window(name, args, output_type).set_parallelism(1)


class _AllWindowFunctionAdapter:
    """An ``AllWindowFunction``/``ProcessAllWindowFunction`` (or a callable taking
    ``(window, inputs)``) called as the keyed window operator calls window functions: with
    the constant key first, which it drops."""

    def __init__(self, function: Any) -> None:
        self.function = function
        if callable(getattr(function, "process", None)):
            self.process = lambda key, context, elements: function.process(context, elements)
        else:
            apply = getattr(function, "apply", function)
            self.apply = lambda key, window, inputs: apply(window, inputs)
        if callable(getattr(function, "clear", None)):
            self.clear = function.clear

    def open(self, runtime_context: Any) -> None:
        opener = getattr(self.function, "open", None)
        if callable(opener):
            opener(runtime_context)

    def close(self) -> None:
        closer = getattr(self.function, "close", None)
        if callable(closer):
            closer()


def _constant_key(value: Any) -> int:
    return 0


class _Preprocessed:
    """A ``SupportsPreprocessing`` sink whose transformer was applied already."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def get_transformer(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_sink"], name)


# PyFlink defines these in ``data_stream`` too.
from strom.datastream.connected_streams import (  # noqa: E402
    BroadcastConnectedStream,
    BroadcastStream,
    ConnectedStreams,
)
