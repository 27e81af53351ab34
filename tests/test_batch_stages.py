"""BATCH jobs on real clusters: stage by stage in fewer slots than their parallelism, over
blocking result partitions kept by the TaskManagers, and region failover (a failed task re-runs
only its region, re-reading the stage results it consumed)."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from harness import http_json, kill_tree, poll_for
from jobs_support import remote

from strom.common import Encoder, RestartStrategies
from strom.datastream import MapFunction, RuntimeExecutionMode, StreamExecutionEnvironment
from strom.datastream.connectors.file_system import FileSink
from strom.datastream.connectors.number_seq import NumberSequenceSource

NUMBERS = 2000
KEYS = 10


def _append(path: str, line: str) -> None:
    """One line, appended whole (O_APPEND): the file's order is the order of events."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class StageEvents(MapFunction):
    """Logs ``<stage> open|close <subtask>`` to a side file; passes records on."""

    def __init__(self, log: str, stage: str) -> None:
        self.log, self.stage = log, stage

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        _append(self.log, f"{self.stage} open {self.index}")

    def map(self, value):
        return value

    def close(self):
        _append(self.log, f"{self.stage} close {self.index}")


class HoldUntilGo(StageEvents):
    """Stage 2: at its first record, writes its process id to the side file and waits for the
    ``go`` file (the test kills it meanwhile)."""

    def __init__(self, log: str, folder: str, stage: str = "s2", only: int | None = None) -> None:
        super().__init__(log, stage)
        self.folder = folder
        self.only = only
        self.waited = False

    def map(self, value):
        if not self.waited and self.only in (None, self.index):
            self.waited = True
            _append(self.log, f"{self.stage} pid {self.index} {os.getpid()}")
            go = Path(self.folder) / "go"
            deadline = time.monotonic() + 90
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return value


def three_stage_job(
    folder: Path, parallelism: int, hold: str = "", only: int | None = None
) -> tuple[StreamExecutionEnvironment, Path]:
    """numbers (stage 1) -> keyed sum per key, then a map (stage 2) -> keyed map and FileSink
    (stage 3), every exchange blocking; stage events go to ``folder/events``."""
    log = str(folder / "events")
    output = folder / "out"
    env = StreamExecutionEnvironment.get_execution_environment({"slot.request.timeout": "20 s"})
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.set_parallelism(parallelism)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 100))
    stage2 = HoldUntilGo(log, str(folder), "s2", only) if hold == "s2" else StageEvents(log, "s2")
    stage3 = HoldUntilGo(log, str(folder), "s3") if hold == "s3" else StageEvents(log, "s3")
    (
        env.from_source(NumberSequenceSource(1, NUMBERS), None, "numbers")
        .map(StageEvents(log, "s1"))
        .map(lambda n: (n % KEYS, n))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .map(stage2)
        .key_by(lambda pair: pair[1] % 3)
        .map(stage3)
        .map(lambda pair: f"{pair[0]}={pair[1]}")
        .sink_to(FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build())
    )
    return env, output


def expected_output() -> list[str]:
    sums = Counter()
    for n in range(1, NUMBERS + 1):
        sums[n % KEYS] += n
    return sorted(f"{key}={total}" for key, total in sums.items())


def written(output: Path) -> list[str]:
    files = [p for p in output.rglob("*") if p.is_file()]
    assert not [p for p in files if "inprogress" in p.name or p.name.startswith(".")]
    return sorted(line for p in files for line in p.read_text().splitlines())


def events(folder: Path) -> list[str]:
    path = folder / "events"
    return path.read_text().splitlines() if path.exists() else []


def job_state(cluster, job_id: str) -> str:
    return http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"]


def await_finished(cluster, job_id: str, timeout: float = 60) -> dict:
    poll_for(
        lambda: job_state(cluster, job_id) in ("FINISHED", "FAILED", "CANCELED"),
        timeout=timeout,
        what="the BATCH job to end",
    )
    details = http_json(f"{cluster.rest_url}/jobs/{job_id}")
    assert details["state"] == "FINISHED", details.get("failure")
    return details


