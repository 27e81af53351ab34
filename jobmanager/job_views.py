"""A job as the REST API shows it, in Flink's JSON shapes.

Pure functions from what the dispatcher knows (``Dispatcher.details``) plus what the
TaskManagers sampled just now (:class:`LiveSample`) to the answers of ``/jobs/<jid>``,
``/plan``, ``/vertices/<vid>``, ``/exceptions`` and the checkpoint endpoints' fallbacks. No
I/O, so the shapes are tested without a cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

TERMINAL_STATES = ("FINISHED", "FAILED", "CANCELED")
#: Flink's thresholds of the back pressure levels
_LOW, _HIGH = 0.10, 0.50


@dataclass
class SubtaskSample:
    """One subtask as its TaskManager saw it just now."""

    records_in: int = 0
    records_out: int = 0
    busy_ratio: float = 0.0
    watermark: int | None = None
    queued_batches: int = 0
    queue_capacity: int = 0
    is_source: bool = False
    #: the process running the subtask (a TaskManager's slot process) and its resident memory
    pid: int = 0
    rss_bytes: int = 0


@dataclass
class LiveSample:
    """What the TaskManagers running a job reported: per subtask, and which producers waited."""

    subtasks: dict[tuple[str, int], SubtaskSample] = field(default_factory=dict)
    #: (vertex id, subtask) of a producer -> the highest share of time it waited for room
    backpressured: dict[tuple[str, int], float] = field(default_factory=dict)

    def producer_ratio(self, vertex_id: str, index: int) -> float:
        return self.backpressured.get((vertex_id, index), 0.0)


def backpressure_level(ratio: float) -> str:
    """Flink's words for a back pressure ratio: ok, low or high."""
    if ratio <= _LOW:
        return "ok"
    return "low" if ratio <= _HIGH else "high"


def _millis(seconds: float) -> int:
    return int(seconds * 1000)


# ---------------------------------------------------------------- plan


def flink_plan(job_id: str, name: str, plan: dict[str, Any], mode: str = "STREAMING") -> dict:
    """Strom's plan (``JobGraph.plan()``) as Flink's ``/jobs/<jid>/plan`` ``plan`` object."""
    nodes = []
    for node in plan.get("nodes", []):
        operators = node.get("operators") or []
        description = " -> ".join(op.get("name", "") for op in operators) or node.get("contents")
        nodes.append(
            {
                "id": node["id"],
                "parallelism": node.get("parallelism", 1),
                "operator": node.get("pact", ""),
                "operator_strategy": node.get("type", ""),
                "description": description or node["id"],
                "name": node.get("contents", node["id"]),
                "maxParallelism": node.get("max_parallelism", node.get("parallelism", 1)),
                "operators": [op.get("name", "") for op in operators],
                "inputs": [
                    {
                        "num": number,
                        "id": edge["id"],
                        "ship_strategy": edge.get("ship_strategy", "FORWARD"),
                        "exchange": "pipelined_bounded",
                    }
                    for number, edge in enumerate(node.get("predecessors") or [])
                ],
                "optimizer_properties": {},
            }
        )
    return {"jid": job_id, "name": name, "type": mode, "nodes": nodes}


# ---------------------------------------------------------------- job details


def _vertex_metrics(read: int, write: int, backpressured: float, busy: float) -> dict[str, Any]:
    return {
        "read-bytes": 0,
        "read-bytes-complete": True,
        "write-bytes": 0,
        "write-bytes-complete": True,
        "read-records": read,
        "read-records-complete": True,
        "write-records": write,
        "write-records-complete": True,
        "backpressured-ratio": round(backpressured, 4),
        "busy-ratio": round(busy, 4),
        "backpressure-level": backpressure_level(backpressured),
    }


def _subtask_times(subtask: dict[str, Any], now: float) -> dict[str, int]:
    """A subtask's start-time, end-time and duration in ms, as Flink shows them: -1 for what
    has not happened; a running subtask's duration is up to now."""
    start, end = subtask.get("start-time", -1), subtask.get("end-time", -1)
    if start < 0:
        return {"start-time": -1, "end-time": end, "duration": -1}
    return {
        "start-time": start,
        "end-time": end,
        "duration": (end if end >= 0 else _millis(now)) - start,
    }


