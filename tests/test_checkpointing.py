"""Exactly-once through failures: checkpoints, restarts from them, two-phase-commit output."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from harness import http_json, poll_for
from jobs_support import remote
from services import kill_taskmanagers_during

from client.gateway import ClusterClient
from strom.common import Encoder, RestartStrategies, Types
from strom.datastream import (
    MapFunction,
    RuntimeContext,
    SourceFunction,
    StreamExecutionEnvironment,
)
from strom.datastream.connectors.file_system import FileSink
from strom.datastream.connectors.number_seq import NumberSequenceSource
from strom.datastream.state import ListStateDescriptor

KEYS = 7


class Throttle(MapFunction):
    """Slows the stream down so failures can hit it mid-way; fails once when asked."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def open(self, runtime_context: RuntimeContext) -> None:
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value: int) -> tuple:
        if value % 10 == 0:
            time.sleep(0.002)
        if self.fail_at is not None and value == self.fail_at and self.attempt == 0:
            raise RuntimeError(f"injected failure at {value}")
        return (value % KEYS, 1)


def build_job(env: StreamExecutionEnvironment, count: int, output: Path, fail_at=None) -> None:
    numbers = env.from_source(NumberSequenceSource(1, count), None, "numbers").uid("numbers")
    counts = (
        numbers.map(Throttle(fail_at))
        .uid("throttle")
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("counts")
    )
    sink = FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build()
    counts.sink_to(sink).uid("files")


def expected_output(count: int) -> Counter:
    per_key = Counter(v % KEYS for v in range(1, count + 1))
    return Counter(repr((k, n)) for k, total in per_key.items() for n in range(1, total + 1))


def committed_output(output: Path) -> Counter:
    lines: Counter = Counter()
    for path in output.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            lines.update(line for line in path.read_text().splitlines() if line)
    return lines


def checkpointed_env(checkpoints: Path, parallelism: int = 2) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.enable_checkpointing(250)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(checkpoints))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(20, 200))
    return env


def completed_checkpoints(checkpoints: Path) -> int:
    """The id of the newest finished checkpoint (0 if none)."""
    return max((int(p.parent.name[4:]) for p in checkpoints.rglob("chk-*/_metadata")), default=0)


def source_records(cluster, job_id: str) -> int:
    """How many records the job's source subtasks have emitted (as last reported)."""
    with ClusterClient(cluster.address) as jobs:
        return jobs.job(job_id).vertices[0].records_out


def pids_running(cluster, job_id: str) -> list[int]:
    """The pids of the TaskManagers that run the job's subtasks right now."""
    job = f"{cluster.rest_url}/jobs/{job_id}"
    ids = {
        subtask["taskmanager-id"]
        for vertex in http_json(job)["vertices"]
        for subtask in http_json(f"{job}/vertices/{vertex['id']}")["subtasks"]
    }
    taskmanagers = http_json(f"{cluster.rest_url}/taskmanagers")["taskmanagers"]
    return [tm["pid"] for tm in taskmanagers if tm["id"] in ids]


def test_sigkill_of_taskmanagers_at_random_moments_keeps_output_exactly_once(
    local_cluster, tmp_path
):
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count = 80_000
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    build_job(env, count, output)
    with remote(cluster.address):
        client = env.execute_async("exactly once under SIGKILL")
    job_id = client.get_job_id()
    # Each kill at a random moment between checkpoints; the replacement arrives while restarting.
    kills = kill_taskmanagers_during(cluster, client, seed=7)
    assert kills >= 2, "the job ended before the failures could be injected"
    client.get_job_execution_result()
    with ClusterClient(cluster.address) as jobs:
        details = jobs.job(job_id)
    assert details.summary.state == "FINISHED"
    assert details.restarts >= kills
    assert committed_output(output) == expected_output(count)
    stats = http_json(f"{cluster.rest_url}/jobs/{job_id}/checkpoints")
    assert stats["counts"]["completed"] >= 3 and stats["counts"]["restored"] >= kills
    latest = stats["latest"]["completed"]
    assert latest["id"] > 0 and latest["state_size"] > 0 and "chk-" in latest["external_path"]
    exceptions = http_json(f"{cluster.rest_url}/jobs/{job_id}/exceptions")
    entries = exceptions["exceptionHistory"]["entries"]
    assert len(entries) >= kills and "was lost" in entries[0]["stacktrace"]


