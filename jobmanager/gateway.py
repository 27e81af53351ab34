"""The JobManager's gRPC service: TaskManager sessions, cluster status and jobs."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from jobmanager.split_assignment import SplitRequestError
from jobmanager.task_reporters import TaskReporters
from jobmanager.taskmanager_registry import Hardware
from strom.configuration import JOB_KEYS
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc

if TYPE_CHECKING:
    from jobmanager.service import JobManager

log = logging.getLogger(__name__)


class JobManagerGateway(cluster_pb2_grpc.JobManagerGatewayServicer):
    def __init__(self, jobmanager: JobManager) -> None:
        self.jm = jobmanager
        #: who may report about which task
        self.reporters = TaskReporters()

    def _require_token(self, context: grpc.ServicerContext) -> None:
        """Abort a client's call that changes jobs unless it carries the cluster's token
        (``authorization: Bearer <security.rest.token>`` metadata), when one is set."""
        expected = self.jm.client_token
        if expected is None:
            return
        sent = dict(context.invocation_metadata()).get("authorization", "")
        scheme, _, token = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "this JobManager needs its access token to submit, cancel or savepoint jobs: "
                "set security.rest.token (or security.rest.token-file) in the client's "
                "configuration",
            )

    def _require_leader(self, context: grpc.ServicerContext) -> None:
        """A standby JobManager (high availability) answers clients UNAVAILABLE, naming the
        leader, so that they look for it."""
        if not self.jm.serves():
            context.abort(grpc.StatusCode.UNAVAILABLE, self.jm.standby_message())

    def _unknown_job(self, job_id: str, error: KeyError) -> str:
        return self.jm.lost_job_message(job_id) or str(error.args[0])

    def TaskManagerSession(
        self, request_iterator: Iterator[pb.TaskManagerMessage], context: grpc.ServicerContext
    ) -> Iterator[pb.JobManagerMessage]:
        try:
            first = next(request_iterator)
        except (StopIteration, grpc.RpcError):
            return
        if first.WhichOneof("kind") != "register":
            yield pb.JobManagerMessage(
                rejected=pb.RegistrationRejected(reason="the first message must be a registration")
            )
            return
        reg = first.register
        if not self.jm.serves():
            yield pb.JobManagerMessage(
                rejected=pb.RegistrationRejected(reason=self.jm.standby_message())
            )
            return
        if reg.num_slots < 1 or not reg.resource_id or not reg.address:
            yield pb.JobManagerMessage(
                rejected=pb.RegistrationRejected(reason="registration lacks id, address or slots")
            )
            return
        refusal = self.reporters.registration_refusal(reg.resource_id, context)
        if refusal is not None:
            log.warning("refused the registration of %s: %s", context.peer(), refusal)
            yield pb.JobManagerMessage(rejected=pb.RegistrationRejected(reason=refusal))
            return
        # Reach the TaskManager at the address it registered before offering its slots.
        refusal = self.jm.registration_check.refusal(reg)
        if refusal is not None:
            log.warning(
                "refused the registration of TaskManager %s from %s: %s",
                reg.resource_id,
                context.peer(),
                refusal,
            )
            yield pb.JobManagerMessage(rejected=pb.RegistrationRejected(reason=refusal))
            return
        record = self.jm.register_taskmanager(
            resource_id=reg.resource_id,
            address=reg.address,
            hostname=reg.hostname,
            num_slots=reg.num_slots,
            hardware=Hardware(
                reg.hardware.cpu_cores, reg.hardware.physical_memory, reg.hardware.free_memory
            ),
            pid=reg.pid,
            session=context,
        )
        resource_id, instance_id = record.resource_id, record.instance_id
        report_token = self.reporters.registered(resource_id, context)
        if reg.jobs_of_previous_session:
            self.jm.note_jobs_of_previous_session(
                resource_id, reg.previous_jobmanager_id, list(reg.jobs_of_previous_session)
            )
        context.add_callback(lambda: self.jm.session_closed(resource_id, instance_id))
        yield pb.JobManagerMessage(
            accepted=pb.RegistrationAccepted(
                instance_id=instance_id,
                jobmanager_id=self.jm.jobmanager_id,
                heartbeat_interval_ms=self.jm.config["heartbeat.interval"],
                heartbeat_timeout_ms=self.jm.config["heartbeat.timeout"],
                report_token=report_token,
                command_token=self.jm.command_token_for(reg.address),
            )
        )
        try:
            for message in request_iterator:
                if message.WhichOneof("kind") != "heartbeat":
                    continue
                if message.heartbeat.metrics:
                    own = self.reporters.own_metrics(
                        self.jm.dispatcher, resource_id, message.heartbeat.metrics
                    )
                    self.jm.dispatcher.update_metrics(own)
                if not self.jm.taskmanager_heartbeat(resource_id, instance_id):
                    yield pb.JobManagerMessage(
                        rejected=pb.RegistrationRejected(reason="unknown instance; register anew")
                    )
                    return
                yield pb.JobManagerMessage(
                    heartbeat_ack=pb.HeartbeatAck(sequence=message.heartbeat.sequence)
                )
        except grpc.RpcError:
            pass  # the TaskManager went away; the done callback unregisters it

    def GetClusterOverview(self, request: pb.Empty, context) -> pb.ClusterOverview:
        self._require_leader(context)
        o = self.jm.overview()
        return pb.ClusterOverview(
            taskmanagers=o["taskmanagers"],
            slots_total=o["slots-total"],
            slots_available=o["slots-available"],
            jobs_running=o["jobs-running"],
            jobs_finished=o["jobs-finished"],
            jobs_cancelled=o["jobs-cancelled"],
            jobs_failed=o["jobs-failed"],
            strom_version=o["strom-version"],
            jobmanager_id=self.jm.jobmanager_id,
            job_defaults={
                key: str(value)
                for key, value in self.jm.config.explicit().items()
                if key in JOB_KEYS and value is not None
            },
        )

    def ListTaskManagers(self, request: pb.Empty, context) -> pb.TaskManagerList:
        self._require_leader(context)
        return pb.TaskManagerList(
            taskmanagers=[
                pb.TaskManagerInfo(
                    id=tm["id"],
                    address=tm["address"],
                    hostname=tm["hostname"],
                    slots_number=tm["slotsNumber"],
                    free_slots=tm["freeSlots"],
                    hardware=pb.Hardware(
                        cpu_cores=tm["hardware"]["cpuCores"],
                        physical_memory=tm["hardware"]["physicalMemory"],
                        free_memory=tm["hardware"]["freeMemory"],
                    ),
                    last_heartbeat_ms=tm["timeSinceLastHeartbeat"],
                    pid=tm["pid"],
                )
                for tm in self.jm.taskmanagers()
            ]
        )

    def SubmitJob(self, request: pb.SubmitJobRequest, context) -> pb.JobId:
        self._require_leader(context)
        self._require_token(context)
        leadership = self.jm.leadership
        if leadership is not None:
            leadership.job_submitted(request)  # kept before it runs, for a later leader
        try:
            job_id = self.jm.dispatcher.submit(request)
        except ValueError as error:
            if leadership is not None:
                leadership.job_rejected(request.job_id)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return pb.JobId(job_id=job_id)

    def ListJobs(self, request: pb.Empty, context) -> pb.JobList:
        self._require_leader(context)
        return pb.JobList(jobs=[_summary(s) for s in self.jm.dispatcher.summaries()])

    def AwaitJob(self, request: pb.AwaitJobRequest, context) -> pb.JobDetails:
        self._require_leader(context)
        timeout_s = min(max(request.timeout_ms, 0), 60_000) / 1000.0
        try:
            self.jm.dispatcher.await_termination(request.job_id, timeout_s)
        except KeyError as error:
            context.abort(grpc.StatusCode.NOT_FOUND, self._unknown_job(request.job_id, error))
        return self.GetJob(pb.JobId(job_id=request.job_id), context)

    def GetJob(self, request: pb.JobId, context) -> pb.JobDetails:
        self._require_leader(context)
        try:
            details = self.jm.dispatcher.details(request.job_id)
        except KeyError as error:
            context.abort(grpc.StatusCode.NOT_FOUND, self._unknown_job(request.job_id, error))
        return pb.JobDetails(
            summary=_summary(details),
            vertices=[
                pb.VertexDetails(
                    id=v["id"],
                    name=v["name"],
                    parallelism=v["parallelism"],
                    status=v["status"],
                    records_in=v["metrics"]["read-records"],
                    records_out=v["metrics"]["write-records"],
                    tasks=v["tasks"],
                    input_bytes_read=v["metrics"].get("input-bytes-read", 0),
                    input_bytes_total=v["metrics"].get("input-bytes-total", 0),
                )
                for v in details["vertices"]
            ],
            failure=details["failure"],
            status_message=details["status-message"],
            plan=json.dumps(details["plan"]).encode(),
            restarts=details["restarts"],
            attempt=details["attempt"],
            executions=details.get("executions", {}),
            exceptions=[
                pb.JobException(
                    exception=e["exception"], location=e["location"], timestamp=e["timestamp"]
                )
                for e in reversed(details["exceptions"])
            ],
        )

    def CancelJob(self, request: pb.JobId, context) -> pb.Ack:
        self._require_leader(context)
        self._require_token(context)
        try:
            self.jm.dispatcher.cancel(request.job_id)
        except KeyError as error:
            context.abort(grpc.StatusCode.NOT_FOUND, self._unknown_job(request.job_id, error))
        return pb.Ack(ok=True)

    def UpdateTaskExecutionState(self, request: pb.TaskExecutionState, context) -> pb.Ack:
        self.reporters.check(self.jm.dispatcher, context, "task state", request)
        self.jm.dispatcher.task_state_changed(request)
        return pb.Ack(ok=True)

    def AcknowledgeCheckpoint(self, request: pb.CheckpointAck, context) -> pb.Ack:
        self.reporters.check(self.jm.dispatcher, context, "checkpoint acknowledgement", request)
        self.jm.dispatcher.checkpointing.acknowledge(request)
        return pb.Ack(ok=True)

    def DeclineCheckpoint(self, request: pb.CheckpointDecline, context) -> pb.Ack:
        self.reporters.check(self.jm.dispatcher, context, "checkpoint decline", request)
        self.jm.dispatcher.checkpointing.decline(request)
        return pb.Ack(ok=True)

    def AssignSplit(self, request: pb.SplitRequest, context) -> pb.SplitAssignment:
        self.reporters.check(self.jm.dispatcher, context, "split request", request)
        dispatcher = self.jm.dispatcher
        with dispatcher.lock:
            record = dispatcher.jobs.get(request.job_id)
            running = record is not None and record.batch is None and record.state == "RUNNING"
            current = running and record.graph.attempt == request.attempt
            # A reader's first request of an attempt: the time to drop ended jobs' pools.
            live: set[str] = set()
            if request.initial:
                live = {job_id for job_id, r in dispatcher.jobs.items() if r.state == "RUNNING"}
        if not current:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"attempt {request.attempt} of job {request.job_id} does not run here",
            )
        pool = None
        if request.initial:
            dispatcher.splits.forget(live.__contains__)
            pool = [(ref.index, ref.offset if ref.resume else None) for ref in request.pool]
        try:
            splits = dispatcher.splits.assign(
                request.job_id,
                request.vertex_id,
                request.attempt,
                request.subtask,
                request.split_count,
                pool,
                request.count,
            )
        except SplitRequestError as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return pb.SplitAssignment(
            splits=[
                pb.SplitRef(index=index, offset=offset or 0, resume=offset is not None)
                for index, offset in splits
            ]
        )

    def TriggerSavepoint(self, request: pb.SavepointRequest, context) -> pb.SavepointTriggerId:
        self._require_leader(context)
        self._require_token(context)
        try:
            trigger_id = self.jm.dispatcher.checkpointing.trigger_savepoint(
                self.jm.dispatcher.job(request.job_id), request.target_dir or None, request.then
            )
        except KeyError as error:
            context.abort(grpc.StatusCode.NOT_FOUND, self._unknown_job(request.job_id, error))
        except ValueError as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return pb.SavepointTriggerId(trigger_id=trigger_id)

    def GetSavepoint(self, request: pb.SavepointStatusRequest, context) -> pb.SavepointStatus:
        self._require_leader(context)
        try:
            status = self.jm.dispatcher.savepoint_status(request.job_id, request.trigger_id)
        except KeyError as error:
            context.abort(grpc.StatusCode.NOT_FOUND, self._unknown_job(request.job_id, error))
        operation = status.get("operation", {})
        return pb.SavepointStatus(
            state=status["status"]["id"],
            location=operation.get("location", ""),
            failure=operation.get("failure-cause", {}).get("stack-trace", ""),
        )


def _summary(summary: dict) -> pb.JobSummary:
    return pb.JobSummary(
        job_id=summary["jid"],
        name=summary["name"],
        state=summary["state"],
        start_time=summary["start-time"],
        end_time=summary["end-time"],
        duration=summary["duration"],
        tasks=summary["tasks"],
    )
