"""Running a test's job body in every mode: embedded, and on a real multi-TaskManager cluster."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from strom.datastream import execution_context

TESTS_DIR = str(Path(__file__).resolve().parent)


@contextlib.contextmanager
def remote(address: str, parallelism: int | None = None) -> Iterator[None]:
    """Make ``env.execute()`` in this block submit to the cluster at ``address``; the tests'
    folder travels with the job, so functions defined in test modules import on TaskManagers."""
    previous = execution_context.set_current(
        execution_context.ExecutionContext(
            target="remote", jobmanager=address, parallelism=parallelism, job_root=TESTS_DIR
        )
    )
    try:
        yield
    finally:
        execution_context.set_current(previous)


class Mode:
    """How a test runs its job: ``mode.run(stream)`` executes and collects the stream."""

    def __init__(self, name: str, address: str | None = None, cluster: Any = None) -> None:
        self.name = name
        self.address = address
        self.cluster = cluster

    def __repr__(self) -> str:
        return self.name

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        if self.address is None:
            yield
        else:
            with remote(self.address):
                yield

    def collect(self, stream: Any) -> list:
        with self.active():
            with stream.execute_and_collect() as results:
                return list(results)

    def execute(self, env: Any, name: str = "test job") -> Any:
        with self.active():
            return env.execute(name)


def multiset(values: list) -> Counter:
    return Counter(repr(v) for v in values)


class CountedCalls:
    """A compiled module (``strom._speedups``) whose functions count their calls: shows which
    loops a job ran. Put in place of the module with ``monkeypatch.setattr``."""

    def __init__(self, module: Any) -> None:
        self.module, self.calls = module, 0

    def __getattr__(self, name: str) -> Any:
        function = getattr(self.module, name)

        def counted(*args: Any) -> Any:
            self.calls += 1
            return function(*args)

        return counted
