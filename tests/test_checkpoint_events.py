"""The checkpoint coordinator as events in, effects out: every transition of a checkpoint and
a savepoint of one job, driven by a fake clock, without sockets or files."""

from __future__ import annotations

import pytest

from jobmanager.checkpoint_coordinator import (
    TOO_MANY_FAILURES,
    CheckpointCoordinator,
    CheckpointSettings,
    CompletedCheckpoint,
    Discard,
    FailJob,
    NotifyComplete,
    SavepointDone,
    SendTrigger,
    WriteMetadata,
)

PLAN = {
    "nodes": [
        {
            "id": "src",
            "pact": "Data Source",
            "parallelism": 1,
            "max_parallelism": 128,
            "operators": [{"uid": "numbers"}],
        },
        {
            "id": "sink",
            "pact": "Operator",
            "parallelism": 2,
            "max_parallelism": 128,
            "operators": [{"uid": "counts"}, {"uid": "files"}],
        },
    ]
}
TASKS = [("src", 0), ("sink", 0), ("sink", 1)]
RUNNING = dict.fromkeys(TASKS, "RUNNING")


class Clock:
    """The time the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self, seconds: float = 0.0) -> float:
        self.now += seconds
        return self.now


def started(clock: Clock, **settings) -> CheckpointCoordinator:
    """A coordinator of a running job, one interval (1 s) before its first checkpoint."""
    c = CheckpointCoordinator(
        CheckpointSettings(**{"interval_ms": 1000, **settings}),
        TASKS,
        job_id="j" * 32,
        job_name="counts",
        plan=PLAN,
        location_of=lambda checkpoint_id: f"/chk/chk-{checkpoint_id}",
    )
    assert c.observe(clock(), True, RUNNING) == []
    assert c.tick(clock()) == []  # ready: the first checkpoint comes one interval later
    return c


def handle(task, checkpoint_id: int) -> dict:
    uids = [op["uid"] for n in PLAN["nodes"] if n["id"] == task[0] for op in n["operators"]]
    return {
        "path": f"/chk/chk-{checkpoint_id}/{task[0]}-{task[1]}",
        "operators": uids,
        "parallelism": 2,
        "max_parallelism": 128,
        "size": 10,
    }


def trigger(c: CheckpointCoordinator, clock: Clock) -> int:
    effects = c.tick(clock(1.0))
    assert len(effects) == 1 and isinstance(effects[0], SendTrigger), effects
    return effects[0].checkpoint_id


def ack_all(c: CheckpointCoordinator, clock: Clock, checkpoint_id: int) -> WriteMetadata:
    for task in TASKS[:-1]:
        assert c.acknowledged(clock(), checkpoint_id, task, handle(task, checkpoint_id)) == []
    last = TASKS[-1]
    (write,) = c.acknowledged(clock(), checkpoint_id, last, handle(last, checkpoint_id))
    return write


def test_a_periodic_checkpoint_is_triggered_acknowledged_written_and_notified():
    clock = Clock()
    c = started(clock)
    assert c.tick(clock(0.5)) == []  # not due yet
    (send,) = c.tick(clock(0.5))
    assert send == SendTrigger(1, "/chk/chk-1", False, int(clock.now * 1000))
    assert c.tick(clock(1.5)) == []  # one in flight (max_concurrent 1)
    assert c.acknowledged(clock(), 1, ("nowhere", 0), {}) == []  # not a task of the job
    assert c.acknowledged(clock(), 9, TASKS[0], handle(TASKS[0], 9)) == []  # no such checkpoint
    write = ack_all(c, clock, 1)
    assert write.checkpoint_id == 1 and write.location == "/chk/chk-1" and write.publish
    assert write.metadata["operators"]["files"]["files"] == {
        0: "/chk/chk-1/sink-0",
        1: "/chk/chk-1/sink-1",
    }
    assert write.metadata["job_name"] == "counts" and not write.metadata["is_savepoint"]
    # A late duplicate acknowledgement while the metadata is written changes nothing.
    assert c.acknowledged(clock(), 1, TASKS[0], handle(TASKS[0], 1)) == []
    assert c.metadata_written(clock(), 1) == [NotifyComplete(1)]
    assert c.latest().id == 1 and c.latest().state_size == 30
    assert c.counts == {"triggered": 1, "completed": 1, "failed": 0, "restored": 0}


def test_a_newer_checkpoint_subsumes_the_retained_one_which_is_discarded():
    clock = Clock()
    c = started(clock, num_retained=1)
    ack_all(c, clock, trigger(c, clock))
    c.metadata_written(clock(), 1)
    ack_all(c, clock, trigger(c, clock))
    assert c.metadata_written(clock(), 2) == [NotifyComplete(2), Discard(1, "/chk/chk-1")]


def test_nothing_happens_while_the_job_does_not_run_every_task():
    clock = Clock()
    c = started(clock)
    c.observe(clock(), True, {**RUNNING, ("sink", 1): "DEPLOYING"})
    assert c.tick(clock(5.0)) == []
    with pytest.raises(ValueError, match="a savepoint needs every task"):
        c.trigger_savepoint(clock(), "t", "/sp/1")
    c.observe(clock(), False, RUNNING)  # the job is not RUNNING (restarting, cancelling)
    assert c.tick(clock(5.0)) == []
    c.observe(clock(), True, RUNNING)
    assert isinstance(c.tick(clock()), list) and c.pending


def test_a_decline_fails_the_checkpoint_and_too_many_fail_the_job():
    clock = Clock()
    c = started(clock, tolerable_failures=1)
    assert c.declined(clock(), trigger(c, clock), "no space") == []  # tolerated
    assert c.declined(clock(), trigger(c, clock), "no space") == [FailJob(TOO_MANY_FAILURES)]
    assert c.history[-1].reason == "declined by a task: no space"
    assert c.declined(clock(), 99, "unknown") == []


def test_a_completed_checkpoint_resets_the_failures_in_a_row():
    clock = Clock()
    c = started(clock, tolerable_failures=1)
    c.declined(clock(), trigger(c, clock), "x")
    ack_all(c, clock, trigger(c, clock))
    c.metadata_written(clock(), 2)
    assert c.declined(clock(), trigger(c, clock), "x") == []


def test_a_checkpoint_expires_unless_its_metadata_is_being_written():
    clock = Clock()
    c = started(clock, timeout_ms=2000, tolerable_failures=5)
    first = trigger(c, clock)
    assert c.tick(clock(1.5)) == []
    # Expired (tolerated), and the next one is due at once.
    (send,) = c.tick(clock(1.0))
    assert first not in c.pending and c.history[-1].reason == "expired before completing"
    second = send.checkpoint_id
    ack_all(c, clock, second)
    c.tick(clock(5.0))
    assert second in c.pending  # finalizing: the write decides
    assert c.metadata_written(clock(), second) == [NotifyComplete(second)]


def test_a_failed_metadata_write_fails_the_checkpoint_and_the_job_restarts_from_the_last():
    clock = Clock()
    c = started(clock)
    ack_all(c, clock, trigger(c, clock))
    c.metadata_written(clock(), 1)
    ack_all(c, clock, trigger(c, clock))
    assert c.metadata_failed(clock(), 2, "disk full") == [FailJob(TOO_MANY_FAILURES)]
    assert c.history[-1].reason == "writing metadata failed: disk full"
    assert c.latest().id == 1  # what the restart restores
    # The restart: the job runs again, ids go on growing.
    assert c.abort(clock(), "the job is restarting") == []
    c.observe(clock(), True, RUNNING)
    assert trigger(c, clock) == 3


def test_a_checkpoint_high_availability_could_not_take_does_not_count_against_the_job():
    """The pointer store refused the checkpoint (the JobManager's connection to ZooKeeper
    dropped, or it was deposed): the checkpoint failed, but not by the job's fault."""
    clock = Clock()
    c = started(clock)  # no failure tolerated
    ack_all(c, clock, trigger(c, clock))
    assert c.metadata_failed(clock(), 1, "not in HA storage", counted=False) == []
    assert c.history[-1].reason == "writing metadata failed: not in HA storage"
    assert c.latest() is None
    ack_all(c, clock, trigger(c, clock))
    assert c.metadata_failed(clock(), 2, "disk full") == [FailJob(TOO_MANY_FAILURES)]


