"""Savepoints: stop a job with one, resume it at another parallelism, results unchanged."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO_ROOT, poll_for, python_env
from jobs_support import remote
from test_checkpointing import build_job, committed_output, expected_output

from client.gateway import ClusterClient
from strom.checkpoint_storage import storage_for
from strom.datastream import StreamExecutionEnvironment, execution_context

COUNT = 40_000


def strom_cli(cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
    )


def submit(cluster, output: Path, parallelism: int, savepoint: str | None = None) -> str:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.enable_checkpointing(60_000)  # savepoints only; no periodic checkpoint in the way
    build_job(env, COUNT, output)
    with remote(cluster.address):
        execution_context.current().savepoint_path = savepoint
        return env.execute_async(f"savepoint job p={parallelism}").get_job_id()


def stop_with_savepoint(cluster, job_id: str, directory: Path) -> str:
    """``strom stop --savepoint-path``: the savepoint's location once the job stopped."""
    stop = strom_cli(cluster, "stop", "--savepoint-path", str(directory), job_id)
    assert stop.returncode == 0, stop.stderr
    location = re.search(r"Savepoint completed\. Path: file:(\S+)", stop.stdout).group(1)
    with ClusterClient(cluster.address) as jobs:
        poll_for(lambda: jobs.job(job_id).summary.state == "FINISHED", what="the job to stop")
    return location


def assert_finishes(jobs: ClusterClient, job_id: str) -> None:
    poll_for(
        lambda: jobs.job(job_id).summary.state in ("FINISHED", "FAILED"),
        timeout=120,
        what=f"job {job_id} to end",
    )
    assert jobs.job(job_id).summary.state == "FINISHED", jobs.job(job_id).failure


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from harness import LocalCluster

    cluster = LocalCluster(tmp_path_factory.mktemp("savepoint-cluster"), slots=2)
    try:
        cluster.start(taskmanagers=2)
        yield cluster
    finally:
        cluster.stop()


# At parallelism 1 the keyed reduce is chained to its input (one vertex, no exchange); at 2 and
# 3 it is a vertex of its own behind a keyed edge: its state goes either way.
@pytest.mark.parametrize(("parallelism", "new_parallelism"), [(2, 3), (2, 1), (1, 2)])
def test_stop_with_savepoint_and_resume_at_another_parallelism(
    cluster, tmp_path, parallelism, new_parallelism
):
    output = tmp_path / "out"
    job_id = submit(cluster, output, parallelism=parallelism)
    with ClusterClient(cluster.address) as jobs:
        poll_for(
            lambda: all(v.records_out > 2000 for v in jobs.job(job_id).vertices[:1]),
            what="the job to make progress",
        )
        location = stop_with_savepoint(cluster, job_id, tmp_path / "sp")
        assert storage_for(None).read_metadata(location) is not None
        assert committed_output(output) != expected_output(COUNT)  # it really was cut short

        resumed = submit(cluster, output, new_parallelism, savepoint=location)
        assert_finishes(jobs, resumed)
    assert committed_output(output) == expected_output(COUNT)
    dispose = strom_cli(cluster, "savepoint", "-d", location)
    assert dispose.returncode == 0 and not Path(location).exists()


def test_a_savepoint_the_job_goes_on_after_commits_nothing(cluster, tmp_path):
    # Recovery restores the latest checkpoint, not a savepoint: output committed for an
    # intermediate savepoint would be written a second time after a failover (seen when the
    # leading JobManager was killed during one). As in Flink since 1.15, its committables are
    # committed with the next checkpoint, here the job's final one.
    output = tmp_path / "out"
    job_id = submit(cluster, output, parallelism=2)
    with ClusterClient(cluster.address) as jobs:
        poll_for(
            lambda: jobs.job(job_id).vertices[0].records_out > 2000,
            what="the job to make progress",
        )
        taken = strom_cli(cluster, "savepoint", job_id, str(tmp_path / "sp"))
        assert taken.returncode == 0, taken.stderr
        assert "Savepoint completed" in taken.stdout
        committed_while_running = committed_output(output)
        assert jobs.job(job_id).summary.state == "RUNNING", "the job ended: make it longer"
        assert not committed_while_running
        assert_finishes(jobs, job_id)
    assert committed_output(output) == expected_output(COUNT)


def test_run_from_a_half_written_savepoint_is_refused(cluster, tmp_path):
    broken = tmp_path / "savepoint-broken"
    broken.mkdir()
    (broken / "v1-0-a0.state").write_bytes(b"partial")
    (broken / "_metadata.inprogress").write_bytes(b"\x80")  # the crash came before the rename
    job = tmp_path / "job.py"
    job.write_text(
        "from strom.datastream import StreamExecutionEnvironment\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "env.from_collection([1]).print()\n"
        "env.execute('from broken')\n"
    )
    result = strom_cli(cluster, "run", "-s", str(broken), str(job))
    assert result.returncode == 1
    assert "not a finished savepoint or checkpoint" in result.stderr


def test_latest_complete_checkpoint_skips_unfinished_ones(tmp_path):
    storage = storage_for(str(tmp_path))
    job = "a" * 32
    finished = storage.checkpoint_location(job, 3)
    storage.write_state(finished, "x.state", b"data")
    storage.write_metadata(finished, {"checkpoint_id": 3, "operators": {}})
    unfinished = storage.checkpoint_location(job, 4)
    storage.write_state(unfinished, "x.state", b"data")  # metadata never written
    truncated = storage.checkpoint_location(job, 5)
    Path(truncated).mkdir(parents=True)
    (Path(truncated) / "_metadata").write_bytes(b'{"format": "strom-checkpoint-meta')  # torn
    assert storage.latest_complete(job) == finished
    assert storage.read_metadata(unfinished) is None
    assert storage.read_metadata(truncated) is None
