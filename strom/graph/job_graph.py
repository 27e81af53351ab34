"""The job graph: operators fused into chains (vertices) joined by partitioned edges.

Chaining (DESIGN.md §3) fuses an operator into its input's task when they are joined by a
forward edge of equal parallelism, the operator has that one input, and neither side opted
out. A vertex's operators call each other directly; only edges between vertices carry records
through channels.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from strom.graph.batch import to_batch_spec
from strom.graph.partitioning import (
    DEFAULT_MAX_PARALLELISM,
    ForwardPartitioner,
    KeyGroupPartitioner,
    Partitioner,
    RebalancePartitioner,
)
from strom.graph.stream_graph import HEAD, NEVER, OperatorSpec, StreamGraph, Transformation


@dataclass
class ChainedOperator:
    """One operator inside a vertex."""

    id: int  # the transformation id
    name: str
    uid: str  # the user's uid, else a stable generated one
    spec: OperatorSpec
    #: operators of the same vertex this one calls directly with its output
    chained_outputs: list[int] = field(default_factory=list)
    #: edges (by id) this one writes its output to
    network_outputs: list[int] = field(default_factory=list)
    #: per side output (``OutputTag`` id): the chained operators and edges it goes to
    chained_side_outputs: dict[str, list[int]] = field(default_factory=dict)
    network_side_outputs: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class JobVertex:
    id: str
    name: str
    parallelism: int
    max_parallelism: int
    operators: list[ChainedOperator]  # topological order; the first is the chain's head
    slot_sharing_group: str = "default"
    is_source: bool = False

    @property
    def head(self) -> ChainedOperator:
        return self.operators[0]


@dataclass
class JobEdge:
    id: int
    source_vertex: str
    source_operator: int
    target_vertex: str
    partitioner: Partitioner
    target_input: int = 0  # which input of a two-input head operator
    side_output: str | None = None  # the side output of the source operator it carries


@dataclass
class JobGraph:
    name: str
    vertices: list[JobVertex]
    edges: list[JobEdge]
    settings: dict[str, Any] = field(default_factory=dict)

    def vertex(self, vertex_id: str) -> JobVertex:
        for vertex in self.vertices:
            if vertex.id == vertex_id:
                return vertex
        raise KeyError(vertex_id)

    def inputs_of(self, vertex_id: str) -> list[JobEdge]:
        return [edge for edge in self.edges if edge.target_vertex == vertex_id]

    def outputs_of(self, vertex_id: str) -> list[JobEdge]:
        return [edge for edge in self.edges if edge.source_vertex == vertex_id]

    def slots_required(self) -> int:
        """With slot sharing, the sum over sharing groups of their highest parallelism."""
        groups: dict[str, int] = {}
        for vertex in self.vertices:
            groups[vertex.slot_sharing_group] = max(
                groups.get(vertex.slot_sharing_group, 0), vertex.parallelism
            )
        return sum(groups.values())

    def plan(self) -> dict[str, Any]:
        """The plan as JSON-ready data, in the spirit of Flink's ``get_execution_plan``."""
        nodes = []
        for vertex in self.vertices:
            nodes.append(
                {
                    "id": vertex.id,
                    "type": vertex.head.spec.kind,
                    "pact": "Data Source" if vertex.is_source else "Operator",
                    "contents": vertex.name,
                    "parallelism": vertex.parallelism,
                    "max_parallelism": vertex.max_parallelism,
                    "slot_sharing_group": vertex.slot_sharing_group,
                    "operators": [
                        {"id": op.id, "name": op.name, "uid": op.uid, "kind": op.spec.kind}
                        for op in vertex.operators
                    ],
                    "predecessors": [
                        {
                            "id": edge.source_vertex,
                            "ship_strategy": repr(edge.partitioner),
                            "side": "first" if edge.target_input == 0 else "second",
                            **({"side_output": edge.side_output} if edge.side_output else {}),
                        }
                        for edge in self.inputs_of(vertex.id)
                    ],
                }
            )
        return {"name": self.name, "nodes": nodes}

    def plan_json(self) -> str:
        return json.dumps(self.plan(), indent=2)


