"""Run one ZooKeeper peer of the quorum in ``conf/zoo.cfg``, as Flink's ``bin/zookeeper.sh``.

``bin/start-zookeeper-quorum.sh`` starts ``python -m jobmanager.ha.zookeeper_server --peer-id N``
on the host of each ``server.N=host:peer-port:leader-port`` line (through ``strom-daemon.sh``,
so it gets a pid file and a log like the JobManager's). This process writes the peer's ``myid``
and effective configuration into its ``dataDir`` (Flink's default: a folder under the system's
temporary folder), runs ZooKeeper's ``QuorumPeerMain`` on Java as a child, logs `` started``
once the peer answers ZooKeeper's ``srvr`` command, and stops the child on SIGTERM.

ZooKeeper comes from Debian's ``zookeeper`` package (``/usr/share/java/zookeeper.jar``, whose
manifest names its dependencies; ``bash tests/zookeeper/install-deps.sh`` installs it) or from
an Apache release unpacked at ``$ZOOKEEPER_HOME``.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from strom.daemon import configure_logging

log = logging.getLogger(__name__)

DEBIAN_JAR = "/usr/share/java/zookeeper.jar"
# ZooKeeper logs through SLF4J; Debian ships a binding that writes to stderr (the .out file).
DEBIAN_LOGGING_JAR = "/usr/share/java/slf4j-simple.jar"
INSTALL_HINT = (
    "ZooKeeper is not installed: run `bash tests/zookeeper/install-deps.sh` as root (Debian's "
    "zookeeper package) or set ZOOKEEPER_HOME to an unpacked Apache ZooKeeper release"
)
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


class ZooKeeperNotInstalled(RuntimeError):
    """Neither Debian's zookeeper package nor ``$ZOOKEEPER_HOME`` nor Java is there."""


def read_zoo_cfg(path: str | Path) -> dict[str, str]:
    """The ``key=value`` lines of a ZooKeeper configuration file, in order."""
    values: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def quorum_peers(values: dict[str, str]) -> dict[int, str]:
    """Peer id → host of each ``server.N=host:peer-port:leader-port`` line."""
    peers: dict[int, str] = {}
    for key, value in values.items():
        if key.startswith("server.") and key[len("server.") :].isdigit():
            peers[int(key[len("server.") :])] = value.split(":", 1)[0]
    return peers


def classpath() -> str:
    """The Java classpath of an installed ZooKeeper; raises :class:`ZooKeeperNotInstalled`."""
    home = os.environ.get("ZOOKEEPER_HOME")
    if home:
        jars = sorted(glob.glob(os.path.join(home, "lib", "*.jar")))
        jars += sorted(glob.glob(os.path.join(home, "*.jar")))
        if not jars:
            raise ZooKeeperNotInstalled(f"ZOOKEEPER_HOME={home} holds no jars; {INSTALL_HINT}")
        return os.pathsep.join(jars)
    if not os.path.exists(DEBIAN_JAR):
        raise ZooKeeperNotInstalled(INSTALL_HINT)
    jars = [DEBIAN_JAR]
    if os.path.exists(DEBIAN_LOGGING_JAR):
        jars.append(DEBIAN_LOGGING_JAR)
    return os.pathsep.join(jars)


def java_binary() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, "java")
        if os.access(candidate, os.X_OK):
            return candidate
    raise ZooKeeperNotInstalled(f"there is no java (set JAVA_HOME); {INSTALL_HINT}")


def server_command(config_file: str | Path, heap: str = "256m") -> list[str]:
    """The command that runs a ZooKeeper peer with ``config_file``."""
    return [
        java_binary(),
        f"-Xmx{heap}",
        "-Dzookeeper.admin.enableServer=false",
        "-cp",
        classpath(),
        MAIN_CLASS,
        str(config_file),
    ]


def write_peer_config(values: dict[str, str], peer_id: int, data_dir: str | Path) -> Path:
    """Write ``myid`` (in a quorum) and the peer's effective configuration into ``data_dir``.

    The values are those of ``conf/zoo.cfg`` with ``dataDir`` set; ZooKeeper's four-letter
    commands ``ruok``/``srvr``/``stat`` are enabled so that scripts and tests can ask a peer
    whether it serves.
    """
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    effective = dict(values)
    effective["dataDir"] = str(folder)
    effective.setdefault("4lw.commands.whitelist", "ruok,srvr,stat")
    effective.setdefault("admin.enableServer", "false")
    if len(quorum_peers(values)) > 1:
        (folder / "myid").write_text(f"{peer_id}\n")
    path = folder / f"zoo-{peer_id}.cfg"
    path.write_text("".join(f"{key}={value}\n" for key, value in effective.items()))
    return path


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """ZooKeeper's answer to a four-letter command such as ``srvr``; empty when unreachable."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(word.encode())
            chunks = []
            while True:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def is_serving(host: str, port: int) -> bool:
    """Whether the peer at host:port serves clients (standalone, or in a quorum with a leader)."""
    return "Mode:" in four_letter_word(host, port, "srvr")


def main(argv: list[str] | None = None) -> int:
    """Run a ZooKeeper peer until SIGTERM; see the module's docstring."""
    parser = argparse.ArgumentParser(
        prog="zookeeper", description="Run a ZooKeeper peer of conf/zoo.cfg."
    )
    parser.add_argument("--conf-dir", "-c", default=os.environ.get("STROM_CONF_DIR", "conf"))
    parser.add_argument("--peer-id", type=int, default=1, help="N of the server.N line")
    parser.add_argument("--zoo-cfg", default=None, help="default: <conf-dir>/zoo.cfg")
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("STROM_LOG_FILE"), os.environ.get("STROM_LOG_LEVEL", "INFO"))

    zoo_cfg = Path(args.zoo_cfg or Path(args.conf_dir) / "zoo.cfg")
    try:
        values = read_zoo_cfg(zoo_cfg)
    except OSError as error:
        print(f"zookeeper could not start: {error}", file=sys.stderr)
        return 1
    peers = quorum_peers(values)
    if peers and args.peer_id not in peers:
        print(f"zookeeper could not start: {zoo_cfg} has no server.{args.peer_id}", file=sys.stderr)
        return 1
    data_dir = values.get("dataDir") or os.path.join(
        tempfile.gettempdir(), f"strom-zookeeper-{args.peer_id}"
    )
    port = int(values.get("clientPort", "2181"))
    try:
        config_file = write_peer_config(values, args.peer_id, data_dir)
        command = server_command(config_file)
    except (ZooKeeperNotInstalled, OSError) as error:
        print(f"zookeeper could not start: {error}", file=sys.stderr)
        return 1

    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("received %s, stopping ZooKeeper", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    announced = False
    while not stop.is_set() and child.poll() is None:
        if not announced and is_serving("127.0.0.1", port):
            log.info("ZooKeeper peer %d started (client port %d)", args.peer_id, port)
            announced = True
        stop.wait(0.2 if not announced else 1.0)
    if child.poll() is None:
        child.terminate()
        deadline = time.monotonic() + 10
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if child.poll() is None:
            child.kill()
        child.wait()
        return 0
    log.error("ZooKeeper exited with code %s", child.returncode)
    return child.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
