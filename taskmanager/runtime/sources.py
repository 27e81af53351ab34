"""Source drivers: a connector ``Source``'s reader or a ``SourceFunction``, polled by the task.

The task's one mailbox loop calls ``poll_next`` whenever no mailbox action is waiting (the shape
of Flink's FLIP-27 sources, DESIGN.md §5): a reader source emits at most one batch and says
whether more may be available now. A ``SourceFunction`` pushes records from its own ``run``;
its ``collect`` hands the loop a turn between batches (``Task.yield_to_mailbox``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from strom.common.type_values import shaper
from strom.datastream.connectors.base import (
    FINISHED_POSITION,
    FinishedSubtask,
    SplitPlan,
    SupportsSplitAssignment,
)
from strom.graph.stream_graph import OperatorSpec
from taskmanager.network.record_sizes import batch_limit
from taskmanager.runtime.context import OperatorContext, TaskCancelled
from taskmanager.runtime.operators import (
    MAX_WATERMARK,
    FunctionState,
    Output,
    WatermarkGenerator,
    is_checkpointed_function,
    user_function,
)
from taskmanager.state.operator_state import OperatorRestore

if TYPE_CHECKING:
    from taskmanager.runtime.task import Task

#: records a source hands on at once (a reader's batch, a SourceFunction's buffer)
BATCH_SIZE = 1024

#: ``poll_next`` results
MORE_AVAILABLE = "more"  # poll again as soon as the mailbox is empty
NOTHING_AVAILABLE = "nothing"  # nothing now: the loop may wait a little before polling again
END_OF_INPUT = "end"  # the source has ended


class SourceDriver:
    output: Output

    def __init__(self, spec: OperatorSpec, context: OperatorContext) -> None:
        self.spec = spec
        self.context = context
        self.cancelled = False
        self.restore: OperatorRestore | None = None
        strategy = spec.args.get("strategy")
        self.assigner = getattr(strategy, "timestamp_assigner", None)
        self.watermarks = WatermarkGenerator(strategy, context.auto_watermark_interval_ms)
        #: the source's declared type (``type_info``) shapes what it emits, as in PyFlink
        self.shape = shaper(spec.output_type)

    def cancel(self) -> None:
        self.cancelled = True

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        self.restore = restore

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        return {}

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def emit(self, task: Task, values: list, stamps: list | None = None) -> None:
        task.records_out += len(values)
        shape = self.shape
        if shape is not None:
            values = [None if v is None else shape(v) for v in values]
        if self.watermarks.idle:
            self.watermarks.idle = False
            self.output.emit_watermark_status(False)
        assign = self.assigner
        if assign is not None:
            if stamps is None:
                stamps = [assign(v, None) for v in values]
            else:
                stamps = [assign(v, t) for v, t in zip(values, stamps, strict=True)]
        self.output.emit(values, stamps)
        self.watermarks.observe(stamps)
        self.emit_due_watermark()

    def emit_due_watermark(self) -> None:
        now = time.monotonic()
        watermark = self.watermarks.due(now)
        if watermark is not None:
            self.output.emit_watermark(watermark)

    def check_idle(self) -> None:
        """No records now: after the strategy's idle timeout (``with_idleness``), tell the
        consumers to leave this subtask out of their event time until records come again."""
        if self.watermarks.status_change(time.monotonic(), False):
            self.output.emit_watermark_status(True)

    def end_of_input(self) -> None:
        """A bounded source ended: event time jumps to the end, so every timer fires."""
        self.output.emit_watermark(MAX_WATERMARK)

    def poll_next(self, task: Task) -> str:
        """Emit what the source has now; ``MORE_AVAILABLE``, ``NOTHING_AVAILABLE`` or
        ``END_OF_INPUT``. Called on the task's thread by its mailbox loop."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (its reader); the task ends."""


