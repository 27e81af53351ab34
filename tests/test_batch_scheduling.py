"""The BATCH scheduler's state machine: stage after stage in few slots, and region failover."""

from __future__ import annotations

import json

from jobmanager.batch_scheduling import FINISHED, BatchScheduler, StageVertex
from strom.datastream import RuntimeExecutionMode, StreamExecutionEnvironment


def three_stages(parallelism: int = 4) -> BatchScheduler:
    """source -> (hash) -> count -> (hash) -> sink, every stage at ``parallelism``."""
    return BatchScheduler(
        [
            StageVertex("v1", "source", parallelism),
            StageVertex("v2", "count", parallelism, [("v1", False)]),
            StageVertex("v3", "sink", parallelism, [("v2", False)]),
        ]
    )


def run_until_done(scheduler: BatchScheduler, slots: list[str]) -> list[list[tuple[str, int]]]:
    """Deploy into the free slots and finish what runs, round by round; the rounds."""
    rounds = []
    while not scheduler.is_finished():
        deployments = scheduler.deploy(slots)
        assert deployments, "nothing could run"
        rounds.append([d.subtask for d in deployments])
        for deployment in deployments:
            scheduler.running(deployment.subtask)
            scheduler.finished(deployment.subtask)
    return rounds


def test_a_job_wider_than_its_slots_runs_stage_after_stage():
    scheduler = three_stages(4)
    rounds = run_until_done(scheduler, ["tm1", "tm1"])  # one TaskManager, 2 slots
    assert [len(r) for r in rounds] == [2] * 6
    stages = [[s[0] for s in r] for r in rounds]
    assert stages == [["v1"] * 2] * 2 + [["v2"] * 2] * 2 + [["v3"] * 2] * 2
    assert all(runs == 1 for runs in scheduler.runs.values())


def test_a_consumer_waits_for_every_producer_of_an_all_to_all_edge():
    scheduler = three_stages(2)
    first = scheduler.deploy(["a", "b", "c", "d"])
    assert [d.subtask for d in first] == [("v1", 0), ("v1", 1)]
    scheduler.finished(("v1", 0))
    assert scheduler.schedulable() == []
    scheduler.finished(("v1", 1))
    assert scheduler.schedulable() == [("v2", 0), ("v2", 1)]
    deployment = scheduler.deploy(["b"])[0]
    assert deployment.inputs == {("v1", 0): "a", ("v1", 1): "b"}


def test_a_forward_edge_lets_each_consumer_start_after_its_own_producer():
    scheduler = BatchScheduler(
        [StageVertex("v1", "read", 2), StageVertex("v2", "write", 2, [("v1", True)])]
    )
    scheduler.deploy(["a", "b"])
    scheduler.finished(("v1", 1))
    assert scheduler.schedulable() == [("v2", 1)]


def test_a_failed_task_reruns_alone():
    scheduler = three_stages(2)
    for deployment in scheduler.deploy(["a", "b"]):
        scheduler.finished(deployment.subtask)
    scheduler.deploy(["a", "b"])
    failover = scheduler.failed(("v2", 1))
    assert failover.rerun == [("v2", 1)] and failover.cancel == []
    scheduler.finished(("v2", 0))
    run_until_done(scheduler, ["a", "b"])
    assert scheduler.runs == {
        ("v1", 0): 1,
        ("v1", 1): 1,
        ("v2", 0): 1,
        ("v2", 1): 2,
        ("v3", 0): 1,
        ("v3", 1): 1,
    }


def test_a_taskmanager_lost_in_the_second_stage_reruns_its_region_only():
    scheduler = three_stages(2)
    # Stage 1 ran on tm-a (both subtasks); stage 2 runs on tm-a and tm-b.
    for deployment in scheduler.deploy(["tm-a", "tm-a"]):
        scheduler.finished(deployment.subtask)
    scheduler.deploy(["tm-a", "tm-b"])
    scheduler.running(("v2", 0))
    scheduler.running(("v2", 1))
    # tm-b dies: its stage-2 subtask re-runs; stage 1's partitions on tm-a are still there.
    failover = scheduler.taskmanager_lost("tm-b")
    assert failover.rerun == [("v2", 1)] and failover.cancel == []
    scheduler.finished(("v2", 0))
    deployments = scheduler.deploy(["tm-a"])
    assert [d.subtask for d in deployments] == [("v2", 1)]
    assert deployments[0].inputs == {("v1", 0): "tm-a", ("v1", 1): "tm-a"}
    scheduler.finished(("v2", 1))
    run_until_done(scheduler, ["tm-a"])
    assert scheduler.runs[("v1", 0)] == scheduler.runs[("v1", 1)] == 1  # stage 1 ran once


