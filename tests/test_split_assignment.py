"""Splits handed to source readers while the job runs (FLIP-27's split enumerator).

A bounded FileSource in a STREAMING job asks the JobManager for its next split whenever it
has read one, so a subtask that reads faster reads more of the input. Exactly-once holds
through restarts: every reader's snapshot says what it read, and at a restore all readers
derive the same pool of what is left (``jobmanager/split_assignment.py``).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from harness import http_json, poll_for
from jobs_support import remote
from services import kill_taskmanagers_during
from test_checkpointing import checkpointed_env, committed_output
from test_savepoints import assert_finishes, stop_with_savepoint

from client.gateway import ClusterClient
from jobmanager.checkpoint_coordinator import CheckpointCoordinator, CheckpointSettings
from jobmanager.split_assignment import SplitAssigners, SplitRequestError
from strom.common import Encoder
from strom.datastream import (
    MapFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    execution_context,
)
from strom.datastream.connectors.base import FinishedSubtask
from strom.datastream.connectors.file_system import FileSink, FileSource, StreamFormat
from taskmanager.runtime.sources import _position_of

# ---------------------------------------------------------------- the plan a reader derives


def write_lines(path: Path, count: int, width: int = 20) -> Path:
    path.write_text("".join(f"{i:>{width - 1}}\n" for i in range(count)))
    return path


def file_source(path: Path, min_split_size: int = 1) -> FileSource:
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(path))
    built = source.build()
    built.min_split_size = min_split_size
    return built


def read_all(source: FileSource, plan, splits: list) -> list[str]:
    """Read the splits given, in order, with an assigned reader of ``plan``."""
    queue = list(splits)
    reader = source.create_assigned_reader(plan, lambda: queue.pop(0) if queue else None)
    lines = []
    while (batch := reader.read_batch(7)) is not None:
        lines += batch
    return lines


def test_a_fresh_plan_holds_every_split_and_readers_of_it_read_every_line_once(tmp_path):
    source = file_source(write_lines(tmp_path / "in.txt", 1000))
    plan = source.split_plan(2, None)
    assert plan.split_count == 32 and [i for i, _ in plan.pool] == list(range(32))
    assert all(offset is None for _, offset in plan.pool)
    # Two readers taking splits from the pool in turns read every line exactly once.
    first = read_all(source, plan, plan.pool[0::2])
    second = read_all(source, plan, plan.pool[1::2])
    assert sorted(int(x) for x in first + second) == list(range(1000))


def test_the_last_splits_handed_out_shrink_so_that_readers_end_close_together(tmp_path):
    # 4 MB at parallelism 2: equal splits were 128 KB (256 KB: the minimum), and one reader
    # could be left alone with a whole one at the end.
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(write_lines(tmp_path / "in.txt", 100_000, 40))
    ).build()
    plan = source.split_plan(2, None)
    splits = plan.detail[0]
    sizes = [split.end - split.start for split in splits]
    assert sum(sizes) == 4_000_000 and all(
        a.end == b.start for a, b in zip(splits, splits[1:], strict=False)
    )
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] == 256 << 10 and max(sizes[-3:]) <= 32 << 10
    for index, size in enumerate(sizes):  # none more than a quarter of what is left
        assert size <= max(32 << 10, -(-sum(sizes[index:]) // 4))
    # ... read as any pool is: every line once.
    assert sorted(int(x) for x in read_all(source, plan, plan.pool)) == list(range(100_000))
    # A source's own minimum holds for them too.
    assert (
        len(file_source(tmp_path / "in.txt", min_split_size=1 << 20).split_plan(2, None).pool) == 4
    )


def test_a_position_from_before_tails_restores_the_equal_splits_it_numbered(tmp_path):
    # Split numbers mean what the cut of the attempt that wrote them meant: a savepoint of
    # an earlier version (no "tail" in its positions) restores with equal splits.
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(write_lines(tmp_path / "in.txt", 100_000, 40))
    ).build()
    guided = source.split_plan(2, None)
    assert guided.position["tail"] == 32 << 10
    older = {key: value for key, value in guided.position.items() if key != "tail"}
    for position, count in ((older, 16), (guided.position, guided.split_count)):
        again = source.split_plan(2, {0: {**position, "done": [0, 1]}, 1: None})
        assert again.split_count == count
        rest = read_all(source, again, again.pool)
        assert sorted(int(x) for x in rest) == list(range(-(-2 * (256 << 10) // 40), 100_000))
        # ... and its readers' positions keep that cut.
        reader = source.create_assigned_reader(again, lambda: None)
        assert reader.snapshot_position().get("tail") == position.get("tail")


def test_a_restored_plan_resumes_started_splits_and_skips_read_ones(tmp_path):
    source = file_source(write_lines(tmp_path / "in.txt", 1000))
    plan = source.split_plan(2, None)
    queue = [plan.pool[0], plan.pool[1]]
    reader = source.create_assigned_reader(plan, lambda: queue.pop(0) if queue else None)
    seen = []
    while len(seen) < 40:  # split 0 (31 or 32 lines) and a part of split 1
        seen += reader.read_batch(3)
    position = reader.snapshot_position()
    assert position["done"] == [0] and position["current"][0] == 1
    # The other subtask had finished, having read splits 2..9 (the JobManager kept them).
    restored = {0: position, 1: FinishedSubtask(tuple(range(2, 10)))}
    again = source.split_plan(3, restored)  # also at another parallelism
    assert again.split_count == 32  # the splits of the first layout, numbered alike
    assert again.pool[0] == (1, position["current"][1])  # the started split first
    assert [i for i, _ in again.pool[1:]] == list(range(10, 32))
    rest = read_all(source, again, again.pool)
    read_by_finished = [int(x) for x in read_all(source, plan, [(i, None) for i in range(2, 10)])]
    assert sorted([int(x) for x in seen + rest] + read_by_finished) == list(range(1000))


def test_a_plan_restored_before_its_readers_started_keeps_what_earlier_attempts_read(tmp_path):
    source = file_source(write_lines(tmp_path / "in.txt", 1000))
    plan = source.split_plan(2, None)
    restored = {0: FinishedSubtask((0, 1, 2)), 1: {**plan.position, "current": (3, 123)}}
    again = source.split_plan(2, restored)
    # A snapshot taken before this attempt's reader starts must still say that 0..2 were read
    # and where split 3 resumes: the finished subtask's own record is gone after this attempt.
    assert again.position["done"] == [0, 1, 2] and again.position["resume"] == {3: 123}
    third = source.split_plan(2, {0: FinishedSubtask(()), 1: again.position})
    assert third.pool == again.pool


def test_a_source_whose_readers_all_finished_stays_finished_at_another_parallelism(tmp_path):
    # Readers finish only once the pool is empty: finished ones (the others not started) read
    # everything, whatever the layout their split numbers were of.
    source = file_source(write_lines(tmp_path / "in.txt", 1000))
    done = source.split_plan(3, {0: FinishedSubtask((0, 2)), 1: FinishedSubtask((1,)), 2: None})
    assert done.pool == [] and done.position["complete"]
    reader = source.create_assigned_reader(done, lambda: None)
    assert reader.read_batch(10) is None
    # ... and a later restore from a reader of that plan knows it too.
    again = source.split_plan(2, {0: reader.snapshot_position(), 1: FinishedSubtask(())})
    assert again.pool == [] and again.position["complete"]


def test_positions_of_readers_that_split_the_files_themselves_keep_their_way(tmp_path):
    source = file_source(write_lines(tmp_path / "in.txt", 100))
    assert source.split_plan(2, {0: (4, 17), 1: None}) is None
    assert source.split_plan(2, {0: FinishedSubtask(None), 1: None}) is None
    assert source.split_plan(2, {0: None, 1: None}).split_count > 0  # nothing was read
    unbounded = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(tmp_path)
    ).monitor_continuously(1_000)
    assert unbounded.build().split_plan(2, None) is None


def test_a_finished_subtasks_snapshot_becomes_its_position():
    assert _position_of({"finished": True, "splits": [3, 4]}) == FinishedSubtask((3, 4))
    assert _position_of({"finished": True}) == FinishedSubtask(None)
    assert _position_of({"position": (1, 2)}) == (1, 2)


# ---------------------------------------------------------------- the JobManager's side


def test_the_first_request_of_an_attempt_sets_the_pool_and_later_ones_take_from_it():
    splits = SplitAssigners()
    pool = [(2, 40), (0, None), (1, None), (3, None)]
    assert splits.assign("job", "src", 0, 0, 4, pool) == [(2, 40)]
    assert splits.assign("job", "src", 0, 1, 4, [(0, None)]) == [(0, None)]  # first one's pool
    assert splits.assign("job", "src", 0, 1, 4, None, count=5) == [(1, None), (3, None)]
    assert splits.assign("job", "src", 0, 0, 4, None) == []
    assert splits.assigned("job", "src", 0, 0) == [2]
    assert splits.assigned("job", "src", 0, 1) == [0, 1, 3]
    assert splits.assigned("job", "src", 1, 1) is None  # another attempt
    # The next attempt starts over from its own pool; the old one's readers are refused.
    assert splits.assign("job", "src", 1, 0, 4, [(1, None)]) == [(1, None)]
    with pytest.raises(SplitRequestError, match="is over"):
        splits.assign("job", "src", 0, 1, 4, None)
    with pytest.raises(SplitRequestError, match="disagree"):
        splits.assign("job", "src", 1, 1, 5, None)
    with pytest.raises(SplitRequestError, match="at once"):
        splits.assign("job", "src", 1, 1, 4, None, count=10**6)
    splits.forget(lambda job_id: False)
    with pytest.raises(SplitRequestError, match="must restart"):
        splits.assign("job", "src", 1, 1, 4, None)


def test_many_small_files_are_handed_out_several_splits_a_request(tmp_path):
    for i in range(200):
        (tmp_path / f"part-{i:03d}.txt").write_text(f"{i}\n")
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(tmp_path)
    ).build()
    plan = source.split_plan(2, None)
    assert plan.split_count == 200 and plan.per_request == 6  # 200 // (2 * 16)
    assert file_source(write_lines(tmp_path / "big.txt", 1000)).split_plan(2, None).per_request == 1


@pytest.mark.parametrize(
    "pool",
    [[(3, None)], [(0, None), (0, 5)], [(0, -1)], [(-1, None)]],
)
def test_a_pool_that_is_not_of_the_source_is_refused(pool):
    with pytest.raises(SplitRequestError):
        SplitAssigners().assign("job", "src", 0, 0, 3, pool)


def test_a_finished_source_subtask_is_kept_in_a_checkpoint_with_the_splits_it_was_given():
    tasks = [("src", 0), ("src", 1)]
    given = {("src", 1): [2, 5, 6]}
    c = CheckpointCoordinator(
        CheckpointSettings(interval_ms=1000),
        tasks,
        plan={"nodes": [{"id": "src", "operators": [{"uid": "u"}], "parallelism": 2}]},
        assigned_splits=lambda vertex_id, subtask: given.get((vertex_id, subtask)),
    )
    c.observe(0.0, True, {("src", 0): "RUNNING", ("src", 1): "FINISHED"})
    cid = c.trigger(1.0)
    effects = c.observe(1.0, True, {("src", 0): "RUNNING", ("src", 1): "FINISHED"})
    assert effects == []
    handle = {"path": "p0", "operators": ["u"], "parallelism": 2, "max_parallelism": 128}
    (write,) = c.acknowledged(1.1, cid, ("src", 0), handle)
    metadata = write.metadata
    entry = metadata["operators"]["u"]
    assert entry["finished"] == [1] and entry["finished_splits"] == {"1": [2, 5, 6]}
    assert entry["files"] == {0: "p0"}


# ---------------------------------------------------------------- jobs


class Tag(MapFunction):
    """Tags each line with the subtask that read it; subtask 0 is slow."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.subtask = runtime_context.get_index_of_this_subtask()

    def map(self, line: str) -> tuple:
        if self.subtask == 0:
            time.sleep(0.0005)
        return (self.subtask, int(line))


