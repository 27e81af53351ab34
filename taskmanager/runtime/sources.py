"""Source drivers: a connector ``Source``'s reader or a ``SourceFunction``, polled by the task.

The task's one mailbox loop calls ``poll_next`` whenever no mailbox action is waiting (the shape
of Flink's FLIP-27 sources, DESIGN.md §5): a reader source emits at most one batch and says
whether more may be available now. A ``SourceFunction`` pushes records from its own ``run``,
on a thread of its own, into a hand-off that the loop polls the same way (``_Handoff``).
"""

from __future__ import annotations

import logging
import threading
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
from taskmanager.network.input_gate import GateClosed
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

log = logging.getLogger(__name__)

#: records a ``SourceFunction``'s hand-off seals as one batch, and a reader's first poll asks for
BATCH_SIZE = 1024
#: the most records a reader's poll asks for (``next_read_limit`` makes it fewer)
READ_LIMIT = 4096
#: about how many records a poll should put into its chain's outputs: behind a flat_map that
#: makes ten words of a line, a poll reads ~410 lines, not 4,096 (40,000 words at once). A
#: chain with no record writer reads READ_LIMIT: its flat_map hands chained operators pieces
#: of ``operators.CHAINED_BATCH`` (the same speed as ~410 lines a poll, bench/README.md)
OUTPUT_RECORDS = 4096
#: about how long a poll's records should take through the chain at most: mailbox actions
#: (checkpoint triggers, timers, cancellation) wait for the poll, and so do its records
POLL_TIME_S = 0.05

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

    def at_consistent_point(self, action: Callable[[], None]) -> None:
        """Run ``action`` (a snapshot, a checkpoint notice) on the task's thread at a point
        where the source's state matches what it emitted: now, for a source the loop polls."""
        action()

    #: when (monotonic seconds) the loop must poll the source again, if it waits for nothing
    #: else; None: whenever
    next_deadline: float | None = None

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
    #: records to ask the reader for: ``BATCH_SIZE``, then ``next_read_limit`` of the last poll
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

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        notify = getattr(self.reader, "notify_checkpoint_complete", None)
        if callable(notify):
            notify(checkpoint_id)

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
            writers = task.writers
            written = sum(writer.records_out for writer in writers)
            started = time.perf_counter()
            self.emit(task, values)
            elapsed = time.perf_counter() - started
            written = sum(writer.records_out for writer in writers) - written
            self.read_limit = next_read_limit(values, written, elapsed)
            return MORE_AVAILABLE
        self.emit_due_watermark()
        self.check_idle()
        return NOTHING_AVAILABLE

    def close(self) -> None:
        reader = self.reader
        if reader is not None and not self._ended:
            self._ended = True
            reader.close()


