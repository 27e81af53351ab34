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

    # The cluster configuration holds a job-level key, as a user's conf/ would.
    cluster = LocalCluster(
        tmp_path_factory.mktemp("lifecycle"), slots=2, **{"execution.buffer-timeout": "2 s"}
    )
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
    assert "ship others with -pyfs" in result.stderr
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


# ------------------------------------------------------------------ item 5: settings take effect

LATENCY_JOB = """
    import sys, time
    from strom.datastream import StreamExecutionEnvironment
    from strom.datastream.functions import SourceFunction

    class Ticks(SourceFunction):
        def run(self, ctx):
            for i in range(12):
                ctx.collect((i, time.time()))
                time.sleep(0.25)

        def cancel(self):
            pass

    OUT = sys.argv[1]  # travels with the function (the TaskManager has its own argv)

    def latency(record):
        with open(OUT, "a") as out:
            out.write(f"{time.time() - record[1]:.3f}\\n")
        return record

    env = StreamExecutionEnvironment.get_execution_environment()
    if len(sys.argv) > 2:
        env.set_buffer_timeout(int(sys.argv[2]))
    # A network edge at any parallelism (at 1 the keyed map would be chained to the source).
    env.add_source(Ticks()).key_by(lambda r: r[0] % 2).map(latency).start_new_chain()
    env.execute("latency")
"""


@pytest.mark.parametrize(
    "flags, code_ms, slow",
    [
        ([], None, True),  # the cluster's 2 s applies
        (["-D", "execution.buffer-timeout=0ms"], None, False),  # -D over the cluster
        (["-D", "execution.buffer-timeout=0ms"], 2000, True),  # the job's code over -D
    ],
    ids=["cluster-config", "dynamic-property", "job-code"],
)
def test_buffer_timeout_from_cluster_config_dynamic_property_and_code(
    cluster, tmp_path, flags, code_ms, slow
):
    """The largest record latency across a network edge shows the buffer timeout in force:
    about 2 s with the cluster's setting, about nothing with 0 ms (records every 250 ms)."""
    job = write(tmp_path / "job" / "job.py", LATENCY_JOB)
    out = tmp_path / "latencies.txt"
    extra = [str(code_ms)] if code_ms is not None else []
    result = strom(cluster, "run", *flags, str(job), str(out), *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    worst = max(float(line) for line in out.read_text().split())
    if slow:
        assert worst >= 1.5, worst
    else:
        assert worst < 0.5, worst


def test_slot_request_timeout_from_dynamic_property_applies_to_the_job(cluster, tmp_path):
    job = write(tmp_path / "job" / "job.py", LATENCY_JOB)
    result = strom(
        cluster, "run", "-p", "3", "-D", "slot.request.timeout=1s", str(job), "/dev/null"
    )
    assert result.returncode != 0
    assert "slot.request.timeout (1000 ms)" in result.stderr, result.stderr


def test_parallelism_from_dynamic_property(cluster, tmp_path):
    job = write(
        tmp_path / "job" / "job.py",
        """
        from strom.datastream import StreamExecutionEnvironment
        env = StreamExecutionEnvironment.get_execution_environment()
        env.from_collection(list(range(10))).rebalance().map(lambda x: x).print()
        env.execute("parallelism")
        """,
    )
    result = strom(cluster, "run", "-D", "parallelism.default=2", str(job))
    assert result.returncode == 0, result.stdout + result.stderr
    details = job_state(cluster, JOB_ID.search(result.stdout).group(1))
    assert max(v["parallelism"] for v in details["vertices"]) == 2


def test_a_cluster_key_given_to_a_job_is_an_error_naming_it(cluster, tmp_path):
    job = write(
        tmp_path / "job" / "job.py",
        """
        from strom.datastream import StreamExecutionEnvironment
        env = StreamExecutionEnvironment.get_execution_environment(
            {"heartbeat.timeout": "1 min"}
        )
        env.from_collection([1]).print()
        env.execute("cluster key in code")
        """,
    )
    jobs_before = len(http_json(f"{cluster.rest_url}/jobs/overview")["jobs"])
    flag = strom(cluster, "run", "-D", "taskmanager.numberOfTaskSlots=4", str(job))
    assert flag.returncode != 0
    assert "'taskmanager.numberOfTaskSlots'" in flag.stderr and "-D" in flag.stderr
    code = strom(cluster, "run", str(job))
    assert code.returncode != 0
    assert "'heartbeat.timeout'" in code.stdout + code.stderr
    assert len(http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]) == jobs_before


