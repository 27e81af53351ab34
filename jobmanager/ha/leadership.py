"""A JobManager's part in high availability: it contends for leadership, serves only while
it leads, keeps every submitted job in the job graph store and each job's latest completed
checkpoint in the pointer store, and — when it becomes leader — recovers every job kept there
from its latest checkpoint, as Flink's Dispatcher does with its JobGraphStore. Every attempt
it deploys is recorded first in the attempt store, and a recovered job's attempts continue
above the highest recorded, so no two executions of a job share an attempt number even while
a deposed leader's tasks are still on the TaskManagers.

While its connection to ZooKeeper is suspended a leader does not act as one: its dispatcher
holds every job event (so no command goes to a TaskManager, no checkpoint is triggered) and it
serves no client, since another JobManager may be elected meanwhile; when the connection comes
back within the session timeout it leads on from where it stopped.

A JobManager that loses leadership (its ZooKeeper session expired, or its connection stayed
suspended past the session timeout) goes back to standing by, as Flink's does: it suspends
its jobs — stops scheduling and checkpointing them and forgets them, without cancelling
their tasks, which the new leader owns now — closes its TaskManagers' sessions so that they
follow the new leader, and contends again; it may be elected later and then recovers the
jobs from HA storage like any new leader. Its commands to TaskManagers carry its old fencing
token meanwhile, which they refuse, and its writes to HA storage are fenced, so two
JobManagers never drive one job.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from jobmanager.ha.services import ZooKeeperHaServices
from strom.rpc import cluster_pb2 as pb

if TYPE_CHECKING:
    from jobmanager.service import JobManager

log = logging.getLogger(__name__)


class Leadership:
    """The high-availability shell around one JobManager."""

    def __init__(self, jobmanager: JobManager, services: ZooKeeperHaServices) -> None:
        self.jm = jobmanager
        self.services = services
        self._leading = threading.Event()
        self._stopping = False
        self.election = None
        self.retrieval = None
        self.graphs = None
        self.pointers = None
        self.attempts = None

    def start(self, address: str, rest_address: str) -> None:
        """Connect to ZooKeeper and contend; leadership may be granted at once or later."""
        self.services.start()
        self.retrieval = self.services.leader_retrieval()
        self.election = self.services.leader_election(
            address, rest_address, self._granted, self._revoked, self._suspended, self._resumed
        )
        self.graphs = self.services.job_graph_store(self.election)
        self.pointers = self.services.checkpoint_pointer_store(self.election)
        self.attempts = self.services.attempt_store(self.election)
        log.info(
            "high availability with ZooKeeper %s under %s: contending for leadership as %s",
            self.jm.config["high-availability.zookeeper.quorum"],
            self.services.root,
            address,
        )
        self.election.start()

    def stop(self) -> None:
        """Leave the election (a standby takes over at once) and close the session."""
        self._stopping = True
        if self.election is not None:
            self.election.stop()
        self.services.stop()

    def suspended(self) -> bool:
        """Whether this JobManager leads but its connection to ZooKeeper is suspended."""
        election = self.election
        return election is not None and election.is_leader() and election.paused

    def is_leader(self) -> bool:
        """Whether this JobManager leads (and has recovered its jobs)."""
        return self._leading.is_set()

    def token(self) -> int | None:
        """This JobManager's fencing token while it leads, else ``None``."""
        return self.election.token if self.election is not None else None

    def leader_address(self) -> str:
        """The gRPC address of the current leader, or empty when none is known."""
        leader = self.retrieval.leader if self.retrieval is not None else None
        return leader.address if leader is not None else ""

    # ------------------------------------------------------------------ hooks

    def job_submitted(self, request: pb.SubmitJobRequest) -> None:
        """Keep a newly submitted job for a later leader (before it runs)."""
        self.graphs.put(request.job_id, request.SerializeToString())

    def job_rejected(self, job_id: str) -> None:
        self.graphs.remove(job_id)

    def checkpoint_completed(self, job_id: str, checkpoint_id: int, path: str) -> None:
        """Point a later leader at the job's newest completed checkpoint."""
        self.pointers.put(job_id, checkpoint_id, path)

    def attempt_deploying(self, job_id: str, attempt: int) -> None:
        """Record ``attempt`` of the job before any command for it goes out (a fenced
        write: raises ``NotLeader`` when this JobManager was deposed)."""
        self.attempts.reserve(job_id, attempt)

    def job_terminated(self, job_id: str) -> None:
        """A job reached a final state: no later leader recovers it."""
        if self._stopping or not self.is_leader():
            return
        self.pointers.remove(job_id)
        self.graphs.remove(job_id)
        self.attempts.remove(job_id)

    # -------------------------------------------------------------- election

    def _granted(self, token: int) -> None:
        recovered = 0
        for job_id in self.graphs.job_ids():
            data = self.graphs.get(job_id)
            if data is None:
                continue
            request = pb.SubmitJobRequest.FromString(data)
            pointer = self.pointers.get(job_id)
            if pointer is not None:
                request.config["execution.savepoint.path"] = pointer.external_path
            # above every attempt an earlier leader deployed: its tasks may still be around
            first_attempt = self.attempts.highest(job_id) + 1
            try:
                self.jm.dispatcher.submit(
                    request, recovered=pointer is not None, first_attempt=first_attempt
                )
            except ValueError as error:
                log.error("could not recover job %s: %s", job_id, error)
                continue
            recovered += 1
            log.info(
                "recovered job %s (%s) at attempt %d %s",
                job_id,
                request.job_name,
                first_attempt,
                f"from checkpoint {pointer.checkpoint_id} at {pointer.external_path}"
                if pointer is not None
                else "from the start (it had completed no checkpoint)",
            )
        self._leading.set()
        log.info(
            "JobManager %s leads (fencing token %d); recovered %d job(s)",
            self.jm.jobmanager_id,
            token,
            recovered,
        )

    def _suspended(self) -> None:
        self._leading.clear()
        self.jm.dispatcher.pause()
        log.warning("JobManager %s holds its jobs' events meanwhile", self.jm.jobmanager_id)

    def _resumed(self, token: int) -> None:
        self.jm.dispatcher.resume()
        self._leading.set()
        log.info(
            "JobManager %s leads on (fencing token %d) with its jobs where they were",
            self.jm.jobmanager_id,
            token,
        )

    def _revoked(self) -> None:
        self._leading.clear()
        if self._stopping:
            return
        log.warning(
            "JobManager %s lost its leadership: suspending its jobs and standing by",
            self.jm.jobmanager_id,
        )
        self.jm.leadership_revoked()
        log.info("JobManager %s stands by", self.jm.jobmanager_id)
