"""A long-running JobManager gives back what an ended job held, and keeps a bounded history
of ended jobs as Flink's job store does (issue 10, item 4)."""

from __future__ import annotations

import os

import psutil
import pytest
from harness import http_json, poll_for
from jobs_support import remote

from strom.datastream import StreamExecutionEnvironment

MB = 1024 * 1024


def run_job(address: str, values: list, name: str) -> str:
    with remote(address):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.from_collection(values).map(lambda v: len(str(v)))
        client = env.execute_async(name)
        client.get_job_execution_result()
        return client.get_job_id()


def test_a_finished_jobs_graph_bytes_are_released_by_the_jobmanager(local_cluster):
    """Six runs of a job with a 50 MB collection: the JobManager's memory does not grow by
    the collection each run (it grew by ~53 MB per run, never freed)."""
    cluster = local_cluster(slots=1).start(taskmanagers=1)
    jobmanager = psutil.Process(cluster.jobmanager.pid)
    before = jobmanager.memory_info().rss
    payload = [os.urandom(MB) for _ in range(50)]  # 50 MB that does not pickle smaller
    for run in range(6):
        run_job(cluster.address, payload, f"big {run}")

    def growth() -> int:
        return jobmanager.memory_info().rss - before

    # Buffers of the last job's transfer may be freed just after it ended: poll, with a bound
    # of two collections' worth (kept: six, over 300 MB).
    try:
        poll_for(lambda: growth() < 110 * MB, timeout=15, what="the JobManager to shrink")
    except TimeoutError:
        pytest.fail(f"the JobManager grew by {growth() / MB:.0f} MB over 6 runs of 50 MB")
    jobs = http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]
    assert [j["state"] for j in jobs] == ["FINISHED"] * 6  # the history is still there


def test_ended_jobs_beyond_jobstore_max_capacity_leave_the_history(local_cluster):
    cluster = local_cluster(slots=1, **{"jobstore.max-capacity": 3}).start(taskmanagers=1)
    ids = [run_job(cluster.address, [1, 2, 3], f"job {n}") for n in range(5)]
    listed = [j["jid"] for j in http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]]
    assert sorted(listed) == sorted(ids[2:])  # the oldest two went
    assert http_json(f"{cluster.rest_url}/overview")["jobs-finished"] == 3


def test_ended_jobs_leave_the_history_after_jobstore_expiration_time(local_cluster):
    cluster = local_cluster(slots=1, **{"jobstore.expiration-time": "1 s"}).start(taskmanagers=1)
    run_job(cluster.address, [1, 2, 3], "short-lived")
    poll_for(
        lambda: http_json(f"{cluster.rest_url}/jobs/overview")["jobs"] == [],
        timeout=15,
        what="the ended job to expire from the history",
    )
