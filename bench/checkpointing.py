"""Checkpoint overhead and recovery time, each measured against a baseline of the same run.

    python bench/checkpointing.py [--records N] [--rounds N] [--overhead-only]

1. Overhead (embedded, parallelism 1): a keyed running count over 100,000 keys, with a
   checkpoint every second, against the same job without checkpoints. Prints the ratio of
   the best throughputs (target >= 0.90), and the median of the rounds' ratios: on a busy
   2-core machine single runs swing by 20% either way, so look at both, over several runs.
2. Recovery: a 3-TaskManager cluster (one spare slot), a checkpointed job at parallelism 2;
   a TaskManager running its tasks is killed with SIGKILL, and the time until the first
   record is processed after the restore is measured (target <= 3 s), with Flink's default
   restart strategy for checkpointed jobs (fixed delay of 1 s) and with no delay.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from strom.common import RestartStrategies  # noqa: E402
from strom.datastream import (  # noqa: E402
    MapFunction,
    SinkFunction,
    StreamExecutionEnvironment,
    execution_context,  # noqa: E402
)
from strom.datastream.connectors.number_seq import NumberSequenceSource  # noqa: E402

RECORDS = 5_000_000
KEYS = 100_000


class Drop(SinkFunction):
    def invoke(self, value, context):
        pass


def keyed(value):
    return (value % KEYS, 1)


def add(a, b):
    return (a[0], a[1] + b[1])


def overhead_run(checkpoints: str | None, records: int = RECORDS) -> float:
    env = StreamExecutionEnvironment.get_execution_environment()
    if checkpoints:
        env.enable_checkpointing(1000)
        env.get_checkpoint_config().set_checkpoint_storage_dir(checkpoints)
    numbers = env.from_source(NumberSequenceSource(1, records), None, "numbers")
    numbers.map(keyed).key_by(lambda p: p[0]).reduce(add).add_sink(Drop())
    started = time.perf_counter()
    env.execute("checkpoint overhead")
    return time.perf_counter() - started


class MarkRecovery(MapFunction):
    """Writes the time it first sees a record in a restarted attempt."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def open(self, runtime_context):
        self.attempt = runtime_context.get_attempt_number()
        self.marked = False

    def map(self, value):
        if self.attempt > 0 and not self.marked:
            self.marked = True
            with open(self.marker, "a") as handle:
                handle.write(f"{time.time()}\n")
        if value % 50 == 0:
            time.sleep(0.001)
        return value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recovery_run(work: Path, delay_ms: int) -> float:
    from client.gateway import ClusterClient

    conf = work / f"conf-{delay_ms}"
    conf.mkdir()
    rpc, rest = _free_port(), _free_port()
    (conf / "strom-conf.yaml").write_text(
        f"jobmanager.rpc.address: 127.0.0.1\njobmanager.rpc.port: {rpc}\nrest.port: {rest}\n"
        "taskmanager.numberOfTaskSlots: 1\n"
    )
    env_vars = dict(os.environ, PYTHONPATH=str(REPO), STROM_CONF_DIR=str(conf))

    def spawn(module: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env=env_vars,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    processes = [spawn("jobmanager")]
    try:
        cluster = ClusterClient(f"127.0.0.1:{rpc}")
        processes += [spawn("taskmanager") for _ in range(3)]
        deadline = time.monotonic() + 30
        while True:
            try:
                if cluster.overview().taskmanagers == 3:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up")
            time.sleep(0.05)
        marker = str(work / f"recovered-{delay_ms}")
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        env.enable_checkpointing(500)
        env.get_checkpoint_config().set_checkpoint_storage_dir(str(work / f"chk-{delay_ms}"))
        env.set_restart_strategy(RestartStrategies.fixed_delay_restart(10, delay_ms))
        numbers = env.from_source(NumberSequenceSource(1, 400_000), None, "numbers")
        numbers.map(MarkRecovery(marker)).key_by(lambda v: v % 100).sum().add_sink(Drop())
        previous = execution_context.set_current(
            execution_context.ExecutionContext(target="remote", jobmanager=f"127.0.0.1:{rpc}")
        )
        try:
            job = env.execute_async("recovery")
        finally:
            execution_context.set_current(previous)
        job_id = job.get_job_id()
        while cluster.job(job_id).summary.state != "RUNNING":
            time.sleep(0.05)
        time.sleep(1.5)  # let it run and checkpoint before the failure
        victim_pid = next(tm.pid for tm in cluster.taskmanagers() if tm.free_slots == 0)
        killed_at = time.time()
        os.kill(victim_pid, signal.SIGKILL)
        stamps: list[str] = []
        while not stamps:  # the file may exist a moment before its first line is in it
            if time.time() - killed_at > 60:
                raise RuntimeError("the job did not recover within 60 s")
            time.sleep(0.01)
            if os.path.exists(marker):
                stamps = Path(marker).read_text().split()
        first = min(float(line) for line in stamps)
        job.cancel()
        return first - killed_at
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=RECORDS, help="records per run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved pairs of runs")
    parser.add_argument("--overhead-only", action="store_true", help="skip the recovery runs")
    args = parser.parse_args()
    records = args.records
    with tempfile.TemporaryDirectory(prefix="strom-bench-ckpt-") as tmp:
        work = Path(tmp)
        plain: list[float] = []
        with_checkpoints: list[float] = []
        for round_ in range(args.rounds):  # interleaved, so both see the same machine
            plain.append(overhead_run(None, records))
            with_checkpoints.append(overhead_run(str(work / f"c{round_}"), records))
        ratios = sorted(p / c for p, c in zip(plain, with_checkpoints, strict=True))
        print(f"records: {records:,}, keys: {KEYS:,}, rounds: {args.rounds}")
        print(f"without checkpoints: {records / min(plain):12,.0f} records/s")
        print(f"checkpoint every 1 s: {records / min(with_checkpoints):12,.0f} records/s")
        print(
            f"ratio with/without: {min(plain) / min(with_checkpoints):.2f}  (target >= 0.90); "
            f"median of the rounds' ratios {ratios[len(ratios) // 2]:.2f}"
        )
        if args.overhead_only:
            return
        default_delay = recovery_run(work, 1000)
        no_delay = recovery_run(work, 0)
        print(
            f"recovery after SIGKILL, spare TaskManager: {default_delay:.2f} s with the default "
            f"1 s restart delay; {no_delay:.2f} s without delay  (target <= 3 s)"
        )


if __name__ == "__main__":
    main()
