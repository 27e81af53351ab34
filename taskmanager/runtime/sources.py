"""Source drivers: run a connector ``Source``'s reader or a ``SourceFunction`` in a task."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from strom.datastream.connectors.base import FINISHED_POSITION
from strom.graph.stream_graph import OperatorSpec
from taskmanager.runtime.context import OperatorContext
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

_IDLE_WAIT_S = 0.01


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

    def run(self, task: Task) -> None:
        raise NotImplementedError


class ReaderSource(SourceDriver):
    """``from_source`` / ``from_collection``: pull batches from the source's reader."""

    reader: Any = None

    def snapshot_state(self, checkpoint_id: int, timestamp: int) -> dict[str, Any]:
        if self.reader is None:  # not started yet: the restored position still holds
            own = self.restore.own() if self.restore is not None else None
            return dict(own) if own else {}
        return {"position": self.reader.snapshot_position()}

    def run(self, task: Task) -> None:
        from taskmanager.runtime.task import BATCH_SIZE, TaskCancelled

        source = self.spec.args["source"]
        context, restore = self.context, self.restore
        if restore is not None and restore.finished:
            return  # it had read everything before the checkpoint
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
            reader = rescale(
                positions, restore.old_parallelism, context.subtask_index, context.parallelism
            )
        else:
            reader = source.create_reader(context.subtask_index, context.parallelism)
            own = restore.own() if restore is not None else None
            if own is not None and "position" in own:
                reader.restore_position(own["position"])
        self.reader = reader
        try:
            while True:
                task.run_mailbox()
                if self.cancelled:
                    raise TaskCancelled()
                values = reader.read_batch(BATCH_SIZE)
                if values is None:
                    return
                if values:
                    self.emit(task, values)
                    task.flush_due()
                else:
                    self.emit_due_watermark()
                    self.check_idle()
                    deadline = task.flush_due()
                    if task.timer_operators:
                        at = task.fire_processing_timers()
                        if at is not None:
                            deadline = at if deadline is None else min(deadline, at)
                    wait = _IDLE_WAIT_S
                    if deadline is not None:
                        wait = max(0.0, min(wait, deadline - time.monotonic()))
                    item = task.gate.poll(wait)
                    if item is not None and item[0] < 0:
                        item[1]()
        finally:
            reader.close()


class _SourceContext:
    """The ``ctx`` of ``SourceFunction.run``: ``collect`` buffers records into batches."""

    def __init__(self, driver: FunctionSource, task: Task) -> None:
        self.driver = driver
        self.task = task
        self.values: list = []
        self.stamps: list = []
        self.first_at = 0.0

    def collect(self, value: Any) -> None:
        self.collect_with_timestamp(value, None)

    def collect_with_timestamp(self, value: Any, timestamp: int | None) -> None:
        from taskmanager.runtime.task import BATCH_SIZE, TaskCancelled

        if self.driver.cancelled:
            raise TaskCancelled()
        if not self.values:
            self.first_at = time.monotonic()
        self.values.append(value)
        self.stamps.append(timestamp)
        if len(self.values) >= BATCH_SIZE or (
            time.monotonic() - self.first_at >= self.task.buffer_timeout_ms / 1000.0
        ):
            self.flush()

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

    def get_checkpoint_lock(self) -> Any:
        import threading

        return threading.RLock()

    def flush(self) -> None:
        if self.values:
            values, stamps = self.values, self.stamps
            self.values, self.stamps = [], []
            has_stamps = any(s is not None for s in stamps)
            self.driver.emit(self.task, values, stamps if has_stamps else None)
        self.task.run_mailbox()
        self.task.flush_due()


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

    def run(self, task: Task) -> None:
        if self.restore is not None and self.restore.finished:
            return  # it had ended before the checkpoint
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