def test_a_checkpoint_written_after_a_restart_gave_it_up_is_kept_as_the_latest():
    """A restart gives up checkpoint 2 while its metadata is written; the write and the
    publication to high availability succeed after all. ZooKeeper points at it (a new leader
    restores from it), so it must not be deleted: it is the latest, and subsumed in turn."""
    clock = Clock()
    c = started(clock)
    ack_all(c, clock, trigger(c, clock))
    c.metadata_written(clock(), 1)
    ack_all(c, clock, trigger(c, clock))
    c.abort(clock(), "the job is restarting")
    assert c.metadata_written(clock(), 2) == [Discard(1, "/chk/chk-1")]
    assert c.latest().id == 2 and c.latest().external_path == "/chk/chk-2"
    # Listed and counted once, as completed (the restart had listed it as failed).
    assert [(type(e).__name__, e.id) for e in c.history if e.id == 2] == [
        ("CompletedCheckpoint", 2)
    ]
    assert c.counts["completed"] == 2 and c.counts["failed"] == 0
    assert c.metadata_written(clock(), 2) == []
    c.observe(clock(), True, RUNNING)
    ack_all(c, clock, trigger(c, clock))
    assert c.metadata_written(clock(), 3) == [NotifyComplete(3), Discard(2, "/chk/chk-2")]
    # Its write failing instead: nothing to do.
    ack_all(c, clock, trigger(c, clock))
    c.abort(clock(), "the job is restarting")
    assert c.metadata_failed(clock(), 4, "gone") == []
    assert c.latest().id == 3


