"""A local cluster for benchmarks: a JobManager and TaskManagers as processes on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_cluster(taskmanagers: int, work: Path, slots: int = 1) -> Iterator[str]:
    """Start a JobManager and ``taskmanagers`` TaskManagers of ``slots`` slots each; yields
    the JobManager's address, and makes ``env.execute()`` submit there meanwhile."""
    from strom.datastream import execution_context

    conf = work / f"conf-{time.monotonic_ns()}"
    conf.mkdir(parents=True)
    rpc, rest = _free_port(), _free_port()
    (conf / "strom-conf.yaml").write_text(
        f"jobmanager.rpc.address: 127.0.0.1\njobmanager.rpc.port: {rpc}\nrest.port: {rest}\n"
        f"taskmanager.numberOfTaskSlots: {slots}\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), STROM_CONF_DIR=str(conf))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    processes = [subprocess.Popen([sys.executable, "-m", "jobmanager"], **quiet)]
    try:
        from client.gateway import ClusterClient

        for _ in range(taskmanagers):
            processes.append(subprocess.Popen([sys.executable, "-m", "taskmanager"], **quiet))
        deadline = time.monotonic() + 30
        with ClusterClient(f"127.0.0.1:{rpc}") as cluster:
            while True:
                try:
                    if cluster.overview().taskmanagers == taskmanagers:
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not come up")
                time.sleep(0.05)
        address = f"127.0.0.1:{rpc}"
        context = execution_context.ExecutionContext(target="remote", jobmanager=address)
        previous = execution_context.set_current(context)
        try:
            yield address
        finally:
            execution_context.set_current(previous)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
