"""A CPU of its own for the task threads of each process that runs tasks.

A process's threads take turns under the GIL: a source task's thread hands a batch to the
keyed task's thread and waits while that one runs it. Left to the kernel, a thread woken by a
hand-off goes to an idle core, so where one is idle (a job at parallelism 1 on a host of two
cores) every batch moved from one core's cache to the other's, and the threads paid in cache
misses for what they could not win in parallelism. Word count at parallelism 1 took 1.31 s;
with its task threads kept on one core, 1.05 s (bench/RESULTS.md, "Session 10").

So a process that runs tasks claims one CPU for them, host-wide: the lowest of the CPUs it
may run on whose claim file no other process holds locked (``flock``: the kernel drops a lock
when its process ends, however it ends). When every CPU is claimed (more slot processes than
CPUs), it claims none and its threads run wherever the kernel puts them, as before. Only the
threads that run tasks' Python are pinned: task threads, and the data-plane loop that moves
their records to and from other processes; gRPC's own threads stay free. Threads that a
user function starts inherit the CPU, and so do programs they run (``subprocess``), so a job
whose functions do parallel work of their own that way (multithreaded NumPy) should run with
``taskmanager.cpu-affinity: false``. A process they fork (``multiprocessing``) runs free.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
import threading
from pathlib import Path

__all__ = ["claim_cpu", "claimed_cpu", "pin_thread", "release_cpu"]

_lock = threading.Lock()
_claim: tuple[int, int] | None = None  # (cpu, descriptor of its locked claim file)
#: native ids of the threads pinned to the claimed CPU, with the CPUs they could run on
_pinned: dict[int, set[int]] = {}


def default_directory() -> Path:
    """Where the claim files live: ``$STROM_CPU_CLAIMS_DIR``, else a folder of this user's in
    the temporary folder (so every process of the host's Strom clusters sees the same)."""
    configured = os.environ.get("STROM_CPU_CLAIMS_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"strom-cpu-claims-{os.getuid()}"


def claim_cpu(directory: Path | None = None) -> int | None:
    """Claim a CPU for this process's task threads; the CPU, or None if none is free (or this
    platform cannot pin threads, or this process may run on one CPU only). Claims once: later
    calls return the same CPU until ``release_cpu``."""
    global _claim
    with _lock:
        if _claim is not None:
            return _claim[0]
        if not hasattr(os, "sched_setaffinity"):
            return None
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:
            return None
        folder = default_directory() if directory is None else directory
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _own_private_folder(folder):
                return None
        except OSError:  # no such folder to be had (a read-only temporary folder): run free
            return None
        for cpu in allowed:
            try:
                fd = os.open(folder / f"cpu-{cpu}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError:  # not a plain file of ours: not a claim to take
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            _claim = (cpu, fd)
            return cpu
        return None


def _own_private_folder(folder: Path) -> bool:
    """Whether ``folder`` is a real folder of this user's that no one else may write to (in
    a shared temporary folder, another user could have made it first, or a link)."""
    status = os.lstat(folder)
    return (
        stat.S_ISDIR(status.st_mode)
        and status.st_uid == os.getuid()
        and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def claimed_cpu() -> int | None:
    """The CPU this process claimed, if it did."""
    claim = _claim
    return None if claim is None else claim[0]


def pin_thread() -> None:
    """Keep the calling thread on this process's claimed CPU (nothing if it claimed none)."""
    with _lock:
        if _claim is None:
            return
        thread = threading.get_native_id()
        cpus = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, (_claim[0],))
        except OSError:  # the CPU was taken from this process (a cgroup's cpuset changed)
            return
        _pinned.setdefault(thread, cpus)


_forking_thread = 0


def _before_fork() -> None:
    global _forking_thread
    _forking_thread = threading.get_native_id()


def _after_fork_in_child() -> None:
    """A process forked by a pinned thread (a user function's ``multiprocessing`` worker)
    runs Python under a GIL of its own: it holds no claim and runs where its parent's thread
    could before it was pinned. (The claim stays the parent's: a ``flock`` lock lasts while
    any descriptor of it is open.)"""
    global _claim, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    claim, _claim = _claim, None
    if claim is None:
        return
    os.close(claim[1])
    cpus = _pinned.get(_forking_thread)
    _pinned.clear()
    if cpus is not None:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:  # some of those CPUs were taken from the process meanwhile
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def release_cpu() -> None:
    """Give the claimed CPU back, and let the threads pinned to it that still run go where
    they could before (an embedded mini-cluster stops; the program goes on)."""
    global _claim
    with _lock:
        if _claim is None:
            return
        for thread, cpus in _pinned.items():
            if not os.path.exists(f"/proc/self/task/{thread}"):
                continue  # ended (its id may be another process's thread's by now)
            try:
                os.sched_setaffinity(thread, cpus)
            except OSError:  # it ended meanwhile
                pass
        _pinned.clear()
        os.close(_claim[1])
        _claim = None
