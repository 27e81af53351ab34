"""BATCH execution mode at job-graph time: which mode a job runs in, and the batch operators.

A job runs in BATCH mode when it asks for it (``env.set_runtime_mode``, the
``execution.runtime-mode`` key, ``strom run -D``), or asks for AUTOMATIC and every source is
bounded. A BATCH job with an unbounded source is refused before it is submitted.

For BATCH the job graph swaps the keyed operators for their batch forms (they group their whole
input by key and emit final results at its end; see ``taskmanager/runtime/batch.py``) and takes
watermark generation out of sources and ``assign_timestamps_and_watermarks``: event time stays
at its minimum while records flow and jumps to the end once the input is complete, as in Flink.
"""

from __future__ import annotations

import copy
from typing import Any

from strom.errors import StromError

#: operator kinds that have a batch form, and that form's kind
BATCH_KINDS = {
    "reduce": "batch_reduce",
    "aggregate": "batch_aggregate",
    "keyed_process": "batch_keyed_process",
    "keyed_co_process": "batch_keyed_co_process",
    "keyed_broadcast_process": "batch_keyed_broadcast_process",
    "broadcast_process": "batch_broadcast_process",
    "window": "batch_window",
    "sink_writer": "batch_sink_writer",
}
STREAMING, BATCH, AUTOMATIC = "STREAMING", "BATCH", "AUTOMATIC"


class UnboundedSourceInBatchMode(StromError, ValueError):
    """A job in BATCH mode reads a source that never ends."""


def source_is_bounded(spec: Any) -> bool:
    """Whether a source operator ends by itself: a connector ``Source`` says so itself
    (``is_bounded()``); a ``SourceFunction`` (``add_source``) counts as unbounded, as in Flink."""
    if spec.kind == "source":
        source = spec.args.get("source")
        is_bounded = getattr(source, "is_bounded", None)
        return bool(is_bounded()) if callable(is_bounded) else False
    return False


def resolve_runtime_mode(requested: str, sources: list[tuple[str, Any]]) -> str:
    """STREAMING or BATCH for a job that asked for ``requested``; ``sources`` are the job's
    source operators as ``(name, spec)``. Raises :class:`UnboundedSourceInBatchMode` for a BATCH
    job with an unbounded source."""
    requested = requested.upper()
    unbounded = [name for name, spec in sources if not source_is_bounded(spec)]
    if requested == AUTOMATIC:
        return STREAMING if unbounded else BATCH
    if requested == BATCH and unbounded:
        names = ", ".join(f"'{name}'" for name in unbounded)
        raise UnboundedSourceInBatchMode(
            f"The job runs in BATCH execution mode but reads the unbounded source {names}. "
            "A batch job needs input that ends: use bounded sources (from_collection, a "
            "FileSource without monitor_continuously, NumberSequenceSource; a SourceFunction "
            "given to add_source counts as unbounded, as in Flink), or run the job with "
            "execution.runtime-mode set to STREAMING or AUTOMATIC."
        )
    return requested


class BatchTimestamps:
    """A ``WatermarkStrategy`` stand-in for BATCH: the same timestamp assigner, no watermarks
    (the runtime's generators are off for kind ``none``; the end of input still sends the
    final one)."""

    kind = "none"
    max_out_of_orderness_ms = 0
    idleness_ms = None

    def __init__(self, strategy: Any) -> None:
        self.timestamp_assigner = getattr(strategy, "timestamp_assigner", None)


def to_batch_spec(spec: Any, memory_budget: int) -> Any:
    """The spec a BATCH job runs for ``spec``: a batch operator kind where one exists, and no
    watermark generation; other specs are returned unchanged."""
    kind = BATCH_KINDS.get(spec.kind)
    strategy = spec.args.get("strategy")
    if kind is None and strategy is None:
        return spec
    spec = copy.copy(spec)
    spec.args = dict(spec.args)
    if kind is not None:
        spec.kind = kind
        spec.args["memory_budget"] = memory_budget
    if strategy is not None and spec.kind in ("source", "timestamps"):
        spec.args["strategy"] = BatchTimestamps(strategy)
    return spec
