"""Chain wiring: a task's operators, its source and its record writers, joined up.

A vertex's operators call each other directly (DESIGN.md §3); only its outgoing edges carry
records through channels. ``build_chain`` creates the operators and the record writer of each
outgoing edge (a local channel to a consumer in this process, a remote one otherwise) and sets
every operator's ``Output`` to its chained successors and its edges, side outputs included.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strom.graph.job_graph import input_channel_layout
from taskmanager.network.channels import (
    ChannelKey,
    LocalOutputChannel,
    OutputChannel,
    RemoteOutputChannel,
)
from taskmanager.network.record_writer import RecordWriter
from taskmanager.network.result_partitions import BlockingPartitionChannel
from taskmanager.runtime.operators import Operator, Output, create_operator
from taskmanager.runtime.sources import SourceDriver, create_source

if TYPE_CHECKING:
    from taskmanager.runtime.task import Task

__all__ = ["BATCH_SIZE", "Chain", "build_chain"]

BATCH_SIZE = 1024
GATE_LOOKUP_TIMEOUT_S = 60.0


class _DisconnectedChannel(OutputChannel):
    """A consumer this producer never sends to (forward and rescale edges)."""

    def send(self, element: Any) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Chain:
    """A task's wired operator chain."""

    #: the operators in chain order (a source task's source is not among them)
    operators: list[Operator]
    #: each operator's uid, by ``id(operator)``
    uids: dict[int, str]
    #: one record writer per outgoing edge
    writers: list[RecordWriter]
    #: the source driver of a source task
    source: SourceDriver | None
    #: the operator the task's input gate feeds (None in a source task)
    head: Operator | None
    #: operators with processing-time timers
    timer_operators: list[Operator]


def build_chain(task: Task, clock: Callable[[], float]) -> Chain:
    """Create and wire ``task``'s operators; the writers read deadlines off ``clock``."""
    vertex, graph = task.vertex, task.graph
    writers_by_edge = {edge.id: _writer(task, edge, clock) for edge in graph.outputs_of(vertex.id)}
    # The task can cancel them from here on, even if creating an operator fails.
    task.writers = list(writers_by_edge.values())
    operators: dict[int, Operator] = {}
    head = vertex.head
    for chained in vertex.operators:
        if chained is head and vertex.is_source:
            continue
        operators[chained.id] = create_operator(
            chained.spec, task.operator_context(chained.name, chained.uid)
        )
    # Wire outputs back to front so each operator's targets already exist.
    outputs: dict[int, Output] = {}
    for chained in reversed(vertex.operators):
        side = {
            tag: Output(
                [operators[t] for t in chained.chained_side_outputs.get(tag, [])],
                [writers_by_edge[e] for e in chained.network_side_outputs.get(tag, [])],
            )
            for tag in {*chained.chained_side_outputs, *chained.network_side_outputs}
        }
        outputs[chained.id] = Output(
            [operators[target] for target in chained.chained_outputs],
            [writers_by_edge[edge] for edge in chained.network_outputs],
            side,
        )
        if chained.id in operators:
            operators[chained.id].output = outputs[chained.id]
    in_order = [operators[c.id] for c in vertex.operators if c.id in operators]
    source = None
    if vertex.is_source:
        source = create_source(head.spec, task.operator_context(head.name, head.uid))
        source.output = outputs[head.id]
    return Chain(
        operators=in_order,
        uids={id(operators[c.id]): c.uid for c in vertex.operators if c.id in operators},
        writers=task.writers,
        source=source,
        head=in_order[0] if in_order and not vertex.is_source else None,
        timer_operators=[
            op
            for op in in_order
            if type(op).next_processing_timer is not Operator.next_processing_timer
        ],
    )


def _writer(task: Task, edge: Any, clock: Callable[[], float]) -> RecordWriter:
    graph, subtask = task.graph, task.id.subtask
    target = graph.vertex(edge.target_vertex)
    channels: list[OutputChannel] = []
    for consumer in range(target.parallelism):
        layout = input_channel_layout(graph, target.id, consumer)
        try:
            index = layout.index((edge.id, subtask))
        except ValueError:
            channels.append(_DisconnectedChannel())
            continue
        if task.partitions is not None:  # BATCH: a blocking exchange, through a file
            path = task.partitions.path(task.id.job_id, task.vertex.id, subtask, edge.id, consumer)
            channels.append(BlockingPartitionChannel(path))
            continue
        address = task.locations[(target.id, consumer)]
        if address == task.own_address:
            gate = task.gates.get(
                task.id.job_id, task.id.attempt, target.id, consumer, GATE_LOOKUP_TIMEOUT_S
            )
            channels.append(LocalOutputChannel(gate, index))
        else:
            key = ChannelKey(task.id.job_id, task.id.attempt, target.id, consumer, index)
            # A consumer on this host may read a shared-memory ring (shared_rings.py).
            same_host = _host(address) == _host(task.own_address)
            channels.append(RemoteOutputChannel(address, key, shared_memory=same_host))
    return RecordWriter(
        copy.copy(edge.partitioner),
        channels,
        subtask,
        task.vertex.parallelism,
        batch_size=BATCH_SIZE,
        buffer_timeout_ms=task.buffer_timeout_ms,
        clock=clock,
    )


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0]