def subtask_views(
    vertex: dict[str, Any],
    live: LiveSample | None,
    reported: dict[tuple[str, int], tuple[int, int]],
    attempt: int,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The vertex's subtasks: where they run, their state, records, watermark and ratios.

    ``reported`` holds the records each subtask last reported in its heartbeats or final
    state; a live sample, where there is one, is newer.
    """
    now = time.time() if now is None else now
    views = []
    for subtask in vertex.get("subtasks", []):
        index = subtask["subtask"]
        key = (vertex["id"], index)
        records_in, records_out = reported.get(key, (0, 0))
        sample = live.subtasks.get(key) if live else None
        backpressured = live.producer_ratio(*key) if live else 0.0
        busy = 0.0
        watermark = None
        process = None
        if sample is not None and sample.pid:
            process = {"pid": sample.pid, "memoryRss": sample.rss_bytes}
        if sample is not None:
            records_in = max(records_in, sample.records_in)
            records_out = max(records_out, sample.records_out)
            busy = sample.busy_ratio
            if sample.is_source:  # a source is busy when it is not held back
                busy = max(0.0, busy - backpressured)
            watermark = sample.watermark
        host = subtask.get("host", "")
        views.append(
            {
                "subtask": index,
                "status": subtask.get("status", "CREATED"),
                "attempt": attempt,
                **_subtask_times(subtask, now),
                "host": host.rsplit(":", 1)[0] if host else "",
                "endpoint": host,
                "taskmanager-id": subtask.get("taskmanager-id", ""),
                "metrics": _vertex_metrics(records_in, records_out, backpressured, busy),
                "watermark": watermark,
                "backpressure-level": backpressure_level(backpressured),
                "backpressured-ratio": round(backpressured, 4),
                "busy-ratio": round(busy, 4),
                # Strom's addition: the slot process running the subtask, while it runs
                "process": process,
            }
        )
    return views


def job_view(
    details: dict[str, Any],
    live: LiveSample | None,
    reported: dict[tuple[str, int], tuple[int, int]],
    now: float | None = None,
) -> dict[str, Any]:
    """``/jobs/<jid>``: Flink's JobDetailsInfo, plus Strom's failure and status message."""
    now = time.time() if now is None else now
    attempt = int(details.get("attempt", 0))
    vertices = []
    status_counts: dict[str, int] = {}
    for vertex in details.get("vertices", []):
        subtasks = subtask_views(vertex, live, reported, attempt, now)
        parallelism = max(1, len(subtasks))
        reported_metrics = vertex.get("metrics") or {}
        read = max(
            sum(s["metrics"]["read-records"] for s in subtasks),
            reported_metrics.get("read-records", 0),
        )
        write = max(
            sum(s["metrics"]["write-records"] for s in subtasks),
            reported_metrics.get("write-records", 0),
        )
        backpressured = max((s["backpressured-ratio"] for s in subtasks), default=0.0)
        busy = sum(s["busy-ratio"] for s in subtasks) / parallelism
        tasks = {k.upper(): v for k, v in (vertex.get("tasks") or {}).items()}
        for state, count in tasks.items():
            status_counts[state] = status_counts.get(state, 0) + count
        vertices.append(
            {
                "id": vertex["id"],
                "name": vertex["name"],
                "maxParallelism": vertex.get("maxParallelism", vertex["parallelism"]),
                "parallelism": vertex["parallelism"],
                "status": vertex["status"],
                **_vertex_times(vertex, details, now),
                "tasks": tasks,
                "metrics": _vertex_metrics(read, write, backpressured, busy),
            }
        )
    state = details["state"]
    plan = flink_plan(details["jid"], details["name"], details.get("plan") or {})
    max_parallelism = {node["id"]: node["maxParallelism"] for node in plan["nodes"]}
    for view in vertices:
        view["maxParallelism"] = max_parallelism.get(view["id"], view["maxParallelism"])
    timestamps = {"INITIALIZING": details.get("start-time", -1), "CREATED": details["start-time"]}
    if details.get("end-time", -1) > 0:
        timestamps[state] = details["end-time"]
    return {
        "jid": details["jid"],
        "name": details["name"],
        "isStoppable": state not in TERMINAL_STATES,
        "state": state,
        "job-type": "STREAMING",
        "start-time": details["start-time"],
        "end-time": details["end-time"],
        "duration": details["duration"],
        "maxParallelism": max((v["maxParallelism"] for v in vertices), default=-1),
        "now": _millis(now),
        "timestamps": timestamps,
        "vertices": vertices,
        "status-counts": status_counts,
        "plan": plan,
        "attempt": attempt,
        "restarts": int(details.get("restarts", attempt)),
        "failure": details.get("failure") or "",
        "status-message": details.get("status-message") or "",
    }


def vertex_view(
    details: dict[str, Any],
    vertex_id: str,
    live: LiveSample | None,
    reported: dict[tuple[str, int], tuple[int, int]],
    now: float | None = None,
) -> dict[str, Any] | None:
    """``/jobs/<jid>/vertices/<vid>``; None for a vertex the job does not have."""
    now = time.time() if now is None else now
    for vertex in details.get("vertices", []):
        if vertex["id"] == vertex_id:
            attempt = int(details.get("attempt", 0))
            nodes = (details.get("plan") or {}).get("nodes", [])
            max_parallelism = next(
                (n.get("max_parallelism") for n in nodes if n.get("id") == vertex_id), None
            )
            return {
                "id": vertex["id"],
                "name": vertex["name"],
                "parallelism": vertex["parallelism"],
                "maxParallelism": max_parallelism or vertex["parallelism"],
                "status": vertex["status"],
                "now": _millis(now),
                "subtasks": subtask_views(vertex, live, reported, attempt, now),
            }
    return None


def backpressure_view(vertex: dict[str, Any], sampled: bool, now: float) -> dict[str, Any]:
    """``/jobs/<jid>/vertices/<vid>/backpressure`` from a :func:`vertex_view`."""
    subtasks = [
        {
            "subtask": s["subtask"],
            "attempt-number": s["attempt"],
            "backpressure-level": s["backpressure-level"],
            "ratio": s["backpressured-ratio"],
            "busyRatio": s["busy-ratio"],
            "idleRatio": round(max(0.0, 1.0 - s["busy-ratio"] - s["backpressured-ratio"]), 4),
        }
        for s in vertex["subtasks"]
    ]
    worst = max((s["ratio"] for s in subtasks), default=0.0)
    return {
        "status": "ok" if sampled else "deprecated",
        "backpressure-level": backpressure_level(worst),
        "end-timestamp": _millis(now),
        "subtasks": subtasks,
    }


# ---------------------------------------------------------------- exceptions


def _exception_name(traceback_text: str) -> str:
    for line in reversed(traceback_text.strip().splitlines()):
        line = line.strip()
        if not line:
            continue
        head = line.split(":", 1)[0].strip()
        if head and " " not in head:
            return head
        return "JobFailure"
    return "JobFailure"


def _vertex_times(vertex: dict[str, Any], details: dict[str, Any], now: float) -> dict[str, int]:
    """A vertex's start, end and duration: its own when it has them (the stages of a BATCH
    job start and end one after another); else, as Flink derives them, from its subtasks'
    (its first start; its last end once all have ended); else the job's."""
    if "start-time" in vertex:
        start, end = vertex["start-time"], vertex["end-time"]
    else:
        subtasks = vertex.get("subtasks") or []
        starts = [s["start-time"] for s in subtasks if s.get("start-time", -1) >= 0]
        if not starts:
            return {
                "start-time": details.get("start-time", -1),
                "end-time": details.get("end-time", -1),
                "duration": details.get("duration", 0),
            }
        ends = [s.get("end-time", -1) for s in subtasks]
        start, end = min(starts), (max(ends) if min(ends) >= 0 else -1)
    if start < 0:
        return {"start-time": -1, "end-time": -1, "duration": -1}
    return {
        "start-time": start,
        "end-time": end,
        "duration": (end if end > 0 else _millis(now)) - start,
    }