def next_read_limit(values: list, written: int, elapsed_s: float) -> int:
    """How many records a reader's next poll asks for, after a poll that read ``values``,
    which made ``written`` records at the chain's outputs (its record writers) and took
    ``elapsed_s`` seconds through the chain: ``READ_LIMIT`` at most, and fewer when the
    records are large (about ``BATCH_BYTES`` a poll), make several records each downstream
    (about ``OUTPUT_RECORDS`` a poll) or take long (about ``POLL_TIME_S`` a poll). At least 1.

    Bigger polls cost less per record (bench/README.md, "Session 15"); the bounds keep what
    one poll makes small, and the mailbox and the poll's own records from waiting long."""
    count = len(values)
    limit = batch_limit(values, READ_LIMIT)
    if written > count:
        limit = min(limit, count * OUTPUT_RECORDS // written)
    if count * POLL_TIME_S < limit * elapsed_s:  # ``limit`` of them would take too long
        limit = int(count * POLL_TIME_S / elapsed_s)
    return max(1, limit)


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


#: full batches (by count or by bytes, ``record_sizes``) handed from a ``SourceFunction``'s
#: thread and not yet taken by the task, at most: ``collect`` waits beyond that (back pressure
#: reaches ``run``)
HANDOFF_BATCHES = 2

#: how long a task that ends waits for its ``SourceFunction``'s thread to return from ``run``
RUN_THREAD_JOIN_S = 5.0


def _nothing() -> None:
    """A mailbox action that only wakes the task's loop (it recomputes when to wait until)."""


class _Handoff:
    """Between a ``SourceFunction``'s ``run``, on a thread of its own, and the task's loop.

    This is the shape of Flink's legacy source thread, with one difference: the chain's
    functions do not run on the source's thread. ``run`` only fills batches; the task's thread
    takes them (a partial batch when its buffer timeout passes, so a record never waits for
    ``run`` to call again) and runs them through the chain (DESIGN.md §5).

    A checkpoint must see the function's state as it was after the records it emitted and
    before any it did not. The task's thread snapshots only while ``run`` cannot change that
    state: ``run`` has not started or has returned; or it waits inside a ``ctx`` call (on back
    pressure, or parked at the end of one for the checkpoint) without holding the checkpoint
    lock; or, for a function that takes the checkpoint lock (Flink's contract: collect and move
    the position under it), it does not hold the lock. The task then holds ``run`` at its next
    ``ctx`` call or lock acquire until the snapshot is done. A function that never takes the
    lock is snapshotted only at the end of a ``ctx`` call: one that moves its position before
    ``collect`` is consistent then too.
    """

    def __init__(self, timeout_s: float, wake: Callable[[], None]) -> None:
        # One plain lock (a ``collect`` takes it once): the condition waits on it.
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        self.timeout_s = timeout_s
        self._wake = wake
        # the batch being filled (run's thread appends, the task's thread may take it)
        self.values: list = []
        self.stamps: list = []  # filled only once a record of the batch has a timestamp
        self.has_stamps = False
        self.first_at = 0.0
        self.deadline: float | None = None  # when the task takes the batch being filled
        self.full = BATCH_SIZE  # records that make a full batch (fewer when they are large)
        self.limit = BATCH_SIZE  # records sealed as one batch: ``full``, or 1 at timeout 0
        # what run handed over: ("records", values, stamps | None, first_at), ("watermark",
        # value) or ("idle",), in order
        self.ready: deque[tuple] = deque()
        self.ready_batches = 0.0  # how many full batches ``ready`` holds
        # run's thread
        self.running = False
        self.ended = False
        self.error: BaseException | None = None
        self.cancelled = False
        self.depth = 0  # checkpoint lock
        self.uses_lock = False
        self.waiting_in_call = False  # inside a ctx call, waiting, the lock not held
        # quiescence
        self.hold = False  # the task's thread is snapshotting: run waits
        self.pause_wanted = False  # run parks at its next safe point
        #: hold, pause_wanted or cancelled: a ctx call takes its slow path
        self.attention = False
        self.pending: list[Callable[[], None]] = []

    def _attend(self) -> None:
        self.attention = self.hold or self.pause_wanted or self.cancelled

    # ------------------------------------------------------------------ run's thread

    def add(self, value: Any) -> None:
        """``collect``. Its common case, a record into a batch begun, is one append without
        the lock: ``run``'s thread is the only one that appends, and the task's thread cuts
        a partial batch off in place (``take``), so a record appended meanwhile stays."""
        values = self.values
        if values and not self.attention and not self.has_stamps:
            values.append(value)
            if len(values) < self.limit:
                return
        else:
            values = None
        with self.lock:
            if values is not None:  # appended above, and the batch was full
                if len(values) >= self.limit:  # unless the task cut it meanwhile
                    self._seal_full()
                if self.attention:
                    self._leave()
                return
            if self.attention:
                self._enter()
            values = self.values
            if not values:
                self._start(value)
            values.append(value)
            if self.has_stamps:
                self.stamps.append(None)
            if len(values) < self.limit:
                if self.attention:
                    self._leave()
                return
            self._seal_full()
            if self.attention:
                self._leave()

    def add_stamped(self, value: Any, stamp: int | None) -> None:
        with self.lock:
            if self.attention:
                self._enter()
            values = self.values
            if not values:
                self._start(value)
            if stamp is not None and not self.has_stamps:
                self.has_stamps = True
                self.stamps = [None] * len(values)
            values.append(value)
            if self.has_stamps:
                self.stamps.append(stamp)
            if len(values) >= self.limit:
                self._seal_full()
            if self.attention:
                self._leave()

    def add_control(self, item: tuple) -> None:
        with self.lock:
            if self.attention:
                self._enter()
            self._seal()
            self.ready.append(item)
            self.ready_batches += 1 / BATCH_SIZE
            self._wake()
            self._wait_for_room()
            if self.attention:
                self._leave()

    def _start(self, first: Any) -> None:
        self.first_at = time.monotonic()
        self.deadline = self.first_at + self.timeout_s
        # Large records make a short batch (record_sizes); the first speaks for them.
        self.full = batch_limit([first], BATCH_SIZE)
        if self.timeout_s:
            self.limit = self.full
            self._wake()  # the task waits until this batch's deadline now
        else:
            self.limit = 1  # sealed, and the task woken, at once

    def _seal_full(self) -> None:
        self._seal()
        self._wake()
        self._wait_for_room()

    def _seal(self) -> None:
        """The batch being filled goes to ``ready``. Lock held."""
        if self.values:
            stamps = self.stamps if self.has_stamps else None
            self.ready.append(("records", self.values, stamps, self.first_at))
            self.ready_batches += len(self.values) / self.full
            self.values, self.stamps, self.has_stamps, self.deadline = [], [], False, None

    def _wait_for_room(self) -> None:
        while self.ready_batches >= HANDOFF_BATCHES and not self.cancelled:
            self._wait()

    def _enter(self) -> None:
        while self.hold and not self.cancelled:
            self._wait()
        if self.cancelled:
            raise TaskCancelled()

    def _leave(self) -> None:
        """The end of a ctx call: park if the task wants a snapshot, and never return while
        the task holds ``run`` still (it may have begun one while we waited for room)."""
        while self.hold and not self.cancelled:
            self._wait()
        if self.depth == 0:
            self._park()
        if self.cancelled:
            raise TaskCancelled()

    def _park(self) -> None:
        if not self.pause_wanted:
            return
        self.pause_wanted = False
        self.hold = True
        self._attend()
        self._wake()
        while self.hold and not self.cancelled:
            self._wait()

    def _wait(self) -> None:
        self.waiting_in_call = self.depth == 0
        try:
            self.cv.wait()
        finally:
            self.waiting_in_call = False

    def acquire(self) -> None:
        """The checkpoint lock, taken: per record in a source that keeps Flink's contract, so
        without the lock in the common case. ``depth`` is written before ``attention`` is
        read, and ``quiesce`` sets ``hold`` before it reads ``depth``: under the GIL one of
        the two sees the other, so the task never snapshots while ``run`` holds the lock."""
        self.uses_lock = True
        depth = self.depth + 1
        self.depth = depth
        if depth == 1 and self.attention:
            with self.lock:
                if self.hold or self.cancelled:
                    self.depth = 0
                    self._enter()
                    self.depth = 1

    def release(self, park: bool) -> None:
        depth = self.depth - 1
        if depth < 0:
            raise RuntimeError("cannot release the checkpoint lock: it is not held")
        self.depth = depth
        if not depth and park and self.attention:
            with self.lock:
                self._leave()

    def finish(self, error: BaseException | None) -> None:
        with self.lock:
            self._seal()
            self.running = False
            self.ended = True
            self.error = error
            self.cv.notify_all()
            self._wake()

    # ------------------------------------------------------------------ the task's thread

    def take(self, everything: bool) -> list[tuple]:
        """What ``run`` handed over, and the batch being filled if its timeout passed (or if
        ``everything``). Wakes ``run`` if it waited for room."""
        with self.cv:
            values = self.values
            if values and (everything or time.monotonic() >= self.deadline):
                # Cut in place, not swapped: ``add`` may append to this list without the
                # lock, and such a record stays in it, as a batch begun now.
                count = len(values)
                batch = values[:count]
                del values[:count]
                stamps = None
                if self.has_stamps:
                    stamps = self.stamps
                    self.stamps, self.has_stamps = [], False
                self.ready.append(("records", batch, stamps, self.first_at))
                self.ready_batches += count / self.full
                self.first_at = time.monotonic()
                self.deadline = self.first_at + self.timeout_s
            if not self.ready:
                return []
            items = list(self.ready)
            self.ready.clear()
            self.ready_batches = 0.0
            self.cv.notify_all()
        return items

    def quiesce(self, action: Callable[[], None]) -> list[Callable[[], None]]:
        """Queue ``action``; if ``run`` can be held still now, hold it and answer every queued
        action, in order (the caller drains, runs them and calls ``resume``). Else answer none:
        ``run`` parks at its next safe point, and ``parked`` answers them then."""
        with self.cv:
            self.pending.append(action)
            if not self.running or self.waiting_in_call or self.hold:
                return self._held()
            if self.uses_lock:
                self.hold = self.attention = True  # before depth is read: see ``acquire``
                if not self.depth:
                    return self._held()
                self.hold = False
            self.pause_wanted = True
            self._attend()
            return []

    def parked(self) -> list[Callable[[], None]]:
        """The queued actions once ``run`` has parked or returned (the caller drains, runs
        them and calls ``resume``); else none yet."""
        with self.cv:
            if not self.pending or (self.running and not self.hold):
                return []
            return self._held()

    def _held(self) -> list[Callable[[], None]]:
        actions, self.pending = self.pending, []
        self.pause_wanted = False
        self.hold = True
        self._attend()
        return actions

    def resume(self) -> None:
        with self.cv:
            self.hold = False
            self._attend()
            self.cv.notify_all()

    def cancel(self) -> None:
        with self.cv:
            self.cancelled = True
            self._attend()
            self.cv.notify_all()


class _CheckpointLock:
    """``ctx.get_checkpoint_lock()``: while ``run`` holds it, no checkpoint is taken, so a
    source that collects a record and then moves its position under it, as Flink asks, is
    never snapshotted between the two (the record would be sent before the barrier and again
    after a restore from it). Re-entrant, like the lock in Flink. See ``_Handoff``."""

    def __init__(self, handoff: _Handoff) -> None:
        self._handoff = handoff

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self._handoff.acquire()
        return True

    def release(self) -> None:
        self._handoff.release(park=True)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        self._handoff.release(park=kind is None)  # an error ends run: it parks for no one


class _SourceContext:
    """The ``ctx`` of ``SourceFunction.run``: hands records, in order with watermarks and idle
    marks, to the task's thread (``_Handoff``)."""

    def __init__(self, handoff: _Handoff) -> None:
        self._handoff = handoff
        self._lock = _CheckpointLock(handoff)
        self.collect = handoff.add  # the hot path: no call in between

    def collect_with_timestamp(self, value: Any, timestamp: int | None) -> None:
        self._handoff.add_stamped(value, timestamp)

    def emit_watermark(self, watermark: Any) -> None:
        timestamp = getattr(watermark, "get_timestamp", None)
        value = timestamp() if callable(timestamp) else int(watermark)
        self._handoff.add_control(("watermark", value))

    def mark_as_temporarily_idle(self) -> None:
        """Consumers leave this source out of their event time until it emits again."""
        self._handoff.add_control(("idle",))

    def get_checkpoint_lock(self) -> _CheckpointLock:
        return self._lock


class FunctionSource(SourceDriver):
    """``add_source``: a ``SourceFunction`` whose ``run(ctx)`` pushes records.

    ``run`` runs on a thread of its own, as in Flink; what it collects is handed to the task's
    thread, which runs it through the chain (``_Handoff``). ``open``, ``close``, the state's
    snapshots and checkpoint notices run on the task's thread. The position survives failures
    when the function implements ``CheckpointedFunction``; otherwise it starts again from its
    beginning after a restore, as in Flink.
    """

    function_state: FunctionState | None = None
    _handoff: _Handoff | None = None
    _thread: threading.Thread | None = None
    _task: Task | None = None
    _opened = False

    def initialize_state(self, restore: OperatorRestore | None) -> None:
        super().initialize_state(restore)
        if is_checkpointed_function(self.spec.function):
            self.function_state = FunctionState(self.spec.function, None, restore)

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        if self.function_state is None:
            return {}
        return {"operator": self.function_state.snapshot(checkpoint_id, timestamp)}

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        notify = getattr(self.spec.function, "notify_checkpoint_complete", None)
        if callable(notify):
            notify(checkpoint_id)

    def at_consistent_point(self, action: Callable[[], None]) -> None:
        handoff = self._handoff
        if handoff is None:
            action()
        else:
            self._run_held(handoff.quiesce(action))

    def _run_held(self, actions: list[Callable[[], None]]) -> bool:
        """With ``run`` held still: emit everything it handed over, then run ``actions``."""
        if not actions:
            return False
        try:
            self._drain(everything=True)
            for action in actions:
                action()
        finally:
            self._handoff.resume()
        return True

    def cancel(self) -> None:
        super().cancel()
        if self._handoff is not None:
            self._handoff.cancel()
        cancel = getattr(self.spec.function, "cancel", None)
        if callable(cancel):
            try:
                cancel()
            except Exception:
                pass

    @property
    def next_deadline(self) -> float | None:
        handoff = self._handoff
        return handoff.deadline if handoff is not None else None

    def poll_next(self, task: Task) -> str:
        """Start ``run`` on its thread at the first poll; after that, emit what it handed
        over and run the checkpoints that waited for it to park."""
        handoff = self._handoff
        if handoff is None:
            if self.restore is not None and self.restore.finished:
                return END_OF_INPUT  # it had ended before that checkpoint
            self._start(task)
            return MORE_AVAILABLE
        if self._run_held(handoff.parked()):
            return MORE_AVAILABLE
        emitted = self._drain(everything=False)
        if handoff.ended and not handoff.ready and not handoff.values:
            if handoff.error is not None:
                raise handoff.error
            return END_OF_INPUT
        if emitted:
            return MORE_AVAILABLE
        self.emit_due_watermark()
        return NOTHING_AVAILABLE

    def _drain(self, everything: bool) -> bool:
        task = self._task
        assert self._handoff is not None and task is not None
        items = self._handoff.take(everything)
        for item in items:
            kind = item[0]
            if kind == "records":
                # The records waited since the batch's first came: the record writers count
                # their buffer timeout from then, so that a record waits one timeout in all.
                task.batch_origin = item[3]
                try:
                    self.emit(task, item[1], item[2])
                finally:
                    task.batch_origin = None
            elif kind == "watermark":
                if item[1] > self.watermarks.emitted:
                    self.watermarks.emitted = item[1]
                    self.output.emit_watermark(item[1])
            elif not self.watermarks.idle:
                self.watermarks.idle = True
                self.output.emit_watermark_status(True)
        return bool(items)

    def _start(self, task: Task) -> None:
        self._task = task

        def wake() -> None:
            try:
                task.gate.post(_nothing)
            except GateClosed:
                pass

        handoff = self._handoff = _Handoff(task.buffer_timeout_ms / 1000.0, wake)
        function = self.spec.function
        opener = getattr(function, "open", None)
        if callable(opener):
            opener(self.context.runtime_context)
        self._opened = True
        run = user_function(function, "run")
        ctx = _SourceContext(handoff)

        def body() -> None:
            error: BaseException | None = None
            try:
                run(ctx)
            except TaskCancelled:
                pass
            except BaseException as failure:
                error = failure
            handoff.finish(error)

        handoff.running = True
        self._thread = threading.Thread(target=body, name=f"source {task.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            self.cancel()
            thread.join(RUN_THREAD_JOIN_S)
            if thread.is_alive():
                log.warning(
                    "the run() of %s did not return within %.0f s of its cancel(); its "
                    "thread is left behind (a SourceFunction's cancel() must make run() end)",
                    self.context.operator_name,
                    RUN_THREAD_JOIN_S,
                )
        if self._opened:
            self._opened = False
            closer = getattr(self.spec.function, "close", None)
            if callable(closer):
                closer()


def create_source(spec: OperatorSpec, context: OperatorContext) -> SourceDriver:
    if spec.kind == "source":
        return ReaderSource(spec, context)
    if spec.kind == "source_function":
        return FunctionSource(spec, context)
    raise ValueError(f"'{spec.kind}' is not a source")
