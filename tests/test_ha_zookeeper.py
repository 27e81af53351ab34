"""High-availability services against a real ZooKeeper: the quorum scripts, leader election
between contenders (in this process and in child processes that are SIGKILLed), the published
leader and its fencing token, and the job graph and checkpoint-pointer stores surviving the
death of the leader that wrote them and refusing a deposed leader's writes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from harness import poll_for, python_env
from zookeeper import CuttableRelay, ZooKeeperServer

from jobmanager.ha.leader_election import NotLeader
from jobmanager.ha.services import ZooKeeperHaServices, create_ha_services, zookeeper_root
from strom.configuration import StromConfig
from strom.errors import ConfigurationError

SESSION = "2 s"  # the contenders' ZooKeeper session: how long a killed leader's lead outlives it


@pytest.fixture
def zookeeper():
    server = ZooKeeperServer()
    yield server
    server.stop()


def ha_config(
    zookeeper: ZooKeeperServer,
    storage: Path,
    cluster: str = "/test",
    session: str = SESSION,
    quorum: str | None = None,
) -> StromConfig:
    return StromConfig(
        {
            "high-availability.type": "zookeeper",
            "high-availability.zookeeper.quorum": quorum or zookeeper.address,
            "high-availability.storageDir": f"file://{storage}",
            "high-availability.cluster-id": cluster,
            "high-availability.zookeeper.client.session-timeout": session,
        }
    )


class Contender:
    """A JobManager's candidacy in this process, recording grants and revocations."""

    def __init__(self, config: StromConfig, name: str) -> None:
        self.services = ZooKeeperHaServices(config)
        self.services.start()
        self.granted: list[int] = []
        self.revoked = threading.Event()
        self.suspended = threading.Event()
        self.resumed: list[int] = []
        self.election = self.services.leader_election(
            f"{name}:6123",
            f"{name}:8081",
            self.granted.append,
            self.revoked.set,
            self.suspended.set,
            self.resumed.append,
        )
        self.election.start()

    def stop(self) -> None:
        self.election.stop()
        self.services.stop()


CHILD = textwrap.dedent(
    """
    import sys, threading
    from jobmanager.ha.services import ZooKeeperHaServices
    from strom.configuration import StromConfig

    quorum, storage, name, session = sys.argv[1:5]
    services = ZooKeeperHaServices(StromConfig({
        "high-availability.type": "zookeeper",
        "high-availability.zookeeper.quorum": quorum,
        "high-availability.storageDir": storage,
        "high-availability.cluster-id": "/test",
        "high-availability.zookeeper.client.session-timeout": session,
    }))
    services.start()
    holder = {}

    def granted(token):
        graphs = services.job_graph_store(holder["election"])
        pointers = services.checkpoint_pointer_store(holder["election"])
        graphs.put("job-of-" + name, ("graph of " + name).encode())
        pointers.put("job-of-" + name, 7, "/checkpoints/" + name + "/chk-7")
        print("LEADER", token, flush=True)

    holder["election"] = services.leader_election(name + ":6123", "", granted, lambda: None)
    holder["election"].start()
    threading.Event().wait()
    """
)


def start_child(zookeeper: ZooKeeperServer, storage: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, zookeeper.address, f"file://{storage}", name, SESSION],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=python_env(),
    )


def test_configuration_selects_the_services(zookeeper, tmp_path):
    assert create_ha_services(StromConfig()) is None
    with pytest.raises(ConfigurationError, match="zookeeper.quorum"):
        create_ha_services(StromConfig({"high-availability.type": "zookeeper"}))
    config = ha_config(zookeeper, tmp_path, cluster="/prod")
    assert zookeeper_root(config) == "/strom/prod"
    services = create_ha_services(config)
    services.start()
    try:
        assert services.client.exists("/strom/prod") is not None
    finally:
        services.stop()


