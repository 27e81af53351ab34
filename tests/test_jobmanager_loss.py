"""Without high availability (the default), a JobManager that is SIGKILLed and restarted loses
the jobs of its previous run: the restarted one says so in its log (its TaskManagers tell it
which jobs they were running), the attached `strom run` names the failure and the last
retained checkpoint, and resuming by hand from that checkpoint (`strom run -s`, as the README
says) gives exactly the expected output."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from harness import REPO_ROOT, poll_for, python_env
from test_checkpointing import committed_output, completed_checkpoints, expected_output

COUNT = 30_000

JOB = """
    import sys, time
    from strom.common import Encoder, RestartStrategies
    from strom.datastream import MapFunction, StreamExecutionEnvironment
    from strom.datastream.connectors.file_system import FileSink
    from strom.datastream.connectors.number_seq import NumberSequenceSource

    output, checkpoints, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class Throttle(MapFunction):
        def map(self, value):
            if value % 10 == 0:
                time.sleep(0.002)
            return (value % 7, 1)

    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(250)
    env.get_checkpoint_config().set_checkpoint_storage_dir(checkpoints)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(20, 200))
    numbers = env.from_source(NumberSequenceSource(1, count), None, "numbers").uid("numbers")
    counts = (
        numbers.map(Throttle()).uid("throttle")
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1])).uid("counts")
    )
    counts.sink_to(
        FileSink.for_row_format(output, Encoder.simple_string_encoder()).build()
    ).uid("files")
    env.execute("survives its JobManager by hand")
"""


def strom_run(cluster, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "client.cli", "run", "-p", "2", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
    )


def test_a_restarted_jobmanager_reports_the_lost_job_and_it_resumes_by_hand(
    local_cluster, tmp_path
):
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    job = tmp_path / "job" / "job.py"
    job.parent.mkdir()
    job.write_text(textwrap.dedent(JOB))
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    arguments = [str(job), str(output), str(checkpoints), str(COUNT)]

    client = strom_run(cluster, *arguments)
    try:
        poll_for(lambda: completed_checkpoints(checkpoints) >= 2, timeout=120, what="checkpoints")
        cluster.jobmanager.send_signal(signal.SIGKILL)
        cluster.jobmanager.wait()
        cluster.start_jobmanager()
        _, stderr = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    job_id = next(p.name for p in checkpoints.iterdir())
    assert client.returncode == 1, stderr
    assert (
        f"The JobManager at {cluster.address} went away while running job {job_id} "
        f"(survives its JobManager by hand)" in stderr
    ), stderr
    assert "with high-availability (high-availability.type: zookeeper) the job would resume" in (
        stderr
    )
    assert "is the cluster running" not in stderr
    resume_line = next(line for line in stderr.splitlines() if "strom run -s " in line)
    latest = resume_line.split("strom run -s ", 1)[1].split()[0]
    assert latest.startswith(str(checkpoints / job_id / "chk-")), resume_line

    # The restarted JobManager learns from its TaskManagers which job of the run before it
    # was lost, says so in its log and tells a client that asks for it.
    poll_for(
        lambda: f"Job {job_id} of the previous JobManager run" in cluster.logs(),
        what="the restarted JobManager to log the lost job",
    )
    status = subprocess.run(
        [sys.executable, "-m", "client.cli", "list", "-a"],
        capture_output=True,
        text=True,
        cwd=str(REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
        timeout=60,
    )
    assert job_id not in status.stdout

    # Resuming by hand from the last retained checkpoint completes the output exactly.
    assert committed_output(output) != expected_output(COUNT)
    resumed = strom_run(cluster, "-s", latest, *arguments)
    stdout, stderr = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, stdout + stderr
    assert committed_output(output) == expected_output(COUNT)
