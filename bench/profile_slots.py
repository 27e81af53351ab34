"""Where the slot processes' CPU goes during the word count: per thread, and by py-spy.

    python bench/profile_slots.py [--taskmanagers 2] [--slots 1] [--parallelism 2] [--spy]

Starts a local cluster, runs ``wordcount.py``'s job once to warm up, then once more while it
samples every slot process's threads (psutil: user + system CPU seconds per OS thread, named by
``py-spy dump``) until the job ends. ``--spy`` also runs ``py-spy record --gil`` (raw samples)
on each slot process and prints the top functions by inclusive share of GIL-held samples.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import keyed_cpu  # noqa: E402
from cluster import local_cluster  # noqa: E402
from wordcount import make_input, strom_job  # noqa: E402

_THREAD_LINE = re.compile(r"^Thread (0x[0-9A-Fa-f]+|\d+) \(([^)]+)\): \"([^\"]*)\"")


def slot_processes(taskmanager_pids: list[int], before: set[int]) -> list[psutil.Process]:
    """The processes under the TaskManagers that run a job (named so), and were not there
    before the job or were its spares (a spare takes the name when it takes the job)."""
    found = []
    for pid in taskmanager_pids:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if child.name() == "strom-slot" or (
                    child.pid not in before and child.name() not in ("strom-spare", "python")
                ):
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
    return found


def thread_names(pid: int, spy: str) -> dict[int, str]:
    """OS thread id -> Python thread name, from ``py-spy dump --native``-less output."""
    names: dict[int, str] = {}
    try:
        out = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=10
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return names
    # py-spy prints "Thread <tid> (<state>): "<name>"" with the OS thread id on Linux.
    for line in out.splitlines():
        match = _THREAD_LINE.match(line)
        if match:
            ident = match.group(1)
            tid = int(ident, 16) if ident.startswith("0x") else int(ident)
            names[tid] = match.group(3)
    return names


def _context_switches(pid: int, tid: int) -> tuple[int, int] | None:
    """(voluntary, involuntary) context switches of one thread so far, from /proc."""
    try:
        text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--taskmanagers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--spy", action="store_true", help="also py-spy record --gil")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keyed-cpu", action="store_true", help="keyed_cpu.py's job instead")
    args = parser.parse_args()
    run_job = keyed_cpu.job if args.keyed_cpu else strom_job
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory(prefix="strom-profile-") as tmp:
        work = Path(tmp)
        path = work / "words.txt"
        if args.keyed_cpu:
            path.write_text("".join(f"{i:>63}\n" for i in range(200_000)))
        else:
            make_input(path)
        with local_cluster(args.taskmanagers, work, args.slots) as cluster:
            run_job(path, args.parallelism)  # warm up
            time.sleep(1.0)
            before = {
                c.pid
                for pid in cluster.taskmanager_pids
                for c in psutil.Process(pid).children(recursive=True)
            }
            daemons = {
                "this client process": psutil.Process(),
                **{f"daemon {c.pid} {c.cmdline()[-1]}": c for c in psutil.Process().children()},
            }
            daemon_before = {name: sum(p.cpu_times()[:2]) for name, p in daemons.items()}
            result: dict[str, float] = {}
            job = threading.Thread(
                target=lambda: result.setdefault("wall", run_job(path, args.parallelism))
            )
            job.start()
            slots: list[psutil.Process] = []
            deadline = time.monotonic() + 20
            while len(slots) < args.parallelism and time.monotonic() < deadline:
                slots = slot_processes(cluster.taskmanager_pids, before)
                time.sleep(0.01)
            recorders = []
            if args.spy:
                for process in slots:
                    out = work / f"spy-{process.pid}.txt"
                    recorders.append(
                        (
                            process.pid,
                            out,
                            subprocess.Popen(
                                [spy, "record", "--gil", "-r", "200", "-f", "raw", "-o", str(out)]
                                + ["--pid", str(process.pid)],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            ),
                        )
                    )
            time.sleep(0.3)
            names = {p.pid: thread_names(p.pid, spy) for p in slots}
            names = {pid: got or thread_names(pid, spy) for pid, got in names.items()}
            last: dict[int, dict[int, float]] = {}
            total: dict[int, float] = {}
            switches_of: dict[int, tuple[int, int]] = {}
            while job.is_alive():
                for process in slots:
                    try:
                        threads = process.threads()
                        times = process.cpu_times()
                    except psutil.Error:
                        continue
                    seen = last.setdefault(process.pid, {})
                    for t in threads:  # threads that ended keep their last figure
                        seen[t.id] = t.user_time + t.system_time
                        switched = _context_switches(process.pid, t.id)
                        if switched is not None:
                            switches_of[t.id] = switched
                    total[process.pid] = times.user + times.system
                time.sleep(0.02)
            job.join()
            daemon_cpu = {
                name: sum(p.cpu_times()[:2]) - daemon_before[name] for name, p in daemons.items()
            }
            for _, _, recorder in recorders:
                recorder.wait(20)
        print(f"job wall {result['wall']:.2f} s (p={args.parallelism})")
        for name, seconds in daemon_cpu.items():
            print(f"  {seconds:6.2f} CPU-s  {name} (own threads only)")
        for pid, threads in last.items():
            print(f"slot process {pid}: {total[pid]:.2f} CPU-s in all (last sample)")
            for tid, seconds in sorted(threads.items(), key=lambda kv: -kv[1]):
                if seconds >= 0.005:
                    voluntary, forced = switches_of.get(tid, (0, 0))
                    label = names[pid].get(tid, "native (gRPC/other)")
                    print(
                        f"  {seconds:6.2f} s  {voluntary:6,} waits {forced:5,} preempted  "
                        f"{label} [{tid}]"
                    )
        for pid, out, _ in recorders:
            summarize(pid, out, args.top)


def summarize(pid: int, out: Path, top: int) -> None:
    """Inclusive share of samples per function in py-spy's raw (collapsed) output."""
    if not out.exists():
        print(f"no py-spy output for {pid}")
        return
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in out.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        threads[frames[0]] += count
        leaves[frames[-1].split(" (")[0]] += count
        for frame in set(f.split(" (")[0] for f in frames[1:]):
            inclusive[frame] += count
    print(f"py-spy --gil, slot process {pid}: {samples} samples")
    for name, count in threads.most_common(6):
        print(f"  {100 * count / samples:5.1f} %  {name}")
    print("  inclusive:")
    for name, count in inclusive.most_common(top):
        print(f"  {100 * count / samples:5.1f} %  {name}")
    print("  self:")
    for name, count in leaves.most_common(top):
        print(f"  {100 * count / samples:5.1f} %  {name}")


if __name__ == "__main__":
    main()
