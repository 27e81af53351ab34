"""A job's JobMaster as events in, effects out: every transition of a job's state, driven by a
fake clock, without sockets, threads or files."""

from __future__ import annotations

from jobmanager.execution_graph import ExecutionGraph
from jobmanager.job_master import (
    RESTART,
    SLOT_REQUEST_TIMEOUT,
    AbortCheckpoints,
    CancelTasks,
    Deploy,
    JobMaster,
    JobTerminated,
    ReleaseSlots,
    RequestSlots,
    StartTimer,
    StateChanged,
)
from jobmanager.restart_strategy import ExponentialDelay, FixedDelay, NoRestart

PLAN = {
    "name": "counts",
    "nodes": [
        {"id": "src", "contents": "Source", "parallelism": 1},
        {"id": "sink", "contents": "Sink", "parallelism": 2},
    ],
}
SLOTS = [("tm-1", "10.0.0.1:6122"), ("tm-2", "10.0.0.2:6122")]
TASKS = [("src", 0), ("sink", 0), ("sink", 1)]
T0 = 1000.0


def master(strategy=None, timeout_s: float = 10.0) -> JobMaster:
    graph = ExecutionGraph.from_plan("j" * 32, PLAN)
    return JobMaster(graph, strategy or NoRestart(), slot_request_timeout_s=timeout_s)


def timers(effects) -> list[StartTimer]:
    return [e for e in effects if isinstance(e, StartTimer)]


def deployed_and_running(m: JobMaster, now: float = T0 + 1) -> None:
    """Offer slots, finish the deployment and report every subtask RUNNING."""
    [_, deploy] = m.slots_offered(now, SLOTS)
    assert m.deployed(now, deploy.attempt) == []
    for vertex, index in TASKS:
        assert m.task_state(now, vertex, index, m.graph.attempt, "RUNNING") == []


def test_submitted_job_requests_its_slots_and_starts_the_slot_timer():
    m = master()
    effects = m.submitted(T0)
    assert effects == [StartTimer(SLOT_REQUEST_TIMEOUT, T0 + 10.0, 1), RequestSlots(2)]
    assert m.state == "CREATED" and m.waiting_for_slots


def test_waiting_for_slots_says_how_many_are_free():
    m = master()
    m.submitted(T0)
    assert m.slots_unavailable(T0 + 1, 1, 3) == []
    assert "waiting for 2 free slot(s); the cluster has 1 free of 3" in m.graph.status_message


def test_slot_request_timeout_fails_the_job_and_archives_it():
    m = master()
    [timer, _] = m.submitted(T0)
    m.slots_unavailable(T0 + 1, 0, 0)
    effects = m.timer_fired(T0 + 10, timer.kind, timer.token)
    assert m.state == "FAILED"
    assert StateChanged("FAILED") in effects and JobTerminated("FAILED") in effects
    assert ReleaseSlots() in effects
    assert "slot.request.timeout (10000 ms)" in m.graph.failure


def test_the_slot_timer_of_a_deployed_job_does_nothing():
    m = master()
    [timer, _] = m.submitted(T0)
    deployed_and_running(m)
    assert m.timer_fired(T0 + 10, timer.kind, timer.token) == []
    assert m.state == "RUNNING"


def test_slots_offered_deploy_the_subtasks_with_slot_sharing():
    m = master()
    m.submitted(T0)
    effects = m.slots_offered(T0 + 1, SLOTS)
    assert effects[0] == StateChanged("RUNNING")
    deploy = effects[1]
    assert isinstance(deploy, Deploy) and deploy.attempt == 0
    assert deploy.placement == {
        ("src", 0): SLOTS[0],
        ("sink", 0): SLOTS[0],
        ("sink", 1): SLOTS[1],
    }
    assert m.deploying == 0 and not m.waiting_for_slots
    # slots offered twice (a race in the pool) go back
    assert m.slots_offered(T0 + 1, SLOTS) == [ReleaseSlots()]


