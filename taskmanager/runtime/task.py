"""A task: one parallel subtask of a job vertex, running its operator chain on its own thread.

The task's thread runs a mailbox loop (DESIGN.md §5): it takes one thing at a time from its
input gate — a batch of records, a watermark, an end-of-partition, or a mailbox action such as
a cancellation — so user functions and state need no locks.
"""

from __future__ import annotations

import copy
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
from taskmanager.network.channels import (
    ChannelKey,
    LocalOutputChannel,
    OutputChannel,
    RemoteOutputChannel,
)
from taskmanager.network.elements import (
    BARRIER,
    END_OF_PARTITION,
    RECORDS,
    WATERMARK,
    WATERMARK_STATUS,
)
from taskmanager.network.gate_registry import GateRegistry
from taskmanager.network.input_gate import GateClosed, InputGate
from taskmanager.network.record_writer import RecordWriter
from taskmanager.runtime.context import MIN_WATERMARK, OperatorContext
from taskmanager.runtime.operators import Operator, Output, create_operator
from taskmanager.runtime.sources import create_source
from taskmanager.state.operator_state import FINISHED, OperatorRestore

log = logging.getLogger(__name__)

BATCH_SIZE = 1024
#: batches buffered per input channel before the producer is held back
GATE_CAPACITY = 16
GATE_LOOKUP_TIMEOUT_S = 60.0
_FLUSH_WHEN_FULL_MS = 365 * 24 * 3600 * 1000
#: how long a finishing task waits for its last snapshots to be acknowledged
SNAPSHOT_WAIT_S = 30.0


class TaskCancelled(Exception):
    """Raised inside a task's thread to unwind it after a cancel."""


@dataclass(frozen=True)
class TaskId:
    job_id: str
    attempt: int
    vertex_id: str
    subtask: int


