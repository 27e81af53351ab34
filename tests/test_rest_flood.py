"""A flood of idle and slow HTTP connections on the REST port while a job runs.

Thousands of connections are kept open (reopened as the server closes them) for as long as
the job runs: a third send nothing, a third trickle a request header a byte at a time, and a
third ask for the job's details (which the JobManager samples from the TaskManagers) again as
soon as an answer arrives. No TaskManager may lose its
JobManager session (its heartbeats go on), the job runs without a restart, and its output is
exact. The flood is bounded in time by the job and a deadline.
"""

from __future__ import annotations

import errno
import selectors
import socket
import sys
import threading
import time

import psutil
from harness import http_json, poll_for
from jobs_support import remote
from test_checkpointing import build_job, checkpointed_env, committed_output, expected_output

from client.gateway import ClusterClient

CONNECTIONS = 3000
COUNT = 60_000
FLOOD_DEADLINE_S = 150


class Flood:
    """Keeps ``size`` connections to a port open from one thread, idle, slow and greedy in
    turn; a connection the server closes is opened again."""

    KINDS = ("idle", "slow", "greedy")

    def __init__(self, port: int, size: int, greedy_path: str) -> None:
        self.port = port
        self.size = size
        self.request = f"GET {greedy_path} HTTP/1.1\r\nHost: flood\r\n\r\n".encode()
        self.answers = 0
        self.selector = selectors.DefaultSelector()
        self.stopped = threading.Event()
        self.opened = 0
        self.closed_by_server = 0
        self.peak_open = 0
        self._thread = threading.Thread(target=self._run, name="rest-flood", daemon=True)

    def start(self) -> Flood:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=30)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()

    def _open(self, kind: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            return
        state = {"kind": kind, "sent": 0}
        if kind == "greedy":
            self.selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, state)
        else:
            self.selector.register(sock, selectors.EVENT_READ, state)
        self.opened += 1

    def _run(self) -> None:
        header = b"GET /overview HTTP/1.1\r\nHost: flood\r\nX-Slow: " + b"a" * 4000
        next_trickle = next_open = time.monotonic()
        while not self.stopped.is_set():
            if time.monotonic() >= next_open:  # 500 new connections each 0.2 s, then 100
                next_open = time.monotonic() + 0.2
                missing = self.size - len(self.selector.get_map())
                budget = 500 if self.opened < self.size else 100
                for index in range(min(missing, budget)):
                    self._open(self.KINDS[(self.opened + index) % 3])
            self.peak_open = max(self.peak_open, len(self.selector.get_map()))
            for key, events in self.selector.select(timeout=0.2):
                if events & selectors.EVENT_WRITE:  # a greedy one connected: ask
                    self._ask(key)
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the server closed it
                    self.selector.unregister(key.fileobj)
                    key.fileobj.close()
                    self.closed_by_server += 1
                elif key.data["kind"] == "greedy":  # an answer (or part): ask again
                    self.answers += 1
                    self._ask(key)
            if time.monotonic() >= next_trickle:
                next_trickle = time.monotonic() + 0.5
                for key in list(self.selector.get_map().values()):
                    state = key.data
                    if state["kind"] == "slow" and state["sent"] < len(header):
                        try:
                            key.fileobj.send(header[state["sent"] : state["sent"] + 1])
                            state["sent"] += 1
                        except OSError:
                            pass

    def _ask(self, key: selectors.SelectorKey) -> None:
        try:
            key.fileobj.send(self.request)
        except OSError:
            pass
        if key.events & selectors.EVENT_WRITE:
            self.selector.modify(key.fileobj, selectors.EVENT_READ, key.data)


def test_idle_and_slow_connection_flood_during_a_job(local_cluster, tmp_path):
    # heartbeat.timeout at its default (the harness's 2 s is for quick failover tests): the
    # flood client shares the 2 cores with the cluster and the other tests' load.
    cluster = local_cluster(slots=2, **{"heartbeat.timeout": "5 s"}).start(taskmanagers=2)
    sessions = {tm["id"] for tm in http_json(f"{cluster.rest_url}/taskmanagers")["taskmanagers"]}
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    build_job(env, COUNT, output)
    with remote(cluster.address):
        client = env.execute_async("job under a REST flood")
    job_id = client.get_job_id()
    with ClusterClient(cluster.address) as jobs:
        poll_for(lambda: jobs.job(job_id).summary.state == "RUNNING", what="the job to run")
        flood = Flood(cluster.rest_port, CONNECTIONS, f"/jobs/{job_id}").start()
        started = time.monotonic()
        jobmanager = psutil.Process(cluster.jobmanager.pid)
        peak = {"threads": 0, "fds": 0}

        def ended() -> bool:
            peak["threads"] = max(peak["threads"], jobmanager.num_threads())
            peak["fds"] = max(peak["fds"], jobmanager.num_fds())
            return jobs.job(job_id).summary.state in ("FINISHED", "FAILED", "CANCELED")

        try:
            poll_for(ended, timeout=FLOOD_DEADLINE_S, interval=0.5, what="the job to end")
        finally:
            flood.stop()
        details = jobs.job(job_id)
    elapsed = time.monotonic() - started
    print(
        f"flood: {flood.opened} connections opened, {flood.closed_by_server} closed by the "
        f"server, peak {flood.peak_open} open, {flood.answers} answers read, for {elapsed:.1f} s; "
        f"the JobManager had at most {peak['threads']} threads and {peak['fds']} open files",
        file=sys.stderr,
    )
    logs = cluster.logs()
    assert details.summary.state == "FINISHED", details.failure
    assert flood.opened >= CONNECTIONS, "the flood did not reach its size"
    lost_signs = (
        "no heartbeat",
        "disconnected",
        "registered anew",
        "lost the JobManager",
        "silent",
    )
    for lost in lost_signs:
        assert lost not in logs, f"a TaskManager session was lost ({lost!r}):\n{logs[-4000:]}"
    assert logs.count("registered at JobManager") == 2, "a TaskManager registered again"
    # Connections cost the JobManager no thread each: a thread per connection is what let a
    # flood starve its heartbeat handling.
    assert peak["threads"] < 300, f"the JobManager grew to {peak['threads']} threads"
    assert flood.closed_by_server > 0, "the server kept every idle and slow connection open"
    assert details.restarts == 0, "the job restarted under the flood"
    assert committed_output(output) == expected_output(COUNT)
    after = {tm["id"] for tm in http_json(f"{cluster.rest_url}/taskmanagers")["taskmanagers"]}
    assert after == sessions
