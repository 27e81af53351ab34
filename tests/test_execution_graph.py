"""The job state machine, driven directly: no processes, no sockets, no clocks."""

from __future__ import annotations

from jobmanager.execution_graph import ExecutionGraph

PLAN = {
    "name": "job",
    "nodes": [
        {"id": "v1", "contents": "Source", "parallelism": 1},
        {"id": "v2", "contents": "Map", "parallelism": 2},
    ],
}


def running_graph() -> ExecutionGraph:
    graph = ExecutionGraph.from_plan("j" * 32, PLAN)
    assert graph.state == "CREATED" and graph.slots_required() == 2
    placement = graph.assign([("tm1", "h1:1"), ("tm2", "h2:1")])
    assert placement[("v1", 0)] == ("tm1", "h1:1")
    assert placement[("v2", 1)] == ("tm2", "h2:1")
    assert graph.state == "RUNNING"
    return graph


def test_finishes_when_every_subtask_finished():
    graph = running_graph()
    for key in graph.subtasks:
        graph.task_state_changed(*key, 0, "RUNNING")
    decisions = [graph.task_state_changed(*key, 0, "FINISHED") for key in graph.subtasks]
    assert graph.state == "FINISHED"
    assert decisions[-1].release_slots and not any(d.release_slots for d in decisions[:-1])


def test_failure_cancels_the_rest_and_keeps_the_first_cause():
    graph = running_graph()
    decision = graph.task_state_changed("v2", 1, 0, "FAILED", "Traceback: boom")
    assert graph.state == "FAILING" and decision.cancel_tasks
    graph.task_state_changed("v1", 0, 0, "FAILED", "secondary")
    assert graph.failure == "Traceback: boom"
    decision = graph.task_state_changed("v2", 0, 0, "CANCELED")
    assert graph.state == "FAILED" and decision.release_slots


def test_a_producer_that_failed_because_its_consumer_had_ended_gives_way_to_the_consumers_cause():
    """A consumer fails and closes its input; a producer sending to it fails on that. Which
    report reaches the JobManager first is a race: the job's cause is the consumer's either
    way (the CI failure of session 11: 'the consumer closed its input' was shown instead)."""
    graph = running_graph()
    graph.clock = lambda: 1000.0
    consequence = "ConsumerGone: local channel 1: the consumer closed its input"
    decision = graph.task_state_changed("v1", 0, 0, "FAILED", consequence, consequential=True)
    assert graph.state == "FAILING" and decision.cancel_tasks
    assert graph.failure == consequence
    graph.task_state_changed("v2", 1, 0, "FAILED", "DecodeError: poisoned record 3")
    assert graph.failure == "DecodeError: poisoned record 3"
    assert graph.failures == [("DecodeError: poisoned record 3", "v2[1]", 1_000_000)]
    graph.task_state_changed("v2", 0, 0, "CANCELED")
    assert graph.state == "FAILED" and graph.failure == "DecodeError: poisoned record 3"


def test_a_consequential_failure_never_replaces_a_cause():
    graph = running_graph()
    graph.task_state_changed("v2", 1, 0, "FAILED", "DecodeError: poisoned record 3")
    graph.task_state_changed("v1", 0, 0, "FAILED", "the consumer closed", consequential=True)
    assert graph.failure == "DecodeError: poisoned record 3"
    # Alone, a consequential failure is the cause: nothing else was reported.
    alone = running_graph()
    alone.task_state_changed("v1", 0, 0, "FAILED", "the consumer closed", consequential=True)
    alone.task_state_changed("v2", 0, 0, "CANCELED")
    alone.task_state_changed("v2", 1, 0, "CANCELED")
    assert alone.state == "FAILED" and alone.failure == "the consumer closed"
    # Only the first real cause replaces it; a second one does not.
    twice = running_graph()
    twice.task_state_changed("v1", 0, 0, "FAILED", "the consumer closed", consequential=True)
    twice.task_state_changed("v2", 0, 0, "FAILED", "first cause")
    twice.task_state_changed("v2", 1, 0, "FAILED", "second cause")
    assert twice.failure == "first cause" and len(twice.failures) == 1


