"""The checkpoint coordinator and restart strategies as pure state machines."""

from __future__ import annotations

import pytest

from jobmanager import restart_strategy
from jobmanager.checkpoint_coordinator import CheckpointCoordinator, CheckpointSettings

TASKS = [("v1", 0), ("v2", 0), ("v2", 1)]


def coordinator(**settings) -> CheckpointCoordinator:
    return CheckpointCoordinator(CheckpointSettings(interval_ms=1000, **settings), TASKS)


def test_a_checkpoint_completes_when_every_task_acknowledged():
    c = coordinator()
    assert not c.due(0.0)  # the job just became ready: the first comes one interval later
    assert not c.due(0.9)
    assert c.due(1.0)
    cid = c.trigger(1.0)
    assert not c.due(1.5)  # one in flight, and the interval has not passed
    assert not c.acknowledge(cid, ("v1", 0), {"path": "a"})
    assert not c.acknowledge(cid, ("v9", 0), {"path": "x"})  # not a task of this job
    assert not c.acknowledge(cid, ("v2", 0), {"path": "b"})
    assert c.acknowledge(cid, ("v2", 1), {"path": "c"})
    done, discarded = c.complete(cid, 0.2, "/chk-1", 30)
    assert done.id == 1 and discarded == [] and c.latest() is done
    assert c.counts == {"triggered": 1, "completed": 1, "failed": 0, "restored": 0}


def test_once_sources_finished_checkpoints_come_sooner():
    c = coordinator()
    cid = c.trigger(0.0)
    for task in TASKS:
        c.acknowledge(cid, task, {"path": "p"})
    c.complete(cid, 0.01, "/chk-1", 1)
    assert not c.due(0.05, draining=True)  # draining: every 100 ms instead of every second
    assert c.due(0.11, draining=True)
    assert not c.due(0.11)


def test_retention_min_pause_and_subsumption():
    c = coordinator(min_pause_ms=500, max_concurrent=2, num_retained=1)
    first = c.trigger(0.0)
    second = c.trigger(1.0)
    for task in TASKS:
        c.acknowledge(second, task, {})
    done, discarded = c.complete(second, 1.1, "/chk-2", 0)
    assert first not in c.pending  # subsumed by a newer complete checkpoint
    assert not c.due(1.5)  # min pause after the last completion
    assert c.due(2.2)
    third = c.trigger(2.2)
    for task in TASKS:
        c.acknowledge(third, task, {})
    _, discarded = c.complete(third, 2.3, "/chk-3", 0)
    assert [d.id for d in discarded] == [second]


def test_failures_count_against_the_tolerance_and_expire():
    c = coordinator(tolerable_failures=1, timeout_ms=1000)
    one = c.trigger(0.0)
    assert c.expired(0.5) == [] and c.expired(1.5) == [one]
    assert not c.fail(one, 1.5, "expired")
    two = c.trigger(3.0)
    assert c.fail(two, 3.1, "declined")  # the second failure in a row: the job must fail
    three = c.trigger(5.0)
    savepoint = c.trigger(5.0, is_savepoint=True, target="/sp")
    assert c.abort_all(5.1, "restarting") == [three, savepoint]
    assert c.counts["failed"] == 4


@pytest.mark.parametrize(
    ("config", "checkpointing", "expected"),
    [
        ({}, False, [None]),
        ({}, True, [1.0, 1.0, 1.0]),
        ({"restart-strategy.type": "none"}, True, [None]),
        (
            {
                "restart-strategy.type": "fixed-delay",
                "restart-strategy.fixed-delay.attempts": "2",
                "restart-strategy.fixed-delay.delay": "200 ms",
            },
            False,
            [0.2, 0.2, None],
        ),
    ],
)
def test_restart_strategies_from_flink_keys(config, checkpointing, expected):
    strategy = restart_strategy.from_config(config, checkpointing)
    assert [strategy.on_failure(float(t)) for t in range(len(expected))] == expected


def test_failure_rate_and_exponential_delay():
    rate = restart_strategy.from_config(
        {
            "restart-strategy.type": "failure-rate",
            "restart-strategy.failure-rate.max-failures-per-interval": "2",
            "restart-strategy.failure-rate.failure-rate-interval": "10 s",
            "restart-strategy.failure-rate.delay": "1 s",
        },
        False,
    )
    assert [rate.on_failure(t) for t in (0.0, 1.0, 2.0)] == [1.0, 1.0, None]
    assert rate.on_failure(20.0) == 1.0  # the old failures left the interval
    exponential = restart_strategy.from_config(
        {
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": "100 ms",
            "restart-strategy.exponential-delay.max-backoff": "400 ms",
            "restart-strategy.exponential-delay.jitter-factor": "0",
        },
        False,
    )
    assert [exponential.on_failure(t) for t in (0.0, 1.0, 2.0, 3.0)] == [0.1, 0.2, 0.4, 0.4]
    assert exponential.on_failure(10_000.0) == 0.1  # a long quiet spell resets the back-off


def _complete(c: CheckpointCoordinator, now: float) -> tuple:
    cid = c.trigger(now)
    for task in TASKS:
        c.acknowledge(cid, task, {"path": "p"})
    return c.complete(cid, now, f"/chk-{cid}", 1)


def test_a_recovered_jobs_own_checkpoint_is_discarded_once_subsumed():
    from jobmanager.checkpoint_coordinator import CompletedCheckpoint

    c = coordinator(num_retained=1)
    restored = CompletedCheckpoint(7, 0.0, 0.0, {}, "/chk-7")
    c.restored(restored, owned=True)  # a new leader recovering the job from its checkpoint
    assert c.latest() is restored
    done, discarded = _complete(c, 1.0)
    assert done.id == 8 and discarded == [restored]


def test_a_savepoint_or_a_checkpoint_the_user_named_is_never_discarded():
    from jobmanager.checkpoint_coordinator import CompletedCheckpoint

    for restored, owned in (
        (CompletedCheckpoint(7, 0.0, 0.0, {}, "/sp-7", is_savepoint=True), True),
        (CompletedCheckpoint(7, 0.0, 0.0, {}, "/retained/chk-7"), False),  # strom run -s
    ):
        c = coordinator(num_retained=1)
        c.restored(restored, owned=owned)
        assert c.latest() is restored
        discarded = _complete(c, 1.0)[1] + _complete(c, 2.0)[1]
        assert [d.id for d in discarded] == [8]
