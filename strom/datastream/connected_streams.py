"""Two streams in one operator: ``connect`` and broadcast state, as in PyFlink.

``ds1.connect(ds2)`` gives :class:`ConnectedStreams`, whose ``map``/``flat_map``/``process``
run one function over both inputs (``map1`` for the first stream's records, ``map2`` for the
second's). When both inputs are keyed (``connect`` of two KeyedStreams, or
``connect(...).key_by(k1, k2)``) the function has keyed state and timers shared by both.

``ds.broadcast(MapStateDescriptor(...))`` gives a :class:`BroadcastStream`; connecting another
stream to it gives :class:`BroadcastConnectedStream`, processed by a
``BroadcastProcessFunction`` (or ``KeyedBroadcastProcessFunction`` when the other stream is
keyed): every subtask receives every broadcast record and keeps the broadcast state in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strom.graph.partitioning import BroadcastPartitioner
from strom.graph.stream_graph import OperatorSpec

if TYPE_CHECKING:
    from strom.datastream.data_stream import DataStream

__all__ = ["BroadcastConnectedStream", "BroadcastStream", "ConnectedStreams"]


def _two_input(
    first: DataStream, second: DataStream, name: str, spec: OperatorSpec, output_type: Any
) -> DataStream:
    from strom.datastream.data_stream import DataStream, KeyedStream

    if isinstance(first, KeyedStream) and isinstance(second, KeyedStream):
        spec.key_selector = first._key_selector
        spec.args["key_selectors"] = (first._key_selector, second._key_selector)
    env = first._env
    spec.output_type = output_type
    transformation = env._stream_graph.add(
        name,
        [first._transformation, second._transformation],
        operator=spec,
        output_type=output_type,
        input_indexes=[0, 1],
    )
    return DataStream(env, transformation)


def _check_method(function: Any, methods: tuple[str, ...], api: str, kind: str) -> None:
    missing = [m for m in methods if not callable(getattr(function, m, None))]
    if missing:
        raise TypeError(
            f"{api} needs a {kind} (with {', '.join(methods)}); "
            f"{type(function).__name__} lacks {', '.join(missing)}"
        )


class ConnectedStreams:
    """Two streams, possibly of different types, processed by one function.

    Example::

        control = env.from_collection(["stop-b"])
        words.connect(control).key_by(lambda w: w, lambda c: c[5:]).flat_map(Filter())
    """

    def __init__(self, stream1: DataStream, stream2: DataStream) -> None:
        if stream1._env is not stream2._env:
            raise ValueError("connect() of streams from different environments")
        self.stream1 = stream1
        self.stream2 = stream2

    def key_by(self, key_selector1: Any, key_selector2: Any, key_type: Any = None):
        """Key both inputs (each with its own selector) so equal keys meet in one subtask."""
        return ConnectedStreams(
            self.stream1.key_by(key_selector1, key_type),
            self.stream2.key_by(key_selector2, key_type),
        )

    def _is_keyed(self) -> bool:
        from strom.datastream.data_stream import KeyedStream

        return isinstance(self.stream1, KeyedStream) and isinstance(self.stream2, KeyedStream)

    def map(self, func: Any, output_type: Any = None) -> DataStream:
        """Apply ``func.map1`` to the first stream's records and ``func.map2`` to the
        second's (a ``CoMapFunction``)."""
        _check_method(func, ("map1", "map2"), "connect(...).map()", "CoMapFunction")
        spec = OperatorSpec("co_map", func)
        return _two_input(self.stream1, self.stream2, "Co-Map", spec, output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream:
        """Emit what ``func.flat_map1``/``flat_map2`` return or yield (a ``CoFlatMapFunction``)."""
        _check_method(
            func, ("flat_map1", "flat_map2"), "connect(...).flat_map()", "CoFlatMapFunction"
        )
        spec = OperatorSpec("co_flat_map", func)
        return _two_input(self.stream1, self.stream2, "Co-Flat Map", spec, output_type)

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        """Run a ``CoProcessFunction``, or a ``KeyedCoProcessFunction`` when both inputs are
        keyed (keyed state and timers, ``on_timer``)."""
        methods = ("process_element1", "process_element2")
        if self._is_keyed():
            _check_method(func, methods, "connect(...).process()", "KeyedCoProcessFunction")
            spec = OperatorSpec("keyed_co_process", func)
            name = "Keyed Co-Process"
        else:
            from strom.datastream.functions import KeyedCoProcessFunction

            if isinstance(func, KeyedCoProcessFunction):
                raise TypeError(
                    "a KeyedCoProcessFunction needs both inputs keyed: connect two KeyedStreams "
                    "or call key_by(key_selector1, key_selector2) on the connected streams"
                )
            _check_method(func, methods, "connect(...).process()", "CoProcessFunction")
            spec = OperatorSpec("co_process", func)
            name = "Co-Process"
        return _two_input(self.stream1, self.stream2, name, spec, output_type)


class BroadcastStream:
    """A stream sent to every subtask of the operator it is connected to, with the broadcast
    state descriptors it fills: ``ds.broadcast(MapStateDescriptor(...))``."""

    def __init__(self, stream: DataStream, descriptors: tuple[Any, ...]) -> None:
        from strom.datastream.state import MapStateDescriptor

        for descriptor in descriptors:
            if not isinstance(descriptor, MapStateDescriptor):
                raise TypeError(
                    "broadcast() takes MapStateDescriptors for broadcast state; got "
                    f"{type(descriptor).__name__}"
                )
        self.stream = stream._partition(BroadcastPartitioner(), "Broadcast")
        self.descriptors = descriptors


class BroadcastConnectedStream:
    """A stream connected with a :class:`BroadcastStream`:
    ``ds.connect(rules.broadcast(RULES)).process(BroadcastProcessFunction)``."""

    def __init__(self, stream: DataStream, broadcast_stream: BroadcastStream) -> None:
        if stream._env is not broadcast_stream.stream._env:
            raise ValueError("connect() of streams from different environments")
        self.stream = stream
        self.broadcast_stream = broadcast_stream

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        """Run a ``BroadcastProcessFunction`` (or a ``KeyedBroadcastProcessFunction`` on a
        keyed stream): ``process_element`` for this stream's records with read-only broadcast
        state, ``process_broadcast_element`` for broadcast records with writable state."""
        from strom.datastream.data_stream import KeyedStream
        from strom.datastream.functions import KeyedBroadcastProcessFunction

        methods = ("process_element", "process_broadcast_element")
        args = {"broadcast_descriptors": list(self.broadcast_stream.descriptors)}
        if isinstance(self.stream, KeyedStream):
            _check_method(func, methods, "process()", "KeyedBroadcastProcessFunction")
            spec = OperatorSpec("keyed_broadcast_process", func, self.stream._key_selector, args)
            name = "Keyed Broadcast Process"
        else:
            if isinstance(func, KeyedBroadcastProcessFunction):
                raise TypeError(
                    "a KeyedBroadcastProcessFunction needs a keyed stream: "
                    "key_by(...).connect(broadcast_stream)"
                )
            _check_method(func, methods, "process()", "BroadcastProcessFunction")
            spec = OperatorSpec("broadcast_process", func, None, args)
            name = "Broadcast Process"
        env = self.stream._env
        spec.output_type = output_type
        transformation = env._stream_graph.add(
            name,
            [self.stream._transformation, self.broadcast_stream.stream._transformation],
            operator=spec,
            output_type=output_type,
            input_indexes=[0, 1],
        )
        from strom.datastream.data_stream import DataStream

        return DataStream(env, transformation)
