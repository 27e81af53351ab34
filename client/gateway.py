"""The client's connection to a JobManager: submit, list, inspect and cancel jobs."""

from __future__ import annotations

from typing import Any

import grpc

from strom.configuration import load_configuration, rest_token
from strom.errors import ClusterUnreachableError, StromError
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc
from strom.rpc.tls import InternalTls, channel, internal_tls

_MAX_MESSAGE = 512 * 1024 * 1024
#: ClusterClient's default: the internal TLS of the client's configuration
FROM_CONFIGURATION = object()


class ClusterClient:
    """Calls on the JobManager's gRPC gateway; connection problems become one clear error."""

    def __init__(
        self,
        address: str,
        timeout: float = 30.0,
        token: str | None = None,
        tls: InternalTls | None | object = FROM_CONFIGURATION,
    ) -> None:
        """``token``: the cluster's access token; by default ``security.rest.token`` (or
        ``-token-file``) of the configuration in ``$STROM_CONF_DIR`` (else ``conf/``).
        ``tls``: the client's internal TLS; by default ``security.ssl.internal.*`` of that
        configuration (None: plaintext)."""
        self.address = address
        self.timeout = timeout
        config = None
        if token is None or tls is FROM_CONFIGURATION:
            config = load_configuration()
        token = token if token is not None else rest_token(config)
        #: the internal TLS this client uses (its collect receiver serves with it too)
        self.tls: InternalTls | None = internal_tls(config) if tls is FROM_CONFIGURATION else tls
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._channel = channel(
            address,
            [
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ],
            tls=self.tls,
        )
        self._stub = cluster_pb2_grpc.JobManagerGatewayStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(self._stub, method)(
                request, timeout=timeout or self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.UNAVAILABLE and "stands by" in (error.details() or ""):
                # A standby JobManager (high availability) names the leader.
                raise ClusterUnreachableError(error.details()) from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ClusterUnreachableError(
                    f"Could not reach the JobManager at {self.address}: is the cluster running "
                    f"(bin/start-cluster.sh) and is jobmanager.rpc.address/port right? "
                    f"({code.name}: {error.details()})"
                ) from None
            if code in (
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.UNAUTHENTICATED,
            ):
                raise StromError(error.details()) from None
            raise StromError(f"the JobManager answered {code.name}: {error.details()}") from None

    def overview(self) -> pb.ClusterOverview:
        return self._call("GetClusterOverview", pb.Empty(), timeout=5)

    def taskmanagers(self) -> list[pb.TaskManagerInfo]:
        return list(self._call("ListTaskManagers", pb.Empty(), timeout=5).taskmanagers)

    def submit(self, request: pb.SubmitJobRequest) -> str:
        return self._call("SubmitJob", request).job_id

    def jobs(self) -> list[pb.JobSummary]:
        return list(self._call("ListJobs", pb.Empty()).jobs)

    def job(self, job_id: str) -> pb.JobDetails:
        return self._call("GetJob", pb.JobId(job_id=job_id))

    def await_job(self, job_id: str, timeout_s: float = 10.0) -> pb.JobDetails:
        """The job's details once it has ended, or after ``timeout_s``."""
        request = pb.AwaitJobRequest(job_id=job_id, timeout_ms=int(timeout_s * 1000))
        return self._call("AwaitJob", request, timeout=timeout_s + 30)

    def trigger_savepoint(self, job_id: str, target_dir: str | None, then: str = "") -> str:
        request = pb.SavepointRequest(job_id=job_id, target_dir=target_dir or "", then=then)
        return self._call("TriggerSavepoint", request).trigger_id

    def savepoint(self, job_id: str, trigger_id: str) -> pb.SavepointStatus:
        request = pb.SavepointStatusRequest(job_id=job_id, trigger_id=trigger_id)
        return self._call("GetSavepoint", request)

    def cancel(self, job_id: str) -> None:
        self._call("CancelJob", pb.JobId(job_id=job_id))