def partitions_of(job_id: str) -> list[Path]:
    """The job's result partition folders in every TaskManager's work folder."""
    return list(Path(tempfile.gettempdir()).glob(f"strom-tm-*/partitions/{job_id}"))


def submit(cluster, env) -> str:
    with remote(cluster.address):
        return env.execute_async("three stages").get_job_id()


def stage2_pids(folder: Path, stage: str = "s2") -> dict[int, int]:
    pids = {}
    for line in events(folder):
        parts = line.split()
        if parts[:2] == [stage, "pid"]:
            pids[int(parts[2])] = int(parts[3])
    return pids


def test_a_job_wider_than_the_cluster_runs_stage_by_stage_in_two_slots(local_cluster, tmp_path):
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    env, output = three_stage_job(tmp_path, parallelism=4)
    job_id = submit(cluster, env)
    details = await_finished(cluster, job_id)
    assert written(output) == expected_output()
    log = events(tmp_path)
    # Each stage started once every subtask of the stage before it had ended ...
    for earlier, later in (("s1", "s2"), ("s2", "s3")):
        last_close = max(i for i, e in enumerate(log) if e.startswith(f"{earlier} close"))
        first_open = min(i for i, e in enumerate(log) if e.startswith(f"{later} open"))
        assert last_close < first_open, log
    # ... and no more than the two slots' worth of subtasks ran at once.
    running = peak = 0
    for event in log:
        running += 1 if " open " in event else -1 if " close " in event else 0
        peak = max(peak, running)
    assert peak <= 2, log
    assert sorted(e for e in log if " open " in e) == sorted(
        f"s{stage} open {index}" for stage in (1, 2, 3) for index in range(4)
    )
    assert [v["status"] for v in details["vertices"]] == ["FINISHED"] * 3
    assert details["vertices"][0]["tasks"]["FINISHED"] == 4
    # Each stage's own times: one after the other.
    job = http_json(f"{cluster.rest_url}/jobs/{job_id}")
    stages = job["vertices"]
    for earlier, later in zip(stages, stages[1:], strict=False):
        assert 0 < earlier["start-time"] <= earlier["end-time"] <= later["start-time"], stages
    # ... within the job's, on one clock: the first starts with it, the last ends with it.
    assert job["start-time"] == stages[0]["start-time"]
    assert job["end-time"] == stages[-1]["end-time"]
    # The intermediate results are gone with the job.
    poll_for(lambda: not partitions_of(job_id), timeout=10, what="the partitions' release")


def test_a_killed_slot_process_in_the_second_stage_reruns_only_its_region(local_cluster, tmp_path):
    cluster = local_cluster(slots=1).start(taskmanagers=2)
    env, output = three_stage_job(tmp_path, parallelism=2, hold="s2")
    job_id = submit(cluster, env)
    poll_for(lambda: len(stage2_pids(tmp_path)) == 2, timeout=40, what="stage 2 to run")
    # The REST API shows the stages: the first finished, the second running, the third not
    # yet deployed; the first stage's results wait in the TaskManagers' work folders.
    vertices = http_json(f"{cluster.rest_url}/jobs/{job_id}")["vertices"]
    assert [v["status"] for v in vertices] == ["FINISHED", "RUNNING", "CREATED"]
    assert partitions_of(job_id)
    victim = stage2_pids(tmp_path)[0]
    os.kill(victim, signal.SIGKILL)
    poll_for(
        lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["restarts"] >= 1,
        timeout=20,
        what="the region failover",
    )
    (tmp_path / "go").write_text("go")
    details = await_finished(cluster, job_id)
    assert written(output) == expected_output()
    log = events(tmp_path)
    assert sorted(e for e in log if e.startswith("s1 open")) == ["s1 open 0", "s1 open 1"]
    assert sorted(e for e in log if e.startswith("s2 open")) == [
        "s2 open 0",
        "s2 open 0",
        "s2 open 1",
    ]
    assert details["restarts"] == 1
    exceptions = http_json(f"{cluster.rest_url}/jobs/{job_id}/exceptions")
    assert "killed by SIGKILL" in exceptions["root-exception"]
    poll_for(lambda: not partitions_of(job_id), timeout=10, what="the partitions' release")