@dataclass
class _PhysicalInput:
    source: Transformation
    partitioner: Partitioner | None  # None: none given
    input_index: int
    side_output: str | None = None  # None: the main output of ``source``


def _physical_inputs(t: Transformation) -> list[_PhysicalInput]:
    """Resolve virtual transformations (partitionings, unions, side outputs) between ``t``
    and its inputs."""
    result: list[_PhysicalInput] = []
    indexes = t.input_indexes or [0] * len(t.inputs)

    def walk(
        node: Transformation, partitioner: Partitioner | None, index: int, tag: str | None
    ) -> None:
        if not node.is_virtual:
            result.append(_PhysicalInput(node, partitioner, index, tag))
            return
        for upstream in node.inputs:
            walk(upstream, node.partitioner or partitioner, index, node.side_output or tag)

    for node, index in zip(t.inputs, indexes, strict=True):
        walk(node, None, index, None)
    return result


def build_job_graph(
    graph: StreamGraph,
    job_name: str,
    default_parallelism: int,
    default_max_parallelism: int = DEFAULT_MAX_PARALLELISM,
    chaining_enabled: bool = True,
    settings: dict[str, Any] | None = None,
) -> JobGraph:
    physical = [t for t in graph.transformations if not t.is_virtual]
    if not physical:
        raise ValueError("the job has no operators: add a source and a sink before execute()")
    parallelism = {t.id: t.parallelism or default_parallelism for t in physical}
    max_parallelism = {
        t.id: t.max_parallelism or max(default_max_parallelism, parallelism[t.id]) for t in physical
    }
    inputs = {t.id: _physical_inputs(t) for t in physical}
    consumers: dict[int, list[Transformation]] = {t.id: [] for t in physical}
    for t in physical:
        for physical_input in inputs[t.id]:
            consumers[physical_input.source.id].append(t)

    batch = (settings or {}).get("runtime_mode") == "BATCH"
    budget = int((settings or {}).get("batch_memory_budget") or 0)

    def chainable(upstream: Transformation, downstream: Transformation) -> bool:
        ins = inputs[downstream.id]
        if not chaining_enabled or len(ins) != 1 or ins[0].source is not upstream:
            return False
        partitioner = ins[0].partitioner
        # A keyed edge between two single subtasks routes nothing (every key goes to the one
        # consumer): the keyed operator is chained and called directly, which spares each
        # batch a hand-off between two task threads. Its state is its own (by uid, in key
        # groups), so a savepoint still restores at another parallelism, unchained there.
        single_keyed = (
            isinstance(partitioner, KeyGroupPartitioner)
            and parallelism[upstream.id] == parallelism[downstream.id] == 1
        )
        if (
            partitioner is not None
            and not isinstance(partitioner, ForwardPartitioner)
            and not single_keyed
        ):
            return False
        return (
            parallelism[upstream.id] == parallelism[downstream.id]
            and downstream.chaining not in (HEAD, NEVER)
            and upstream.chaining != NEVER
            and (upstream.slot_sharing_group or "default")
            == (downstream.slot_sharing_group or "default")
            and not downstream.is_source
        )

    # Assign each operator to a chain head, in recording order (inputs come first).
    head_of: dict[int, int] = {}
    for t in physical:
        ins = inputs[t.id]
        if len(ins) == 1 and chainable(ins[0].source, t):
            head_of[t.id] = head_of[ins[0].source.id]
        else:
            head_of[t.id] = t.id

    vertices: dict[int, JobVertex] = {}
    chained: dict[int, ChainedOperator] = {}
    uid_counts: dict[str, int] = {}
    for t in physical:
        base_uid = t.uid or f"{t.operator.kind}-{t.id}"
        if t.uid and t.uid in uid_counts:
            raise ValueError(f"uid '{t.uid}' is used by two operators; uids must be unique")
        uid_counts[base_uid] = 1
        spec = to_batch_spec(t.operator, budget) if batch else t.operator
        operator = ChainedOperator(t.id, t.name, base_uid, spec)
        chained[t.id] = operator
        head = head_of[t.id]
        if head == t.id:
            vertices[t.id] = JobVertex(
                id=f"v{len(vertices) + 1}",
                name=t.name,
                parallelism=parallelism[t.id],
                max_parallelism=max_parallelism[t.id],
                operators=[operator],
                slot_sharing_group=t.slot_sharing_group or "default",
                is_source=t.is_source,
            )
        else:
            vertex = vertices[head]
            vertex.operators.append(operator)
            vertex.name = f"{vertex.name} -> {t.name}"

    edges: list[JobEdge] = []
    for t in physical:
        for physical_input in inputs[t.id]:
            upstream = physical_input.source
            tag = physical_input.side_output
            if head_of[t.id] == head_of[upstream.id] and head_of[t.id] != t.id:
                if tag is None:
                    chained[upstream.id].chained_outputs.append(t.id)
                else:
                    chained[upstream.id].chained_side_outputs.setdefault(tag, []).append(t.id)
                continue
            partitioner = physical_input.partitioner
            if partitioner is None:
                same = parallelism[upstream.id] == parallelism[t.id]
                partitioner = ForwardPartitioner() if same else RebalancePartitioner()
            elif isinstance(partitioner, ForwardPartitioner) and (
                parallelism[upstream.id] != parallelism[t.id]
            ):
                raise ValueError(
                    f"forward() between '{upstream.name}' (parallelism {parallelism[upstream.id]})"
                    f" and '{t.name}' (parallelism {parallelism[t.id]}) needs equal parallelism;"
                    " use rebalance() or rescale() instead"
                )
            if isinstance(partitioner, KeyGroupPartitioner):
                # Key groups must agree between the edge and the keyed operator it feeds.
                partitioner = copy.copy(partitioner)
                partitioner.max_parallelism = max_parallelism[t.id]
            edge = JobEdge(
                id=len(edges),
                source_vertex=vertices[head_of[upstream.id]].id,
                source_operator=upstream.id,
                target_vertex=vertices[head_of[t.id]].id,
                partitioner=partitioner,
                target_input=physical_input.input_index,
                side_output=tag,
            )
            edges.append(edge)
            if tag is None:
                chained[upstream.id].network_outputs.append(edge.id)
            else:
                chained[upstream.id].network_side_outputs.setdefault(tag, []).append(edge.id)

    return JobGraph(job_name, list(vertices.values()), edges, dict(settings or {}))


def connected_producers(
    edge: JobEdge, producer_parallelism: int, consumer: int, n: int
) -> list[int]:
    """The producing subtasks of ``edge`` that send to consumer subtask ``consumer`` of ``n``."""
    if edge.partitioner.is_forward:
        return [consumer] if consumer < producer_parallelism else []
    if edge.partitioner.name == "rescale":
        result = []
        for producer in range(producer_parallelism):
            probe = type(edge.partitioner)()
            probe.setup(producer, producer_parallelism, n)
            if consumer in probe.targets:
                result.append(producer)
        return result
    return list(range(producer_parallelism))


def input_channel_layout(graph: JobGraph, vertex_id: str, consumer: int) -> list[tuple[int, int]]:
    """The input channels of one subtask, in order: ``[(edge id, producer subtask), ...]``.

    A channel's index in this list is how producer and consumer both name it.
    """
    vertex = graph.vertex(vertex_id)
    layout: list[tuple[int, int]] = []
    for edge in graph.inputs_of(vertex_id):
        producers = graph.vertex(edge.source_vertex).parallelism
        for producer in connected_producers(edge, producers, consumer, vertex.parallelism):
            layout.append((edge.id, producer))
    return layout
