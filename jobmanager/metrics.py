"""The JobManager's metrics in the Prometheus text format (``GET /metrics``), written by hand.

Names follow Flink's Prometheus reporter with ``strom_`` for ``flink_``: cluster gauges
(``strom_jobmanager_numRegisteredTaskManagers``, ``..._taskSlotsTotal``,
``..._taskSlotsAvailable``), jobs by state, and per job its restarts, uptime, records per
vertex and, when the job checkpoints, its checkpoint counts and the last one's duration and size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from strom.prometheus import CONTENT_TYPE, MetricFamily, render

__all__ = ["CONTENT_TYPE", "MetricFamily", "jobmanager_families", "render"]

JOB_STATES = ("CREATED", "RUNNING", "FAILING", "CANCELLING", "FINISHED", "CANCELED", "FAILED")


def jobmanager_families(
    overview: Mapping[str, Any],
    jobs: Iterable[Mapping[str, Any]],
    checkpoint_stats: Mapping[str, Mapping[str, Any]] | None = None,
    now_ms: int = 0,
) -> list[MetricFamily]:
    """The JobManager's metric families from its overview and its jobs' details.

    ``jobs`` are ``Dispatcher.details()`` dicts; ``checkpoint_stats`` maps a job id to its
    ``/jobs/<jid>/checkpoints`` answer, for the jobs that have one.
    """

    def gauge(name: str, help_text: str) -> MetricFamily:
        return MetricFamily(f"strom_jobmanager_{name}", help_text)

    families = [
        gauge("numRegisteredTaskManagers", "TaskManagers registered").add(
            overview.get("taskmanagers", 0)
        ),
        gauge("taskSlotsTotal", "Task slots in the cluster").add(overview.get("slots-total", 0)),
        gauge("taskSlotsAvailable", "Free task slots").add(overview.get("slots-available", 0)),
        gauge("numRunningJobs", "Jobs not yet finished, cancelled or failed").add(
            overview.get("jobs-running", 0)
        ),
    ]
    jobs = list(jobs)
    by_state = {state: 0 for state in JOB_STATES}
    for job in jobs:
        by_state[job["state"]] = by_state.get(job["state"], 0) + 1
    states = gauge("jobs", "Jobs by state")
    for state, count in by_state.items():
        states.add(count, state=state)
    families.append(states)

    restarts = gauge("job_numRestarts", "Times the job restarted")
    uptime = gauge("job_uptime", "Milliseconds the job has been running; 0 once it ended")
    records_in = gauge("job_task_numRecordsIn", "Records the job vertex's subtasks have read")
    records_out = gauge("job_task_numRecordsOut", "Records the job vertex's subtasks have written")
    for job in jobs:
        labels = {"job_id": job["jid"], "job_name": job["name"]}
        restarts.add(int(job.get("restarts", job.get("attempt", 0))), **labels)
        running = job["state"] == "RUNNING" and job.get("start-time", -1) > 0
        uptime.add(max(0, now_ms - job["start-time"]) if running else 0, **labels)
        for vertex in job.get("vertices", []):
            task = {"task_id": vertex["id"], "task_name": vertex["name"]}
            records_in.add(vertex["metrics"]["read-records"], **labels, **task)
            records_out.add(vertex["metrics"]["write-records"], **labels, **task)
    families += [restarts, uptime, records_in, records_out]

    completed = gauge("job_numberOfCompletedCheckpoints", "Checkpoints completed")
    failed = gauge("job_numberOfFailedCheckpoints", "Checkpoints failed")
    in_progress = gauge("job_numberOfInProgressCheckpoints", "Checkpoints in progress")
    duration = gauge("job_lastCheckpointDuration", "Milliseconds the last checkpoint took")
    size = gauge("job_lastCheckpointSize", "Bytes of the last completed checkpoint")
    names = {job["jid"]: job["name"] for job in jobs}
    for job_id, stats in (checkpoint_stats or {}).items():
        labels = {"job_id": job_id, "job_name": names.get(job_id, "")}
        counts = stats.get("counts") or {}
        completed.add(int(counts.get("completed", 0)), **labels)
        failed.add(int(counts.get("failed", 0)), **labels)
        in_progress.add(int(counts.get("in_progress", 0)), **labels)
        latest = (stats.get("latest") or {}).get("completed")
        if latest:
            duration.add(int(latest.get("end_to_end_duration", 0)), **labels)
            size.add(int(latest.get("state_size", latest.get("checkpointed_size", 0))), **labels)
    families += [completed, failed, in_progress, duration, size]
    return families
