"""What a user of a long-running cluster sees from ``strom run`` and ``strom cancel``
(issue 10): jobs whose code cannot load, settings from -D and the cluster config, waiting
for slots, restarts and progress, told in the attached client."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import REPO_ROOT, http_json, poll_for, python_env

JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")


def strom(cluster, *args: str, timeout: float = 90, cwd: Path | None = None, pythonpath=""):
    """Run the real CLI against ``cluster``; ``pythonpath`` is the client's own extra path."""
    env = python_env(STROM_CONF_DIR=str(cluster.conf_dir))
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + ":" + env["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd or REPO_ROOT),
        env=env,
    )


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from harness import LocalCluster

    cluster = LocalCluster(tmp_path_factory.mktemp("lifecycle"), slots=2)
    try:
        cluster.start(taskmanagers=1)
        yield cluster
    finally:
        cluster.stop()


def job_state(cluster, job_id: str) -> dict:
    return http_json(f"{cluster.rest_url}/jobs/{job_id}")


# ------------------------------------------------------------------ item 2: code that cannot load

CLIENT_ONLY_JOB = """
    from clientonly import triple
    from strom.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(triple).print()
    env.execute("cannot load")
"""


def client_only_job(tmp_path: Path) -> tuple[Path, str]:
    """A job whose function lives in a module only the client's PYTHONPATH has."""
    library = tmp_path / "client-library"
    write(library / "clientonly.py", "def triple(x):\n    return 3 * x\n")
    return write(tmp_path / "job" / "job.py", CLIENT_ONLY_JOB), str(library)


def test_a_job_whose_code_cannot_load_fails_at_once_and_the_client_says_why(cluster, tmp_path):
    job, library = client_only_job(tmp_path)
    result = strom(
        cluster,
        "run",
        "-D",
        "restart-strategy.type=fixed-delay",
        "-D",
        "restart-strategy.fixed-delay.attempts=1",
        "-D",
        "restart-strategy.fixed-delay.delay=100 ms",
        str(job),
        pythonpath=library,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ModuleNotFoundError" in result.stderr and "clientonly" in result.stderr
    details = job_state(cluster, JOB_ID.search(result.stdout).group(1))
    assert details["state"] == "FAILED"
    assert details["restarts"] == 1  # the restart strategy was asked, as for any failure
    poll_for(lambda: cluster.overview()["slots-available"] == 2, what="the slots to be free")


def test_cancel_of_a_job_whose_code_cannot_load_ends_canceled(cluster, tmp_path):
    job, library = client_only_job(tmp_path)
    restarts = [
        "-D",
        "restart-strategy.type=fixed-delay",
        "-D",
        "restart-strategy.fixed-delay.delay=200 ms",
    ]
    result = strom(cluster, "run", "-d", *restarts, str(job), pythonpath=library)
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = JOB_ID.search(result.stdout).group(1)
    poll_for(lambda: job_state(cluster, job_id)["restarts"] >= 2, what="restarts")
    cancel = strom(cluster, "cancel", job_id)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    poll_for(lambda: job_state(cluster, job_id)["state"] == "CANCELED", timeout=20)
    poll_for(lambda: cluster.overview()["slots-available"] == 2, what="the slots to be free")