# ------------------------------------------------------------------ item 6: not in the dark

TICKS_JOB = """
    import sys, time
    from strom.datastream import StreamExecutionEnvironment
    from strom.datastream.functions import SourceFunction

    COUNT = int(sys.argv[1])  # travels with the function

    class Ticks(SourceFunction):
        def run(self, ctx):
            for i in range(COUNT):
                ctx.collect(i)
                time.sleep(0.1)

        def cancel(self):
            pass

    env = StreamExecutionEnvironment.get_execution_environment()
    env.add_source(Ticks()).key_by(lambda x: x % 3).map(lambda x: x + 1).print()
    env.execute("ticks")
"""


def test_a_job_waiting_for_slots_says_so_at_once(cluster, tmp_path):
    job = write(tmp_path / "job" / "job.py", TICKS_JOB)
    result = strom(cluster, "run", "-p", "3", "-D", "slot.request.timeout=3s", str(job), "5")
    assert result.returncode != 0
    assert "is waiting for 3 slots, 2 available" in result.stdout, result.stdout
    waiting = result.stdout.index("is waiting for 3 slots")
    assert result.stdout.index("submitted") < waiting  # said while it waited, not after


POISON_JOB = """
    from strom.datastream import StreamExecutionEnvironment

    def check(x):
        if x == 3:
            raise ValueError(f"poison record {x}")
        return x

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection(list(range(6))).map(check).print()
    env.execute("poison")
"""


def test_a_restart_loop_shows_each_restart_and_its_cause(cluster, tmp_path):
    job = write(tmp_path / "job" / "job.py", POISON_JOB)
    restarts = [
        "-D",
        "restart-strategy.type=fixed-delay",
        "-D",
        "restart-strategy.fixed-delay.attempts=3",
        "-D",
        "restart-strategy.fixed-delay.delay=700 ms",
    ]
    result = strom(cluster, "run", *restarts, str(job))
    assert result.returncode != 0
    for n in (1, 2, 3):
        assert f"restarts (restart {n}): ValueError: poison record 3" in result.stdout, (
            result.stdout
        )
    assert "(restart 4)" not in result.stdout
    assert "ValueError: poison record 3" in result.stderr  # the final failure, as before


def test_a_long_job_shows_progress_lines_when_not_on_a_terminal(cluster, tmp_path):
    job = write(tmp_path / "job" / "job.py", TICKS_JOB)
    result = strom(cluster, "run", "-D", "client.progress.interval=500ms", str(job), "30")
    assert result.returncode == 0, result.stdout + result.stderr
    progress = re.findall(r"running \d+:\d\d: records in (\d+), records out (\d+)", result.stdout)
    assert len(progress) >= 2, result.stdout
    counts = [int(read) for read, _ in progress]
    assert counts == sorted(counts) and counts[-1] > 0
    assert "\r" not in result.stdout


FILE_JOB = """
    import sys, time
    from strom.common.watermark_strategy import WatermarkStrategy
    from strom.datastream import StreamExecutionEnvironment
    from strom.datastream.connectors.file_system import FileSource, StreamFormat

    def slowly(line):
        time.sleep(0.0015)  # chained into the source task: the source reads at this pace
        return len(line)

    env = StreamExecutionEnvironment.get_execution_environment()
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), sys.argv[1]
    ).build()
    lines = env.from_source(source, WatermarkStrategy.no_watermarks(), "lines")
    lines.map(slowly).key_by(lambda n: n % 2).reduce(lambda a, b: a + b).print()
    env.execute("read files")
"""


