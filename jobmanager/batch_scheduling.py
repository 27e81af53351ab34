"""Stage-by-stage scheduling of BATCH jobs, and their region failover: a pure state machine.

In BATCH every exchange between job vertices is blocking: a producing subtask writes its whole
output (a result partition, kept by the TaskManager it ran on) before any consumer starts. So,
as in Flink with all-blocking exchanges, every subtask is a pipelined region of its own: it can
be deployed as soon as every partition it consumes is finished, into any free slot, and a job
runs in as little as one slot, stage after stage.

A failure re-runs only its region: the failed subtask, plus any finished producer whose
partition was lost with its TaskManager and is still needed (and, transitively, the producers
of inputs that this re-run needs and that are gone). Consumers running on other TaskManagers
that were reading a lost partition are cancelled and re-run too.

Events come in (``deploy`` given free slots, ``running``, ``finished``, ``failed``,
``taskmanager_lost``); the answers say what the JobMaster must do. No I/O and no clocks, so
tests drive it directly; the JobMaster wires it to slots and deployments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CREATED, DEPLOYING, RUNNING, FINISHED = "CREATED", "DEPLOYING", "RUNNING", "FINISHED"
#: ship strategies (``JobGraph.plan()``) that connect producer subtask i to consumer i only
POINTWISE = ("FORWARD",)

SubtaskId = tuple[str, int]


@dataclass
class StageVertex:
    id: str
    name: str
    parallelism: int
    #: (producing vertex id, pointwise) per input edge
    inputs: list[tuple[str, bool]] = field(default_factory=list)


@dataclass
class Deployment:
    """Run ``subtask`` on ``taskmanager``; ``inputs`` says where each partition it reads is."""

    subtask: SubtaskId
    taskmanager: str
    inputs: dict[SubtaskId, str]


@dataclass
class Failover:
    """After a failure: the subtasks to cancel (running, reading a lost partition) and every
    subtask that will run again."""

    cancel: list[SubtaskId] = field(default_factory=list)
    rerun: list[SubtaskId] = field(default_factory=list)


class BatchScheduler:
    """Which subtask of a BATCH job runs when and where, and what re-runs after a failure."""

    def __init__(self, vertices: list[StageVertex]) -> None:
        self.vertices = {v.id: v for v in vertices}
        self.order = {v.id: n for n, v in enumerate(vertices)}  # topological, as planned
        self.state: dict[SubtaskId, str] = {}
        self.location: dict[SubtaskId, str] = {}
        #: how often each subtask was deployed
        self.runs: dict[SubtaskId, int] = {}
        #: finished partitions every consumer has read, freed on their TaskManager
        self.released: set[SubtaskId] = set()
        self._producers: dict[SubtaskId, list[SubtaskId]] = {}
        self._consumers: dict[SubtaskId, list[SubtaskId]] = {}
        for vertex in vertices:
            for index in range(vertex.parallelism):
                subtask = (vertex.id, index)
                self.state[subtask] = CREATED
                self.runs[subtask] = 0
                self._consumers.setdefault(subtask, [])
        for vertex in vertices:
            for index in range(vertex.parallelism):
                subtask = (vertex.id, index)
                producers: list[SubtaskId] = []
                for source, pointwise in vertex.inputs:
                    count = self.vertices[source].parallelism
                    if pointwise:
                        producers += [(source, index)] if index < count else []
                    else:
                        producers += [(source, j) for j in range(count)]
                self._producers[subtask] = producers
                for producer in producers:
                    self._consumers[producer].append(subtask)

    @classmethod
    def from_plan(cls, plan: dict[str, Any]) -> BatchScheduler:
        """From ``JobGraph.plan()``: its nodes with their predecessors and ship strategies."""
        return cls(
            [
                StageVertex(
                    node["id"],
                    node.get("contents", node["id"]),
                    int(node["parallelism"]),
                    [
                        (p["id"], p.get("ship_strategy", "").upper() in POINTWISE)
                        for p in node.get("predecessors", [])
                    ],
                )
                for node in plan["nodes"]
            ]
        )

    # -------------------------------------------------------------- scheduling

    def producers_of(self, subtask: SubtaskId) -> list[SubtaskId]:
        return list(self._producers[subtask])

    def schedulable(self) -> list[SubtaskId]:
        """Subtasks not yet running whose inputs are all finished, stage by stage."""
        ready = [
            subtask
            for subtask, state in self.state.items()
            if state == CREATED and all(self.state[p] == FINISHED for p in self._producers[subtask])
        ]
        return sorted(ready, key=lambda s: (self.order[s[0]], s[1]))

    def deploy(self, free_slots: list[str]) -> list[Deployment]:
        """Place schedulable subtasks into ``free_slots`` (a TaskManager per free slot)."""
        deployments = []
        for subtask, taskmanager in zip(self.schedulable(), free_slots, strict=False):
            self.state[subtask] = DEPLOYING
            self.location[subtask] = taskmanager
            self.runs[subtask] += 1
            inputs = {p: self.location[p] for p in self._producers[subtask]}
            deployments.append(Deployment(subtask, taskmanager, inputs))
        return deployments

    def running(self, subtask: SubtaskId) -> None:
        if self.state[subtask] == DEPLOYING:
            self.state[subtask] = RUNNING

    def finished(self, subtask: SubtaskId) -> list[tuple[SubtaskId, str]]:
        """``subtask`` wrote its partition and gave its slot back; returns the partitions no
        consumer needs any more, ``(producer, TaskManager)``, which may be freed."""
        self.state[subtask] = FINISHED
        freed = []
        for producer in self._producers[subtask]:
            if producer not in self.released and all(
                self.state[c] == FINISHED for c in self._consumers[producer]
            ):
                self.released.add(producer)
                freed.append((producer, self.location[producer]))
        if not self._consumers[subtask]:  # a sink stage: nothing to keep
            self.released.add(subtask)
        return freed

    def is_finished(self) -> bool:
        return all(state == FINISHED for state in self.state.values())

    # -------------------------------------------------------------- failover

    def failed(self, subtask: SubtaskId) -> Failover:
        """A subtask failed (its TaskManager is fine): only it runs again."""
        failover = Failover()
        self._rerun(subtask, failover)
        return failover

    def partitions_lost(self, subtask: SubtaskId, producers: list[SubtaskId]) -> Failover:
        """``subtask`` failed because it could not read the partitions of ``producers``: they
        run again (with their consumers that were reading them), and so does ``subtask``."""
        failover = Failover()
        for producer in producers:
            if producer in self.state and self.state[producer] == FINISHED:
                self.released.discard(producer)
                self._rerun(producer, failover)
        self._rerun(subtask, failover)
        return failover

    def taskmanager_lost(self, taskmanager: str) -> Failover:
        """Everything on ``taskmanager`` is gone: the subtasks running there, and the
        partitions it kept that a consumer still needs."""
        failover = Failover()
        for subtask, state in list(self.state.items()):
            if self.location.get(subtask) != taskmanager:
                continue
            if state in (DEPLOYING, RUNNING):
                self._rerun(subtask, failover)
            elif state == FINISHED and subtask not in self.released:
                if any(self.state[c] != FINISHED for c in self._consumers[subtask]):
                    self._rerun(subtask, failover)
                else:
                    self.released.add(subtask)
        return failover

    def _rerun(self, subtask: SubtaskId, failover: Failover) -> None:
        if self.state[subtask] == CREATED:
            return
        was = self.state[subtask]
        self.state[subtask] = CREATED
        lost_output = was == FINISHED
        self.location.pop(subtask, None)
        failover.rerun.append(subtask)
        if lost_output:
            # Consumers that were reading this partition cannot finish: run them again.
            for consumer in self._consumers[subtask]:
                if self.state[consumer] in (DEPLOYING, RUNNING):
                    failover.cancel.append(consumer)
                    self._rerun(consumer, failover)
        # The re-run reads its inputs again: any that were freed must be produced again.
        for producer in self._producers[subtask]:
            if producer in self.released:
                self.released.discard(producer)
                self._rerun(producer, failover)

    # -------------------------------------------------------------- views

    def stages(self) -> list[dict[str, Any]]:
        """Per vertex, in stage order: its state and how many subtasks are in each state (what
        the REST API and dashboard show of a BATCH job)."""
        result = []
        for vertex_id, vertex in sorted(self.vertices.items(), key=lambda i: self.order[i[0]]):
            counts = dict.fromkeys((CREATED, DEPLOYING, RUNNING, FINISHED), 0)
            for index in range(vertex.parallelism):
                counts[self.state[(vertex_id, index)]] += 1
            if counts[FINISHED] == vertex.parallelism:
                state = FINISHED
            elif counts[CREATED] == vertex.parallelism:
                state = CREATED
            else:
                state = RUNNING
            result.append(
                {
                    "id": vertex_id,
                    "name": vertex.name,
                    "state": state,
                    "parallelism": vertex.parallelism,
                    "tasks": counts,
                    "progress": counts[FINISHED] / vertex.parallelism,
                }
            )
        return result
