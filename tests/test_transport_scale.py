"""An all-to-all ``key_by`` at parallelism 64 on 8 TaskManagers x 8 slots (issue 12).

Each channel used to be a gRPC stream with its own receiver thread: 64 x 64 channels needed
4,096 streams and the threads ran out near parallelism 45. Now each pair of processes shares one
connection, and the threads of a TaskManager do not grow with parallelism beyond its task threads.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest
from jobs_support import remote

from strom.datastream import RuntimeContext, SinkFunction, StreamExecutionEnvironment
from strom.datastream.connectors.number_seq import NumberSequenceSource

RECORDS = 20_000
KEYS = 500


class FileSink(SinkFunction):
    """Writes each subtask's records to its own file: no thread of its own, unlike
    ``execute_and_collect``'s sink, which holds two per subtask."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def open(self, runtime_context: RuntimeContext) -> None:
        index = runtime_context.get_index_of_this_subtask()
        self.file = open(Path(self.directory) / f"part-{index}", "w")  # noqa: SIM115

    def invoke(self, value, context) -> None:
        self.file.write(f"{value[0]} {value[1]}\n")

    def close(self) -> None:
        self.file.close()


def run_keyed_count(address: str, parallelism: int, directory: Path) -> list[tuple[int, int]]:
    """Count ``RECORDS`` numbers by ``KEYS`` keys: every final count, read from the files."""
    directory.mkdir(parents=True)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    (
        env.from_source(NumberSequenceSource(0, RECORDS - 1), None, "numbers")
        .map(lambda x: (x % KEYS, 1))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .filter(lambda pair: pair[1] == RECORDS // KEYS)
        .add_sink(FileSink(str(directory)))
    )
    with remote(address):
        env.execute(f"keyed count p={parallelism}")
    lines = [line for part in directory.iterdir() for line in part.read_text().splitlines()]
    return sorted(tuple(map(int, line.split())) for line in lines)


class ThreadSampler:
    """The most threads each process had while sampling (every 50 ms, on a thread)."""

    def __init__(self, pids: list[int]) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.most = [0] * len(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for i, process in enumerate(self.processes):
                try:
                    self.most[i] = max(self.most[i], process.num_threads())
                except psutil.NoSuchProcess:
                    pass

    def __enter__(self) -> ThreadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> list[int]:
        """The thread count of each process now."""
        return [process.num_threads() for process in self.processes]


@pytest.mark.timeout(900)
def test_parallelism_64_all_to_all_with_threads_bounded(local_cluster, tmp_path):
    slots = 8
    cluster = local_cluster(slots=slots, **{"heartbeat.timeout": "20 s"}).start(taskmanagers=8)
    pids = [process.pid for process in cluster.taskmanagers]
    idle = ThreadSampler(pids).sample()
    most = {}
    for parallelism in (16, 64):
        with ThreadSampler(pids) as sampler:
            results = run_keyed_count(cluster.address, parallelism, tmp_path / f"p{parallelism}")
        assert results == [(key, RECORDS // KEYS) for key in range(KEYS)]
        most[parallelism] = sampler.most
    print(
        f"threads per TaskManager process ({slots} slots): idle {idle}, "
        f"p=16 {most[16]}, p=64 {most[64]}"
    )
    # Two tasks per slot (source + map, reduce + filter + sink) and a few threads of the data
    # plane: a bound fixed by the slots, the same at any parallelism. With a stream and a
    # receiver thread per channel, p=64 needed about 500 threads per TaskManager.
    bound = max(idle) + 2 * slots + 6
    for parallelism, counts in most.items():
        assert max(counts) <= bound, (parallelism, counts, bound)
    # Beyond its task threads (2 per slot in use), a process has no more threads at p=64
    # than at p=16.
    extra = {p: max(counts) - 2 * (p // 8) for p, counts in most.items()}
    assert extra[64] <= extra[16] + 2, extra