def _taskmanager_of(cluster, pid: int) -> subprocess.Popen:
    ancestors = {p.pid for p in psutil.Process(pid).parents()}
    return next(tm for tm in cluster.taskmanagers if tm.pid in ancestors)


def test_a_lost_taskmanager_reruns_the_first_stage_results_it_kept(local_cluster, tmp_path):
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    env, output = three_stage_job(tmp_path, parallelism=2, hold="s2")
    job_id = submit(cluster, env)
    poll_for(lambda: len(stage2_pids(tmp_path)) == 2, timeout=40, what="stage 2 to run")
    taskmanager = _taskmanager_of(cluster, stage2_pids(tmp_path)[0])
    kill_tree(taskmanager.pid)
    poll_for(
        lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["restarts"] >= 1,
        timeout=20,
        what="the region failover",
    )
    (tmp_path / "go").write_text("go")
    await_finished(cluster, job_id)
    assert written(output) == expected_output()
    # Each TaskManager ran one subtask of the first stage: the one whose results were lost
    # with the killed TaskManager ran again, the other did not.
    opens = Counter(e for e in events(tmp_path) if e.startswith("s1 open"))
    assert sum(opens.values()) == 3 and len(opens) == 2


@pytest.fixture(autouse=True)
def _no_leftover_go(tmp_path):
    yield
    (tmp_path / "go").write_text("go")  # a failed test must not leave a task waiting


def test_the_benchmark_job_at_parallelism_4_finishes_in_two_slots(local_cluster, tmp_path):
    """bench/batch.py's word count at parallelism 4 on one TaskManager with 2 slots (the
    bench runs it on its 2,000,000 words; here a smaller file)."""
    from strom.datastream import execution_context

    bench = Path(__file__).resolve().parent.parent / "bench"
    sys.path.insert(0, str(bench))
    try:
        batch_bench = importlib.import_module("batch")
    finally:
        sys.path.remove(str(bench))
    path = tmp_path / "words.txt"
    lines = [" ".join(f"w{(i * 7 + j) % 97}" for j in range(10)) for i in range(3000)]
    path.write_text("\n".join(lines) + "\n")
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    previous = execution_context.set_current(
        execution_context.ExecutionContext(
            target="remote", jobmanager=cluster.address, job_root=str(bench)
        )
    )
    try:
        _, counts = batch_bench.strom_batch_job(path, parallelism=4)
    finally:
        execution_context.set_current(previous)
    assert counts == Counter(word for line in lines for word in line.split())


def test_cancelling_a_batch_job_between_stages_ends_it_canceled(local_cluster, tmp_path):
    from client.gateway import ClusterClient

    cluster = local_cluster(slots=2).start(taskmanagers=1)
    env, _ = three_stage_job(tmp_path, parallelism=2, hold="s2")
    job_id = submit(cluster, env)
    poll_for(lambda: len(stage2_pids(tmp_path)) == 2, timeout=40, what="stage 2 to run")
    with ClusterClient(cluster.address) as client:
        client.cancel(job_id)
    (tmp_path / "go").write_text("go")
    poll_for(lambda: job_state(cluster, job_id) == "CANCELED", timeout=30, what="CANCELED")
    # The third stage never ran, and the first stage's results are gone with the job.
    assert not [e for e in events(tmp_path) if e.startswith("s3")]
    poll_for(lambda: not partitions_of(job_id), timeout=10, what="the partitions' release")


