"""How far apart the readers of one file end, with equal splits and with shrinking last ones.

    python bench/split_tail.py [--rounds 9] [--parallelism 2] [--job keyed|wordcount]

A bounded FileSource's splits are handed out by the JobManager as readers ask. Cut equal,
the reader that takes the last split reads it alone at the end; cut with shrinking last
splits (``compute_splits``'s tail, the default since session 13) the readers end within a
small split of each other. One local cluster (2 TaskManagers × 1 slot) runs the job with each
cut in turn, ``--rounds`` times, and prints, per cut, the median spread of the source
subtasks' end times (their ``end-time`` in the REST API) and the median job wall time, and
the ratio of the walls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import ceiling  # noqa: E402
import cloudpickle  # noqa: E402
import keyed_cpu  # noqa: E402
import wordcount  # noqa: E402
from cluster import local_cluster  # noqa: E402

from strom.datastream import StreamExecutionEnvironment  # noqa: E402
from strom.datastream.connectors.file_system import FileSource, StreamFormat  # noqa: E402

cloudpickle.register_pickle_by_value(keyed_cpu)
cloudpickle.register_pickle_by_value(wordcount)

CUTS = {"equal": None, "tail": 32 << 10}


def run(job: str, path: Path, parallelism: int, tail: int | None) -> tuple[str, float]:
    """Run the job once with the given cut; its id and wall time."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(path))
    built = source.build()
    built.tail_split_size = tail
    lines = env.from_source(built, None, "lines")
    if job == "keyed":
        keyed = lines.map(keyed_cpu.work).key_by(keyed_cpu.key_of).reduce(keyed_cpu.add)
        keyed.add_sink(keyed_cpu.Drop())
    else:
        pairs = lines.flat_map(wordcount.split)
        pairs.key_by(wordcount.word_of).reduce(wordcount.add).add_sink(wordcount.Drop())
    started = time.perf_counter()
    result = env.execute(f"split-tail-{job}")
    return result.get_job_id(), time.perf_counter() - started


def end_spread_ms(rest: str, job_id: str) -> float:
    """The spread of the source subtasks' end times, in ms."""
    with urllib.request.urlopen(f"{rest}/jobs/{job_id}", timeout=10) as answer:
        job = json.load(answer)
    source = next(v for v in job["vertices"] if v["name"].startswith("Source: lines"))
    url = f"{rest}/jobs/{job_id}/vertices/{source['id']}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        ends = [s["end-time"] for s in json.load(answer)["subtasks"]]
    return float(max(ends) - min(ends))


def main() -> None:
    parser = argparse.ArgumentParser(description="source end spread: equal splits vs a tail")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--job", choices=["keyed", "wordcount"], default="keyed")
    args = parser.parse_args()
    spreads: dict[str, list[float]] = {cut: [] for cut in CUTS}
    walls: dict[str, list[float]] = {cut: [] for cut in CUTS}
    with tempfile.TemporaryDirectory(prefix="strom-tail-") as tmp:
        work = Path(tmp)
        path = work / "input.txt"
        ceiling.make_input(args.job, path)
        with local_cluster(2, work) as cluster:
            for round_number in range(args.rounds):
                order = list(CUTS) if round_number % 2 == 0 else list(reversed(CUTS))
                for cut in order:
                    job_id, wall = run(args.job, path, args.parallelism, CUTS[cut])
                    walls[cut].append(wall)
                    spreads[cut].append(end_spread_ms(cluster.rest, job_id))
    print(f"{args.job} at p={args.parallelism}, {args.rounds} rounds, 2 TaskManagers x 1 slot")
    for cut in CUTS:
        print(
            f"  {cut:>5} splits: sources end {statistics.median(spreads[cut]):.0f} ms apart "
            f"(median; {' '.join(f'{s:.0f}' for s in spreads[cut])}), job wall "
            f"{statistics.median(walls[cut]):.3f} s"
        )
    ratio = statistics.median(walls["tail"]) / statistics.median(walls["equal"])
    print(f"  wall with a tail / with equal splits: {ratio:.3f}")


if __name__ == "__main__":
    main()