# At parallelism 1 the keyed reduce is chained into the source's task: its state is in the
# same snapshot as the source's position.
@pytest.mark.parametrize("parallelism", [2, 1])
def test_failure_in_user_code_restarts_from_checkpoint_exactly_once(mode, tmp_path, parallelism):
    count = 6_000
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints, parallelism)
    build_job(env, count, output, fail_at=4_000)
    mode.execute(env, "user failure")
    assert committed_output(output) == expected_output(count)


class CountingSource(SourceFunction):
    """A source whose position is operator state, as Flink's documentation writes one:
    ``collect`` a number, then move the position past it. ``locked``: both under
    ``ctx.get_checkpoint_lock()``, as Flink asks; else the position moves first. Leaves the
    position it was restored to in ``restored``."""

    def __init__(self, count: int, locked: bool, restored: str) -> None:
        self.count = count
        self.locked = locked
        self.restored = restored
        self.offset = 0
        self.running = True

    def initialize_state(self, context) -> None:
        self.state = context.get_operator_state_store().get_list_state(
            ListStateDescriptor("offset", Types.LONG())
        )
        for offset in self.state.get():
            self.offset = offset
            Path(self.restored).write_text(str(offset))

    def snapshot_state(self, context) -> None:
        self.state.clear()
        self.state.add(self.offset)

    def run(self, ctx) -> None:
        while self.running and self.offset < self.count:
            if self.locked:
                with ctx.get_checkpoint_lock():
                    ctx.collect(self.offset)
                    self.offset += 1
            else:
                self.offset += 1
                ctx.collect(self.offset - 1)
            if self.offset % 50 == 0:
                time.sleep(0.001)  # checkpoints come every 50 ms: a few during the job

    def cancel(self) -> None:
        self.running = False


class FailOnceAt(MapFunction):
    def __init__(self, value: int) -> None:
        self.value = value

    def open(self, runtime_context: RuntimeContext) -> None:
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value: int) -> int:
        if value == self.value and self.attempt == 0:
            raise RuntimeError(f"injected failure at {value}")
        return value


