"""``strom run|list|cancel|info|cluster`` against a real cluster, as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from harness import REPO_ROOT, http_json, poll_for, python_env

JOB_ID = re.compile(r"Job has been submitted with JobID ([0-9a-f]{32})")


def strom(cluster, *args: str, timeout: float = 120, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd or REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from harness import LocalCluster

    cluster = LocalCluster(tmp_path_factory.mktemp("cli-cluster"), slots=2)
    try:
        cluster.start(taskmanagers=2)
        yield cluster
    finally:
        cluster.stop()


def write_job(folder: Path, body: str, helpers: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.py"
    job.write_text(textwrap.dedent(body))
    if helpers is not None:
        (folder / "helpers.py").write_text(textwrap.dedent(helpers))
    return job


WORD_COUNT = """
    import sys
    from helpers import split_words, add_counts
    from strom.common import Encoder
    from strom.datastream import StreamExecutionEnvironment
    from strom.datastream.connectors.file_system import FileSink, FileSource, StreamFormat

    env = StreamExecutionEnvironment.get_execution_environment()
    text_lines = StreamFormat.text_line_format()
    source = FileSource.for_record_stream_format(text_lines, sys.argv[1]).build()
    counts = (
        env.from_source(source, None, "lines")
        .flat_map(split_words)
        .key_by(lambda pair: pair[0])
        .reduce(add_counts)
    )
    counts.sink_to(FileSink.for_row_format(sys.argv[2], Encoder.simple_string_encoder()).build())
    env.execute("cli word count")
"""

HELPERS = """
    def split_words(line):
        return [(word, 1) for word in line.split()]

    def add_counts(a, b):
        return (a[0], a[1] + b[1])
"""


def read_counts(output: Path) -> Counter:
    finals: dict = {}
    for path in output.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            for line in path.read_text().splitlines():
                word, count = eval(line)  # lines are tuple reprs written by the job
                finals[word] = max(finals.get(word, 0), count)
    return Counter(finals)


def test_run_word_count_with_helpers_module_at_parallelism_2(cluster, tmp_path):
    """The job imports helpers.py from its folder; TaskManagers get it with the job."""
    text = tmp_path / "input.txt"
    lines = [f"alpha beta w{i % 17} gamma w{i % 5}" for i in range(3000)]
    text.write_text("\n".join(lines) + "\n")
    job = write_job(tmp_path / "job", WORD_COUNT, HELPERS)
    output = tmp_path / "out"
    # Relative paths are the client's: the job resolves them where it is defined.
    result = strom(cluster, "run", "-p", "2", str(job), "input.txt", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert JOB_ID.search(result.stdout)
    assert "Job Runtime:" in result.stdout
    expected = Counter(word for line in lines for word in line.split())
    assert read_counts(output) == expected
    job_id = JOB_ID.search(result.stdout).group(1)
    details = http_json(f"{cluster.rest_url}/jobs/{job_id}")
    assert details["state"] == "FINISHED"
    assert {v["parallelism"] for v in details["vertices"]} == {2}
    job = f"{cluster.rest_url}/jobs/{job_id}"
    ran_on = {
        subtask["taskmanager-id"]
        for vertex in details["vertices"]
        for subtask in http_json(f"{job}/vertices/{vertex['id']}")["subtasks"]
    }
    assert len(ran_on) == 2  # the subtasks ran on both TaskManagers
    overview = http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]
    assert any(j["jid"] == job_id and j["state"] == "FINISHED" for j in overview)


FAILING = """
    from strom.datastream import StreamExecutionEnvironment

    def explode(value):
        if value == 3:
            raise RuntimeError("user code exploded on 3")
        return value

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3, 4]).map(explode).print()
    env.execute("failing")
"""


def test_failing_job_exits_non_zero_with_the_user_traceback(cluster, tmp_path):
    job = write_job(tmp_path / "fail", FAILING)
    result = strom(cluster, "run", str(job))
    assert result.returncode == 1
    assert "user code exploded on 3" in result.stderr
    assert "job.py" in result.stderr and "in explode" in result.stderr
    assert "Traceback" in result.stderr
    # The cluster is healthy for the next job.
    assert http_json(f"{cluster.rest_url}/overview")["slots-available"] == 4


SLOW = """
    import time
    from strom.datastream import StreamExecutionEnvironment
    from strom.datastream.connectors.number_seq import NumberSequenceSource

    def slow(value):
        time.sleep(0.01)
        return value

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_source(NumberSequenceSource(1, 100000), None, "n").map(slow).print()
    env.execute("slow job")