def test_a_faster_subtask_reads_more_of_the_files_and_every_line_once(mode, tmp_path):
    count = 20_000
    path = write_lines(tmp_path / "in.txt", count)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    source = file_source(path, min_split_size=1)
    tagged = env.from_source(source, None, "lines").map(Tag())
    results = mode.collect(tagged)
    assert sorted(line for _, line in results) == list(range(count))
    by_subtask = Counter(subtask for subtask, _ in results)
    # Split by subtask as before, each would read half; subtask 0 sleeps 0.5 ms a line.
    assert by_subtask[1] > 0.7 * count, by_subtask


def test_many_small_files_are_read_once_each(mode, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(300):
        (folder / f"part-{i:03d}.txt").write_text("".join(f"{i}-{j}\n" for j in range(5)))
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(folder)
    ).build()
    lines = mode.collect(env.from_source(source, None, "parts"))
    assert sorted(lines) == sorted(f"{i}-{j}" for i in range(300) for j in range(5))


def test_sigkill_of_taskmanagers_while_splits_are_handed_out_keeps_output_exactly_once(
    local_cluster, tmp_path
):
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count = 40_000
    path = write_lines(tmp_path / "in.txt", count)
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    lines = env.from_source(file_source(path, min_split_size=1), None, "lines").uid("lines")
    lines.map(Slow()).uid("slow").sink_to(
        FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build()
    ).uid("files")
    with remote(cluster.address):
        client = env.execute_async("splits under SIGKILL")
    kills = kill_taskmanagers_during(cluster, client, seed=13, kills=2)
    assert kills >= 1, "the job ended before the failures could be injected"
    client.get_job_execution_result()
    with ClusterClient(cluster.address) as jobs:
        details = jobs.job(client.get_job_id())
    assert details.summary.state == "FINISHED" and details.restarts >= kills
    assert committed_output(output) == Counter(str(i) for i in range(count))
    stats = http_json(f"{cluster.rest_url}/jobs/{client.get_job_id()}/checkpoints")
    assert stats["counts"]["restored"] >= kills