def test_cancel_and_late_messages():
    graph = running_graph()
    assert graph.cancel().cancel_tasks
    assert graph.state == "CANCELLING"
    for key in graph.subtasks:
        graph.task_state_changed(*key, 0, "CANCELED")
    assert graph.state == "CANCELED"
    assert not graph.task_state_changed("v1", 0, 0, "FAILED").job_state_changed
    assert not graph.cancel().job_state_changed


def test_cancel_while_waiting_for_slots_and_slot_timeout():
    graph = ExecutionGraph.from_plan("j" * 32, PLAN)
    decision = graph.cancel()
    assert graph.state == "CANCELED" and decision.release_slots
    graph = ExecutionGraph.from_plan("k" * 32, PLAN)
    graph.fail("no slots")
    assert graph.state == "FAILED" and graph.failure == "no slots"


def test_lost_taskmanager_fails_only_jobs_on_it():
    graph = running_graph()
    assert not graph.taskmanager_lost("tm9", "gone").cancel_tasks
    decision = graph.taskmanager_lost("tm2", "connection closed")
    assert decision.cancel_tasks and graph.state == "FAILING"
    assert "tm2" in graph.failure
    graph.task_state_changed("v1", 0, 0, "CANCELED")
    graph.task_state_changed("v2", 0, 0, "CANCELED")
    assert graph.state == "FAILED"


def test_slot_sharing_groups_add_up():
    plan = {
        "nodes": [
            {"id": "v1", "contents": "a", "parallelism": 2, "slot_sharing_group": "default"},
            {"id": "v2", "contents": "b", "parallelism": 3, "slot_sharing_group": "other"},
        ]
    }
    graph = ExecutionGraph.from_plan("x" * 32, plan)
    assert graph.slots_required() == 5
    placement = graph.assign([(f"tm{i}", f"h{i}") for i in range(5)])
    assert placement[("v2", 0)] == ("tm2", "h2")


def test_slot_numbers_name_the_slot_each_subtask_shares():
    """Subtasks with one number share a slot, hence one slot process on their TaskManager."""
    plan = {
        "nodes": [
            {"id": "v1", "contents": "a", "parallelism": 2, "slot_sharing_group": "default"},
            {"id": "v2", "contents": "b", "parallelism": 1, "slot_sharing_group": "default"},
            {"id": "v3", "contents": "c", "parallelism": 2, "slot_sharing_group": "other"},
        ]
    }
    graph = ExecutionGraph.from_plan("x" * 32, plan)
    numbers = graph.slot_numbers()
    assert numbers == {("v1", 0): 0, ("v1", 1): 1, ("v2", 0): 0, ("v3", 0): 2, ("v3", 1): 3}
    slots = [(f"tm{i}", f"h{i}") for i in range(graph.slots_required())]
    placement = graph.assign(slots)
    assert all(placement[key] == slots[number] for key, number in numbers.items())


def test_each_failure_keeps_its_own_time():
    graph = running_graph()
    now = [1000.0]
    graph.clock = lambda: now[0]
    graph.task_state_changed("v2", 1, 0, "FAILED", "Traceback: first")
    now[0] = 1002.5
    graph.fail("Exceeded checkpoint tolerable failure threshold.")
    assert [(cause[:16], at) for cause, _, at in graph.failures] == [
        ("Traceback: first", 1_000_000),
        ("Exceeded checkpo", 1_002_500),
    ]