def test_every_subtask_finished_finishes_the_job():
    m = master()
    m.submitted(T0)
    deployed_and_running(m)
    for vertex, index in TASKS[:-1]:
        assert m.task_state(T0 + 2, vertex, index, 0, "FINISHED") == []
    effects = m.task_state(T0 + 2, "sink", 1, 0, "FINISHED")
    assert effects == [ReleaseSlots(), StateChanged("FINISHED"), JobTerminated("FINISHED")]
    # nothing moves an ended job
    assert m.cancel(T0 + 3) == []
    assert m.task_state(T0 + 3, "src", 0, 0, "FAILED", "late") == []
    assert m.state == "FINISHED"


def test_a_failed_task_restarts_the_job_after_the_strategy_delay():
    m = master(FixedDelay(attempts=1, delay_s=2.0))
    m.submitted(T0)
    deployed_and_running(m)
    effects = m.task_state(T0 + 5, "sink", 0, 0, "FAILED", "ZeroDivisionError")
    assert m.state == "FAILING"
    assert CancelTasks(0) in effects and StateChanged("FAILING") in effects
    m.task_state(T0 + 5, "src", 0, 0, "CANCELED")
    effects = m.task_state(T0 + 6, "sink", 1, 0, "CANCELED")
    assert m.state == "RESTARTING"
    assert AbortCheckpoints("the job is restarting") in effects
    [restart] = timers(effects)
    assert restart.kind == RESTART and restart.at == T0 + 6 + 2.0
    assert ReleaseSlots() in effects and StateChanged("RESTARTING") in effects
    assert m.graph.failure == "ZeroDivisionError"
    assert m.graph.failures[0][2] == int((T0 + 5) * 1000)  # the event's time, not the wall's
    # the timer brings attempt 1, which waits for slots like a new job (without the timeout)
    effects = m.timer_fired(restart.at, restart.kind, restart.token)
    assert effects == [StateChanged("CREATED"), RequestSlots(2)]
    assert m.graph.attempt == 1 and m.graph.restarts == 1
    m.slots_unavailable(restart.at, 0, 2)
    assert m.graph.status_message.startswith("restarting: waiting for 2 free slot(s)")
    # a late report of attempt 0 is ignored
    assert m.task_state(restart.at, "src", 0, 0, "FAILED", "late") == []
    deployed_and_running(m, restart.at + 1)
    assert m.state == "RUNNING"


def test_a_failure_with_no_restart_left_fails_the_job():
    m = master(FixedDelay(attempts=0, delay_s=1.0))
    m.submitted(T0)
    deployed_and_running(m)
    m.task_state(T0 + 2, "src", 0, 0, "FAILED", "boom")
    m.task_state(T0 + 2, "sink", 0, 0, "CANCELED")
    effects = m.task_state(T0 + 2, "sink", 1, 0, "CANCELED")
    assert m.state == "FAILED"
    assert JobTerminated("FAILED") in effects and not timers(effects)


def test_exponential_delays_become_timers_of_growing_delay():
    m = master(ExponentialDelay(1.0, 60.0, 2.0, 3600.0, 0.0))
    m.submitted(T0)
    now, delays = T0, []
    for _ in range(3):
        deployed_and_running(m, now)
        m.task_state(now, "src", 0, m.graph.attempt, "FAILED", "boom")
        m.task_state(now, "sink", 0, m.graph.attempt, "CANCELED")
        [timer] = timers(m.task_state(now, "sink", 1, m.graph.attempt, "CANCELED"))
        delays.append(timer.at - now)
        # too early a timer of an earlier kind or token does nothing
        assert m.timer_fired(timer.at, RESTART, timer.token + 99) == []
        m.timer_fired(timer.at, timer.kind, timer.token)
        now = timer.at + 1
    assert delays == [1.0, 2.0, 4.0]