class _DisconnectedChannel(OutputChannel):
    """A consumer this producer never sends to (forward and rescale edges)."""

    def send(self, element: Any) -> None:
        pass

    def close(self) -> None:
        pass


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
        self.records_in = 0
        self.records_out = 0
        self.writers: list[RecordWriter] = []
        self.operators: list[Operator] = []
        self.source = None
        #: writes snapshots off the task thread and acknowledges them (see deployment.py)
        self.checkpoints = checkpoints
        #: the job takes checkpoints (two-phase-commit sinks end with a final one)
        self.checkpointing = checkpointing
        self.restore = restore or {}
        self._aligning: int | None = None  # the checkpoint whose barriers are being aligned
        self._barriers: set[int] = set()  # channels that delivered that barrier
        self._finished_channels: list[bool] = []
        self._barrier_options: dict[str, Any] = {}
        self._input_ended = False  # end of input handled; outputs closed
        self.timer_operators: list[Operator] = []  # operators with processing-time timers
        self._idle_channels: list[bool] = []
        self._idle = False  # every input is idle (or finished)
        self._last_snapshot = 0  # the newest checkpoint this task took its snapshot for
        #: the newest checkpoint triggered here (not at a source), and its options
        self._triggered: tuple[int, dict[str, Any]] = (0, {})
        #: snapshot writes not yet acknowledged; FINISHED is reported after them, so the
        #: JobManager never takes a task that snapshotted a checkpoint for one that had not
        self._snapshot_writes: list[Future] = []
        self.thread = threading.Thread(target=self.run, name=f"task {self.name}", daemon=True)

    # -------------------------------------------------------------- control (any thread)

    def start(self) -> None:
        self.thread.start()

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
        try:
            self._transition("RUNNING")
            self._setup()
            if self.source is not None:
                self.source.run(self)
            else:
                self._input_loop()
            self._end_of_input()
            self._await_final_checkpoint()
            self._close(quietly=False)
            state = "FINISHED"
        except TaskCancelled:
            state = "CANCELED"
        except BaseException:
            if self.cancelled:
                state = "CANCELED"
            else:
                state = "FAILED"
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

    def _context(self, operator_name: str, uid: str) -> OperatorContext:
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
        )

    def _setup(self) -> None:
        writers_by_edge = {
            edge.id: self._writer(edge) for edge in self.graph.outputs_of(self.vertex.id)
        }
        self.writers = list(writers_by_edge.values())
        operators: dict[int, Operator] = {}
        head = self.vertex.head
        for chained in self.vertex.operators:
            if chained is head and self.vertex.is_source:
                continue
            operators[chained.id] = create_operator(
                chained.spec, self._context(chained.name, chained.uid)
            )
        # Wire outputs back to front so each operator's targets already exist.
        outputs: dict[int, Output] = {}
        for chained in reversed(self.vertex.operators):
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
        self.operators = [operators[c.id] for c in self.vertex.operators if c.id in operators]
        self._uids = {
            id(operators[c.id]): c.uid for c in self.vertex.operators if c.id in operators
        }
        if self.vertex.is_source:
            self.source = create_source(head.spec, self._context(head.name, head.uid))
            self.source.output = outputs[head.id]
            self.source.initialize_state(self._restore_for(head.uid))
        for operator in self.operators:
            operator.initialize_state(self._restore_for(self._uids[id(operator)]))
        # Open downstream operators first, as Flink does.
        for operator in reversed(self.operators):
            operator.open()
        if self.cancelled:
            raise TaskCancelled()
        self.head = self.operators[0] if self.operators and not self.vertex.is_source else None
        self.timer_operators = [
            op
            for op in self.operators
            if type(op).next_processing_timer is not Operator.next_processing_timer
        ]

    def _attempt_is_current(self) -> bool:
        return self.checkpoints.attempt_is_current(self.id.job_id, self.id.attempt)

    def _restore_for(self, uid: str) -> OperatorRestore | None:
        """The earlier snapshots of operator ``uid``, if the job is restoring."""
        entry = self.restore.get("operators", {}).get(uid)
        if entry is None:
            return None
        # A subtask that had finished stays finished (its source reads nothing more).
        loaded: dict[int, dict[str, Any]] = dict.fromkeys(entry.get("finished", ()), FINISHED)
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
        if self.source is not None or self._input_ended:
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
        for operator in self.operators:
            operator.notify_checkpoint_complete(checkpoint_id)

    def _on_barrier(self, channel: int, checkpoint_id: int, options: dict[str, Any]) -> None:
        if self._aligning is not None and checkpoint_id < self._aligning:
            return  # a barrier of a checkpoint already given up
        if self._aligning is None or checkpoint_id > self._aligning:
            self.gate.unblock_all()  # a newer checkpoint supersedes one still aligning
            self._aligning, self._barriers = checkpoint_id, set()
        self._barriers.add(channel)
        if options.get("exactly_once", True):
            self.gate.block(channel)  # hold this input back until every input is aligned
        self._maybe_aligned(options)

    def _maybe_aligned(self, options: dict[str, Any] | None = None) -> None:
        if self._aligning is None:
            return
        finished = self._finished_channels
        if all(done or c in self._barriers for c, done in enumerate(finished)):
            checkpoint_id = self._aligning
            self._aligning, self._barriers = None, set()
            self._snapshot(checkpoint_id, options or self._barrier_options)
            self.gate.unblock_all()

    def _writer(self, edge: Any) -> RecordWriter:
        target = self.graph.vertex(edge.target_vertex)
        channels: list[OutputChannel] = []
        for consumer in range(target.parallelism):
            layout = input_channel_layout(self.graph, target.id, consumer)
            try:
                index = layout.index((edge.id, self.id.subtask))
            except ValueError:
                channels.append(_DisconnectedChannel())
                continue
            address = self.locations[(target.id, consumer)]
            if address == self.own_address:
                gate = self.gates.get(
                    self.id.job_id, self.id.attempt, target.id, consumer, GATE_LOOKUP_TIMEOUT_S
                )
                channels.append(LocalOutputChannel(gate, index))
            else:
                key = ChannelKey(self.id.job_id, self.id.attempt, target.id, consumer, index)
                channels.append(RemoteOutputChannel(address, key))
        return RecordWriter(
            copy.copy(edge.partitioner),
            channels,
            self.id.subtask,
            self.vertex.parallelism,
            batch_size=BATCH_SIZE,
            buffer_timeout_ms=self.buffer_timeout_ms,
        )

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

    def _input_loop(self) -> None:
        gate, head = self.gate, self.head
        # Per channel, the head's method for its input (the second input of a two-input
        # operator has its own).
        by_input = [head.process_batch, getattr(head, "process_batch2", None)]
        input_of_edge = {e.id: e.target_input for e in self.graph.inputs_of(self.vertex.id)}
        process_of = [by_input[input_of_edge[edge_id]] for edge_id, _ in self.layout]
        open_channels = len(self.layout)
        finished = self._finished_channels = [False] * open_channels
        watermarks = [MIN_WATERMARK] * open_channels
        idle = self._idle_channels = [False] * open_channels
        current_watermark = MIN_WATERMARK
        writers = self.writers
        timer_operators = self.timer_operators
        timeout: float | None = 0.0  # first look at timers and flushes, then wait
        while open_channels:
            item = gate.poll(timeout)
            if item is not None:
                channel, element = item
                if channel < 0:
                    element()
                elif element[0] == RECORDS:
                    values = element[1]
                    self.records_in += len(values)
                    process_of[channel](values, element[2])
                elif element[0] == END_OF_PARTITION:
                    if not finished[channel]:
                        finished[channel] = True
                        open_channels -= 1
                        if self._aligning is not None:
                            self._maybe_aligned()
                        elif not open_channels and self._triggered[0] > self._last_snapshot:
                            self._snapshot(*self._triggered)
                elif element[0] == BARRIER:
                    self._barrier_options = element[2] or {}
                    self._on_barrier(channel, element[1], self._barrier_options)
                elif element[0] == WATERMARK:
                    watermarks[channel] = max(watermarks[channel], element[1])
                    low = self._low_watermark(watermarks, current_watermark)
                    if low > current_watermark:
                        current_watermark = low
                        head.process_watermark(low)
                elif element[0] == WATERMARK_STATUS:
                    idle[channel] = element[1]
                    all_idle = all(idle[c] or finished[c] for c in range(len(idle)))
                    if all_idle != self._idle:
                        self._idle = all_idle
                        head.process_watermark_status(all_idle)
                    # Event time goes on without the idle channels (never backwards); when
                    # the last one goes idle, to the highest any channel reached (as Flink).
                    if all_idle:
                        low = max(
                            (w for c, w in enumerate(watermarks) if not finished[c]),
                            default=current_watermark,
                        )
                    else:
                        low = self._low_watermark(watermarks, current_watermark)
                    if low > current_watermark:
                        current_watermark = low
                        head.process_watermark(low)
            deadline = self.flush_due() if writers else None
            if timer_operators:
                at = self.fire_processing_timers()
                if at is not None:
                    deadline = at if deadline is None else min(deadline, at)
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())

    def fire_processing_timers(self) -> float | None:
        """Fire the operators' processing-time timers that are due (also ``with_idleness``);
        when (monotonic seconds) the next one is, if any. Sources call it between batches."""
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

    def _low_watermark(self, watermarks: list[int], current: int) -> int:
        """The minimum watermark over the channels neither finished nor idle."""
        idle, finished = self._idle_channels, self._finished_channels
        return min(
            (w for c, w in enumerate(watermarks) if not (finished[c] or idle[c])),
            default=current,
        )

    def run_mailbox(self) -> None:
        """Run pending mailbox actions (sources call this between batches)."""
        while True:
            item = self.gate.poll(0)
            if item is None:
                return
            channel, element = item
            if channel < 0:
                element()

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
