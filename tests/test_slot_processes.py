"""User code runs in slot processes (DESIGN.md §2): one per job attempt and slot, forked by the
TaskManager, supervised by it, and gone when its tasks have ended."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from harness import REPO_ROOT, children_named, http_json, poll_for, python_env
from jobs_support import remote
from test_checkpointing import (
    build_job,
    checkpointed_env,
    committed_output,
    completed_checkpoints,
    expected_output,
)

from client.gateway import ClusterClient
from strom.datastream import StreamExecutionEnvironment
from taskmanager.work_dirs import LOCK_NAME, PREFIX

HELD_JOB = """
    import os
    import sys
    import time

    from helperpkg import double
    from strom.datastream import StreamExecutionEnvironment

    gate = sys.argv[1] if len(sys.argv) > 1 else ""
    parallelism = int(sys.argv[2]) if len(sys.argv) > 2 else 1


    def hold(value):
        while gate and not os.path.exists(gate):
            time.sleep(0.05)
        return value


    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    numbers = env.from_collection([1, 2, 3]).rebalance().map(double).map(hold)
    with numbers.execute_and_collect() as results:
        print("RESULT", sorted(results))
"""


def write_job(folder: Path, factor: int) -> Path:
    package = folder / "helperpkg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f"def double(x):\n    return x * {factor}\n")
    job = folder / "job.py"
    job.write_text(textwrap.dedent(HELD_JOB))
    return job


def strom_run(cluster, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "client.cli", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(cwd),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir), PYTHONPATH=str(REPO_ROOT)),
    )


@contextlib.contextmanager
def released(client: subprocess.Popen, gate: Path) -> Iterator[subprocess.Popen]:
    """Run the block with ``client``'s job held at ``gate``; whatever happens in it, open
    the gate and leave no client running after it."""
    try:
        yield client
    finally:
        gate.touch()
        if client.poll() is None:
            client.kill()


def finished(process: subprocess.Popen, timeout: float = 120) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def running_jobs(cluster) -> list[str]:
    jobs = http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]
    return [job["jid"] for job in jobs if job["state"] == "RUNNING"]


def running_job(cluster, client: subprocess.Popen) -> str:
    """The id of the job ``client`` runs, once it runs (fails with its output if it ended)."""
    job_id = poll_for(
        lambda: client.poll() is not None or (running_jobs(cluster) or [None])[0],
        timeout=60,
        what="the job to run",
    )
    assert job_id is not True, f"strom run ended early: {client.communicate()[0]}"
    return job_id


def subtask_views(cluster, job_id: str) -> list[dict]:
    job = f"{cluster.rest_url}/jobs/{job_id}"
    return [
        subtask
        for vertex in http_json(job)["vertices"]
        for subtask in http_json(f"{job}/vertices/{vertex['id']}")["subtasks"]
    ]


def local_jps() -> str:
    """What ``bin/jps --local`` prints."""
    return subprocess.run(
        [str(REPO_ROOT / "bin" / "jps"), "--local"],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(),
        check=True,
    ).stdout


def slot_processes_of(taskmanager: subprocess.Popen) -> list[psutil.Process]:
    """The TaskManager's slot processes (children of its forkserver template)."""
    return children_named(taskmanager.pid, "strom-slot")


def held_subtask_pids(cluster, job_id: str) -> set[int]:
    """The pids of the processes of a ``write_job`` job at p=2 whose two held subtasks run
    (its source has finished), once both do."""

    def pids() -> set[int]:
        views = subtask_views(cluster, job_id)
        return {v["process"]["pid"] for v in views if v["status"] == "RUNNING" and v["process"]}

    return poll_for(lambda: len(pids()) == 2 and pids(), timeout=60, what="two pids")


def test_each_job_runs_the_helper_module_it_was_submitted_with(local_cluster, tmp_path):
    """A changed helper module reaches the next submission even while a job with the old
    version still runs on the same TaskManager (each in its own slot process)."""
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    folder = tmp_path / "job"
    gate = tmp_path / "gate"
    job = write_job(folder, 2)
    with released(strom_run(cluster, str(job), str(gate), cwd=folder), gate) as first:
        running_job(cluster, first)
        job = write_job(folder, 20)  # the user edits the helper and submits again
        second = finished(strom_run(cluster, str(job), cwd=folder))
        assert "RESULT [20, 40, 60]" in second
        gate.touch()
        assert "RESULT [2, 4, 6]" in finished(first)
    third = finished(strom_run(cluster, str(write_job(folder, 300)), cwd=folder))
    assert "RESULT [300, 600, 900]" in third


def test_parallelism_2_on_one_taskmanager_runs_in_two_slot_processes(local_cluster, tmp_path):
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    folder = tmp_path / "job"
    gate = tmp_path / "gate"
    job = write_job(folder, 2)
    with released(strom_run(cluster, str(job), str(gate), "2", cwd=folder), gate) as client:
        job_id = running_job(cluster, client)

        running = held_subtask_pids(cluster, job_id)
        taskmanager = cluster.taskmanagers[0]
        assert taskmanager.pid not in running
        assert {p.pid for p in slot_processes_of(taskmanager)} == running
        listing = local_jps()
        assert {f"{pid} StromTaskSlot" for pid in running} <= set(listing.splitlines())
        assert f"{taskmanager.pid} StromTaskManager" in listing
        tm_id = http_json(f"{cluster.rest_url}/taskmanagers")["taskmanagers"][0]["id"]
        details = http_json(f"{cluster.rest_url}/taskmanagers/{tm_id}")
        shown = {p["pid"]: p for p in details["slotProcesses"]}
        assert set(shown) == running
        assert all(p["memoryRss"] > 0 and p["jobId"] == job_id for p in shown.values())
        gate.touch()
        assert "RESULT [2, 4, 6]" in finished(client)
    # Their tasks ended, so did the slot processes; the slots are free.
    poll_for(lambda: not slot_processes_of(cluster.taskmanagers[0]), what="slot processes to end")
    assert cluster.overview()["slots-available"] == 2