class FailOnceInStage2(StageEvents):
    """Stage 2: the first execution of subtask 0 fails at its first record."""

    def __init__(self, log: str, marker: str) -> None:
        super().__init__(log, "s2")
        self.marker = marker

    def map(self, value):
        if self.index == 0 and not Path(self.marker).exists():
            Path(self.marker).write_text("failed")
            raise RuntimeError("stage 2 fails here once")
        return value


def test_a_failed_task_reruns_alone_reading_the_first_stage_results_again(mode, tmp_path):
    log, marker = str(tmp_path / "events"), str(tmp_path / "failed")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.set_parallelism(2)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(2, 50))
    sums = (
        env.from_source(NumberSequenceSource(1, NUMBERS), None, "numbers")
        .map(StageEvents(log, "s1"))
        .map(lambda n: (n % KEYS, n))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .map(FailOnceInStage2(log, marker))
        .map(lambda pair: f"{pair[0]}={pair[1]}")
    )
    assert sorted(mode.collect(sums)) == expected_output()
    assert Path(marker).exists()
    opens = Counter(e for e in events(tmp_path) if " open " in e)
    assert opens == Counter({"s1 open 0": 1, "s1 open 1": 1, "s2 open 0": 2, "s2 open 1": 1})


def test_a_stage_s_results_are_released_once_every_consumer_finished(local_cluster, tmp_path):
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    env, output = three_stage_job(tmp_path, parallelism=2, hold="s3")
    job_id = submit(cluster, env)
    poll_for(lambda: len(stage2_pids(tmp_path, "s3")) == 2, timeout=40, what="stage 3 to run")
    # While the third stage runs, the first stage's results (read by the finished second
    # stage) are gone already; the second stage's are kept until the third has read them.
    vertices = [v["id"] for v in http_json(f"{cluster.rest_url}/jobs/{job_id}")["vertices"]]
    poll_for(
        lambda: (
            {p.name.rsplit("-", 1)[0] for folder in partitions_of(job_id) for p in folder.iterdir()}
            == {vertices[1]}
        ),
        timeout=10,
        what="only the second stage's partitions to remain",
    )
    (tmp_path / "go").write_text("go")
    await_finished(cluster, job_id)
    assert written(output) == expected_output()
    poll_for(lambda: not partitions_of(job_id), timeout=10, what="the partitions' release")


def test_a_consumer_that_finds_an_input_partition_gone_reruns_its_producers(
    local_cluster, tmp_path
):
    # One slot: the second stage's subtasks run one after the other. While the first holds,
    # the partitions the second will read are deleted behind the JobManager's back.
    cluster = local_cluster(slots=1).start(taskmanagers=1)
    env, output = three_stage_job(tmp_path, parallelism=2, hold="s2", only=0)
    job_id = submit(cluster, env)
    poll_for(lambda: 0 in stage2_pids(tmp_path), timeout=40, what="stage 2 to run")
    first_stage = http_json(f"{cluster.rest_url}/jobs/{job_id}")["vertices"][0]["id"]
    removed = [
        path for folder in partitions_of(job_id) for path in folder.glob(f"{first_stage}-*/e*-c1")
    ]
    assert len(removed) == 2
    for path in removed:
        path.unlink()
    (tmp_path / "go").write_text("go")
    await_finished(cluster, job_id)
    assert written(output) == expected_output()
    opens = Counter(e for e in events(tmp_path) if e.startswith(("s1 open", "s2 open")))
    assert opens == Counter({"s1 open 0": 2, "s1 open 1": 2, "s2 open 0": 1, "s2 open 1": 2}), (
        events(tmp_path)
    )
    exceptions = http_json(f"{cluster.rest_url}/jobs/{job_id}/exceptions")
    assert "PartitionNotFound" in exceptions["root-exception"]


