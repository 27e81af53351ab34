"""A TaskManager's registration counts only once the JobManager reached it (issue 15).

Before the JobManager offers a TaskManager's slots to jobs, it calls ``ConfirmRegistration``
back at the address the TaskManager registered, with a random challenge, and must get the
proof of the registration's nonce (strom/rpc/registration_proof.py). A fake registration of a
dead address, or of another process's address, is refused with a reason the registering side
is told and the JobManager logs; no slot of it is ever offered.

The call back takes at most ``timeout_s`` (a blackholed address), so at most ``max_pending``
registrations are checked at once: each holds the gRPC thread of its own session stream, and a
flood of fake registrations must not take the threads real TaskManagers' sessions need. Past
that bound a registration is refused at once, and a real TaskManager simply registers again
after its back-off. Heartbeats of registered TaskManagers run on their own sessions' threads
and never wait for a check.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading

import grpc

from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc, tls
from strom.rpc.registration_proof import registration_proof

log = logging.getLogger(__name__)

#: registrations checked at once, at most
MAX_PENDING = 16


class RegistrationCheck:
    """Calls a registering TaskManager back at its address and checks its proof."""

    def __init__(self, timeout_s: float, max_pending: int = MAX_PENDING) -> None:
        self.timeout_s = timeout_s
        self._pending = threading.BoundedSemaphore(max_pending)

    def refusal(self, registration: pb.RegisterTaskManager) -> str | None:
        """Why ``registration`` may not be accepted (None: the TaskManager proved it)."""
        address = registration.address
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or "/" in address:
            return f"the registered address '{address}' is not host:port"
        if not registration.nonce:
            return (
                "the registration carries no nonce to prove it by (a TaskManager of an older "
                "Strom version than the JobManager's?)"
            )
        if not self._pending.acquire(blocking=False):
            return "too many registrations are being checked at once; register again later"
        try:
            return self._call_back(registration)
        finally:
            self._pending.release()

    def _call_back(self, registration: pb.RegisterTaskManager) -> str | None:
        address, resource_id = registration.address, registration.resource_id
        challenge = secrets.token_bytes(32)
        request = pb.RegistrationChallenge(resource_id=resource_id, challenge=challenge)
        try:
            with tls.channel(address) as channel:
                stub = cluster_pb2_grpc.TaskExecutorGatewayStub(channel)
                answer = stub.ConfirmRegistration(request, timeout=self.timeout_s)
        except grpc.RpcError as error:
            code = error.code().name if hasattr(error, "code") else type(error).__name__
            details = error.details() if hasattr(error, "details") else str(error)
            if code == "PERMISSION_DENIED":
                return f"the TaskManager at {address} did not make this registration ({details})"
            return (
                f"the JobManager could not reach the TaskManager at its registered address "
                f"{address} within {self.timeout_s:.1f} s ({code}: {details})"
            )
        expected = registration_proof(registration.nonce, challenge, resource_id)
        if not hmac.compare_digest(answer.proof, expected):
            return (
                f"the process at {address} did not prove that it made this registration: "
                f"it is another process than the registering TaskManager"
            )
        return None
