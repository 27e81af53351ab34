"""A real ZooKeeper for the high-availability tests: Debian's zookeeper package (installed by
``bash tests/zookeeper/install-deps.sh``) started on a free loopback port in a temporary folder,
through the same launcher code as ``bin/start-zookeeper-quorum.sh``. A test that needs it skips
with the reason when ZooKeeper, Java or the kazoo client is missing."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from harness import free_port, poll_for

from jobmanager.ha import zookeeper_server

# Short ticks so that tests may use short sessions: ZooKeeper holds a client's session timeout
# to between 2 and 20 ticks (here 1 s to 10 s).
TICK_MS = 500


class ZooKeeperServer:
    """A standalone ZooKeeper on a free port; ``kill`` and ``start`` again keep its data."""

    def __init__(self) -> None:
        pytest.importorskip("kazoo", reason="the kazoo client is not installed (pip install kazoo)")
        try:
            zookeeper_server.classpath()
            zookeeper_server.java_binary()
        except zookeeper_server.ZooKeeperNotInstalled as error:
            pytest.skip(str(error))
        self.directory = Path(tempfile.mkdtemp(prefix="strom-zookeeper-"))
        self.port = free_port()
        self.config_file = zookeeper_server.write_peer_config(
            {
                "tickTime": str(TICK_MS),
                "initLimit": "10",
                "syncLimit": "5",
                "clientPort": str(self.port),
                "clientPortAddress": "127.0.0.1",
                "maxSessionTimeout": str(20 * TICK_MS),
            },
            1,
            self.directory / "data",
        )
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def address(self) -> str:
        """``host:port`` for ``high-availability.zookeeper.quorum``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server (again) and wait until it serves."""
        log = open(self.directory / "zookeeper.out", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            zookeeper_server.server_command(self.config_file, heap="128m"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        poll_for(
            lambda: (
                self.process.poll() is not None
                or zookeeper_server.is_serving("127.0.0.1", self.port)
            ),
            timeout=60,
            what="ZooKeeper to serve",
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"ZooKeeper exited:\n{self.output()}")

    def output(self) -> str:
        """What the server printed."""
        return (self.directory / "zookeeper.out").read_text(errors="replace")

    def client(self, timeout: float = 4.0):
        """A started kazoo client with a ``timeout`` s session (stop it when done)."""
        from kazoo.client import KazooClient

        client = KazooClient(hosts=self.address, timeout=timeout)
        client.start(timeout=30)
        return client

    def kill(self) -> None:
        """SIGKILL the server (its data stays for ``start``)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


class CuttableRelay:
    """A TCP relay from a free loopback port to ZooKeeper. :meth:`cut` closes every relayed
    connection and refuses new ones (as a partition does) until :meth:`restore`."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.refused = 0  # connections refused while cut
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._open.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.cut()
        self._listener.close()
