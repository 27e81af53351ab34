"""A soak test: 200 jobs of mixed kinds, one after another on one cluster (issue 10).

Afterwards every job reached a final state, every slot is free, and the JobManager's and the
TaskManagers' memory, threads and open files are within a small bound of what they were
after the first 10 jobs. Bounded to a few minutes so it runs in CI.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import psutil
import pytest
from harness import children_named, http_json, poll_for
from jobs_support import remote

from strom.datastream import StreamExecutionEnvironment
from strom.datastream.functions import SourceFunction

JOBS = 200
WARM_UP = 10
MB = 1024 * 1024


class UntilCancelled(SourceFunction):
    """Emits slowly until the job is cancelled (it honours cancellation)."""

    def __init__(self) -> None:
        self.running = True

    def run(self, ctx) -> None:
        n = 0
        while self.running:
            ctx.collect(n)
            n += 1
            time.sleep(0.01)

    def cancel(self) -> None:
        self.running = False


class Stubborn(SourceFunction):
    """Ignores cancellation: only task.cancellation.timeout's watchdog can end it."""

    def run(self, ctx) -> None:
        ctx.collect(0)
        while True:
            time.sleep(1)

    def cancel(self) -> None:
        pass


def poison(value: int) -> int:
    if value == 7:
        raise ValueError("poison record 7")
    return value


def finishing(env: StreamExecutionEnvironment):
    env.from_collection(list(range(100))).key_by(lambda v: v % 4).map(lambda v: v * 2)
    return "FINISHED", False


def failing(env: StreamExecutionEnvironment):
    env.from_collection(list(range(20))).map(poison)
    return "FAILED", False


def cancelled(env: StreamExecutionEnvironment):
    env.add_source(UntilCancelled()).rebalance().map(lambda v: v + 1)
    return "CANCELED", True


def stubborn(env: StreamExecutionEnvironment):
    env.add_source(Stubborn()).map(lambda v: v)
    return "CANCELED", True


KINDS: list[Callable] = [
    finishing,
    failing,
    cancelled,
    finishing,
    stubborn,  # ended by the watchdog past task.cancellation.timeout
]
#: a stubborn job holds its slot until the watchdog's timeout; keep the soak test short
CLUSTER_CONFIG = {"task.cancellation.timeout": "1 s"} if stubborn in KINDS else {}


def run_one(address: str, kind: Callable, index: int) -> tuple[str, str]:
    with remote(address):
        env = StreamExecutionEnvironment.get_execution_environment()
        expected, cancel = kind(env)
        client = env.execute_async(f"soak {index} {kind.__name__}")
    if cancel:
        poll_for(
            lambda: client.cluster.job(client.job_id).summary.tasks.get("running", 0) > 0,
            what=f"job {index} to run",
        )
        client.cancel()
    details = client.wait()
    return expected, details.summary.state


def footprint(processes: list[psutil.Process]) -> dict[str, float]:
    """RSS (MB), threads and open fds, summed over the processes and their children."""
    total = {"rss": 0.0, "threads": 0, "fds": 0, "processes": 0}
    for process in processes:
        for member in [process, *process.children(recursive=True)]:
            try:
                total["rss"] += member.memory_info().rss / MB
                total["threads"] += member.num_threads()
                total["fds"] += member.num_fds()
                total["processes"] += 1
            except psutil.NoSuchProcess:
                pass
    return total


@pytest.mark.timeout(300)
def test_two_hundred_mixed_jobs_leave_the_cluster_as_they_found_it(local_cluster, capsys):
    cluster = local_cluster(slots=2, **CLUSTER_CONFIG).start(taskmanagers=1)
    jobmanager = [psutil.Process(cluster.jobmanager.pid)]
    taskmanagers = [psutil.Process(p.pid) for p in cluster.taskmanagers]
    outcomes: Counter = Counter()
    wrong: list[str] = []
    started = time.monotonic()
    for index in range(JOBS):
        kind = KINDS[index % len(KINDS)]
        expected, state = run_one(cluster.address, kind, index)
        outcomes[state] += 1
        if state != expected:
            wrong.append(f"job {index} ({kind.__name__}) ended {state}, not {expected}")
        if index + 1 == WARM_UP:
            poll_for(lambda: cluster.overview()["slots-available"] == 2, what="free slots")
            # and a spare slot process started for each (they are part of an idle cluster)
            poll_for(
                lambda: sum(len(children_named(p.pid, "strom-spare")) for p in taskmanagers) == 2,
                what="the free slots' spares",
            )
            base_jm, base_tm = footprint(jobmanager), footprint(taskmanagers)
        capsys.readouterr()  # the attached client's lines would fill the capture
    elapsed = time.monotonic() - started
    assert not wrong, wrong
    jobs = http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]
    assert len(jobs) == JOBS
    assert all(j["state"] in ("FINISHED", "FAILED", "CANCELED") for j in jobs)
    poll_for(lambda: cluster.overview()["slots-available"] == 2, what="every slot free")
    # Threads and sockets of ended jobs wind down just after; wait for them, not a fixed time.
    limits = {"rss": 40.0, "threads": 6, "fds": 12, "processes": 0}

    def settled(base: dict, processes: list) -> dict | None:
        now = footprint(processes)
        over = {k: now[k] - base[k] for k in limits if now[k] - base[k] > limits[k]}
        return None if over else now

    try:
        poll_for(lambda: settled(base_jm, jobmanager), timeout=20, what="JobManager bounded")
        poll_for(lambda: settled(base_tm, taskmanagers), timeout=20, what="TaskManager bounded")
    except TimeoutError:
        now_jm, now_tm = footprint(jobmanager), footprint(taskmanagers)
        pytest.fail(
            f"after {JOBS} jobs ({elapsed:.0f} s): JobManager {base_jm} -> {now_jm}; "
            f"TaskManager {base_tm} -> {now_tm}; limits {limits}"
        )
    print(
        f"{JOBS} jobs in {elapsed:.0f} s: {dict(outcomes)}; JobManager {base_jm} -> "
        f"{footprint(jobmanager)}; TaskManager {base_tm} -> {footprint(taskmanagers)}"
    )
