"""Leader election among JobManagers and the published leader, with ZooKeeper (kazoo).

Each contender creates an ephemeral sequential node under ``<root>/leaderlatch``; the lowest
one leads (Curator's LeaderLatch, on which Flink builds). A contender watches only the node
just below its own, so a leader's death wakes one standby, not all. The sequence number of
the leader's node is its **fencing token**: it only grows from one leader to the next (a
leader's node is the lowest alive, every later node is higher), so a TaskManager can ignore
commands carrying a lower token than the highest it has seen.

The leader publishes its gRPC and REST addresses with the token in the ephemeral node
``<root>/leader``, which :class:`LeaderRetrieval` watches. A leader whose connection to
ZooKeeper is suspended stops acting as leader at once (``on_suspend``: its JobManager holds
every job event, so it decides and sends nothing new) because another may be elected
meanwhile; if it reconnects within ``suspension_grace`` (the session timeout) with its latch
node still the lowest, its session was alive and it leads on (``on_resume``), else it is
revoked: the session expired, and it contends anew as a standby.
Writes to HA storage are fenced with :meth:`LeaderElection.fence`, a ZooKeeper transaction
check that the leader's latch node still exists, so a deposed leader cannot overwrite the
new one's state.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

LATCH = "leaderlatch"
LEADER = "leader"
_PREFIX = "contender-"


class NotLeader(RuntimeError):
    """A fenced write by a contender that does not (or no longer) lead."""


@dataclass(frozen=True)
class LeaderInfo:
    """What the leading JobManager publishes: where to reach it and its fencing token."""

    address: str
    rest_address: str
    token: int

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @staticmethod
    def from_bytes(data: bytes) -> LeaderInfo:
        values = json.loads(data.decode())
        return LeaderInfo(values["address"], values.get("rest_address", ""), int(values["token"]))


def _sequence(node: str) -> int:
    return int(node.rsplit("-", 1)[1])


class LeaderElection:
    """One JobManager's candidacy; ``on_grant(token)`` and ``on_revoke()`` run on its thread.

    All decisions are taken one at a time on the election's own thread, fed by ZooKeeper's
    watches and connection-state changes, so the callbacks never overlap.
    """

    def __init__(
        self,
        client: Any,
        root: str,
        address: str,
        rest_address: str,
        on_grant: Callable[[int], None],
        on_revoke: Callable[[], None],
        suspension_grace: float = 0.0,
        on_suspend: Callable[[], None] | None = None,
        on_resume: Callable[[int], None] | None = None,
    ) -> None:
        self._client = client
        self._suspension_grace = suspension_grace
        self._on_suspend = on_suspend
        self._on_resume = on_resume
        #: leading, but the connection is suspended: not acting as leader until it is back
        self._paused = False
        self._suspended_timer: threading.Timer | None = None
        self._latch = f"{root}/{LATCH}"
        self._leader_path = f"{root}/{LEADER}"
        self._address = address
        self._rest_address = rest_address
        self._on_grant = on_grant
        self._on_revoke = on_revoke
        self._events: queue.Queue[str] = queue.Queue()
        self._node: str | None = None
        self._token: int | None = None
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._stopped = False

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Enter the election."""
        self._client.add_listener(self._on_connection_state)
        self._thread.start()
        self._events.put("check")

    def stop(self) -> None:
        """Leave the election: revoke leadership and delete this contender's node."""
        self._client.remove_listener(self._on_connection_state)
        self._events.put("stop")
        self._thread.join(timeout=30)

    @property
    def token(self) -> int | None:
        """The fencing token while this contender leads, else ``None``. A command decided
        before a suspension still carries it: if another leader was elected meanwhile, the
        TaskManagers know a higher token and refuse it."""
        return self._token

    @property
    def paused(self) -> bool:
        """Whether this contender leads but its connection to ZooKeeper is suspended."""
        return self._paused

    def is_leader(self) -> bool:
        return self._token is not None

    def fence(self, transaction: Any) -> None:
        """Add to a ZooKeeper transaction the check that this contender still leads."""
        node = self._node
        if self._token is None or node is None:
            raise NotLeader("this JobManager is not the leader")
        transaction.check(node, 0)

    # ---------------------------------------------------------------- internal

    def _on_connection_state(self, state: str) -> None:
        # Called on kazoo's connection thread: only hand the change over.
        self._events.put(str(state))

    def _run(self) -> None:
        while True:
            event = self._events.get()
            try:
                if event == "stop":
                    self._leave()
                    return
                if event == "SUSPENDED":
                    self._suspended()
                elif event == "suspended-too-long":
                    if not self._client.connected:
                        self._revoke("the connection to ZooKeeper is suspended")
                elif event == "LOST":
                    self._node = None
                    self._revoke("the ZooKeeper session expired")
                elif event in ("CONNECTED", "check"):
                    if event == "CONNECTED" and self._suspended_timer is not None:
                        self._suspended_timer.cancel()
                        self._suspended_timer = None
                    self._check()
                    self._resume_if_leading()
            except Exception as error:  # a ZooKeeper call failed: try again on the next event
                log.warning("leader election: %s while handling %s", error, event)
                if event == "check":
                    self._retry_later()

    def _suspended(self) -> None:
        if self._token is None or self._paused:
            return
        if self._suspension_grace <= 0:
            self._revoke("the connection to ZooKeeper is suspended")
            return
        log.warning(
            "the connection to ZooKeeper is suspended: not acting as leader until it is back; "
            "standing by if it is not back within %.1f s (the session timeout)",
            self._suspension_grace,
        )
        self._paused = True
        if self._on_suspend is not None:
            self._on_suspend()
        timer = threading.Timer(
            self._suspension_grace, lambda: self._events.put("suspended-too-long")
        )
        timer.daemon = True
        self._suspended_timer = timer
        timer.start()

    def _resume_if_leading(self) -> None:
        """Back from a suspension with the latch still ours: the session lived on, lead on."""
        if not self._paused or self._token is None or not self._client.connected:
            return
        self._paused = False
        log.info(
            "the connection to ZooKeeper is back and this JobManager (%s) still leads, "
            "fencing token %d",
            self._address,
            self._token,
        )
        if self._on_resume is not None:
            self._on_resume(self._token)

    def _retry_later(self) -> None:
        timer = threading.Timer(0.5, lambda: self._events.put("check"))
        timer.daemon = True
        timer.start()

    def _check(self) -> None:
        if self._stopped or not self._client.connected:
            return
        if self._node is None or self._client.exists(self._node) is None:
            self._node = self._client.create(
                f"{self._latch}/{_PREFIX}", ephemeral=True, sequence=True, makepath=True
            )
        mine = self._node.rsplit("/", 1)[1]
        contenders = sorted(
            (c for c in self._client.get_children(self._latch) if c.startswith(_PREFIX)),
            key=_sequence,
        )
        if mine not in contenders:  # deleted under us: contend again
            self._node = None
            self._events.put("check")
            return
        position = contenders.index(mine)
        if position == 0:
            self._grant(_sequence(mine))
            return
        self._revoke("another JobManager leads")
        predecessor = f"{self._latch}/{contenders[position - 1]}"
        if self._client.exists(predecessor, watch=lambda event: self._events.put("check")) is None:
            self._events.put("check")

    def _grant(self, token: int) -> None:
        if self._token == token:
            return
        info = LeaderInfo(self._address, self._rest_address, token)
        self._publish(info)
        self._token = token
        log.info("this JobManager (%s) is the leader, fencing token %d", self._address, token)
        self._on_grant(token)

    def _publish(self, info: LeaderInfo) -> None:
        from kazoo.exceptions import NodeExistsError, NoNodeError

        while True:
            try:
                self._client.create(self._leader_path, info.to_bytes(), ephemeral=True)
                return
            except NodeExistsError:
                # A deposed leader's node whose session has not expired yet, or our own from
                # before a reconnect: the latch says we lead, so it is replaced.
                try:
                    self._client.delete(self._leader_path)
                except NoNodeError:
                    pass

    def _revoke(self, reason: str) -> None:
        if self._token is None:
            return
        self._token = None
        self._paused = False
        log.warning("this JobManager (%s) lost leadership: %s", self._address, reason)
        self._on_revoke()

    def _leave(self) -> None:
        from kazoo.exceptions import KazooException

        self._stopped = True
        was_leader = self._token is not None
        self._revoke("it is shutting down")
        try:
            if was_leader:
                self._client.delete(self._leader_path)
            if self._node is not None:
                self._client.delete(self._node)
        except KazooException as error:
            log.info("leaving the election: %s", error)
        self._node = None


