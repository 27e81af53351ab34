"""Spare slot processes (``taskmanager.slot-process.prestart``): each free slot of a
TaskManager keeps one started, a deployment runs its job in it, and a new one replaces it
once the slot is free again. A spare has loaded nothing of any job."""

from __future__ import annotations

import signal
import subprocess

import psutil
from harness import children_named, poll_for
from test_slot_processes import (
    finished,
    held_subtask_pids,
    local_jps,
    released,
    running_job,
    slot_processes_of,
    strom_run,
    write_job,
)


def spares_of(taskmanager: subprocess.Popen) -> set[int]:
    """The pids of the TaskManager's spares that serve (they take their name then)."""
    return {child.pid for child in children_named(taskmanager.pid, "strom-spare")}


def test_each_free_slot_keeps_a_spare_and_the_next_job_runs_in_it(local_cluster, tmp_path):
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    taskmanager = cluster.taskmanagers[0]
    spares = poll_for(lambda: len(spares_of(taskmanager)) == 2 and spares_of(taskmanager))
    listing = local_jps()
    # Part of their TaskManager until they run a job: bin/jps lists daemons and jobs' slots.
    assert not {line.split()[0] for line in listing.splitlines()[1:]} & {str(p) for p in spares}

    folder, gate = tmp_path / "job", tmp_path / "gate"
    job = write_job(folder, 2)
    with released(strom_run(cluster, str(job), str(gate), "2", cwd=folder), gate) as client:
        job_id = running_job(cluster, client)

        running = held_subtask_pids(cluster, job_id)
        # The job runs in the two spares, now slot processes of the job; with no slot free,
        # no spare is started.
        assert running == spares
        assert all(
            f"slot process {pid} (started ahead) runs job" in cluster.logs() for pid in spares
        )
        assert {p.pid for p in slot_processes_of(taskmanager)} == spares
        assert not spares_of(taskmanager)
        gate.touch()
        assert "RESULT [2, 4, 6]" in finished(client)
    # The slots are free again: each gets a new spare, and the next job runs in them.
    fresh = poll_for(lambda: len(spares_of(taskmanager)) == 2 and spares_of(taskmanager))
    assert not fresh & spares
    assert "RESULT [20, 40, 60]" in finished(
        strom_run(cluster, str(write_job(folder, 20)), cwd=folder)
    )


def test_a_killed_spare_is_replaced_and_no_job_fails(local_cluster, tmp_path):
    cluster = local_cluster(slots=1).start(taskmanagers=1)
    taskmanager = cluster.taskmanagers[0]
    (spare,) = poll_for(lambda: len(spares_of(taskmanager)) == 1 and spares_of(taskmanager))
    psutil.Process(spare).send_signal(signal.SIGKILL)
    (replacement,) = poll_for(lambda: spares_of(taskmanager) - {spare} or None, what="a new spare")
    folder = tmp_path / "job"
    assert "RESULT [3, 6, 9]" in finished(strom_run(cluster, str(write_job(folder, 3)), cwd=folder))
    assert f"slot process {replacement} (started ahead) runs job" in cluster.logs()
    assert cluster.overview()["jobs-failed"] == 0


def test_a_stopped_taskmanager_leaves_no_spare(local_cluster):
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    taskmanager = cluster.taskmanagers[0]
    spares = poll_for(lambda: len(spares_of(taskmanager)) == 2 and spares_of(taskmanager))
    taskmanager.send_signal(signal.SIGTERM)
    taskmanager.wait(timeout=30)
    poll_for(lambda: not any(psutil.pid_exists(pid) for pid in spares), what="spares to end")


def test_without_prestart_a_job_starts_its_own_slot_processes(local_cluster, tmp_path):
    cluster = local_cluster(slots=2, **{"taskmanager.slot-process.prestart": False})
    cluster.start(taskmanagers=1)
    folder = tmp_path / "job"
    assert "RESULT [2, 4, 6]" in finished(strom_run(cluster, str(write_job(folder, 2)), cwd=folder))
    logs = cluster.logs()
    assert "started slot process" in logs and "started ahead" not in logs
    assert not spares_of(cluster.taskmanagers[0])
