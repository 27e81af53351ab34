"""What a job ships to the TaskManagers: its script's folder and what PyFlink's flags name.

``strom run`` ships, as files unpacked into the job's own folder on each TaskManager (a folder
on the job's ``sys.path``, seen by no other job):

- the folder of the job's script (``-py``), hidden folders and caches left out;
- every ``-pyfs`` entry: a ``.py`` file, a folder (its contents, as if it were on the path) or
  a ``.zip``/``.whl``/``.egg`` (its members);
- every ``-pyarch`` archive, unpacked under its ``#target`` name (default: the archive's name);
- what ``-pyreq`` requirements install to (:func:`install_requirements`, run by ``strom run``
  with the client's pip; the cluster must run the client's Python version and platform).

All of it together may not exceed ``client.job-files.max-size``; more is an error that names
the key, never a silent omission.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from strom.errors import StromError
from strom.rpc import cluster_pb2 as pb

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", "log", "build", "dist"}
_ZIPPED_CODE = (".zip", ".whl", ".egg")


class JobFiles:
    """The files one job ships, by their path in the job's folder on a TaskManager."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._files: dict[str, bytes] = {}
        self._origins: dict[str, str] = {}

    def add(self, relative: str, content: bytes, origin: str) -> None:
        """Ship ``content`` as ``relative``; the same path from two origins is an error."""
        relative = relative.replace(os.sep, "/").lstrip("/")
        if ".." in relative.split("/"):
            raise StromError(f"{origin}: the path '{relative}' leaves the job's folder")
        known = self._files.get(relative)
        if known is not None:
            if known == content:
                return
            raise StromError(
                f"two files would ship as '{relative}': {self._origins[relative]} and {origin}; "
                "rename one of them"
            )
        self.total += len(content)
        if self.total > self.max_bytes:
            raise StromError(
                f"the job ships more than client.job-files.max-size ({_size(self.max_bytes)}): "
                f"the script's folder and what -pyfs, -pyarch and -pyreq name come to over "
                f"{_size(self.total)} with {origin}. Move the job's script into a folder of "
                "its own, ship less, or raise client.job-files.max-size (-D or the config)"
            )
        self._files[relative] = content
        self._origins[relative] = origin

    def add_folder(self, folder: str | os.PathLike[str], prefix: str = "") -> None:
        """Every file under ``folder`` (hidden entries and caches left out)."""
        root = Path(folder)
        for current, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS
            )
            for name in sorted(filenames):
                path = Path(current) / name
                if name.startswith(".") or name.endswith((".pyc", ".pyo")) or not path.is_file():
                    continue
                relative = path.relative_to(root).as_posix()
                self.add(f"{prefix}{relative}", path.read_bytes(), str(path))

    def add_zip(self, archive: str | os.PathLike[str], prefix: str = "") -> None:
        """The members of a zip archive (a wheel and an egg are zips too)."""
        try:
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.infolist():
                    if not member.is_dir():
                        origin = f"{archive}!{member.filename}"
                        self.add(f"{prefix}{member.filename}", bundle.read(member), origin)
        except zipfile.BadZipFile:
            raise StromError(f"'{archive}' is not a zip archive") from None

    def as_proto(self) -> list[pb.JobFile]:
        return [pb.JobFile(path=path, content=data) for path, data in self._files.items()]

    def paths(self) -> list[str]:
        return list(self._files)


def _size(count: int) -> str:
    if count >= 1024**2:
        return f"{count / 1024**2:.1f} MiB"
    return f"{count / 1024:.1f} KiB"


def add_python_files(files: JobFiles, entries: list[str]) -> None:
    """``-pyfs``: files, folders and zips that go on the job's path."""
    for entry in entries:
        path = Path(entry)
        if not path.exists():
            raise StromError(f"-pyfs: '{entry}' does not exist")
        if path.is_dir():
            files.add_folder(path)
        elif path.suffix in _ZIPPED_CODE:
            files.add_zip(path)
        else:
            files.add(path.name, path.read_bytes(), str(path))


def add_archives(files: JobFiles, entries: list[str]) -> None:
    """``-pyarch archive.zip#target``: unpacked in the job's folder under ``target``."""
    for entry in entries:
        archive, _, target = entry.partition("#")
        path = Path(archive)
        if not path.is_file():
            raise StromError(f"-pyarch: '{archive}' does not exist")
        files.add_zip(path, prefix=f"{target or path.name}/")


def install_requirements(entry: str, target: str) -> None:
    """``-pyreq requirements.txt[#cache dir]``: install with the client's pip into ``target``
    (offline from the cache dir when one is given); the caller ships ``target`` and puts it
    on the client's path."""
    requirements, _, cache = entry.partition("#")
    if not Path(requirements).is_file():
        raise StromError(f"-pyreq: '{requirements}' does not exist")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--target", target, "-r", requirements]
    if cache:
        command += ["--no-index", "--find-links", cache]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise StromError(f"-pyreq: installing '{requirements}' failed:\n{tail}")


def collect_job_files(
    root: str | os.PathLike[str] | None,
    python_files: list[str] | None = None,
    archives: list[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[pb.JobFile]:
    """Everything the job ships (see the module's docstring), as ``JobFile`` messages."""
    files = JobFiles(max_bytes)
    if root is not None:
        files.add_folder(root)
    add_python_files(files, python_files or [])
    add_archives(files, archives or [])
    return files.as_proto()