def test_a_killed_slot_process_fails_its_tasks_and_the_job_restarts_exactly_once(
    local_cluster, tmp_path
):
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    count = 30_000
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    build_job(env, count, output)
    with remote(cluster.address):
        client = env.execute_async("a slot process is killed")
    job_id = client.get_job_id()
    poll_for(
        lambda: completed_checkpoints(checkpoints) > 0 or client.get_job_status() == "FINISHED",
        timeout=60,
        what="a completed checkpoint",
    )
    assert client.get_job_status() == "RUNNING", "the job ended before the kill"
    taskmanager = cluster.taskmanagers[0]
    victims = slot_processes_of(taskmanager)
    assert len(victims) == 2
    victims[0].send_signal(signal.SIGKILL)
    client.get_job_execution_result()
    with ClusterClient(cluster.address) as jobs:
        details = jobs.job(job_id)
    assert details.summary.state == "FINISHED"
    assert details.restarts >= 1  # on the one TaskManager: its slot was offered again
    assert committed_output(output) == expected_output(count)
    exceptions = http_json(f"{cluster.rest_url}/jobs/{job_id}/exceptions")
    entries = exceptions["exceptionHistory"]["entries"]
    assert any(
        f"slot process {victims[0].pid}" in e["stacktrace"] and "SIGKILL" in e["stacktrace"]
        for e in entries
    )
    assert taskmanager.poll() is None
    poll_for(lambda: cluster.overview()["slots-available"] == 2, what="both slots free")


class Stubborn:
    """A function that ignores cancellation."""

    def __call__(self, value: int) -> int:
        while True:
            time.sleep(1)


def test_a_task_that_ignores_cancel_is_killed_after_the_cancellation_timeout(
    local_cluster, tmp_path
):
    cluster = local_cluster(slots=1, **{"task.cancellation.timeout": "2 s"}).start(taskmanagers=1)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.from_collection([1, 2, 3]).map(Stubborn()).print()
    with remote(cluster.address):
        client = env.execute_async("stubborn")
    job_id = client.get_job_id()
    taskmanager = cluster.taskmanagers[0]
    poll_for(
        lambda: (
            all(s["status"] == "RUNNING" for s in subtask_views(cluster, job_id))
            and slot_processes_of(taskmanager)
        ),
        timeout=60,
        what="the stubborn task to run",
    )
    [slot] = slot_processes_of(taskmanager)
    with ClusterClient(cluster.address) as jobs:
        jobs.cancel(job_id)
    # The watchdog's 2 s, and a margin for a loaded machine.
    poll_for(lambda: client.get_job_status() == "CANCELED", timeout=30, what="CANCELED")
    assert not slot.is_running()
    assert cluster.overview()["slots-available"] == 1
    assert "task.cancellation.timeout" in cluster.logs()


@pytest.mark.parametrize("held", [False, True])
def test_a_starting_taskmanager_removes_folders_no_live_process_owns(local_cluster, tmp_path, held):
    folder = Path(tempfile.gettempdir()) / f"{PREFIX}test-{uuid.uuid4().hex[:8]}"
    (folder / "some-job").mkdir(parents=True)
    (folder / "some-job" / "module.py").write_text("x = 1\n")
    lock = folder / LOCK_NAME
    lock.touch()
    an_hour_ago = time.time() - 3600
    os.utime(lock, (an_hour_ago, an_hour_ago))
    owner = os.open(lock, os.O_RDWR)
    try:
        if held:  # a live process owns it
            fcntl.flock(owner, fcntl.LOCK_EX)
        cluster = local_cluster(slots=1).start(taskmanagers=1)
        assert cluster.overview()["taskmanagers"] == 1
        assert folder.exists() == held
    finally:
        os.close(owner)
        if folder.exists():
            shutil.rmtree(folder)


def test_a_deployment_whose_code_cannot_load_answers_the_error(local_cluster, tmp_path):
    """The slot process cannot import the job's module: its DeployTasks answers the error,
    which fails the job with it, and the slot process ends."""
    cluster = local_cluster(slots=1).start(taskmanagers=1)
    package = tmp_path / "only_on_the_client"
    package.mkdir()
    (package / "client_only_module.py").write_text("def work(x):\n    return x\n")
    sys.path.insert(0, str(package))
    try:
        import client_only_module

        with remote(cluster.address):
            env = StreamExecutionEnvironment.get_execution_environment()
            env.from_collection([1, 2, 3]).map(client_only_module.work).print()
            job_id = env.execute_async("code only on the client").get_job_id()
    finally:
        sys.path.remove(str(package))
        sys.modules.pop("client_only_module", None)
    with ClusterClient(cluster.address) as jobs:
        poll_for(lambda: jobs.job(job_id).summary.state == "FAILED", what="the job to fail")
        failure = jobs.job(job_id).failure
    assert "ModuleNotFoundError" in failure and "client_only_module" in failure
    poll_for(lambda: not slot_processes_of(cluster.taskmanagers[0]), what="the slot process to end")
