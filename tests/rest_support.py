"""A real cluster for the REST and dashboard tests, and the jobs they run on it.

Its processes log the way ``bin/strom-daemon.sh`` makes them: ``STROM_LOG_FILE`` names each
one's ``.log`` and its stdout and stderr go to the ``.out`` beside it, so the log and stdout
endpoints have files to show. The job functions live here because the tests' folder travels
with every job, so TaskManagers import them by module name.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, "") and __name__ == "__main__":  # run as a script: find the repo
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strom.datastream import SinkFunction, SourceFunction, StreamExecutionEnvironment

STDOUT_MARKER = "strom-stdout-marker"


# ---------------------------------------------------------------- jobs


class Ticker(SourceFunction):
    """Counts up as fast as it is let: downstream back pressure holds it back."""

    def __init__(self) -> None:
        self.running = True

    def run(self, ctx):
        value = 0
        while self.running:
            ctx.collect(value)
            value += 1

    def cancel(self):
        self.running = False


class SlowSink(SinkFunction):
    """About a thousand records a second per subtask, printing now and then to stdout."""

    def invoke(self, value, context):
        time.sleep(0.001)
        if value[1] % 500 == 0:
            print(f"{STDOUT_MARKER} {value}", flush=True)


def parity(value):
    return (value % 8, value)


def first(pair):
    return pair[0]


def running_job(env: StreamExecutionEnvironment) -> None:
    """Ticker -> (REBALANCE) tag -> (HASH) slow sink: runs until cancelled, back-pressured."""
    env.set_parallelism(2)
    stream = env.add_source(Ticker()).name("Ticker").set_parallelism(1)
    tagged = stream.map(parity).name("Tag")
    tagged.key_by(first).add_sink(SlowSink()).name("Slow Sink")


def add_one(value):
    return value + 1


def bounded_job(env: StreamExecutionEnvironment, count: int = 200) -> None:
    """A short job that finishes: a collection through a map, keyed, into a sink."""
    env.set_parallelism(2)
    numbers = env.from_collection(list(range(count))).name("Numbers")
    numbers.map(add_one).name("Add One").key_by(lambda v: v % 4).add_sink(lambda v: None)


def explode(value):
    raise ValueError(f"boom at record {value}: the REST test's failing job")


def failing_job(env: StreamExecutionEnvironment) -> None:
    env.set_parallelism(1)
    env.from_collection([1, 2, 3]).name("Three").map(explode).name("Explode").add_sink(
        lambda v: None
    )


# ---------------------------------------------------------------- the cluster


def observed_cluster_class():
    from harness import REPO_ROOT, LocalCluster, python_env

    class ObservedCluster(LocalCluster):
        """A LocalCluster whose processes write .log and .out files as the scripts make them."""

        def _spawn(self, module: str, name: str) -> subprocess.Popen:
            self._count += 1
            stem = self.log_dir / f"strom-test-{name}-{self._count}-localhost"
            command = [sys.executable, "-m", module]
            out = open(stem.with_suffix(".out"), "wb")  # noqa: SIM115
            process = subprocess.Popen(
                [*command, "--conf-dir", str(self.conf_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=python_env(
                    STROM_CONF_DIR=str(self.conf_dir), STROM_LOG_FILE=str(stem.with_suffix(".log"))
                ),
                cwd=str(REPO_ROOT),
            )
            out.close()
            self._all.append(process)
            return process

    return ObservedCluster
