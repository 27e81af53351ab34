"""Test harness: real JobManager/TaskManager processes on free loopback ports, cleaned up always.

``poll_for`` replaces every fixed sleep; ``LocalCluster`` starts real processes with a
temporary conf dir and kills whatever it started (and their children) when the test ends,
also when it fails.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_ports = random.Random(os.getpid() ^ time.monotonic_ns())


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now and outside the OS's ephemeral range.

    Tests restart daemons at the address they had (a JobManager in ``conf/masters``, a
    TaskManager); a port the OS hands out for outgoing connections could be taken by one of
    those meanwhile, and the restart fail with "address already in use". So the port is
    chosen at random below that range and checked by binding it; only if none binds, the OS
    picks one.
    """
    low, _ = _ephemeral_range()
    for _ in range(100):
        port = _ports.randrange(10_000, max(low, 10_001))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def poll_for(
    condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # the condition may fail while things start up
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {what or condition}{detail}"
            )
        time.sleep(interval)


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def python_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: the repository importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def children_named(pid: int, name: str) -> list[psutil.Process]:
    """The processes under ``pid`` whose kernel name is ``name`` (a TaskManager's slot
    processes are ``strom-slot``, its spares ``strom-spare``)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.name() == name:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        parent = psutil.Process(pid)
        processes = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)


class LocalCluster:
    """A JobManager and TaskManagers as real processes on loopback, for one test."""

    #: Every cluster made, with the test that made it: a failing test's report shows the
    #: ends of its clusters' logs (tests/conftest.py), CI keeps no files.
    made: list[tuple[str, LocalCluster]] = []

    def __init__(self, tmp_path: Path, slots: int = 2, **config: Any) -> None:
        LocalCluster.made.append((os.environ.get("PYTEST_CURRENT_TEST", ""), self))
        self.conf_dir = tmp_path / "conf"
        self.log_dir = tmp_path / "log"
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.rpc_port = free_port()
        self.rest_port = free_port()
        self.config: dict[str, Any] = {
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": self.rpc_port,
            "rest.port": self.rest_port,
            "taskmanager.numberOfTaskSlots": slots,
            "heartbeat.interval": "200 ms",
            "heartbeat.timeout": "2 s",
            "cluster.registration.max-timeout": "500 ms",
        }
        self.config.update(config)
        (self.conf_dir / "strom-conf.yaml").write_text(yaml.safe_dump(self.config))
        self.jobmanager: subprocess.Popen | None = None
        self.taskmanagers: list[subprocess.Popen] = []
        self._all: list[subprocess.Popen] = []
        self._count = 0

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.rpc_port}"

    def _spawn(self, module: str, name: str) -> subprocess.Popen:
        self._count += 1
        log = open(self.log_dir / f"{name}-{self._count}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--conf-dir", str(self.conf_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=python_env(STROM_CONF_DIR=str(self.conf_dir)),
            cwd=str(REPO_ROOT),
        )
        log.close()
        self._all.append(process)
        return process

    def start_jobmanager(self) -> subprocess.Popen:
        self.jobmanager = self._spawn("jobmanager", "jobmanager")
        poll_for(lambda: http_json(self.rest_url + "/overview"), what="the JobManager's REST")
        return self.jobmanager

    def start_taskmanager(self, wait: bool = True) -> subprocess.Popen:
        before = self.overview()["taskmanagers"] if wait else 0
        process = self._spawn("taskmanager", "taskmanager")
        self.taskmanagers.append(process)
        if wait:
            poll_for(
                lambda: self.overview()["taskmanagers"] > before,
                what="the TaskManager to register",
            )
        return process

    def start(self, taskmanagers: int = 2) -> LocalCluster:
        self.start_jobmanager()
        for _ in range(taskmanagers):
            self.start_taskmanager()
        return self

    def overview(self) -> dict[str, Any]:
        return http_json(self.rest_url + "/overview")

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def log_tails(self, lines: int = 40) -> str:
        """The last ``lines`` lines of each log, for a failure report."""
        tails = []
        for path in sorted(self.log_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(tails)

    def stop(self) -> None:
        for process in self._all:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._all:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