def test_a_lost_taskmanager_fails_the_job_running_there():
    m = master(FixedDelay(attempts=5, delay_s=0.5))
    m.submitted(T0)
    deployed_and_running(m)
    assert m.taskmanager_lost(T0 + 2, "tm-9", "heartbeat timeout") == []  # not this job's
    effects = m.taskmanager_lost(T0 + 2, "tm-2", "heartbeat timeout")
    assert m.state == "FAILING" and CancelTasks(0) in effects
    assert "TaskManager tm-2 was lost (heartbeat timeout)" in m.graph.failure
    m.task_state(T0 + 2, "src", 0, 0, "CANCELED")
    effects = m.task_state(T0 + 2, "sink", 0, 0, "CANCELED")
    assert m.state == "RESTARTING" and timers(effects)


def test_cancel_while_waiting_for_slots_ends_canceled_at_once():
    m = master()
    [timer, _] = m.submitted(T0)
    effects = m.cancel(T0 + 1)
    assert m.state == "CANCELED"
    assert effects == [ReleaseSlots(), StateChanged("CANCELED"), JobTerminated("CANCELED")]
    assert m.timer_fired(T0 + 10, timer.kind, timer.token) == []
    assert m.slots_offered(T0 + 2, SLOTS) == [ReleaseSlots()]


def test_cancel_of_a_running_job_cancels_its_tasks_then_ends_canceled():
    m = master()
    m.submitted(T0)
    deployed_and_running(m)
    effects = m.cancel(T0 + 2)
    assert m.state == "CANCELLING"
    assert effects == [CancelTasks(0), StateChanged("CANCELLING")]
    assert m.cancel(T0 + 2) == []  # a second cancel changes nothing
    for vertex, index in TASKS[:-1]:
        m.task_state(T0 + 3, vertex, index, 0, "CANCELED")
    effects = m.task_state(T0 + 3, "sink", 1, 0, "CANCELED")
    assert effects == [ReleaseSlots(), StateChanged("CANCELED"), JobTerminated("CANCELED")]


def test_cancel_during_deployment_cancels_what_the_deployment_started():
    m = master()
    m.submitted(T0)
    [_, deploy] = m.slots_offered(T0 + 1, SLOTS)
    assert m.cancel(T0 + 2) == [CancelTasks(0), StateChanged("CANCELLING")]
    # the TaskManagers not yet prepared had nothing to cancel: once the deployment is done
    # the master cancels again what it started
    assert m.deployed(T0 + 3, deploy.attempt) == [CancelTasks(0)]
    for vertex, index in TASKS:
        m.task_state(T0 + 4, vertex, index, 0, "CANCELED")
    assert m.state == "CANCELED"


def test_a_failed_deployment_fails_the_job_under_its_restart_strategy():
    m = master(FixedDelay(attempts=1, delay_s=1.0))
    m.submitted(T0)
    [_, deploy] = m.slots_offered(T0 + 1, SLOTS)
    effects = m.deploy_failed(T0 + 2, deploy.attempt, "could not deploy tasks: no module x")
    # nothing was reported by the tasks that never loaded: the job does not wait for them
    assert m.state == "RESTARTING"
    [restart] = timers(effects)
    assert CancelTasks(0) in effects and ReleaseSlots() in effects
    # a second failure of the same deployment (another TaskManager) changes nothing
    assert m.deploy_failed(T0 + 2, deploy.attempt, "again") == []
    m.timer_fired(restart.at, restart.kind, restart.token)
    [_, deploy] = m.slots_offered(restart.at, SLOTS)
    effects = m.deploy_failed(restart.at + 1, deploy.attempt, "could not deploy tasks: again")
    assert m.state == "FAILED" and JobTerminated("FAILED") in effects


def test_stop_after_a_savepoint_ends_finished():
    m = master()
    m.submitted(T0)
    deployed_and_running(m)
    effects = m.stop(T0 + 2)
    assert m.state == "CANCELLING" and CancelTasks(0) in effects
    for vertex, index in TASKS:
        effects = m.task_state(T0 + 3, vertex, index, 0, "CANCELED")
    assert m.state == "FINISHED" and JobTerminated("FINISHED") in effects