class Slow(MapFunction):
    def map(self, line: str) -> int:
        value = int(line)
        if value % 10 == 0:
            time.sleep(0.002)
        return value


class SlowFirst(MapFunction):
    """Subtask 0 takes 5 ms a line: subtask 1 reads the other splits and finishes first.
    Subtask 1 starts once subtask 0 has its first split (a slot process that starts late
    would otherwise find every split taken)."""

    def __init__(self, started: str) -> None:
        self.started = started

    def open(self, runtime_context: RuntimeContext) -> None:
        self.slow = runtime_context.get_index_of_this_subtask() == 0
        self.waiting = not self.slow

    def map(self, line: str) -> int:
        if self.slow:
            Path(self.started).touch()
            time.sleep(0.005)
        elif self.waiting:
            deadline = time.monotonic() + 60
            while not Path(self.started).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.waiting = False
        return int(line)


def test_a_savepoint_after_one_reader_finished_resumes_at_another_parallelism_exactly_once(
    local_cluster, tmp_path
):
    # A finished task takes no snapshot: what its reader had read is known only from the
    # JobManager, which keeps it with the savepoint. Without it, the resumed job would read
    # the finished reader's splits a second time.
    cluster = local_cluster(slots=2).start(taskmanagers=2)
    count = 20_000
    path = write_lines(tmp_path / "in.txt", count)
    output = tmp_path / "out"

    def submit(parallelism: int, savepoint: str | None = None) -> str:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        env.enable_checkpointing(60_000)  # savepoints only
        lines = env.from_source(file_source(path), None, "lines").uid("lines")
        sink = FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build()
        # The sink in tasks of its own: a task with a sink that commits waits for a last
        # checkpoint before it finishes.
        slow = lines.map(SlowFirst(str(tmp_path / "started"))).uid("slow")
        slow.sink_to(sink).uid("files").disable_chaining()
        with remote(cluster.address):
            execution_context.current().savepoint_path = savepoint
            return env.execute_async(f"splits p={parallelism}").get_job_id()

    job_id = submit(2)
    job_url = f"{cluster.rest_url}/jobs/{job_id}"

    def source_subtasks() -> list[str]:
        vertex = http_json(job_url)["vertices"][0]["id"]
        return [s["status"] for s in http_json(f"{job_url}/vertices/{vertex}")["subtasks"]]

    poll_for(lambda: source_subtasks() == ["RUNNING", "FINISHED"], what="subtask 1 to finish")
    location = stop_with_savepoint(cluster, job_id, tmp_path / "sp")
    first = committed_output(output)
    assert 0 < sum(first.values()) < count  # it really was cut short
    with ClusterClient(cluster.address) as jobs:
        assert_finishes(jobs, submit(3, savepoint=location))
    assert committed_output(output) == Counter(str(i) for i in range(count))
