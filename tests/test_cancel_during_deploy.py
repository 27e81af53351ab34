"""A cancel that arrives while a job is being deployed (issue 10): the TaskManagers not yet
prepared have nothing to cancel then, and start the tasks afterwards; the JobManager must
cancel them once the deployment ends, so the job reaches CANCELED and its slots are free.

The window is held open on purpose with ``taskmanager.testing.prepare-slots-gate``: the
TaskManager holds the deployment's first phase until the test opens the gate."""

from __future__ import annotations

import time

from harness import poll_for
from jobs_support import remote
from test_slot_processes import slot_processes_of

from client.gateway import ClusterClient
from strom.datastream import StreamExecutionEnvironment
from strom.datastream.functions import SourceFunction


class Endless(SourceFunction):
    """Runs until cancelled: a task started after the cancel would run for ever."""

    def run(self, ctx) -> None:
        self.running = True
        count = 0
        while self.running:
            ctx.collect(count)
            count += 1
            time.sleep(0.05)

    def cancel(self) -> None:
        self.running = False


def test_a_cancel_during_deployment_cancels_the_tasks_started_after_it(local_cluster, tmp_path):
    gate = tmp_path / "gate"
    cluster = local_cluster(slots=1, **{"taskmanager.testing.prepare-slots-gate": str(gate)}).start(
        taskmanagers=1
    )
    taskmanager = cluster.taskmanagers[0]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.add_source(Endless()).map(lambda x: x + 1).print()
    with remote(cluster.address):
        client = env.execute_async("cancelled while deploying")
    job_id = client.get_job_id()
    # The deployment is under way and held: the TaskManager has no slot process yet.
    poll_for(lambda: (tmp_path / "gate.reached").exists(), timeout=30, what="PrepareSlots")
    assert not slot_processes_of(taskmanager)
    with ClusterClient(cluster.address) as jobs:
        jobs.cancel(job_id)
    poll_for(
        lambda: client.get_job_status() in ("CANCELLING", "CANCELED"),
        timeout=15,
        what="the cancel to be taken",
    )
    gate.touch()  # the deployment goes on: the slot process starts and runs the tasks
    poll_for(lambda: client.get_job_status() == "CANCELED", timeout=30, what="CANCELED")
    poll_for(
        lambda: not slot_processes_of(taskmanager),
        timeout=30,
        what="the slot process started after the cancel to end",
    )
    poll_for(lambda: cluster.overview()["slots-available"] == 1, timeout=15, what="a free slot")
    assert "PrepareSlots" in cluster.logs()