def exceptions_view(details: dict[str, Any], max_exceptions: int = 20) -> dict[str, Any]:
    """``/jobs/<jid>/exceptions``: the job's failures, newest first.

    ``details["exceptions"]``, when the dispatcher keeps a history, lists
    ``{"exception" (or "failure"), "location"?, "timestamp"?, "task"?}`` newest first; without
    one the job's failure text is the one entry. An entry without a time gets the job's last
    change.
    """
    fallback = details.get("end-time", -1)
    if not fallback or fallback < 0:
        fallback = details.get("last-modification", _millis(time.time()))
    history = []
    for entry in details.get("exceptions") or []:
        text = entry.get("exception") or entry.get("failure") or entry.get("stacktrace") or ""
        if text:
            history.append({**entry, "failure": text})
    if not history and details.get("failure"):
        history = [{"failure": details["failure"]}]
    if all("timestamp" in entry for entry in history):
        history.sort(key=lambda e: e["timestamp"], reverse=True)
    truncated = len(history) > max_exceptions
    history = history[:max_exceptions]
    entries = [
        {
            "exceptionName": _exception_name(entry["failure"]),
            "stacktrace": entry["failure"],
            "timestamp": int(entry.get("timestamp") or fallback),
            "taskName": entry.get("task"),
            "location": entry.get("location"),
            "endpoint": entry.get("location"),
            "taskManagerId": entry.get("taskmanager-id"),
            "failureLabels": {},
            "concurrentExceptions": [],
        }
        for entry in history
    ]
    newest = entries[0] if entries else None
    return {
        "root-exception": newest["stacktrace"] if newest else None,
        "timestamp": newest["timestamp"] if newest else None,
        "all-exceptions": [
            {
                "exception": e["stacktrace"],
                "task": e["taskName"],
                "location": e["location"],
                "timestamp": e["timestamp"],
                "taskManagerId": e["taskManagerId"],
            }
            for e in entries
        ],
        "truncated": truncated,
        "exceptionHistory": {"entries": entries, "truncated": truncated},
    }


# ---------------------------------------------------------------- checkpoints (fallbacks)


def _empty_statistics() -> dict[str, int]:
    return {"min": 0, "max": 0, "avg": 0, "p50": 0, "p90": 0, "p95": 0, "p99": 0, "p999": 0}


def empty_checkpoint_stats() -> dict[str, Any]:
    """``/jobs/<jid>/checkpoints`` of a job with no checkpoints (yet)."""
    return {
        "counts": {"restored": 0, "total": 0, "in_progress": 0, "completed": 0, "failed": 0},
        "summary": {
            "checkpointed_size": _empty_statistics(),
            "state_size": _empty_statistics(),
            "end_to_end_duration": _empty_statistics(),
            "alignment_buffered": _empty_statistics(),
            "processed_data": _empty_statistics(),
            "persisted_data": _empty_statistics(),
        },
        "latest": {"completed": None, "savepoint": None, "failed": None, "restored": None},
        "history": [],
    }