class ReaderSource(SourceDriver):
    """``from_source`` / ``from_collection``: pull batches from the source's reader."""

    reader: Any = None
    #: the source's splits are handed out by the JobManager (SupportsSplitAssignment)
    plan: SplitPlan | None = None
    #: records to ask the reader for: ``BATCH_SIZE``, then as many as make about
    #: ``BATCH_BYTES`` of the records it returned last (1,024 of records up to ~1 KB)
    read_limit = BATCH_SIZE

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        super().initialize_state(restore)
        source = self.spec.args["source"]
        if self.context.request_splits is None or not isinstance(source, SupportsSplitAssignment):
            return
        if restore is not None and restore.finished:
            return
        positions = None
        if restore is not None:
            positions = {i: _position_of(s) for i, s in restore.snapshots.items()}
        self.plan = source.split_plan(self.context.parallelism, positions)

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        if self.reader is None:  # not started yet: the restored position still holds
            if self.plan is not None and not self._ended:
                return {"position": self.plan.position}
            own = self.restore.own() if self.restore is not None else None
            return dict(own) if own else {}
        return {"position": self.reader.snapshot_position()}

    _ended = False

    def _open(self) -> Any:
        """The reader, positioned where the restored checkpoint left off; None if the source
        had read everything before that checkpoint."""
        source = self.spec.args["source"]
        context, restore = self.context, self.restore
        if restore is not None and restore.finished:
            return None
        if self.plan is not None:
            return source.create_assigned_reader(
                self.plan, _SplitFeed(self.context.request_splits, self.plan)
            )
        rescale = getattr(source, "restore_reader", None)
        if restore is not None and (restore.rescaled or callable(rescale)):
            if not callable(rescale):
                raise RuntimeError(
                    f"the source '{context.operator_name}' cannot be restored at another "
                    f"parallelism ({restore.old_parallelism} -> {restore.parallelism}); "
                    "restore it at its earlier parallelism"
                )
            positions = {
                i: FINISHED_POSITION if s.get("finished") else s.get("position")
                for i, s in restore.snapshots.items()
            }
            return rescale(
                positions, restore.old_parallelism, context.subtask_index, context.parallelism
            )
        reader = source.create_reader(context.subtask_index, context.parallelism)
        own = restore.own() if restore is not None else None
        if own is not None and "position" in own:
            reader.restore_position(own["position"])
        return reader

    def poll_next(self, task: Task) -> str:
        reader = self.reader
        if reader is None:
            if self._ended:
                return END_OF_INPUT
            reader = self.reader = self._open()
            if reader is None:
                self._ended = True
                return END_OF_INPUT
        values = reader.read_batch(self.read_limit)
        if values is None:
            self.close()
            return END_OF_INPUT
        if values:
            self.read_limit = batch_limit(values, BATCH_SIZE)
            self.emit(task, values)
            return MORE_AVAILABLE
        self.emit_due_watermark()
        self.check_idle()
        return NOTHING_AVAILABLE

    def close(self) -> None:
        reader = self.reader
        if reader is not None and not self._ended:
            self._ended = True
            reader.close()


def _position_of(snapshot: dict[str, Any]) -> object:
    """An old subtask's reader position from its snapshot, for ``split_plan``."""
    if snapshot.get("finished"):
        splits = snapshot.get("splits")
        return FinishedSubtask(None if splits is None else tuple(splits))
    return snapshot.get("position")


class _SplitFeed:
    """``next_split`` of a reader whose splits the JobManager hands out, ``plan.per_request``
    at a time: once the reader starts the last split it holds, the next request is sent, so
    it rarely waits for an answer. The first request of the attempt carries the plan's pool.
    Splits the reader holds but has not started are in no snapshot: a restore puts them
    back in the pool."""

    def __init__(self, request_splits: Any, plan: SplitPlan) -> None:
        self._request = request_splits
        self._plan = plan
        self._first = True
        self._held: deque[tuple[int, int | None]] = deque()
        self._ahead: Any = None
        self._ended = False

    def _ask(self) -> Any:
        pool = self._plan.pool if self._first else None
        self._first = False
        return self._request(self._plan.split_count, pool, self._plan.per_request)

    def __call__(self) -> tuple[int, int | None] | None:
        if not self._held and not self._ended:
            answer = self._ahead if self._ahead is not None else self._ask()
            self._ahead = None
            self._held.extend(answer())
            self._ended = not self._held
        if not self._held:
            return None
        split = self._held.popleft()
        if not self._held:
            self._ahead = self._ask()
        return split


class _CheckpointLock:
    """``ctx.get_checkpoint_lock()``. ``run`` and the task's loop take turns on one thread, so
    this excludes no other thread: it holds the loop's mailbox actions back. They (a
    checkpoint among them) run when a flush of the records finds the lock free, or at the
    release that frees it; due batches and timers go on while it is held. So a source that
    collects a record and then moves its position under the lock, as Flink asks, is never
    snapshotted between the two: the record would be sent before the barrier and sent again
    after a restore from it. Re-entrant, like the lock in Flink."""

    def __init__(self, take_turn: Callable[[], None]) -> None:
        self._take_turn = take_turn
        self.depth = 0
        #: a flush happened while the lock was held: the turn it would have given is due
        self.turn_due = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.depth += 1
        return True

    def release(self) -> None:
        self._release(turn=True)

    def _release(self, turn: bool) -> None:
        if self.depth <= 0:
            raise RuntimeError("cannot release the checkpoint lock: it is not held")
        self.depth -= 1
        if not self.depth and self.turn_due:
            self.turn_due = False
            if turn:
                self._take_turn()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        self._release(turn=kind is None)  # an error ends the task: no turn on its way out