def test_a_deployment_that_cannot_load_fails_the_job_without_waiting_for_reports():
    """No TaskManager reports a subtask whose deployment failed (issue 10, item 2): the job
    must not wait for them in FAILING."""
    graph = running_graph()
    graph.task_state_changed("v1", 0, 0, "RUNNING")  # deployed to tm1; tm2 could not load it
    decision = graph.fail("cannot load the job graph: ModuleNotFoundError('clientonly')")
    assert decision.cancel_tasks and graph.state == "FAILING"
    graph.task_state_changed("v2", 0, 0, "RUNNING")  # a late report changes nothing
    graph.task_state_changed("v1", 0, 0, "CANCELED")
    assert graph.state == "FAILED"
    assert "ModuleNotFoundError" in graph.failure


def test_a_deployment_failure_goes_through_the_restart_strategy():
    graph = running_graph()
    graph.restart_policy = lambda: 0.5
    decision = graph.fail("cannot load the job graph: ModuleNotFoundError")
    assert graph.state == "RESTARTING" and decision.restart_after == 0.5
    graph.begin_attempt()
    assert graph.cancel().job_state_changed and graph.state == "CANCELED"


def test_cancel_after_a_deployment_failure_ends_canceled():
    graph = running_graph()
    graph.cancel()
    assert graph.state == "CANCELLING"
    graph.fail("cannot load the job graph: ModuleNotFoundError")
    assert graph.state == "CANCELED"


def test_the_exception_history_of_a_restart_loop_is_bounded():
    from jobmanager.execution_graph import MAX_FAILURES

    graph = running_graph()
    graph.restart_policy = lambda: 0.0
    for attempt in range(MAX_FAILURES + 50):
        graph.task_state_changed("v1", 0, attempt, "FAILED", f"failure {attempt}")
        for key in graph.subtasks:
            graph.task_state_changed(*key, attempt, "CANCELED")
        assert graph.state == "RESTARTING"
        graph.begin_attempt()
        graph.assign([("tm1", "h1:1"), ("tm2", "h2:1")])
    assert len(graph.failures) == MAX_FAILURES
    assert graph.failures[-1][0] == f"failure {MAX_FAILURES + 49}"


def test_a_vertex_part_of_which_finished_while_the_rest_waits_is_running():
    """A BATCH stage wider than the free slots: some subtasks done, others not deployed yet."""
    graph = ExecutionGraph.from_plan("j" * 32, PLAN)
    graph.subtasks[("v2", 0)].state = "FINISHED"
    assert graph.vertex_state("v2") == "RUNNING"
    assert graph.vertex_state("v1") == "CREATED"
    graph.subtasks[("v2", 1)].state = "FINISHED"
    assert graph.vertex_state("v2") == "FINISHED"


def test_each_subtask_keeps_when_it_was_deployed_and_when_it_ended():
    now = [1000.0]
    graph = ExecutionGraph.from_plan("j" * 32, PLAN)
    graph.clock = lambda: now[0]
    assert all(s.start_ms == s.end_ms == -1 for s in graph.subtasks.values())
    graph.assign([("tm1", "h1:1"), ("tm2", "h2:1")])  # deployed at 1000 s
    now[0] = 1000.25
    for key in graph.subtasks:
        graph.task_state_changed(*key, 0, "RUNNING")  # not a new start
    now[0] = 1003.0
    graph.task_state_changed("v2", 0, 0, "FINISHED")
    now[0] = 1004.5
    graph.task_state_changed("v2", 0, 0, "FAILED")  # late: the first end stays
    graph.task_state_changed("v2", 1, 0, "FAILED", "Traceback: boom")
    times = {key: (s.start_ms, s.end_ms) for key, s in graph.subtasks.items()}
    assert times[("v2", 0)] == (1_000_000, 1_003_000)
    assert times[("v2", 1)] == (1_000_000, 1_004_500)
    assert times[("v1", 0)] == (1_000_000, -1)
    # A new attempt's subtasks have not started yet.
    graph.task_state_changed("v1", 0, 0, "CANCELED")
    graph.begin_attempt()
    assert all(s.start_ms == s.end_ms == -1 for s in graph.subtasks.values())
