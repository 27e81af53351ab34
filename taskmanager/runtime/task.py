"""A task: one parallel subtask of a job vertex, running its operator chain on its own thread.

The task's thread runs one mailbox loop (DESIGN.md §5): it takes one thing at a time from its
input gate — a mailbox action (a checkpoint trigger, a cancellation), a batch of records, a
watermark, an end-of-partition — and, in a source task, polls the source whenever no mailbox
action waits (FLIP-27). Between two steps it sends the batches whose buffer timeout passed and
fires due processing-time timers. User functions and state thus need no locks. While the
loop waits for input, a producer task of the same process may run one step for it on the
producer's own thread (the direct hand-off, ``_on_direct``; the gate lets one step run at a
time), so records between tasks of a process do not cross threads. The chain's
wiring is in ``chain.py``, event time in ``valve.py``, barrier alignment in ``alignment.py``.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from strom.graph.job_graph import JobGraph, JobVertex, input_channel_layout
from strom.rpc import data_pb2 as pb
from taskmanager import cpu_claims
from taskmanager.network.channels import ConsumerGone
from taskmanager.network.elements import (
    BARRIER,
    ENCODED_RECORDS,
    END_OF_PARTITION,
    RECORDS,
    WATERMARK,
    WATERMARK_STATUS,
    decode,
)
from taskmanager.network.gate_registry import GateRegistry
from taskmanager.network.input_gate import GateClosed, InputGate
from taskmanager.network.record_writer import RecordWriter
from taskmanager.network.result_partitions import PartitionReader, ResultPartitions
from taskmanager.runtime.alignment import BarrierAligner
from taskmanager.runtime.chain import build_chain
from taskmanager.runtime.context import OperatorContext, TaskCancelled
from taskmanager.runtime.operators import Operator
from taskmanager.runtime.sources import (
    BATCH_SIZE,
    END_OF_INPUT,
    NOTHING_AVAILABLE,
    SourceDriver,
)
from taskmanager.runtime.valve import WatermarkValve
from taskmanager.state.operator_state import FINISHED, OperatorRestore

log = logging.getLogger(__name__)

__all__ = ["BATCH_SIZE", "Task", "TaskCancelled", "TaskId"]

#: batches buffered per input channel before the producer is held back
GATE_CAPACITY = 16
#: how long a source task that found nothing to read waits before polling its source again
#: (a mailbox action wakes it at once)
SOURCE_IDLE_WAIT_S = 0.01
_FLUSH_WHEN_FULL_MS = 365 * 24 * 3600 * 1000
#: how long a finishing task waits for its last snapshots to be acknowledged
SNAPSHOT_WAIT_S = 30.0


@dataclass(frozen=True)
class TaskId:
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int


class Task:
    def __init__(
        self,
        task_id: TaskId,
        graph: JobGraph,
        locations: dict[tuple[str, int], str],
        own_address: str,
        gates: GateRegistry,
        report: Callable[[Task, str, str], None],
        job_parameters: dict[str, str] | None = None,
        checkpoints: Any = None,
        restore: dict[str, Any] | None = None,
        checkpointing: bool = False,
        partitions: ResultPartitions | None = None,
    ) -> None:
        self.id = task_id
        self.graph = graph
        self.vertex: JobVertex = graph.vertex(task_id.vertex_id)
        self.locations = locations
        self.own_address = own_address
        self.gates = gates
        self.report = report
        self.job_parameters = job_parameters or {}
        self.name = f"{self.vertex.name} ({task_id.subtask + 1}/{self.vertex.parallelism})"
        settings = graph.settings
        timeout = settings.get("buffer_timeout_ms", 100)
        if timeout is None:
            timeout = 100
        elif timeout < 0:  # -1, as in Flink: send a batch only when it is full (or at the end)
            timeout = _FLUSH_WHEN_FULL_MS
        self.buffer_timeout_ms = timeout
        self.layout = input_channel_layout(graph, self.vertex.id, task_id.subtask)
        self.gate = InputGate(len(self.layout), GATE_CAPACITY)
        gates.register(task_id.job_id, task_id.attempt, self.vertex.id, task_id.subtask, self.gate)
        self.state = "DEPLOYING"
        self.cancelled = False
        #: FAILED only because a consumer closed its input first: the job's cause is elsewhere
        self.consequential = False
        self.records_in = 0
        self.records_out = 0
        self.writers: list[RecordWriter] = []
        self.operators: list[Operator] = []
        self.source: SourceDriver | None = None
        self.head: Operator | None = None
        #: writes snapshots off the task thread and acknowledges them (see deployment.py)
        self.checkpoints = checkpoints
        #: the job takes checkpoints (two-phase-commit sinks end with a final one)
        self.checkpointing = checkpointing
        self.restore = restore or {}
        self.valve = WatermarkValve(len(self.layout))
        self.aligner = BarrierAligner(len(self.layout), self.gate.block, self.gate.unblock_all)
        self._open_channels = len(self.layout)
        self._input_ended = False  # end of input handled; outputs closed
        self.timer_operators: list[Operator] = []  # operators with processing-time timers
        #: when the records being emitted entered the task (None: now). A source that
        #: buffers records sets it, so the writers' buffer timeout runs from then.
        self.batch_origin: float | None = None
        self._last_snapshot = 0  # the newest checkpoint this task took its snapshot for
        #: the newest checkpoint triggered here (not at a source), and its options
        self._triggered: tuple[int, dict[str, Any]] = (0, {})
        #: snapshot writes not yet acknowledged; FINISHED is reported after them, so the
        #: JobManager never takes a task that snapshotted a checkpoint for one that had not
        self._snapshot_writes: list[Future] = []
        #: in BATCH, the TaskManager's result partitions: the task's outputs are written there
        #: and its inputs read from there (blocking exchanges); None in STREAMING
        self.partitions = partitions if settings.get("runtime_mode") == "BATCH" else None
        self.partition_reader: PartitionReader | None = None
        self.thread = threading.Thread(target=self.run, name=f"task {self.name}", daemon=True)

    # -------------------------------------------------------------- control (any thread)

    def start(self) -> None:
        self.thread.start()
        if self.partitions is not None and self.layout:
            self.partition_reader = self._partition_reader()
            self.partition_reader.start()

    def _partition_reader(self) -> PartitionReader:
        """BATCH: what feeds this task's input gate, from its producers' finished partitions
        (``locations`` says which TaskManager keeps each)."""
        sources = {edge.id: edge.source_vertex for edge in self.graph.inputs_of(self.vertex.id)}
        inputs = []
        for index, (edge_id, producer) in enumerate(self.layout):
            source = sources[edge_id]
            request = pb.PartitionRequest(
                job_id=self.id.job_id,
                producer_vertex=source,
                producer_subtask=producer,
                edge=edge_id,
                consumer_subtask=self.id.subtask,
            )
            inputs.append((index, request, self.locations.get((source, producer), "")))
        return PartitionReader(self.gate, inputs, self.partitions, self.name)

    def cancel(self) -> None:
        """Stop the task as soon as possible; it reports CANCELED."""
        if self.cancelled or self.state in ("FINISHED", "FAILED", "CANCELED"):
            return
        self.cancelled = True
        source = self.source
        if source is not None:
            source.cancel()

        def raise_cancelled() -> None:
            raise TaskCancelled()

        try:
            self.gate.post(raise_cancelled)
        except GateClosed:
            pass
        self.gate.close()
        # A send blocked by back pressure (say, towards a host that was cut off) must end
        # too, or the task never stops and its job never restarts.
        # Off the caller's thread: closing a channel to an unreachable host can block.
        threading.Thread(
            target=self._cancel_outputs, name=f"cancel {self.name}", daemon=True
        ).start()

    def _cancel_outputs(self) -> None:
        for writer in list(self.writers):
            try:
                writer.cancel()
            except Exception:
                log.debug("cancelling an output of %s failed", self.name, exc_info=True)

    # -------------------------------------------------------------- the task thread

    def run(self) -> None:
        failure = ""
        cpu_claims.pin_thread()
        try:
            self._transition("RUNNING")
            self._setup()
            try:
                self._mailbox_loop()
            finally:
                if self.source is not None:
                    self.source.close()
            self._end_of_input()
            self._await_final_checkpoint()
            self._close(quietly=False)
            state = "FINISHED"
        except TaskCancelled:
            state = "CANCELED"
        except BaseException as error:
            if self.cancelled:
                state = "CANCELED"
            else:
                state = "FAILED"
                self.consequential = isinstance(error, ConsumerGone)
                failure = traceback.format_exc()
                log.warning("task %s failed:\n%s", self.name, failure)
        if state != "FINISHED":
            self._abort()
            self._close(quietly=True)
        self.gates.unregister(self.id.job_id, self.id.attempt, self.vertex.id, self.id.subtask)
        self.gate.close()
        if state == "FINISHED" and self._snapshot_writes:
            futures.wait(self._snapshot_writes, timeout=SNAPSHOT_WAIT_S)
        self._transition(state, failure)

    def _transition(self, state: str, failure: str = "") -> None:
        self.state = state
        try:
            self.report(self, state, failure)
        except Exception:
            log.exception("could not report state %s of task %s", state, self.name)

    def operator_context(self, operator_name: str, uid: str) -> OperatorContext:
        """The context of one operator of this task's chain."""
        return OperatorContext(
            job_id=self.id.job_id,
            task_name=self.vertex.name,
            operator_name=operator_name,
            operator_uid=uid,
            subtask_index=self.id.subtask,
            parallelism=self.vertex.parallelism,
            max_parallelism=self.vertex.max_parallelism,
            attempt=self.id.attempt,
            job_parameters=self.job_parameters,
            auto_watermark_interval_ms=self.graph.settings.get("auto_watermark_interval_ms", 200),
            attempt_is_current=self._attempt_is_current if self.checkpoints else None,
            checkpointing=self.checkpointing,
            request_splits=self.request_splits
            if self.checkpoints is not None and self.partitions is None
            else None,
        )

    def request_splits(
        self, split_count: int, pool: list[tuple[int, int | None]] | None, count: int
    ) -> Callable[[], list[tuple[int, int | None]]]:
        """Ask the JobManager for this task's source's next splits; returns what waits for
        the answer (``CheckpointServices.request_splits``)."""
        return self.checkpoints.request_splits(self, split_count, pool, count)

    def _setup(self) -> None:
        chain = build_chain(self, self._batch_clock)
        self.writers = chain.writers
        self.operators = chain.operators
        self._uids = chain.uids
        self.head = chain.head
        self.timer_operators = chain.timer_operators
        if self.head is not None:
            # Per input channel, the head's method for its input (the second input of a
            # two-input operator has its own).
            head = self.head
            by_input = [head.process_batch, getattr(head, "process_batch2", None)]
            input_of = {e.id: e.target_input for e in self.graph.inputs_of(self.vertex.id)}
            self._process_of = [by_input[input_of[edge_id]] for edge_id, _ in self.layout]
            self._keyed_of = [self._keys_taker(edge_id) for edge_id, _ in self.layout]
        if chain.source is not None:
            self.source = chain.source
            self.source.initialize_state(self._restore_for(self.vertex.head.uid))
        for operator in self.operators:
            operator.initialize_state(self._restore_for(self._uids[id(operator)]))
        # Open downstream operators first, as Flink does.
        for operator in reversed(self.operators):
            operator.open()
        if self.cancelled:
            raise TaskCancelled()

    def _keys_taker(self, edge_id: Any) -> Callable[[list, list | None, list], None] | None:
        """The head's ``process_keyed`` for batches of edge ``edge_id`` when the keys that
        edge's partitioner sends along are the head's keys (the same key selector), else
        None: the head then computes the keys itself."""
        head = self.head
        if not getattr(head, "takes_keys", False):
            return None
        edge = next(e for e in self.graph.inputs_of(self.vertex.id) if e.id == edge_id)
        if edge.target_input != 0:
            return None
        selector = getattr(edge.partitioner, "key_selector", None)
        if selector is None or selector is not head.key_of:
            return None
        return head.process_keyed

    def _batch_clock(self) -> float:
        """The writers' clock: when the records they are given entered this task."""
        origin = self.batch_origin
        return time.monotonic() if origin is None else origin

    def _attempt_is_current(self) -> bool:
        return self.checkpoints.attempt_is_current(
            self.id.job_id, self.id.attempt, f"{self.id.vertex_id}/{self.id.subtask}"
        )

    def _restore_for(self, uid: str) -> OperatorRestore | None:
        """The earlier snapshots of operator ``uid``, if the job is restoring."""
        entry = self.restore.get("operators", {}).get(uid)
        if entry is None:
            return None
        # A subtask that had finished stays finished (its source reads nothing more); of a
        # source whose splits the JobManager handed out, the splits it had read are kept.
        given = entry.get("finished_splits", {})
        loaded: dict[int, dict[str, Any]] = {
            subtask: {**FINISHED, "splits": given[str(subtask)]}
            if str(subtask) in given
            else FINISHED
            for subtask in entry.get("finished", ())
        }
        cache = self.restore.setdefault("_loaded", {})
        for subtask, path in entry["files"].items():
            if path not in cache:
                cache[path] = pickle.loads(self.checkpoints.storage.read_state(path))
            loaded[subtask] = cache[path].get(uid, {})
        return OperatorRestore(
            loaded, entry["parallelism"], self.id.subtask, self.vertex.parallelism
        )

    # -------------------------------------------------------------- checkpoints

    def trigger_checkpoint(self, checkpoint_id: int, options: dict[str, Any]) -> None:
        """Mailbox action. A source snapshots, then sends the barrier downstream. Another
        task remembers the checkpoint: if its inputs all end without delivering the barrier
        (their tasks finished), it takes the snapshot when the last one ends."""
        if self.state != "RUNNING" or checkpoint_id <= self._last_snapshot:
            return
        if self.source is not None:
            self.source.at_consistent_point(lambda: self._snapshot(checkpoint_id, options))
        elif self._input_ended:
            self._snapshot(checkpoint_id, options)
        elif checkpoint_id > self._triggered[0]:
            self._triggered = (checkpoint_id, options)

    def _snapshot(self, checkpoint_id: int, options: dict[str, Any]) -> None:
        self._last_snapshot = checkpoint_id
        timestamp = options.get("timestamp", 0)
        states: dict[str, Any] = {}
        if self.source is not None:
            states[self.vertex.head.uid] = self.source.snapshot_state(checkpoint_id, timestamp)
        for operator in self.operators:
            states[self._uids[id(operator)]] = operator.snapshot_state(checkpoint_id, timestamp)
        if not self._input_ended:  # after the end, the outputs are closed
            for writer in self.writers:
                writer.broadcast((BARRIER, checkpoint_id, options))
        written = self.checkpoints.write_snapshot(self, checkpoint_id, options, states)
        if written is not None:
            self._snapshot_writes = [f for f in self._snapshot_writes if not f.done()]
            self._snapshot_writes.append(written)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Mailbox action: the checkpoint is complete everywhere; commit what it covered."""
        if self.state != "RUNNING":
            return
        source = self.source
        if source is not None:
            source.at_consistent_point(lambda: source.notify_checkpoint_complete(checkpoint_id))
        for operator in self.operators:
            operator.notify_checkpoint_complete(checkpoint_id)

    def flush_due(self) -> float | None:
        """Send batches whose buffer timeout passed; the next deadline, if any."""
        deadline = None
        now = time.monotonic()
        for writer in self.writers:
            writer.flush_if_due(now)
            next_deadline = writer.next_deadline
            if next_deadline is not None and (deadline is None or next_deadline < deadline):
                deadline = next_deadline
        return deadline

    def _mailbox_loop(self) -> None:
        """The task's one loop: mailbox actions first, then input elements or, in a source
        task, the source's poll; between steps, due flushes and timers."""
        gate, source = self.gate, self.source
        handle = self._on_element
        timer_operators = self.timer_operators
        wait: float | None = 0.0  # first look at the mailbox, timers and flushes
        while True:
            item = gate.poll(wait)
            polled = None
            if item is not None:
                channel, element = item
                if channel < 0:
                    element()
                else:
                    handle(channel, element)
                    if not self._open_channels:
                        return
            elif source is not None:
                if self.cancelled:
                    raise TaskCancelled()
                polled = source.poll_next(self)
                if polled == END_OF_INPUT:
                    return
            elif not self._open_channels:
                return  # a task without inputs (it has nothing to do)
            deadline = self.flush_due() if self.writers else None
            if timer_operators:
                at = self.fire_processing_timers()
                if at is not None:
                    deadline = at if deadline is None else min(deadline, at)
            if source is not None and polled != NOTHING_AVAILABLE:
                wait = 0.0  # poll the source again unless a mailbox action waits
            else:
                if source is not None:  # nothing to read: wait a little, or for mail
                    idle = time.monotonic() + SOURCE_IDLE_WAIT_S
                    at = source.next_deadline
                    if at is not None and at < idle:
                        idle = at
                    deadline = idle if deadline is None else min(deadline, idle)
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())

    def _on_element(self, channel: int, element: tuple) -> None:
        """One element from input channel ``channel``."""
        kind = element[0]
        if kind == ENCODED_RECORDS:  # from another process: decoded here, just before use
            element = decode(element[1])
            kind = RECORDS
        if kind == RECORDS:
            values = element[1]
            self.records_in += len(values)
            if len(element) > 3:
                keyed = self._keyed_of[channel]
                if keyed is not None:
                    keyed(values, element[2], element[3])
                    return
            self._process_of[channel](values, element[2])
        elif kind == WATERMARK:
            watermark = self.valve.on_watermark(channel, element[1])
            if watermark is not None:
                self.head.process_watermark(watermark)
        elif kind == BARRIER:
            aligned = self.aligner.on_barrier(channel, element[1], element[2] or {})
            if aligned is not None:
                self._snapshot(*aligned)
        elif kind == END_OF_PARTITION:
            if self.valve.finished[channel]:
                return
            self.valve.on_end(channel)
            self._open_channels -= 1
            aligning = self.aligner.aligning is not None
            aligned = self.aligner.on_end(channel)
            if aligned is not None:
                self._snapshot(*aligned)
            elif (
                not aligning
                and not self._open_channels
                and self._triggered[0] > self._last_snapshot
            ):
                self._snapshot(*self._triggered)
        elif kind == WATERMARK_STATUS:
            change, watermark = self.valve.on_status(channel, element[1])
            if change is not None:
                self.head.process_watermark_status(change)
            if watermark is not None:
                self.head.process_watermark(watermark)

    def fire_processing_timers(self) -> float | None:
        """Fire the operators' processing-time timers that are due (also ``with_idleness``);
        when (monotonic seconds) the next one is, if any. The loop calls it between steps."""
        deadline = None
        now_ms = int(time.time() * 1000)
        for operator in self.timer_operators:
            due = operator.next_processing_timer()
            if due is not None and due <= now_ms:
                operator.fire_processing_timers(now_ms)
                due = operator.next_processing_timer()
            if due is not None:
                at = time.monotonic() + max(0, due - now_ms) / 1000.0
                deadline = at if deadline is None else min(deadline, at)
        return deadline

    def _end_of_input(self) -> None:
        if self.source is not None:
            self.source.end_of_input()
        for operator in self.operators:
            operator.end_input()
        for writer in self.writers:
            writer.flush()
            writer.broadcast((END_OF_PARTITION,))
        for writer in self.writers:
            writer.close()
        self._input_ended = True
        if self.source is None:
            self.records_out = sum(writer.records_out for writer in self.writers)

    def _await_final_checkpoint(self) -> None:
        """Keep running mailbox actions until operators that commit with checkpoints (a
        FileSink's writer) saw a checkpoint taken after their end of input complete. Their
        output becomes final only then, as in Flink: committing at once could duplicate it
        if the job restarted from an earlier checkpoint."""
        waiting = [op for op in self.operators if op.awaits_final_checkpoint()]
        while waiting:
            item = self.gate.poll(0.1)
            if item is not None and item[0] < 0:
                item[1]()
            if self.cancelled:
                raise TaskCancelled()
            waiting = [op for op in waiting if op.awaits_final_checkpoint()]

    def _abort(self) -> None:
        for operator in self.operators:
            abort = getattr(operator, "abort", None)
            if abort is not None:
                try:
                    abort()
                except Exception:
                    log.exception("abort of %s failed", self.name)

    def _close(self, quietly: bool) -> None:
        for operator in self.operators:
            try:
                operator.close()
            except Exception:
                if not quietly:
                    raise
                log.exception("close of an operator of %s failed", self.name)
        if quietly:
            for writer in self.writers:
                try:
                    writer.cancel()  # no flushing or waiting for acks on the way down
                except Exception:
                    pass