def test_a_partition_request_cannot_reach_outside_the_partitions_folder(tmp_path):
    # FetchPartition takes its names from a peer: '..' as the job id used to read
    # <partitions>/../secret-0/e0-c0 (found with tests/test_fuzz.py, whose NUL byte in a
    # name made the server fail with UNKNOWN).
    from strom.rpc import data_pb2
    from taskmanager.network.result_partitions import ResultPartitions

    (tmp_path / "secret-0").mkdir()
    (tmp_path / "secret-0" / "e0-c0").write_bytes(b"not yours")
    partitions = ResultPartitions(tmp_path / "partitions", lambda: "127.0.0.1:1")
    for job_id, vertex in (("..", "secret"), ("job", "../../secret"), ("job\x00", "v")):
        request = data_pb2.PartitionRequest(job_id=job_id, producer_vertex=vertex)
        with pytest.raises(ValueError, match="not a valid name"):
            b"".join(partitions.chunks(request))
    partitions.release("..")  # refused quietly: nothing outside is deleted
    assert (tmp_path / "secret-0" / "e0-c0").exists()


COLLECTED_KEYS = 4000


class HoldAtSecondBatch(MapFunction):
    """Before the sink: the first execution of each subtask passes one batch of results
    (``_EMIT_BATCH`` of the reduce) on to the collect sink, then logs its process id and
    waits for the ``go`` file at the first record of the next batch (the test kills it)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        self.seen = 0
        marker = Path(self.folder) / f"held-{self.index}"
        self.hold = not marker.exists()
        marker.write_text("held")

    def map(self, value):
        self.seen += 1
        if self.hold and self.seen == 1025:
            self.hold = False
            _append(str(Path(self.folder) / "events"), f"s2 pid {self.index} {os.getpid()}")
            go = Path(self.folder) / "go"
            deadline = time.monotonic() + 90
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return value


def test_collected_results_are_exact_when_a_sink_subtask_reruns_after_sending_some(
    local_cluster, tmp_path
):
    """execute_and_collect in BATCH: a sink subtask killed after its first results reached
    the client runs again and sends all of its results; the client hands out each subtask's
    results of one complete execution, so every key comes back once, with its final sum."""
    cluster = local_cluster(slots=1).start(taskmanagers=2)
    env = StreamExecutionEnvironment.get_execution_environment({"slot.request.timeout": "20 s"})
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.set_parallelism(2)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 100))
    sums = (
        env.from_source(NumberSequenceSource(1, 2 * COLLECTED_KEYS), None, "numbers")
        .map(lambda n: (n % COLLECTED_KEYS, n))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .map(HoldAtSecondBatch(str(tmp_path)))
    )
    with remote(cluster.address):
        results = sums.execute_and_collect("exact collect")
    collected: list = []
    reader = threading.Thread(target=lambda: collected.extend(results), daemon=True)
    reader.start()
    try:
        poll_for(lambda: len(stage2_pids(tmp_path)) == 2, timeout=40, what="both to hold")
        # Both subtasks' first batches are at the client before subtask 0 is killed.
        poll_for(lambda: results.batches_received() >= 2, timeout=20, what="the first results")
        os.kill(stage2_pids(tmp_path)[0], signal.SIGKILL)
        job_id = results_job_id(cluster)
        poll_for(
            lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["restarts"] >= 1,
            timeout=20,
            what="the region failover",
        )
        (tmp_path / "go").write_text("go")
        reader.join(60)
        assert not reader.is_alive(), "the collected results did not end"
    finally:
        (tmp_path / "go").write_text("go")
        results.close()
    expected = {key: key + (key + COLLECTED_KEYS) for key in range(COLLECTED_KEYS)}
    expected[0] = COLLECTED_KEYS + 2 * COLLECTED_KEYS  # n % KEYS == 0 for KEYS and 2*KEYS
    assert len(collected) == COLLECTED_KEYS
    assert dict(collected) == expected


def results_job_id(cluster) -> str:
    """The one job of ``cluster``."""
    jobs = http_json(f"{cluster.rest_url}/jobs")["jobs"]
    assert len(jobs) == 1, jobs
    return jobs[0]["id"]


def test_a_streaming_job_waiting_for_slots_gets_them_before_a_running_batch_job(
    local_cluster, tmp_path
):
    """A BATCH job takes slots a subtask at a time and gives them back as its subtasks end; a
    STREAMING job needs all of its slots at once. The slots the BATCH job gives back go to the
    waiting STREAMING job first, instead of to the BATCH job's next subtasks."""
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    log = str(tmp_path / "events")
    batch = StreamExecutionEnvironment.get_execution_environment({"slot.request.timeout": "60 s"})
    batch.set_runtime_mode(RuntimeExecutionMode.BATCH)
    batch.set_parallelism(4)
    (
        batch.from_source(NumberSequenceSource(1, 400), None, "numbers")
        .map(HoldUntilGo(log, str(tmp_path), "s1"))
        .map(lambda n: f"{n}")
        .sink_to(
            FileSink.for_row_format(str(tmp_path / "out"), Encoder.simple_string_encoder()).build()
        )
    )
    streaming = StreamExecutionEnvironment.get_execution_environment(
        {"slot.request.timeout": "60 s"}
    )
    streaming.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    streaming.set_parallelism(2)
    (
        streaming.from_collection(list(range(10)))
        .map(StageEvents(log, "streaming"))
        .map(lambda n: f"{n}")
        .sink_to(
            FileSink.for_row_format(str(tmp_path / "out2"), Encoder.simple_string_encoder()).build()
        )
    )
    with remote(cluster.address):
        batch_id = batch.execute_async("batch").get_job_id()
        poll_for(lambda: len(stage2_pids(tmp_path, "s1")) == 2, timeout=40, what="2 subtasks")
        streaming_id = streaming.execute_async("streaming").get_job_id()
    assert job_state(cluster, streaming_id) == "CREATED"  # both slots are the BATCH job's
    (tmp_path / "go").write_text("go")
    await_finished(cluster, streaming_id)
    await_finished(cluster, batch_id)
    opened = [e for e in events(tmp_path) if " open " in e]
    # The BATCH job's first two subtasks, then the STREAMING job, then the BATCH job's others.
    first_streaming = min(i for i, e in enumerate(opened) if e.startswith("streaming"))
    assert sum(e.startswith("s1 open") for e in opened[:first_streaming]) == 2, opened
    assert sum(e.startswith("s1 open") for e in opened) == 4, opened


