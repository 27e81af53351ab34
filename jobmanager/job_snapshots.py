"""What handlers read of a job: an immutable snapshot the dispatcher's loop publishes.

gRPC and REST handlers never look into a job's live state (its execution graph changes on the
loop while they read): after each event the loop publishes a :class:`JobSnapshot` of every
job that event touched, and handlers read the newest one. A snapshot is never changed once
published; only the durations of a job still running are worked out when it is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobmanager.batch_execution import BatchJobs

if TYPE_CHECKING:
    from jobmanager.dispatcher import JobRecord


@dataclass(frozen=True)
class JobSnapshot:
    """One job as the loop last published it."""

    job_id: str
    state: str
    submitted_at: float
    started_at: float
    ended_at: float
    #: the job's details in the REST shape (``/jobs/<id>``), without the durations
    details: dict[str, Any]
    #: records in and out per subtask, as heartbeats and final task states reported them
    records: dict[tuple[str, int], tuple[int, int]]

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The job's line of ``/jobs/overview`` (durations as of ``now``)."""
        details, times = self.details, self._times(now)
        return {
            "jid": details["jid"],
            "name": details["name"],
            "state": details["state"],
            **times,
            "tasks": details["tasks"],
        }

    def full(self, now: float | None = None) -> dict[str, Any]:
        """The job's details (``/jobs/<id>``), durations as of ``now``: a new dict whose
        nested values are the snapshot's own and must not be changed."""
        return {**self.details, **self._times(now)}

    def _times(self, now: float | None) -> dict[str, int]:
        now = time.time() if now is None else now
        start = self.started_at if self.started_at > 0 else self.submitted_at
        end = self.ended_at
        return {
            "start-time": int(start * 1000),
            "end-time": int(end * 1000) if end > 0 else -1,
            "duration": int(((end if end > 0 else now) - start) * 1000),
            "last-modification": int((end if end > 0 else now) * 1000),
        }


def snapshot(record: JobRecord) -> JobSnapshot:
    """The job as it is now (on the loop)."""
    graph = record.graph
    details: dict[str, Any] = {
        "jid": record.job_id,
        "name": graph.name,
        "state": graph.state,
        "tasks": {k.lower(): v for k, v in graph.task_counts().items()},
        "status-message": graph.status_message,
        "failure": graph.failure,
        "attempt": graph.attempt,
        "restarts": graph.restarts,
        "restart-strategy": record.strategy.describe(),
        "exceptions": [
            {"exception": text, "location": where, "timestamp": at}
            for text, where, at in reversed(graph.failures)
        ],
        "plan": record.plan,
    }
    vertices = []
    for vertex in graph.vertices:
        subtasks = [s for s in graph.subtasks.values() if s.vertex_id == vertex.id]
        vertices.append(
            {
                "id": vertex.id,
                "name": vertex.name,
                "parallelism": vertex.parallelism,
                "status": graph.vertex_state(vertex.id),
                "tasks": {k.lower(): v for k, v in graph.task_counts(vertex.id).items()},
                "metrics": {
                    "read-records": sum(s.records_in for s in subtasks),
                    "write-records": sum(s.records_out for s in subtasks),
                    # Strom's: a file source's input read so far, and in all
                    "input-bytes-read": sum(s.input_bytes_read for s in subtasks),
                    "input-bytes-total": sum(s.input_bytes_total for s in subtasks),
                },
                "subtasks": [
                    {
                        "subtask": s.index,
                        "status": s.state,
                        "taskmanager-id": s.resource_id,
                        "host": s.location,
                        "start-time": s.start_ms,
                        "end-time": s.end_ms,
                    }
                    for s in sorted(subtasks, key=lambda s: s.index)
                ],
            }
        )
    details["vertices"] = vertices
    if record.batch is not None:
        for vertex in vertices:  # each stage's own times
            vertex.update(BatchJobs.vertex_times(record, vertex["id"]))
        details["executions"] = {f"{v}/{i}": n for (v, i), n in record.batch.executions.items()}
    return JobSnapshot(
        record.job_id,
        graph.state,
        record.submitted_at,
        record.started_at,
        record.ended_at,
        details,
        {key: (int(s.records_in), int(s.records_out)) for key, s in graph.subtasks.items()},
    )