def test_losing_the_taskmanager_that_kept_needed_partitions_reruns_their_producers():
    scheduler = three_stages(2)
    deployments = scheduler.deploy(["tm-a", "tm-b"])
    for deployment in deployments:
        scheduler.finished(deployment.subtask)
    scheduler.deploy(["tm-a", "tm-a"])  # stage 2 reads from tm-a and tm-b
    scheduler.running(("v2", 0))
    scheduler.running(("v2", 1))
    failover = scheduler.taskmanager_lost("tm-b")
    # v1/1's partition is gone: it runs again, and the readers of it (both running on tm-a)
    # are cancelled and run again; v1/0 on tm-a is not touched.
    assert set(failover.rerun) == {("v1", 1), ("v2", 0), ("v2", 1)}
    assert set(failover.cancel) == {("v2", 0), ("v2", 1)}
    run_until_done(scheduler, ["tm-a"])
    assert scheduler.runs[("v1", 0)] == 1 and scheduler.runs[("v1", 1)] == 2


def test_a_rerun_that_needs_a_freed_partition_reruns_its_producer_too():
    scheduler = three_stages(1)
    run = scheduler.deploy(["a"])[0]
    scheduler.finished(run.subtask)
    scheduler.deploy(["a"])
    freed = scheduler.finished(("v2", 0))
    assert freed == [(("v1", 0), "a")]  # every reader of v1/0 is done: it may be freed
    scheduler.deploy(["b"])
    scheduler.running(("v3", 0))
    failover = scheduler.taskmanager_lost("a")  # v2's partition goes; v2 needs v1's again
    assert set(failover.rerun) == {("v1", 0), ("v2", 0), ("v3", 0)}
    run_until_done(scheduler, ["b"])
    assert scheduler.is_finished()


def test_stages_of_a_planned_batch_job_with_their_state_and_progress():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.set_parallelism(4)
    (
        env.from_collection(["a b", "b"])
        .flat_map(lambda line: line.split())
        .key_by(lambda word: word)
        .map(lambda word: (word, 1))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .print()
    )
    scheduler = BatchScheduler.from_plan(json.loads(env.get_execution_plan()))
    first = scheduler.deploy(["tm"] * 8)
    assert [d.subtask[0] for d in first] == ["v1"]  # the collection source has parallelism 1
    scheduler.finished(first[0].subtask)
    stages = scheduler.stages()
    assert stages[0]["state"] == FINISHED and stages[0]["progress"] == 1.0
    assert all(stage["state"] == "CREATED" for stage in stages[1:])
    second = scheduler.deploy(["tm"] * 2)
    assert [d.subtask for d in second] == [("v2", 0), ("v2", 1)]
    assert scheduler.stages()[1]["tasks"]["DEPLOYING"] == 2


def test_a_consumer_that_lost_its_inputs_reruns_with_their_producers():
    scheduler = three_stages(2)
    for deployment in scheduler.deploy(["a", "b"]):
        scheduler.finished(deployment.subtask)
    scheduler.deploy(["a", "b"])
    scheduler.finished(("v2", 0))
    failover = scheduler.partitions_lost(("v2", 1), [("v1", 0)])
    assert sorted(failover.rerun) == [("v1", 0), ("v2", 1)]
    assert scheduler.schedulable() == [("v1", 0)]
    run_until_done(scheduler, ["a", "b"])
    assert scheduler.runs[("v1", 0)] == 2 and scheduler.runs[("v1", 1)] == 1
    assert scheduler.runs[("v2", 0)] == 1 and scheduler.runs[("v2", 1)] == 2