class FailInCloseOnce(MapFunction):
    """Before the collect sink: logs each opening; the first execution fails when it closes,
    which is after the sink sent its last results and its end to the client."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def open(self, runtime_context):
        _append(str(Path(self.folder) / "events"), "sink open")

    def map(self, value):
        return value

    def close(self):
        marker = Path(self.folder) / "failed-in-close"
        if not marker.exists():
            marker.write_text("failed")
            raise RuntimeError("fails after its results were all sent")


def test_a_sink_subtask_that_fails_after_sending_everything_runs_again_quietly(mode, tmp_path):
    """Its results were all handed out already: the client drops what its new execution
    sends (rather than refusing it, which would fail that execution and the job), and the
    results are exact. Enough keys that the results take more batches than the sink's send
    queue holds, so a refusal would reach the sink."""
    keys = 30 * 1024
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.set_parallelism(1)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 50))
    sums = (
        env.from_source(NumberSequenceSource(1, keys), None, "numbers")
        .map(lambda n: (n % keys, n))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .map(FailInCloseOnce(str(tmp_path)))
    )
    assert sorted(mode.collect(sums)) == sorted((n % keys, n) for n in range(1, keys + 1))
    assert (tmp_path / "failed-in-close").exists()
    assert events(tmp_path) == ["sink open", "sink open"]  # ran again once, and finished