class _SourceContext:
    """The ``ctx`` of ``SourceFunction.run``: ``collect`` buffers records into batches."""

    def __init__(self, driver: FunctionSource, task: Task) -> None:
        self.driver = driver
        self.task = task
        self.values: list = []
        self.stamps: list = []
        self.has_stamps = False
        self.first_at = 0.0
        self.deadline = 0.0  # when the buffer must be flushed: first_at + the buffer timeout
        self.limit = BATCH_SIZE  # records the buffer holds at most
        self.timeout_s = task.buffer_timeout_ms / 1000.0
        self.lock = _CheckpointLock(task.yield_to_mailbox)

    def collect(self, value: Any) -> None:
        if self.driver.cancelled:
            raise TaskCancelled()
        values = self.values
        if not values:
            self._start_batch(value)
        values.append(value)
        self.stamps.append(None)
        if len(values) >= self.limit or time.monotonic() >= self.deadline:
            self.flush()

    def collect_with_timestamp(self, value: Any, timestamp: int | None) -> None:
        if timestamp is not None:
            self.has_stamps = True
        if self.driver.cancelled:
            raise TaskCancelled()
        values = self.values
        if not values:
            self._start_batch(value)
        values.append(value)
        self.stamps.append(timestamp)
        if len(values) >= self.limit or time.monotonic() >= self.deadline:
            self.flush()

    def _start_batch(self, first: Any) -> None:
        self.first_at = time.monotonic()
        self.deadline = self.first_at + self.timeout_s
        # Large records make a short batch (record_sizes); the first record speaks for them.
        self.limit = batch_limit([first], BATCH_SIZE)

    def emit_watermark(self, watermark: Any) -> None:
        self.flush()
        timestamp = getattr(watermark, "get_timestamp", None)
        value = timestamp() if callable(timestamp) else int(watermark)
        if value > self.driver.watermarks.emitted:
            self.driver.watermarks.emitted = value
            self.driver.output.emit_watermark(value)

    def mark_as_temporarily_idle(self) -> None:
        """Consumers leave this source out of their event time until it emits again."""
        self.flush()
        watermarks = self.driver.watermarks
        if not watermarks.idle:
            watermarks.idle = True
            self.driver.output.emit_watermark_status(True)

    def get_checkpoint_lock(self) -> _CheckpointLock:
        return self.lock

    def flush(self) -> None:
        task = self.task
        if self.values:
            values, stamps, has_stamps = self.values, self.stamps, self.has_stamps
            self.values, self.stamps, self.has_stamps = [], [], False
            # The records waited here since ``first_at``: the record writers count their
            # buffer timeout from then, so that a record waits one timeout in all, not one
            # here and one more in a writer.
            task.batch_origin = self.first_at
            try:
                self.driver.emit(task, values, stamps if has_stamps else None)
            finally:
                task.batch_origin = None
        lock = self.lock
        if lock.depth:
            lock.turn_due = True  # mailbox actions wait for the release: no checkpoint inside
            task.keep_time()
        else:
            task.yield_to_mailbox()


class FunctionSource(SourceDriver):
    """``add_source``: a ``SourceFunction`` whose ``run(ctx)`` pushes records.

    Its position survives failures when it implements ``CheckpointedFunction``; otherwise it
    starts again from its beginning after a restore, as in Flink.
    """

    function_state: FunctionState | None = None

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        super().initialize_state(restore)
        if is_checkpointed_function(self.spec.function):
            self.function_state = FunctionState(self.spec.function, None, restore)

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        if self.function_state is None:
            return {}
        return {"operator": self.function_state.snapshot(checkpoint_id, timestamp)}

    def cancel(self) -> None:
        super().cancel()
        cancel = getattr(self.spec.function, "cancel", None)
        if callable(cancel):
            try:
                cancel()
            except Exception:
                pass

    def poll_next(self, task: Task) -> str:
        """Run the function's ``run`` to its end: it pushes its records, and each flush of
        its buffer gives the task's loop a turn (mailbox actions, timers, due flushes)."""
        if self.restore is None or not self.restore.finished:  # else it had ended before
            self._run(task)
        return END_OF_INPUT

    def _run(self, task: Task) -> None:
        function = self.spec.function
        opener = getattr(function, "open", None)
        if callable(opener):
            opener(self.context.runtime_context)
        ctx = _SourceContext(self, task)
        try:
            user_function(function, "run")(ctx)
            ctx.flush()
        finally:
            closer = getattr(function, "close", None)
            if callable(closer):
                closer()


def create_source(spec: OperatorSpec, context: OperatorContext) -> SourceDriver:
    if spec.kind == "source":
        return ReaderSource(spec, context)
    if spec.kind == "source_function":
        return FunctionSource(spec, context)
    raise ValueError(f"'{spec.kind}' is not a source")
