"""A TaskManager's working folder (``strom-tm-*`` in the temp folder), and the removal of
folders left behind by TaskManagers that were killed.

Each folder holds a lock file its TaskManager keeps locked (``flock``) for as long as it lives;
the kernel drops the lock when the process ends however it ends, so a folder whose lock can be
taken belongs to no live process and is removed when a TaskManager starts.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "strom-tm-"
LOCK_NAME = ".owner.lock"
#: a lock file younger than this is left alone: its TaskManager may be about to lock it
UNLOCKED_GRACE_S = 60.0

_held: dict[Path, int] = {}


def remove_stale_work_dirs(parent: Path | None = None) -> list[Path]:
    """Remove the ``strom-tm-*`` folders of ``parent`` (the temp folder) that no live process
    owns; returns the ones removed."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    for folder in sorted(parent.glob(f"{PREFIX}*")):
        if not folder.is_dir() or folder in _held:
            continue
        lock_path = folder / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            continue  # not ours to judge: made by a TaskManager that takes no lock
        except OSError:
            continue  # another user's folder
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its TaskManager lives
        try:
            if time.time() - os.fstat(fd).st_mtime > UNLOCKED_GRACE_S:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d folder(s) left by TaskManagers that were killed", len(removed))
    return removed


def claim_work_dir(parent: Path | None = None) -> Path:
    """Remove stale folders, then create and lock this process's own working folder."""
    remove_stale_work_dirs(parent)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held[folder] = fd
    return folder


def release_work_dir(folder: Path) -> None:
    """Remove the folder and drop its lock (the TaskManager stops)."""
    shutil.rmtree(folder, ignore_errors=True)
    fd = _held.pop(folder, None)
    if fd is not None:
        os.close(fd)
