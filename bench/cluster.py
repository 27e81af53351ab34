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
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    address: str
    taskmanager_pids: list[int]
    #: the JobManager's REST API, ``http://127.0.0.1:<port>``
    rest: str = ""
    #: spares serving once the cluster came up (none on a checkout from before them)
    expected_spares: int = 0

    def cpu_seconds(self) -> float:
        """CPU seconds the TaskManagers and every process under them used so far, ended
        processes included once reaped (slot processes end with their job)."""
        total = 0.0
        for pid in self.taskmanager_pids:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                try:
                    t = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def settled_cpu_seconds(self, processes: int, timeout: float = 10.0) -> float:
        """``cpu_seconds`` once the TaskManagers are back to ``processes`` processes in all
        (a finished job's slot processes reaped, so their time is counted) and have as many
        spares serving as at the start (so the next job finds them as on a quiet cluster)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
            self.process_count() != processes or self.spares() < self.expected_spares
        ):
            time.sleep(0.02)
        return self.cpu_seconds()

    def spares(self) -> int:
        """Slot processes started ahead of any job (``taskmanager.slot-process.prestart``)."""
        count = 0
        for pid in self.taskmanager_pids:
            for child in psutil.Process(pid).children(recursive=True):
                try:
                    count += child.name() == "strom-spare"
                except psutil.NoSuchProcess:
                    pass
        return count

    def process_count(self) -> int:
        count = 0
        for pid in self.taskmanager_pids:
            count += 1 + len(psutil.Process(pid).children(recursive=True))
        return count


@contextlib.contextmanager
def local_cluster(
    taskmanagers: int,
    work: Path,
    slots: int = 1,
    tls: bool = False,
    repo: Path = REPO,
    pin: bool = False,
) -> Iterator[Cluster]:
    """Start a JobManager and ``taskmanagers`` TaskManagers of ``slots`` slots each (with
    internal mutual TLS when ``tls``), running the code of the checkout ``repo``; yields the
    cluster, and makes ``env.execute()`` submit to it meanwhile. ``pin``: TaskManager ``k``
    (its slot processes too) runs on CPU ``k`` only, as if each were a host of its own."""
    from strom.datastream import execution_context

    conf = work / f"conf-{time.monotonic_ns()}"
    conf.mkdir(parents=True)
    rpc, rest = _free_port(), _free_port()
    text = (
        f"jobmanager.rpc.address: 127.0.0.1\njobmanager.rpc.port: {rpc}\nrest.port: {rest}\n"
        f"taskmanager.numberOfTaskSlots: {slots}\n"
    )
    client_tls = None
    if tls:
        from client.certs import config_lines, make_node_certificate
        from strom.rpc.tls import InternalTls

        node = make_node_certificate(conf / "certs", "127.0.0.1", ("jobmanager", "taskmanager"))
        text += "".join(f"{line}\n" for line in config_lines(conf / "certs", node))
        client_tls = InternalTls(
            node.certificate.read_bytes(),
            node.private_key.read_bytes(),
            (conf / "certs" / "ca.pem").read_bytes(),
        )
    (conf / "strom-conf.yaml").write_text(text)
    env = dict(os.environ, PYTHONPATH=str(repo), STROM_CONF_DIR=str(conf))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": repo}
    processes = [subprocess.Popen([sys.executable, "-m", "jobmanager"], **quiet)]
    try:
        from client.gateway import ClusterClient

        for index in range(taskmanagers):
            cpus = {index % os.cpu_count()} if pin else None
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "taskmanager"],
                    preexec_fn=(lambda c=cpus: os.sched_setaffinity(0, c)) if pin else None,
                    **quiet,
                )
            )
        deadline = time.monotonic() + 30
        with ClusterClient(f"127.0.0.1:{rpc}", tls=client_tls) as cluster:
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
        cluster = Cluster(address, [p.pid for p in processes[1:]], f"http://127.0.0.1:{rest}")
        # A spare per slot, as a cluster has them between jobs; a checkout from before spares
        # (bench/ab.py's base) has none, and the wait ends at its deadline.
        deadline = time.monotonic() + 5
        while cluster.spares() < taskmanagers * slots and time.monotonic() < deadline:
            time.sleep(0.02)
        cluster.expected_spares = cluster.spares()
        context = execution_context.ExecutionContext(target="remote", jobmanager=address)
        previous = execution_context.set_current(context)
        # The client (this process) reads the cluster's configuration, TLS files included.
        previous_conf = os.environ.get("STROM_CONF_DIR")
        os.environ["STROM_CONF_DIR"] = str(conf)
        try:
            yield cluster
        finally:
            execution_context.set_current(previous)
            if previous_conf is None:
                os.environ.pop("STROM_CONF_DIR", None)
            else:
                os.environ["STROM_CONF_DIR"] = previous_conf
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
