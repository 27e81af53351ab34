"""The high-availability services of one process, from its configuration (Flink's
``HighAvailabilityServices``): a ZooKeeper client under ``<path.root>/<cluster-id>`` and the
election, leader retrieval and stores built on it. ``None`` without high availability."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from jobmanager.ha.leader_election import LeaderElection, LeaderRetrieval
from jobmanager.ha.stores import AttemptStore, CheckpointPointerStore, JobGraphStore
from strom.errors import ConfigurationError

log = logging.getLogger(__name__)


def zookeeper_root(config: Mapping[str, Any]) -> str:
    """``high-availability.zookeeper.path.root`` joined with ``high-availability.cluster-id``."""
    root = "/" + str(config["high-availability.zookeeper.path.root"]).strip("/")
    cluster = str(config["high-availability.cluster-id"]).strip("/")
    return f"{root}/{cluster}" if cluster else root


class ZooKeeperHaServices:
    """One process's connection to ZooKeeper for high availability."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        quorum = config["high-availability.zookeeper.quorum"]
        if not quorum:
            raise ConfigurationError(
                "high-availability.type: zookeeper needs high-availability.zookeeper.quorum "
                "(host:port of each ZooKeeper server, separated by commas)"
            )
        try:
            from kazoo.client import KazooClient
            from kazoo.retry import KazooRetry
        except ImportError as error:
            raise ConfigurationError(
                "high-availability.type: zookeeper needs the kazoo client: pip install 'strom[ha]'"
            ) from error
        self.config = config
        self.root = zookeeper_root(config)
        self.session_timeout = config["high-availability.zookeeper.client.session-timeout"] / 1000
        # Reconnect attempts back off, but only up to retry-wait: kazoo's own cap is an hour, so
        # after a long ZooKeeper outage the cluster could stay leaderless for minutes after
        # ZooKeeper was back.
        retry_wait = max(0.01, config["high-availability.zookeeper.client.retry-wait"] / 1000)
        reconnect = KazooRetry(max_tries=-1, delay=min(0.1, retry_wait), max_delay=retry_wait)
        self.client = KazooClient(
            hosts=quorum, timeout=self.session_timeout, connection_retry=reconnect
        )

    def start(self, timeout: float = 30.0) -> None:
        """Connect to ZooKeeper (raises ``kazoo.handlers.threading.KazooTimeoutError``)."""
        self.client.start(timeout=timeout)
        self.client.ensure_path(self.root)

    def stop(self) -> None:
        """Close the session: this process's ephemeral nodes (its candidacy) go at once."""
        self.client.stop()
        self.client.close()

    def storage_dir(self) -> str:
        value = self.config["high-availability.storageDir"]
        if not value:
            raise ConfigurationError(
                "high-availability.type: zookeeper needs high-availability.storageDir, a "
                "folder every JobManager reaches, for the job graphs"
            )
        return str(value)

    def leader_election(
        self,
        address: str,
        rest_address: str,
        on_grant: Callable[[int], None],
        on_revoke: Callable[[], None],
        on_suspend: Callable[[], None] | None = None,
        on_resume: Callable[[int], None] | None = None,
    ) -> LeaderElection:
        """A candidacy for leadership publishing these addresses (start it to contend). A
        leader whose connection is suspended waits one session timeout for it: the session
        may still be alive until then, and not after."""
        return LeaderElection(
            self.client,
            self.root,
            address,
            rest_address,
            on_grant,
            on_revoke,
            suspension_grace=self.session_timeout,
            on_suspend=on_suspend,
            on_resume=on_resume,
        )

    def leader_retrieval(self) -> LeaderRetrieval:
        """A watch on the published leader."""
        return LeaderRetrieval(self.client, self.root)

    def job_graph_store(self, election: LeaderElection | None = None) -> JobGraphStore:
        """The job graph store, its writes fenced by ``election`` when given."""
        fence = election.fence if election is not None else None
        return JobGraphStore(self.client, self.root, self.storage_dir(), fence)

    def checkpoint_pointer_store(
        self, election: LeaderElection | None = None
    ) -> CheckpointPointerStore:
        """The checkpoint-pointer store, its writes fenced by ``election`` when given."""
        fence = election.fence if election is not None else None
        return CheckpointPointerStore(self.client, self.root, fence)

    def attempt_store(self, election: LeaderElection | None = None) -> AttemptStore:
        """The store of each job's highest deployed attempt, its writes fenced by
        ``election`` when given."""
        fence = election.fence if election is not None else None
        return AttemptStore(self.client, self.root, fence)


def create_ha_services(config: Mapping[str, Any]) -> ZooKeeperHaServices | None:
    """The HA services ``high-availability.type`` asks for; ``None`` for ``none``."""
    if config["high-availability.type"] == "zookeeper":
        return ZooKeeperHaServices(config)
    return None


def find_leader_address(config: Mapping[str, Any], timeout: float = 30.0) -> str | None:
    """The gRPC address of the leading JobManager that ZooKeeper names, waiting up to
    ``timeout`` s for one; ``None`` without high availability or when none leads."""
    services = create_ha_services(config)
    if services is None:
        return None
    try:
        services.start(timeout=timeout)
    except Exception as error:
        raise ConfigurationError(
            f"cannot reach ZooKeeper at {config['high-availability.zookeeper.quorum']} to find "
            f"the leading JobManager: {error}"
        ) from None
    try:
        leader = services.leader_retrieval().wait_for_leader(timeout)
        return leader.address if leader is not None else None
    finally:
        services.stop()
