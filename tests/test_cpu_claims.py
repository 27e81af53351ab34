"""A CPU of its own for the task threads of each process that runs tasks
(``taskmanager/cpu_claims.py``): claims are exclusive on a host and end with their process;
the task threads of slot processes and of an embedded run stay on the claimed CPU, and
``taskmanager.cpu-affinity: false`` leaves them free."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO_ROOT, python_env
from jobs_support import remote

from strom.datastream import MapFunction, StreamExecutionEnvironment
from taskmanager import cpu_claims

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a host whose threads can be kept on one of two or more CPUs",
)

CLAIMER = """
import sys
from pathlib import Path
from taskmanager import cpu_claims
print(cpu_claims.claim_cpu(Path(sys.argv[1])), flush=True)
sys.stdin.readline()
"""


def claimer(folder: Path) -> tuple[subprocess.Popen, int | None]:
    """A process that claims a CPU in ``folder`` and holds it until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
        cwd=str(REPO_ROOT),
    )
    answer = process.stdout.readline().strip()
    return process, None if answer == "None" else int(answer)


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()
    process.stdout.close()
    process.stdin.close()


def printed_by(script: str, folder: Path) -> list[str]:
    """The words a script run with the claims folder ``folder`` printed."""
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=str(REPO_ROOT),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_each_process_claims_a_cpu_of_its_own_until_it_ends(tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    holders = [claimer(tmp_path) for _ in cpus]
    try:
        assert sorted(cpu for _, cpu in holders) == cpus
        extra, cpu = claimer(tmp_path)
        holders.append((extra, cpu))
        assert cpu is None  # every CPU is claimed: its threads run wherever the kernel puts them
        first, its_cpu = holders[0]
        first.kill()  # however a process ends, the kernel drops its lock
        first.wait()
        again, cpu = claimer(tmp_path)
        holders.append((again, cpu))
        assert cpu == its_cpu
    finally:
        for process, _ in holders:
            stop(process)


def test_a_claims_folder_that_others_may_write_to_or_a_link_is_not_used(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    planted = tmp_path / "own"
    planted.mkdir(mode=0o700)
    (planted / "cpu-0").symlink_to(tmp_path / "target")  # a link where a claim file goes
    for folder, expected in ((shared, None), (link, None)):
        process, cpu = claimer(folder)
        stop(process)
        assert cpu is expected
    process, cpu = claimer(planted)
    try:
        cpus = sorted(os.sched_getaffinity(0))
        assert cpu == (cpus[1] if cpus[0] == 0 else cpus[0])  # CPU 0's file is a link: skipped
        assert not (tmp_path / "target").exists()  # the link was not followed
    finally:
        stop(process)


def test_no_claims_folder_to_be_had_means_no_claim(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # where the folder would go
    process, cpu = claimer(blocked / "claims")
    stop(process)
    assert cpu is None


PINNER = """
import os, sys, threading
from pathlib import Path
from taskmanager import cpu_claims
everything = os.sched_getaffinity(0)
cpu_claims.pin_thread()  # nothing claimed yet: nothing changes
unclaimed = os.sched_getaffinity(0) == everything
cpu = cpu_claims.claim_cpu(Path(sys.argv[1]))
seen = {}
pinned, released = threading.Event(), threading.Event()
def task():
    cpu_claims.pin_thread()
    seen["task"] = os.sched_getaffinity(0)
    pinned.set()
    released.wait()
    seen["after"] = os.sched_getaffinity(0)
thread = threading.Thread(target=task)
thread.start()
pinned.wait()
main = os.sched_getaffinity(0)
cpu_claims.release_cpu()
released.set()
thread.join()
print(unclaimed, seen["task"] == {cpu}, main == everything, seen["after"] == everything,
      cpu_claims.claimed_cpu())
"""


def test_a_thread_pinned_to_the_claimed_cpu_goes_free_again_when_the_claim_is_released(
    tmp_path,
):
    assert printed_by(PINNER, tmp_path) == ["True", "True", "True", "True", "None"]


FORKER = """
import fcntl, os, sys, threading
from pathlib import Path
from taskmanager import cpu_claims
everything = os.sched_getaffinity(0)
cpu = cpu_claims.claim_cpu(Path(sys.argv[1]))
def task():
    cpu_claims.pin_thread()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # a user function's multiprocessing worker
        free = os.sched_getaffinity(0) == everything
        os.write(writer, f"{free} {cpu_claims.claimed_cpu()}".encode())
        os._exit(0)
    os.waitpid(child, 0)
    probe = os.open(Path(sys.argv[1]) / f"cpu-{cpu}", os.O_RDWR)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = False
    except OSError:
        held = True  # the child closed its copy of the claim; this process holds it still
    print(os.read(reader, 100).decode(), os.sched_getaffinity(0) == {cpu}, held)
thread = threading.Thread(target=task)
thread.start()
thread.join()
"""


def test_a_process_forked_by_a_pinned_thread_runs_free_and_claims_nothing(tmp_path):
    assert printed_by(FORKER, tmp_path) == ["True", "None", "True", "True"]


class CpusOfTheTask(MapFunction):
    """How many CPUs the task's thread may run on."""

    def map(self, value):
        return len(os.sched_getaffinity(0))


def cpus_seen(parallelism: int = 1) -> list[int]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    stream = env.from_collection(list(range(20))).map(CpusOfTheTask())
    with stream.execute_and_collect() as results:
        return list(results)


@pytest.mark.parametrize("affinity", [True, False])
def test_the_task_threads_of_a_slot_process_run_on_the_cpu_it_claimed(
    affinity, local_cluster, tmp_path, monkeypatch
):
    monkeypatch.setenv("STROM_CPU_CLAIMS_DIR", str(tmp_path / "claims"))
    cluster = local_cluster(slots=1, **{"taskmanager.cpu-affinity": affinity})
    cluster.start(taskmanagers=1)
    with remote(cluster.address):
        seen = cpus_seen()
    everything = len(os.sched_getaffinity(0))
    assert seen == [1 if affinity else everything] * 20


def test_an_embedded_run_keeps_its_task_threads_on_one_cpu_and_frees_it_after(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("STROM_CPU_CLAIMS_DIR", str(tmp_path / "claims"))
    before = os.sched_getaffinity(0)
    assert set(cpus_seen(parallelism=2)) == {1}
    assert cpu_claims.claimed_cpu() is None  # the mini-cluster gave it back
    assert os.sched_getaffinity(0) == before  # the program's own thread was never pinned
    process, cpu = claimer(tmp_path / "claims")  # ... and another process may claim any CPU
    try:
        assert cpu == min(before)
    finally:
        stop(process)
