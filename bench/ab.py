"""An A/B of checkouts: the same job on one cluster per checkout, jobs alternated, medians.

    python bench/ab.py --tree ../base --tree . [--job wordcount|keyed] [--parallelism 1 2]
                       [--rounds 9] [--taskmanagers 2] [--slots 1] [--pin] [--busy-cpu N]

This machine's load swings within minutes (another tenant's work doubles a p=1 job's time
while it runs), so two checkouts measured one after the other compare the minutes, not the
code. Here each ``--tree`` gets its own local cluster running its code, all at once, and every
round runs the job once on each (the order rotating by round) at each ``--parallelism``: the
checkouts share whatever the machine does. Prints, per checkout and parallelism, the median
and least wall time and TaskManager CPU seconds, and per checkout the p=2 / p=1 ratios of the
medians. The client side (this process: building and submitting the job) is this checkout's.

Every round also runs the job's own user functions in a plain loop, without Strom, in one
process and split over p processes (``ceiling.py``): what the machine itself gives that work
in those minutes. A speed-up is printed beside the machine's, and as a share of it.

``--pin --busy-cpu 0`` stands for two hosts of which one is shared with another tenant:
TaskManager k runs on CPU k only, and a spinning process takes half of CPU 0 throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import ceiling  # noqa: E402
import cloudpickle  # noqa: E402
import keyed_cpu  # noqa: E402
import wordcount  # noqa: E402
from cluster import local_cluster  # noqa: E402

from strom.datastream import execution_context  # noqa: E402

# The jobs' functions travel by value: the other checkouts' TaskManagers cannot import this
# checkout's bench modules.
cloudpickle.register_pickle_by_value(wordcount)
cloudpickle.register_pickle_by_value(keyed_cpu)

JOBS = {"wordcount": wordcount.strom_job, "keyed": keyed_cpu.job}


def main() -> None:
    parser = argparse.ArgumentParser(description="A/B of checkouts, one cluster each")
    parser.add_argument("--tree", action="append", required=True, help="a checkout's folder")
    parser.add_argument("--job", choices=sorted(JOBS), default="wordcount")
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--taskmanagers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument(
        "--pin", action="store_true", help="TaskManager k on CPU k only, as hosts of their own"
    )
    parser.add_argument(
        "--busy-cpu",
        type=int,
        help="keep CPU N busy with a loop of its own throughout (another tenant on a host)",
    )
    args = parser.parse_args()
    trees = [Path(tree).resolve() for tree in args.tree]
    run_job = JOBS[args.job]
    samples: dict[tuple[int, int], list[tuple[float, float]]] = {}
    machine: dict[int, list[float]] = {}  # the plain loop's walls by process count
    with tempfile.TemporaryDirectory(prefix="strom-ab-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        path = work / "input.txt"
        ceiling.make_input(args.job, path)
        clusters = []
        for tree in trees:
            cluster = stack.enter_context(
                local_cluster(args.taskmanagers, work, args.slots, repo=tree, pin=args.pin)
            )
            clusters.append((cluster, cluster.process_count()))
        if args.busy_cpu is not None:
            stack.enter_context(busy_loop(args.busy_cpu))
        for round_number in range(args.rounds):
            order = list(range(len(trees)))
            shift = round_number % len(order)
            order = order[shift:] + order[:shift]
            for parallelism in args.parallelism:
                for index in order:
                    cluster, idle = clusters[index]
                    context = execution_context.ExecutionContext(
                        target="remote", jobmanager=cluster.address
                    )
                    previous = execution_context.set_current(context)
                    try:
                        before = cluster.settled_cpu_seconds(idle)
                        wall = run_job(path, parallelism)
                        cpu = cluster.settled_cpu_seconds(idle) - before
                    finally:
                        execution_context.set_current(previous)
                    samples.setdefault((index, parallelism), []).append((wall, cpu))
                machine.setdefault(parallelism, []).append(
                    ceiling.wall(args.job, path, parallelism, pin=args.pin)
                )
    shape = f"{args.taskmanagers} TaskManager(s) x {args.slots} slot(s)"
    print(f"{args.job}, {shape}, {args.rounds} rounds; median (least) per checkout")
    plain = {p: statistics.median(walls) for p, walls in machine.items()}
    for parallelism, walls in sorted(machine.items()):
        print(
            f"  {'plain loop':>14} {parallelism} process(es): wall {plain[parallelism]:.3f} s "
            f"({min(walls):.3f}); walls by round {' '.join(f'{w:.2f}' for w in walls)}"
        )
    top = max(args.parallelism)
    ceiling_speedup = plain[1] / plain[top] if 1 in plain and top > 1 else None
    if ceiling_speedup is not None:
        print(f"  {'plain loop':>14} {top}/1: speed-up {ceiling_speedup:.2f} (the machine's)")
    for index, tree in enumerate(trees):
        medians = {}
        for parallelism in args.parallelism:
            runs = samples[(index, parallelism)]
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            medians[parallelism] = (statistics.median(walls), statistics.median(cpus))
            print(
                f"  {tree.name:>14} p={parallelism}: wall {medians[parallelism][0]:.3f} s "
                f"({min(walls):.3f}), TaskManager CPU {medians[parallelism][1]:.2f} s "
                f"({min(cpus):.2f}); walls by round {' '.join(f'{w:.2f}' for w in walls)}"
            )
        if ceiling_speedup is not None:
            speedup = medians[1][0] / medians[top][0]
            print(
                f"  {tree.name:>14} p={top}/p=1: speed-up {speedup:.2f} (of medians), "
                f"{speedup / ceiling_speedup:.0%} of the machine's; CPU "
                f"{medians[top][1] / medians[1][1]:.2f}x"
            )


@contextlib.contextmanager
def busy_loop(cpu: int):
    """A process spinning on CPU ``cpu`` while the context lasts."""
    process = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        yield
    finally:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
