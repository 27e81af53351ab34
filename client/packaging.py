"""A job's own files: the Python modules beside its main script travel with it."""

from __future__ import annotations

import os
from pathlib import Path

from strom.errors import StromError
from strom.rpc import cluster_pb2 as pb

MAX_JOB_FILES_BYTES = 64 * 1024 * 1024
_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", "log", "build", "dist"}
_SHIPPED_SUFFIXES = {".py", ".json", ".yaml", ".yml", ".txt", ".csv", ".cfg", ".ini"}


def collect_job_files(root: str | os.PathLike[str]) -> list[pb.JobFile]:
    """The modules and small data files under the job's folder (hidden folders skipped)."""
    root_path = Path(root)
    files: list[pb.JobFile] = []
    total = 0
    for folder, dirnames, filenames in os.walk(root_path):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS
        )
        for name in sorted(filenames):
            path = Path(folder) / name
            if path.suffix not in _SHIPPED_SUFFIXES or name.startswith("."):
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if path.suffix != ".py" and size > 1024 * 1024:
                continue  # data files: only small ones travel
            total += size
            if total > MAX_JOB_FILES_BYTES:
                raise StromError(
                    f"the job's folder {root_path} holds more than "
                    f"{MAX_JOB_FILES_BYTES // (1024 * 1024)} MiB of files to ship; move the "
                    "job's script into a folder of its own"
                )
            files.append(
                pb.JobFile(path=str(path.relative_to(root_path)), content=path.read_bytes())
            )
    return files