"""


def test_detached_run_list_and_cancel(cluster, tmp_path):
    job = write_job(tmp_path / "slow", SLOW)
    result = strom(cluster, "run", "-d", str(job))
    assert result.returncode == 0, result.stderr
    job_id = JOB_ID.search(result.stdout).group(1)
    poll_for(
        lambda: f"{job_id} : slow job (RUNNING)" in strom(cluster, "list").stdout,
        what="the job listed as RUNNING",
    )
    listing = strom(cluster, "list", "-r").stdout
    assert re.search(
        rf"\d\d\.\d\d\.\d{{4}} \d\d:\d\d:\d\d : {job_id} : slow job \(RUNNING\)", listing
    )
    cancel = strom(cluster, "cancel", job_id)
    assert cancel.returncode == 0 and f"Cancellation requested for job {job_id}." in cancel.stdout
    assert f"Job {job_id} is CANCELED." in cancel.stdout
    poll_for(
        lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"] == "CANCELED",
        what="the job to be cancelled",
    )
    assert f"{job_id} : slow job (CANCELED)" in strom(cluster, "list", "-a").stdout
    poll_for(lambda: http_json(f"{cluster.rest_url}/overview")["slots-available"] == 4)


def test_info_prints_the_plan(cluster, tmp_path):
    job = write_job(tmp_path / "info", FAILING)
    result = strom(cluster, "info", "-p", "3", str(job))
    assert result.returncode == 0, result.stderr
    assert "Execution Plan" in result.stdout
    assert '"parallelism": 3' in result.stdout and "Map" in result.stdout


def test_cluster_and_empty_list(cluster):
    result = strom(cluster, "cluster")
    assert result.returncode == 0
    assert "TaskManagers: 2" in result.stdout and "free of 4" in result.stdout


def test_unreachable_cluster_is_one_plain_message(cluster, tmp_path):
    from harness import free_port

    job = write_job(tmp_path / "any", FAILING)
    result = strom(cluster, "run", "-m", f"127.0.0.1:{free_port()}", str(job), timeout=60)
    assert result.returncode == 1
    assert "Could not reach the JobManager" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_job_file_and_arguments(cluster, tmp_path):
    result = strom(cluster, "run", str(tmp_path / "missing.py"))
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    result = strom(cluster, "run", "-p", "0", str(write_job(tmp_path / "p", FAILING)))
    assert result.returncode == 1 and "parallelism" in result.stderr


def test_job_waits_for_slots_then_fails_with_a_clear_message(local_cluster, tmp_path):
    small = local_cluster(slots=1, **{"slot.request.timeout": "3 s"}).start(taskmanagers=1)
    job = write_job(tmp_path / "big", SLOW)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "run", "-p", "3", str(job)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(STROM_CONF_DIR=str(small.conf_dir)),
    )
    try:
        jobs = poll_for(
            lambda: http_json(f"{small.rest_url}/jobs/overview")["jobs"], what="the job"
        )
        details = http_json(f"{small.rest_url}/jobs/{jobs[0]['jid']}")
        assert details["state"] == "CREATED"
        assert "waiting for 3 free slot(s)" in details["status-message"]
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "Could not acquire the 3 slot(s)" in err
    assert time.monotonic() - started >= 3


MAIN_CLASSES = """
    import sys
    from dataclasses import dataclass
    from strom.datastream import StreamExecutionEnvironment
    from strom.common import Encoder
    from strom.datastream.connectors.file_system import FileSink

    @dataclass
    class Reading:
        sensor: str
        value: int

    env = StreamExecutionEnvironment.get_execution_environment()
    readings = env.from_collection([Reading(f"s{i % 3}", i) for i in range(30)])
    totals = readings.key_by(lambda r: r.sensor).reduce(
        lambda a, b: Reading(a.sensor, a.value + b.value)
    )
    totals.map(lambda r: (r.sensor, r.value)).sink_to(
        FileSink.for_row_format(sys.argv[1], Encoder.simple_string_encoder()).build()
    )
    env.execute("main classes")
"""


def test_records_of_a_class_defined_in_the_job_script_cross_taskmanagers(cluster, tmp_path):
    job = write_job(tmp_path / "classes", MAIN_CLASSES)
    output = tmp_path / "totals"
    result = strom(cluster, "run", "-p", "2", str(job), str(output))
    assert result.returncode == 0, result.stdout + result.stderr
    expected = {f"s{k}": sum(i for i in range(30) if i % 3 == k) for k in range(3)}
    assert dict(read_counts(output)) == expected
