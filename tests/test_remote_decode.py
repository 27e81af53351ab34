"""Record batches from another process are decoded by the task that takes them (issue 12):
one that does not decode fails that task, with the reason, and so the job."""

from __future__ import annotations

import pytest
from jobs_support import remote

from strom.common.restart_strategy import RestartStrategies
from strom.datastream import StreamExecutionEnvironment
from strom.errors import JobExecutionError


def _explode(number: int) -> Poison:
    raise ValueError(f"poisoned record {number}")


class Poison:
    """Pickles fine; unpickling it raises (as a record class another process cannot load)."""

    def __init__(self, number: int) -> None:
        self.number = number

    def __reduce__(self):
        return (_explode, (self.number,))


def test_a_batch_that_does_not_decode_fails_the_consuming_task_with_its_reason(local_cluster):
    cluster = local_cluster(slots=1).start(taskmanagers=2)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.set_restart_strategy(RestartStrategies.no_restart())
    (
        env.from_collection(list(range(200)))
        .map(Poison)
        .key_by(lambda poison: poison.number % 10)
        .map(lambda poison: poison.number)
        .print()
    )
    with remote(cluster.address), pytest.raises(JobExecutionError) as failed:
        env.execute("poisoned")
    failure = str(failed.value)
    assert "poisoned record" in failure
    assert "cannot load a record" in failure or "malformed stream element" in failure