@pytest.mark.parametrize("locked", [True, False], ids=["collect-then-move-locked", "move-first"])
def test_a_checkpointed_source_function_restarts_exactly_once(mode, locked, tmp_path):
    """A checkpoint never falls between a record collected under the checkpoint lock and
    the position moved past it: the record would be sent again after a restore (it was
    before this was so, 3 runs of 3). A source that moves its position first needs no lock."""
    count = 20_000
    output, restored = tmp_path / "out", tmp_path / "restored"
    env = checkpointed_env(tmp_path / "checkpoints", parallelism=1)
    env.get_checkpoint_config().set_checkpoint_interval(50)
    numbers = env.add_source(CountingSource(count, locked, str(restored))).uid("numbers")
    numbers.map(FailOnceAt(count * 3 // 4)).uid("fail").sink_to(
        FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build()
    ).uid("files")
    mode.execute(env, "checkpointed source function")
    assert int(restored.read_text()) > 0, "no restore from a checkpoint: the test proves nothing"
    assert committed_output(output) == Counter(str(i) for i in range(count))


@pytest.mark.parametrize("locked", [True, False], ids=["collect-then-move-locked", "move-first"])
def test_a_checkpointed_source_function_survives_sigkill_exactly_once(
    local_cluster, tmp_path, locked
):
    """The same sources under the real failure: TaskManagers killed at random moments while
    run() goes on on its own thread, the records crossing processes after key_by."""
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count = 100_000
    output, restored = tmp_path / "out", tmp_path / "restored"
    env = checkpointed_env(tmp_path / "checkpoints", parallelism=2)
    env.get_checkpoint_config().set_checkpoint_interval(100)
    numbers = env.add_source(CountingSource(count, locked, str(restored))).uid("numbers")
    (
        numbers.key_by(lambda v: v % 7)
        .map(lambda v: v)
        .uid("keyed")
        .sink_to(FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build())
        .uid("files")
    )
    with remote(cluster.address):
        client = env.execute_async("checkpointed source function under SIGKILL")
    kills = kill_taskmanagers_during(cluster, client, seed=11 if locked else 12, kills=2)
    client.get_job_execution_result()
    assert kills >= 1, "no TaskManager was killed: the test proves nothing"
    assert committed_output(output) == Counter(str(i) for i in range(count))


def test_without_restart_strategy_the_failure_fails_the_job(mode, tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    build_job(env, 100, tmp_path / "out", fail_at=50)
    with pytest.raises(Exception, match="injected failure at 50"):
        mode.execute(env, "no restarts")


def test_job_waits_for_slots_after_losing_its_only_taskmanager(local_cluster, tmp_path):
    cluster = local_cluster(slots=2).start(taskmanagers=1)
    count = 40_000
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    build_job(env, count, output)
    with remote(cluster.address):
        client = env.execute_async("waits for slots")
    poll_for(lambda: completed_checkpoints(checkpoints) > 0, timeout=60, what="a checkpoint")
    only = cluster.taskmanagers[0]
    only.send_signal(signal.SIGKILL)
    only.wait()
    with ClusterClient(cluster.address) as jobs:
        poll_for(
            lambda: "waiting for 2 free slot(s)" in jobs.job(client.get_job_id()).status_message,
            what="the job to wait for slots",
        )
        assert jobs.job(client.get_job_id()).summary.state == "CREATED"
    cluster.start_taskmanager()
    client.get_job_execution_result()
    assert committed_output(output) == expected_output(count)


class SlowEvents(MapFunction):
    def map(self, value: int) -> tuple:
        if value % 10 == 0:
            time.sleep(0.002)
        return (value % KEYS, 1, value)


def test_windowed_job_survives_sigkill_with_exactly_the_undisturbed_output(local_cluster, tmp_path):
    from strom.common import Time, WatermarkStrategy
    from strom.datastream.window import TumblingEventTimeWindows

    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count = 40_000
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda event, _: event[2]
    )
    windows = (
        env.from_source(NumberSequenceSource(1, count), None, "numbers")
        .uid("numbers")
        .map(SlowEvents())
        .uid("events")
        .assign_timestamps_and_watermarks(strategy)
        .uid("stamps")
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(1000)))
        .reduce(lambda a, b: (a[0], a[1] + b[1], max(a[2], b[2])))
        .uid("windows")
        .map(lambda w: (w[0], w[2] // 1000, w[1]))
        .uid("shape")
    )
    sink = FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build()
    windows.sink_to(sink).uid("files")
    with remote(cluster.address):
        client = env.execute_async("windows under SIGKILL")
    poll_for(lambda: completed_checkpoints(checkpoints) > 1, timeout=60, what="checkpoints")
    assert client.get_job_status() == "RUNNING", "the job ended before the failure"
    pid = random.Random(3).choice(pids_running(cluster, client.get_job_id()))
    victim = next(tm for tm in cluster.taskmanagers if tm.pid == pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    cluster.start_taskmanager(wait=False)
    client.get_job_execution_result()
    expected: Counter = Counter()
    for value in range(1, count + 1):
        expected[(value % KEYS, value // 1000)] += 1
    assert committed_output(output) == Counter(repr((k, w, n)) for (k, w), n in expected.items())


class SlowSecondHalf(MapFunction):
    """Subtask 0's numbers pass at once; subtask 1's slowly, and in the first attempt subtask
    1 fails as soon as subtask 0's last number is visible in the committed output."""

    def __init__(self, half: int, output: str) -> None:
        self.half, self.output = half, output

    def open(self, runtime_context: RuntimeContext) -> None:
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value: int) -> int:
        if value > self.half:
            time.sleep(0.0005)  # a throttle: subtask 1 is still running when subtask 0 ends
            if self.attempt == 0 and value % 20 == 0:
                if str(self.half) in committed_output(Path(self.output)):
                    raise RuntimeError("injected failure after subtask 0 committed its end")
        return value


def test_a_sink_subtask_that_ended_commits_with_a_final_checkpoint(mode, tmp_path):
    """A FileSink subtask that reaches its end while others run commits with the next
    checkpoint, not at once: a restart from an earlier checkpoint would repeat its output."""
    count = 4_000
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    numbers = env.from_source(NumberSequenceSource(1, count), None, "numbers")
    sink = FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build()
    numbers.map(SlowSecondHalf(count // 2, str(output))).sink_to(sink)
    mode.execute(env, "final checkpoint")
    assert committed_output(output) == Counter(str(v) for v in range(1, count + 1))