def test_a_file_source_job_shows_the_share_of_input_read(cluster, tmp_path):
    job = write(tmp_path / "job" / "job.py", FILE_JOB)
    data = tmp_path / "input.txt"
    data.write_text("".join(f"line {i} of the input\n" for i in range(4000)))
    result = strom(cluster, "run", "-D", "client.progress.interval=300ms", str(job), str(data))
    assert result.returncode == 0, result.stdout + result.stderr
    shares = [int(s) for s in re.findall(r"reading input: (\d+) %", result.stdout)]
    assert shares == sorted(shares), result.stdout
    assert any(0 < share < 100 for share in shares), result.stdout


def test_a_long_job_redraws_one_progress_line_on_a_terminal(cluster, tmp_path):
    import os
    import pty

    job = write(tmp_path / "job" / "job.py", TICKS_JOB)
    leader, follower = pty.openpty()
    env = python_env(STROM_CONF_DIR=str(cluster.conf_dir))
    process = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "run", str(job), "20"],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        cwd=str(REPO_ROOT),
        env=env,
    )
    os.close(follower)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break  # the other end closed
            if not chunk:
                break
            output += chunk
    finally:
        process.wait(timeout=60)
        os.close(leader)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert re.search(r"\rJob [0-9a-f]{32} running \d+:\d\d: records in \d+", text), text
    assert "Job Runtime:" in text


def test_the_readme_cluster_example_fits_the_shipped_conf():
    """The README's quick start runs `strom run -p N` on the cluster `conf/` describes."""
    import yaml

    conf = yaml.safe_load((REPO_ROOT / "conf" / "strom-conf.yaml").read_text())
    slots_per_tm = int(conf.get("taskmanager.numberOfTaskSlots", 1))
    slaves = [
        line.strip()
        for line in (REPO_ROOT / "conf" / "slaves").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Running a cluster") :]
    quick_start = quick_start[: quick_start.index("```", quick_start.index("```") + 3)]
    wanted = [int(p) for p in re.findall(r"strom run -p (\d+)", quick_start)]
    assert wanted, "the README's cluster example runs no job"
    assert max(wanted) <= slots_per_tm * len(slaves)


RESTARTING_JOB = """
    import sys
    from strom.common.restart_strategy import RestartStrategies
    from strom.datastream import StreamExecutionEnvironment

    def check(x):
        if x == 3:
            raise ValueError("poison")
        return x

    env = StreamExecutionEnvironment.get_execution_environment()
    if sys.argv[1:] == ["no-restart-in-code"]:
        env.set_restart_strategy(RestartStrategies.no_restart())
    env.from_collection(list(range(6))).map(check)
    env.execute("restarts")
"""


@pytest.mark.parametrize(
    "flags, code, restarts",
    [
        ([], [], 2),  # the cluster's fixed-delay strategy, 2 attempts
        (["-D", "restart-strategy.type=none"], [], 0),  # -D over the cluster
        (["-D", "restart-strategy.fixed-delay.attempts=4"], [], 4),
        (["-D", "restart-strategy.fixed-delay.attempts=4"], ["no-restart-in-code"], 0),
    ],
    ids=["cluster-config", "dynamic-none", "dynamic-attempts", "job-code"],
)
def test_restart_strategy_precedence(local_cluster, tmp_path, flags, code, restarts):
    cluster = local_cluster(
        slots=1,
        **{
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": 2,
            "restart-strategy.fixed-delay.delay": "50 ms",
        },
    ).start(taskmanagers=1)
    job = write(tmp_path / "job" / "job.py", RESTARTING_JOB)
    result = strom(cluster, "run", *flags, str(job), *code)
    assert result.returncode != 0 and "ValueError: poison" in result.stderr
    details = job_state(cluster, JOB_ID.search(result.stdout).group(1))
    assert (details["state"], details["restarts"]) == ("FAILED", restarts)


def test_checkpointing_from_a_dynamic_property(cluster, tmp_path):
    job = write(tmp_path / "job" / "job.py", TICKS_JOB)
    result = strom(
        cluster, "run", "-d", "-D", "execution.checkpointing.interval=200ms", str(job), "1000"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = JOB_ID.search(result.stdout).group(1)
    checkpoints = f"{cluster.rest_url}/jobs/{job_id}/checkpoints"
    poll_for(lambda: http_json(checkpoints)["counts"]["completed"] >= 2, what="checkpoints")
    assert strom(cluster, "cancel", job_id).returncode == 0
