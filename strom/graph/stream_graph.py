"""The stream graph: the transformations a program records through the DataStream API.

Physical transformations carry an :class:`OperatorSpec` (what runs); virtual ones only
re-route records (a partitioning, a union, a side output) and disappear when the job graph is
built.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from strom.graph.partitioning import Partitioner

ALWAYS, HEAD, NEVER = "always", "head", "never"


@dataclass
class OperatorSpec:
    """What a task runs for one operator: a kind the runtime knows and its arguments.

    ``function`` is the user's function object (or callable); ``key_selector`` is set for
    operators on a keyed stream; ``args`` holds kind-specific settings; ``output_type`` is the
    declared type (a ``TypeInformation``) that shapes the operator's outputs, as PyFlink's
    encoding with that type does (``Row`` objects, 32-bit floats, range-checked ints).
    """

    kind: str
    function: Any = None
    key_selector: Any = None
    args: dict[str, Any] = field(default_factory=dict)
    output_type: Any = None

    @property
    def is_keyed(self) -> bool:
        return self.key_selector is not None


@dataclass(eq=False)
class Transformation:
    id: int
    name: str
    inputs: list[Transformation]
    operator: OperatorSpec | None = None  # None: virtual
    partitioner: Partitioner | None = None  # virtual partition transformations
    parallelism: int | None = None  # None: the environment's
    max_parallelism: int | None = None
    uid: str | None = None
    chaining: str = ALWAYS
    slot_sharing_group: str | None = None
    output_type: Any = None
    is_source: bool = False
    #: for two-input operators: which input each entry of ``inputs`` feeds
    input_indexes: list[int] | None = None
    #: virtual: the side output (an ``OutputTag`` id) of its input this stream carries
    side_output: str | None = None

    @property
    def is_virtual(self) -> bool:
        return self.operator is None

    def __repr__(self) -> str:
        return f"Transformation({self.id}, {self.name!r})"


class StreamGraph:
    """The transformations of one program, in the order they were recorded."""

    def __init__(self) -> None:
        self.transformations: list[Transformation] = []
        self._ids = itertools.count(1)

    def add(self, name: str, inputs: list[Transformation], **kwargs: Any) -> Transformation:
        transformation = Transformation(next(self._ids), name, list(inputs), **kwargs)
        self.transformations.append(transformation)
        return transformation

    def clear(self) -> None:
        self.transformations.clear()

    def with_inputs(self) -> StreamGraph:
        """The recorded transformations and everything they read from, in recording order.

        After ``execute()`` clears the graph, a program may go on from a stream defined before
        (PyFlink's examples call ``execute()`` once per result of one source): the next job
        holds that stream's upstream operators again, as Flink's graph generator does.
        """
        seen: dict[int, Transformation] = {}
        pending = list(self.transformations)
        while pending:
            transformation = pending.pop()
            if transformation.id not in seen:
                seen[transformation.id] = transformation
                pending.extend(transformation.inputs)
        closed = StreamGraph()
        closed.transformations = [seen[i] for i in sorted(seen)]
        closed._ids = self._ids
        return closed
