"""How a Strom process is recognised by its role, however it was started.

A JobManager or TaskManager sets its kernel process name (``/proc/<pid>/comm``) at start, so
``bin/jps`` finds it whether it came from the scripts, ``python -m``, the ``strom-*`` console
commands or a program calling its ``main``. The command line is checked as well, for a process
that has not reached that point yet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

JOBMANAGER = "StromJobManager"
TASKMANAGER = "StromTaskManager"
#: a TaskManager's slot process (it runs one job's subtasks; see taskmanager/slot_process.py)
TASK_SLOT = "StromTaskSlot"
#: the kernel name of a spare: a slot process its TaskManager started ahead of any job, for
#: a free slot. Part of its TaskManager, not a role (``bin/jps`` leaves it out) until it runs
#: a job, as a TASK_SLOT.
SPARE_NAME = "strom-spare"

# Kernel process names hold at most 15 characters.
_PROCESS_NAMES = {JOBMANAGER: "strom-jm", TASKMANAGER: "strom-tm", TASK_SLOT: "strom-slot"}
_COMMAND_MARKERS = {
    JOBMANAGER: ("jobmanager", "strom-jobmanager"),
    TASKMANAGER: ("taskmanager", "strom-taskmanager"),
}
_PR_SET_NAME = 15


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, through the symbols already loaded into this process: the interpreter
    links it. ``find_library`` is the fallback only, as it runs ``ldconfig`` (milliseconds a
    call, on every slot process's start-up path)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "prctl"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc


def prctl(option: int, argument: int | bytes) -> None:
    """``prctl(option, argument)`` on Linux; elsewhere, or when it cannot be called, nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        _libc().prctl(option, argument, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def set_process_role(role: str) -> None:
    """Name this process after its role (Linux only; elsewhere a no-op)."""
    os.environ["STROM_PROCESS_ROLE"] = role
    prctl(_PR_SET_NAME, _PROCESS_NAMES[role].encode())


def set_process_name(name: str) -> None:
    """Give this process a kernel name (at most 15 characters) that is not a role's."""
    prctl(_PR_SET_NAME, name.encode()[:15])


def role_of(name: str, cmdline: list[str]) -> str | None:
    """The Strom role of a process given its kernel name and command line, or None."""
    for role, process_name in _PROCESS_NAMES.items():
        if name == process_name:
            return role
    if not cmdline:
        return None
    program = os.path.basename(cmdline[0])
    args = cmdline[1:]
    for role, (module, script) in _COMMAND_MARKERS.items():
        if program == script:
            return role
        if "python" in program:
            for index, arg in enumerate(args):
                if arg == "-m" and index + 1 < len(args) and args[index + 1] == module:
                    return role
                if arg.endswith(f"{module}/__main__.py") or os.path.basename(arg) == script:
                    return role
    return None