def test_two_contenders_elect_one_leader_and_the_other_wins_when_it_leaves(zookeeper, tmp_path):
    config = ha_config(zookeeper, tmp_path)
    first = Contender(config, "jm-a")
    poll_for(lambda: first.granted, what="the only contender to lead")
    second = Contender(config, "jm-b")
    watcher = ZooKeeperHaServices(config)
    watcher.start()
    try:
        retrieval = watcher.leader_retrieval()
        leader = retrieval.wait_for_leader(timeout=20)
        assert (leader.address, leader.rest_address) == ("jm-a:6123", "jm-a:8081")
        assert leader.token == first.granted[0] == first.election.token
        assert not second.granted and not second.election.is_leader()

        first.stop()
        poll_for(lambda: second.granted, what="the standby to lead")
        assert first.revoked.is_set()
        leader = retrieval.wait_for_leader(timeout=20, newer_than=first.granted[0])
        assert leader.address == "jm-b:6123"
        # The token only grows from one leader to the next.
        assert leader.token == second.granted[0] > first.granted[0]
    finally:
        second.stop()
        watcher.stop()


def test_a_sigkilled_leader_is_replaced_and_its_stores_survive(zookeeper, tmp_path):
    storage = tmp_path / "ha"
    config = ha_config(zookeeper, storage)
    first = start_child(zookeeper, storage, "jm-a")
    second = None
    watcher = ZooKeeperHaServices(config)
    watcher.start()
    try:
        assert first.stdout.readline().startswith("LEADER"), "the first contender leads"
        second = start_child(zookeeper, storage, "jm-b")
        retrieval = watcher.leader_retrieval()
        old = retrieval.wait_for_leader(timeout=20)
        assert old.address == "jm-a:6123"

        first.send_signal(signal.SIGKILL)
        first.wait()
        # Nothing closed the session: the standby leads once ZooKeeper expires it.
        new = retrieval.wait_for_leader(timeout=30, newer_than=old.token)
        assert new is not None and new.address == "jm-b:6123"
        assert second.stdout.readline().split() == ["LEADER", str(new.token)]

        graphs = watcher.job_graph_store()
        pointers = watcher.checkpoint_pointer_store()
        assert graphs.job_ids() == ["job-of-jm-a", "job-of-jm-b"]
        assert graphs.get("job-of-jm-a") == b"graph of jm-a"
        pointer = pointers.get("job-of-jm-a")
        assert (pointer.checkpoint_id, pointer.external_path) == (7, "/checkpoints/jm-a/chk-7")
        # The graphs are files in the storage folder; ZooKeeper holds only their paths.
        files = sorted(p.name for p in (storage / "strom_test" / "jobgraphs").iterdir())
        assert len(files) == 2 and all(name.endswith(".graph") for name in files)
    finally:
        for child in (first, second):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
        watcher.stop()


def test_stores_replace_remove_and_ignore_older_checkpoints(zookeeper, tmp_path):
    services = ZooKeeperHaServices(ha_config(zookeeper, tmp_path))
    services.start()
    try:
        graphs = services.job_graph_store()
        graphs.put("j1", b"first")
        graphs.put("j1", b"second")
        assert graphs.get("j1") == b"second"
        assert len(list((tmp_path / "strom_test" / "jobgraphs").glob("j1-*.graph"))) == 1
        graphs.remove("j1")
        assert graphs.job_ids() == [] and graphs.get("j1") is None
        assert list((tmp_path / "strom_test" / "jobgraphs").glob("j1-*")) == []

        pointers = services.checkpoint_pointer_store()
        assert pointers.put("j1", 3, "/c/chk-3")
        assert not pointers.put("j1", 2, "/c/chk-2")
        assert pointers.get("j1").checkpoint_id == 3
        pointers.remove("j1")
        assert pointers.get("j1") is None

        attempts = services.attempt_store()
        assert attempts.highest("j1") == -1
        attempts.reserve("j1", 0)
        attempts.reserve("j1", 4)
        attempts.reserve("j1", 2)  # never lowers what an earlier deployment recorded
        assert attempts.highest("j1") == 4
        attempts.remove("j1")
        assert attempts.highest("j1") == -1
    finally:
        services.stop()