def test_too_many_failed_checkpoints_fail_the_job_like_a_task_failure():
    m = master(FixedDelay(attempts=1, delay_s=1.0))
    m.submitted(T0)
    deployed_and_running(m)
    effects = m.fail(T0 + 2, "Exceeded checkpoint tolerable failure threshold.")
    assert m.state == "FAILING" and CancelTasks(0) in effects
    for vertex, index in TASKS:
        effects = m.task_state(T0 + 3, vertex, index, 0, "CANCELED")
    assert m.state == "RESTARTING" and timers(effects)


def test_cancel_while_restarting_ends_canceled_and_the_restart_never_comes():
    m = master(FixedDelay(attempts=3, delay_s=5.0))
    m.submitted(T0)
    deployed_and_running(m)
    m.task_state(T0 + 2, "src", 0, 0, "FAILED", "boom")
    m.task_state(T0 + 2, "sink", 0, 0, "CANCELED")
    [restart] = timers(m.task_state(T0 + 2, "sink", 1, 0, "CANCELED"))
    effects = m.cancel(T0 + 3)
    assert m.state == "CANCELED" and JobTerminated("CANCELED") in effects
    assert m.timer_fired(restart.at, restart.kind, restart.token) == []
    assert m.graph.attempt == 0


def test_leadership_lost_suspends_the_job_without_cancelling_its_tasks():
    m = master(FixedDelay(attempts=3, delay_s=5.0))
    m.submitted(T0)
    deployed_and_running(m)
    effects = m.suspend(T0 + 2, "this JobManager lost its leadership")
    assert m.state == "SUSPENDED" and m.ended
    assert effects == [
        AbortCheckpoints("this JobManager lost its leadership"),
        ReleaseSlots(),
        StateChanged("SUSPENDED"),
    ]
    assert not any(isinstance(e, CancelTasks) for e in effects)
    assert m.task_state(T0 + 3, "src", 0, 0, "FAILED", "x") == []
    assert m.cancel(T0 + 3) == [] and m.suspend(T0 + 3, "again") == []


def test_a_suspended_job_ignores_its_timers():
    m = master()
    [timer, _] = m.submitted(T0)
    m.suspend(T0 + 1, "deposed")
    assert m.timer_fired(T0 + 10, timer.kind, timer.token) == []
    assert m.state == "SUSPENDED"


def recovered_master(first_attempt: int, strategy=None) -> JobMaster:
    """A job a new leader recovered: its attempts start above every earlier leader's."""
    graph = ExecutionGraph.from_plan("j" * 32, PLAN)
    graph.attempt = first_attempt
    return JobMaster(graph, strategy or NoRestart(), slot_request_timeout_s=10.0)


def test_a_recovered_job_deploys_its_first_attempt_and_restarts_above_it():
    m = recovered_master(7, FixedDelay(attempts=1, delay_s=1.0))
    m.submitted(T0)
    [_, deploy] = m.slots_offered(T0 + 1, SLOTS)
    assert deploy.attempt == 7
    # a report of an earlier leader's attempt (its tasks may still run) is not this one's
    assert m.task_state(T0 + 1, "src", 0, 0, "FINISHED") == []
    assert m.deployed(T0 + 1, 7) == []
    effects = m.task_state(T0 + 2, "sink", 0, 7, "FAILED", "boom")
    assert CancelTasks(7) in effects
    m.task_state(T0 + 2, "src", 0, 7, "CANCELED")
    [restart] = timers(m.task_state(T0 + 2, "sink", 1, 7, "CANCELED"))
    assert m.timer_fired(restart.at, restart.kind, restart.token)[-1] == RequestSlots(2)
    assert m.graph.attempt == 8 and m.graph.restarts == 1
    [_, deploy] = m.slots_offered(restart.at, SLOTS)
    assert deploy.attempt == 8


def test_a_recovered_job_that_never_gets_slots_times_out_like_a_new_one():
    m = recovered_master(3)
    [timer, _] = m.submitted(T0)
    m.slots_unavailable(T0 + 1, 0, 0)
    assert m.graph.status_message.startswith("waiting for 2 free slot(s)")
    m.timer_fired(T0 + 10, timer.kind, timer.token)
    assert m.state == "FAILED" and "slot.request.timeout" in m.graph.failure
