"""Real Redis and PostgreSQL servers for the connector tests, each in its own temporary folder
on a port the OS gave, stopped (and its folder removed) when the test ends.

The binaries come from Debian's ``redis-server`` and ``postgresql`` packages
(``tests/services/install-deps.sh``); without them, or without the Python clients, a test using
these fixtures skips and says what is missing. PostgreSQL refuses to run as root, so as root
the server runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from harness import free_port, http_json, poll_for

__all__ = ["PostgresServer", "RedisServer", "postgres_bin"]


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (bash tests/services/install-deps.sh)")
        pytest.importorskip("redis", reason="the redis client is not installed (pip install redis)")
        self.directory = tempfile.mkdtemp(prefix="strom-redis-")
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.directory,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        poll_for(lambda: self.client().ping(), what="redis-server to answer")

    def client(self):
        """A redis-py client that decodes replies to ``str``."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries (``initdb``, ``pg_ctl``), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """A fresh PostgreSQL cluster (``initdb``) on a free port, with ``wal_level=logical`` for
    change data capture and ``max_prepared_transactions`` for two-phase commit."""

    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            pytest.skip("PostgreSQL is not installed (bash tests/services/install-deps.sh)")
        pytest.importorskip("psycopg", reason="psycopg is not installed (pip install psycopg)")
        self.binaries = binaries
        self.directory = Path(tempfile.mkdtemp(prefix="strom-postgres-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.user = "strom"
        self._run_as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.directory}'",
            "wal_level": "logical",
            "max_replication_slots": "10",
            "max_wal_senders": "10",
            "max_prepared_transactions": "50",
            "max_connections": "100",
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-w", "start")
        poll_for(lambda: self.connect().close() or True, what="PostgreSQL to accept connections")

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._run_as, str(self.binaries / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}")

    @property
    def url(self) -> str:
        """The server's URL (``postgresql://...``), as the connectors take it."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def connect(self, **kwargs):
        """An autocommit psycopg connection."""
        import psycopg

        return psycopg.connect(self.url, autocommit=True, **kwargs)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one statement (none for statements without a result)."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except Exception:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)


def kill_taskmanagers_during(cluster, client, seed: int, kills: int = 3) -> int:
    """SIGKILL a TaskManager running the job ``kills`` times, each at a random moment after a
    new checkpoint completed (a random number of further source records on), starting a
    replacement each time; returns how many kills happened before the job ended."""
    import random
    import signal

    from test_checkpointing import pids_running, source_records

    from client.gateway import ClusterClient

    rng = random.Random(seed)
    job_id = client.get_job_id()

    def completed() -> int:
        # As the JobManager counts them: a checkpoint whose _metadata is on disk is complete
        # only once the JobManager has recorded it (and, with HA, published it); a kill in
        # between restores the one before.
        stats = http_json(f"{cluster.rest_url}/jobs/{job_id}/checkpoints")
        return stats["counts"]["completed"]

    def restarts() -> int:
        with ClusterClient(cluster.address) as jobs:
            return jobs.job(job_id).restarts

    done = 0
    for _ in range(kills):
        if done:
            # First the restart the kill caused: a checkpoint of the killed attempt whose
            # acknowledgements had all arrived may complete just after the kill, and would
            # pass for a new one while the job restarts (then no further kill would happen).
            poll_for(
                lambda d=done: (
                    (restarts() >= d and client.get_job_status() == "RUNNING")
                    or client.get_job_status() == "FINISHED"
                ),
                timeout=60,
                what="the job running again after the kill",
            )
        before = completed()
        poll_for(
            lambda b=before: completed() > b or client.get_job_status() == "FINISHED",
            timeout=60,
            what="a new completed checkpoint",
        )
        if client.get_job_status() == "FINISHED":
            break
        target = source_records(cluster, job_id) + rng.randrange(0, 1500)
        poll_for(
            lambda t=target: (
                source_records(cluster, job_id) >= t or client.get_job_status() != "RUNNING"
            ),
            timeout=60,
            what="the job to read further",
        )
        if client.get_job_status() != "RUNNING":
            # It finished meanwhile (or is restarting): a kill now would restart nothing, and
            # the caller's ``restarts >= kills`` would count a failure that was not injected.
            break
        pid = rng.choice(pids_running(cluster, job_id))
        victim = next(tm for tm in cluster.taskmanagers if tm.pid == pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        done += 1
        cluster.start_taskmanager(wait=False)
    return done
