"""Who may speak about a task: the TaskManager the JobManager deployed it to (DESIGN.md §10).

A task state update, checkpoint acknowledgement or decline, and a heartbeat's task metrics
change a job's state, so they are taken only from the TaskManager (or one of its slot
processes) that runs the task. Each registration gets a random report token (sent back in
``RegistrationAccepted``), which the TaskManager and its slot processes send as
``strom-report-token`` metadata with every report; with internal TLS the sender's certificate
name must also be the one that TaskManager registered with. Anything else is refused and
logged, and leaves the job as it was.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from strom.rpc import cluster_pb2 as pb
from strom.rpc.tls import CLIENT_IDENTITY, REPORT_TOKEN_METADATA, peer_identity

if TYPE_CHECKING:
    from jobmanager.dispatcher import Dispatcher

log = logging.getLogger(__name__)

#: report tokens kept per TaskManager: slot processes deployed under a registration that
#: was replaced since still report their tasks' ends with its token
_TOKENS_KEPT = 4


@dataclass
class _Reporter:
    identity: str | None
    tokens: deque[str] = field(default_factory=lambda: deque(maxlen=_TOKENS_KEPT))


class TaskReporters:
    """The report tokens and certificate names of the registered TaskManagers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_resource: dict[str, _Reporter] = {}

    def registration_refusal(self, resource_id: str, context: grpc.ServicerContext) -> str | None:
        """Why a TaskManager may not register as ``resource_id`` (None: it may): with TLS,
        a client's certificate, or another certificate than the one ``resource_id``
        registered with, cannot take a TaskManager's place."""
        identity = peer_identity(context)
        if identity is None:
            return None
        if identity == CLIENT_IDENTITY:
            return f"the certificate '{identity}' is a client's, not a TaskManager's"
        with self._lock:
            known = self._by_resource.get(resource_id)
        if known is not None and known.identity is not None and known.identity != identity:
            return (
                f"TaskManager {resource_id} registered with the certificate of "
                f"'{known.identity}', not '{identity}'"
            )
        return None

    def registered(self, resource_id: str, context: grpc.ServicerContext) -> str:
        """A new report token for ``resource_id``'s registration from ``context``'s peer."""
        token = secrets.token_hex(16)
        with self._lock:
            reporter = self._by_resource.setdefault(resource_id, _Reporter(None))
            reporter.identity = peer_identity(context)
            reporter.tokens.append(token)
        return token

    def refusal(
        self,
        dispatcher: Dispatcher,
        context: grpc.ServicerContext,
        job_id: str,
        attempt: int,
        vertex_id: str,
        subtask: int,
    ) -> str | None:
        """Why a report about a task may not be taken from ``context``'s caller (None: it
        may). Reports about jobs or attempts the JobManager does not run are ignored by it
        anyway, and pass."""
        with dispatcher.lock:
            record = dispatcher.jobs.get(job_id)
            if record is None:
                return None
            task = record.graph.subtasks.get((vertex_id, subtask))
            if task is None:
                return None
            run = record.batch
            if run is not None:
                # A BATCH job's reports carry the execution number: the current execution's,
                # or a replaced one's whose slot the job still holds (its end frees the slot).
                slot = run.slots.get(attempt)
                if slot is not None:
                    resource_id = slot.resource_id
                elif run.executions.get((vertex_id, subtask)) == attempt:
                    resource_id = task.resource_id
                else:
                    return None
            elif record.graph.attempt != attempt:
                return None
            else:
                resource_id = task.resource_id
        if not resource_id:
            return f"task {vertex_id}[{subtask}] of job {job_id} is not deployed"
        with self._lock:
            reporter = self._by_resource.get(resource_id)
            tokens = list(reporter.tokens) if reporter is not None else []
            identity = reporter.identity if reporter is not None else None
        sent = dict(context.invocation_metadata()).get(REPORT_TOKEN_METADATA, "")
        if not any(hmac.compare_digest(sent.encode(), t.encode()) for t in tokens):
            return (
                f"task {vertex_id}[{subtask}] of job {job_id} runs on TaskManager "
                f"{resource_id}, and the caller did not send its report token"
            )
        if identity is not None and peer_identity(context) != identity:
            return (
                f"task {vertex_id}[{subtask}] of job {job_id} runs on TaskManager "
                f"{resource_id} ('{identity}'), not on '{peer_identity(context)}'"
            )
        return None

    def check(
        self, dispatcher: Dispatcher, context: grpc.ServicerContext, what: str, report
    ) -> None:
        """Abort the call PERMISSION_DENIED, logging why, unless ``report`` (a task state,
        checkpoint ack or decline) comes from its task's TaskManager."""
        reason = self.refusal(
            dispatcher, context, report.job_id, report.attempt, report.vertex_id, report.subtask
        )
        if reason is not None:
            log.warning("refused a %s from %s: %s", what, context.peer(), reason)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)

    @staticmethod
    def own_metrics(
        dispatcher: Dispatcher, resource_id: str, metrics: Iterable[pb.TaskMetrics]
    ) -> list[pb.TaskMetrics]:
        """The metrics of a heartbeat from ``resource_id`` about tasks it runs."""
        own = []
        with dispatcher.lock:
            for metric in metrics:
                record = dispatcher.jobs.get(metric.job_id)
                if record is None:
                    continue
                task = record.graph.subtasks.get((metric.vertex_id, metric.subtask))
                if task is not None and task.resource_id == resource_id:
                    own.append(metric)
        return own