class LeaderRetrieval:
    """Follows ``<root>/leader``: the current leader's addresses and token, or ``None``."""

    def __init__(self, client: Any, root: str) -> None:
        from kazoo.recipe.watchers import DataWatch

        self._changed = threading.Condition()
        self._leader: LeaderInfo | None = None
        self._listeners: list[Callable[[LeaderInfo | None], None]] = []
        self._watch = DataWatch(client, f"{root}/{LEADER}", self._on_data)

    def _on_data(self, data: bytes | None, stat: Any) -> None:
        leader = None
        if data:
            try:
                leader = LeaderInfo.from_bytes(data)
            except (ValueError, KeyError) as error:
                log.warning("unreadable leader information %r: %s", data, error)
        with self._changed:
            self._leader = leader
            listeners = list(self._listeners)
            self._changed.notify_all()
        for listener in listeners:
            listener(leader)

    @property
    def leader(self) -> LeaderInfo | None:
        return self._leader

    def add_listener(self, listener: Callable[[LeaderInfo | None], None]) -> None:
        """Call ``listener`` with each new leader (``None`` while there is none)."""
        with self._changed:
            self._listeners.append(listener)

    def wait_for_leader(self, timeout: float, newer_than: int | None = None) -> LeaderInfo | None:
        """The leader, waiting up to ``timeout`` s for one (with a token above ``newer_than``)."""

        def found() -> bool:
            leader = self._leader
            return leader is not None and (newer_than is None or leader.token > newer_than)

        with self._changed:
            self._changed.wait_for(found, timeout)
            return self._leader if found() else None