def test_a_given_up_checkpoint_written_after_a_newer_one_or_a_savepoint_is_discarded():
    clock = Clock()
    c = started(clock, max_concurrent=2)
    ack_all(c, clock, trigger(c, clock))
    c.abort(clock(), "the job is restarting")
    c.observe(clock(), True, RUNNING)
    ack_all(c, clock, trigger(c, clock))
    c.metadata_written(clock(), 2)
    # High availability ignores a pointer older than the one it has: nothing points at 1.
    assert c.metadata_written(clock(), 1) == [Discard(1, "/chk/chk-1")]
    assert c.latest().id == 2
    c.trigger_savepoint(clock(), "t1", "/sp/savepoint-3")
    ack_all(c, clock, 3)
    assert c.abort(clock(), "the job is restarting") == [
        SavepointDone("t1", failure="the job is restarting")
    ]
    assert c.metadata_written(clock(), 3) == [Discard(3, "/sp/savepoint-3")]
    assert c.latest().id == 2


def test_finished_tasks_acknowledge_at_once_and_draining_checkpoints_come_sooner():
    clock = Clock()
    c = started(clock)
    checkpoint_id = trigger(c, clock)
    finished = {**RUNNING, ("src", 0): "FINISHED"}
    assert c.observe(clock(), True, finished) == []
    assert ("src", 0) in c.pending[checkpoint_id].acknowledged
    for task in TASKS[1:-1]:
        c.acknowledged(clock(), checkpoint_id, task, handle(task, checkpoint_id))
    (write,) = c.acknowledged(clock(), checkpoint_id, TASKS[-1], handle(TASKS[-1], 1))
    assert write.metadata["operators"]["numbers"]["finished"] == [0]
    c.metadata_written(clock(), checkpoint_id)
    # Every source finished: the next one comes after 100 ms, not the 1 s interval.
    (send,) = c.tick(clock(0.15))
    # A task finishing while a checkpoint waits for it completes that checkpoint.
    for task in TASKS[1:]:
        if task != ("sink", 1):
            c.acknowledged(clock(), send.checkpoint_id, task, handle(task, send.checkpoint_id))
    (write,) = c.observe(clock(), True, {**finished, ("sink", 1): "FINISHED"})
    assert write.checkpoint_id == send.checkpoint_id


def test_a_savepoint_the_job_goes_on_after_commits_no_side_effects():
    clock = Clock()
    c = started(clock)
    (send,) = c.trigger_savepoint(clock(), "t1", "/sp/savepoint-1")
    assert send.is_savepoint and send.location == "/sp/savepoint-1"
    assert trigger(c, clock) == 2  # a savepoint does not hold up periodic checkpoints
    write = ack_all(c, clock, 1)
    assert write.location == "/sp/savepoint-1" and not write.publish
    assert write.metadata["is_savepoint"]
    assert c.metadata_written(clock(), 1) == [SavepointDone("t1", "/sp/savepoint-1")]
    assert c.latest() is None  # not a checkpoint to restore from, nor to subsume


@pytest.mark.parametrize("then", ["stop", "cancel"])
def test_a_savepoint_then_stop_commits_and_ends_the_job(then):
    clock = Clock()
    c = started(clock)
    c.trigger_savepoint(clock(), "t1", "/sp/s", then=then)
    ack_all(c, clock, 1)
    done = SavepointDone("t1", "/sp/s", then=then)
    # Stop: the job's last snapshot, whose side effects are committed.
    expected = [NotifyComplete(1), done] if then == "stop" else [done]
    assert c.metadata_written(clock(), 1) == expected


def test_a_savepoint_fails_on_a_decline_expiry_or_restart_without_failing_the_job():
    clock = Clock()
    c = started(clock, timeout_ms=1000)
    c.trigger_savepoint(clock(), "t1", "/sp/1")
    assert c.declined(clock(), 1, "busy") == [
        SavepointDone("t1", failure="declined by a task: busy")
    ]
    c.trigger_savepoint(clock(), "t2", "/sp/2")
    assert SavepointDone("t2", failure="expired before completing") in c.tick(clock(1.5))
    c.trigger_savepoint(clock(), "t3", "/sp/3")
    assert c.abort(clock(), "restarting") == [SavepointDone("t3", failure="restarting")]
    # three savepoints and the periodic checkpoint the abort gave up too
    assert c.consecutive_failures == 0 and c.counts["failed"] == 4


def test_a_newer_completed_checkpoint_subsumes_older_pending_ones():
    clock = Clock()
    c = started(clock, max_concurrent=2)
    first = trigger(c, clock)
    second = trigger(c, clock)
    ack_all(c, clock, second)
    c.metadata_written(clock(), second)
    assert first not in c.pending and c.history[-1].reason == "subsumed by a newer checkpoint"
    assert c.consecutive_failures == 0


def test_a_recovered_checkpoint_is_subsumed_and_discarded_by_the_job_it_restores():
    clock = Clock()
    c = started(clock)
    c.restored(CompletedCheckpoint(7, 0.0, 0.0, {}, "/chk/chk-7"), owned=True)
    assert trigger(c, clock) == 8
    ack_all(c, clock, 8)
    assert c.metadata_written(clock(), 8) == [NotifyComplete(8), Discard(7, "/chk/chk-7")]
