"""The JobManager deploys to several TaskManagers at once, in bounded waves (issue 12: a job's
start-up must not grow with its TaskManagers, and a large job must not fork all its slot
processes at once on a small host)."""

from __future__ import annotations

from harness import poll_for
from jobs_support import remote

from jobmanager.dispatcher import _waves
from strom.datastream import StreamExecutionEnvironment


def test_waves_hold_at_most_the_budget_of_slot_processes_in_order():
    weights = {"a": 8, "b": 8, "c": 8, "d": 1, "e": 1, "f": 20}
    assert _waves(list("abcdef"), weights, 16) == [["a", "b"], ["c", "d", "e"], ["f"]]
    assert _waves(["x", "y"], {"x": 1, "y": 1}, 16) == [["x", "y"]]
    assert _waves(["x", "y"], {"x": 1, "y": 1}, 1) == [["x"], ["y"]]
    assert _waves([], {}, 16) == []


def _holding(cluster) -> int:
    """How many TaskManagers hold a PrepareSlots at the testing gate right now."""
    return sum(
        "holding PrepareSlots until" in path.read_text(errors="replace")
        for path in cluster.log_dir.glob("taskmanager-*.log")
    )


def test_both_taskmanagers_prepare_at_once(local_cluster, tmp_path):
    """With the gate closed, a p=2 job on 2 TaskManagers x 1 slot has both of them in
    PrepareSlots at the same time; one after another, the second would get its call only
    once the first answered (never, with the gate closed)."""
    gate = tmp_path / "gate"
    cluster = local_cluster(slots=1, **{"taskmanager.testing.prepare-slots-gate": str(gate)})
    cluster.start(taskmanagers=2)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_collection(list(range(100))).key_by(lambda x: x % 7).reduce(lambda a, b: a + b).print()
    with remote(cluster.address):
        client = env.execute_async("deployed in one wave")
    poll_for(lambda: _holding(cluster) == 2, timeout=30, what="both TaskManagers in PrepareSlots")
    gate.touch()
    poll_for(lambda: client.get_job_status() == "FINISHED", timeout=60, what="FINISHED")