def test_a_deposed_leaders_writes_are_refused(zookeeper, tmp_path):
    config = ha_config(zookeeper, tmp_path)
    leader = Contender(config, "jm-a")
    admin = zookeeper.client()
    try:
        poll_for(lambda: leader.granted, what="the contender to lead")
        pointers = leader.services.checkpoint_pointer_store(leader.election)
        graphs = leader.services.job_graph_store(leader.election)
        attempts = leader.services.attempt_store(leader.election)
        assert pointers.put("j1", 1, "/c/chk-1")
        graphs.put("j1", b"graph")
        attempts.reserve("j1", 1)
        # Its candidacy vanishes as on an expired session, before it has noticed.
        root = zookeeper_root(config)
        for node in admin.get_children(f"{root}/leaderlatch"):
            admin.delete(f"{root}/leaderlatch/{node}")
        with pytest.raises(NotLeader):
            pointers.put("j1", 2, "/c/chk-2")
        with pytest.raises(NotLeader):
            graphs.remove("j1")
        with pytest.raises(NotLeader):  # so it deploys no attempt a new leader cannot know of
            attempts.reserve("j1", 2)
        assert pointers.get("j1").checkpoint_id == 1 and graphs.get("j1") == b"graph"
        assert attempts.highest("j1") == 1
    finally:
        admin.stop()
        admin.close()
        leader.stop()


def test_a_leader_cut_off_from_zookeeper_past_its_session_gives_up_its_lead(zookeeper, tmp_path):
    leader = Contender(ha_config(zookeeper, tmp_path), "jm-a")
    try:
        poll_for(lambda: leader.granted, what="the contender to lead")
        zookeeper.kill()
        poll_for(leader.suspended.is_set, timeout=20, what="the lead to be in doubt")
        poll_for(leader.revoked.is_set, timeout=20, what="the lead to be given up")
        assert not leader.election.is_leader()
        zookeeper.start()
        poll_for(lambda: len(leader.granted) == 2, timeout=30, what="the lead to come back")
    finally:
        leader.stop()


def test_a_leader_cut_off_from_zookeeper_within_its_session_leads_on(zookeeper, tmp_path):
    """A suspended connection puts the lead in doubt (the JobManager stops acting on it);
    back before the session expired, the candidacy and its token still stand: it leads on
    without having given up its lead.

    The leader alone is cut off, through a relay, and ZooKeeper runs on, so the session
    lives by ZooKeeper's clock. Killing and restarting ZooKeeper instead made it a race: a
    restarted ZooKeeper counts the session's timeout anew from its restart, and may take a
    reconnect while it starts up without ever answering it, which kazoo waits out for a
    whole session timeout (on a loaded machine: 10 s, the session expired)."""
    relay = CuttableRelay(zookeeper.address)
    config = ha_config(zookeeper, tmp_path, session="10 s", quorum=relay.address)
    leader = Contender(config, "jm-a")
    try:
        poll_for(lambda: leader.granted, what="the contender to lead")
        relay.cut()
        poll_for(leader.suspended.is_set, timeout=20, what="the lead to be in doubt")
        assert leader.election.is_leader() and leader.election.paused
        relay.restore()
        poll_for(lambda: leader.resumed, timeout=30, what="the lead to go on")
        assert leader.resumed == leader.granted == leader.granted[:1]
        assert not leader.revoked.is_set() and not leader.election.paused
    finally:
        leader.stop()
        relay.close()


def test_after_a_long_cut_a_leader_reconnects_within_retry_wait(zookeeper, tmp_path):
    """Reconnect attempts back off only up to retry-wait (kazoo's own cap is an hour), so a
    leader is back soon after ZooKeeper is, however long it was gone."""
    relay = CuttableRelay(zookeeper.address)
    config = ha_config(zookeeper, tmp_path, session="10 s", quorum=relay.address)
    config = config.with_overrides({"high-availability.zookeeper.client.retry-wait": 300})
    leader = Contender(config, "jm-a")
    try:
        poll_for(lambda: leader.granted, what="the contender to lead")
        relay.cut()
        # Pauses doubling from 100 ms up to 300 ms: seven attempts in about 2 s. Doubling with
        # no cap, the seventh came 13 s after the cut (0.2, 0.4, 0.8, 1.6, 2.9, 7.2 s apart).
        poll_for(lambda: relay.refused >= 7, timeout=8, what="seven reconnect attempts")
        relay.restore()
        poll_for(lambda: leader.resumed, timeout=4, what="the lead to go on")
        assert not leader.revoked.is_set()
    finally:
        leader.stop()
        relay.close()
