"""What a certificate of the cluster CA may do: its roles (issue 15).

With internal TLS every peer shows a certificate of the cluster CA, but a host's certificate
alone said nothing of what that host is: a client's certificate could register as a
TaskManager, a TaskManager's could command other TaskManagers. ``bin/strom certs`` now writes
each certificate's roles into it as subject-alternative-name URIs ``strom:role:<role>``
(gRPC's auth context lists them as ``peer_uri``, so checking them costs a dictionary lookup):

- ``jobmanager``: a host of ``conf/masters``; it commands TaskManagers and, as the operator's
  host, may submit and cancel jobs;
- ``taskmanager``: a host of ``conf/slaves``; it registers, heartbeats, reports task states and
  checkpoints, commands its own slot processes and exchanges records;
- ``client``: ``bin/strom`` and ``env.execute()`` elsewhere; they submit, cancel and take
  savepoints, and receive collected results.

A host in both files gets both roles. :class:`RoleGuard` refuses a call whose peer lacks the
method's role with PERMISSION_DENIED before the method runs, and a certificate without any
role (made before roles existed) with a message that says to make new ones with
``bin/strom certs``. Without TLS there is no certificate and nothing to check here: the command,
report and data tokens are what guard the cluster then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import grpc

log = logging.getLogger(__name__)

__all__ = [
    "ANY_ROLE",
    "CLIENT",
    "JOBMANAGER",
    "TASKMANAGER",
    "RoleGuard",
    "certificate_roles",
    "peer_roles",
    "role_uri",
]

JOBMANAGER = "jobmanager"
TASKMANAGER = "taskmanager"
CLIENT = "client"
ROLES = (JOBMANAGER, TASKMANAGER, CLIENT)
#: any certificate with a role may call
ANY_ROLE = frozenset(ROLES)
_PREFIX = "strom:role:"

_NO_ROLE = (
    "names no Strom role (a strom:role:jobmanager, taskmanager or client URI): it was made "
    "before certificates had roles. Make new certificates with 'bin/strom certs <dir>' (the "
    "CA in <dir> is kept) and restart the cluster with them."
)


def role_uri(role: str) -> str:
    """The subject-alternative-name URI that gives a certificate ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return _PREFIX + role


def _roles_of_uris(uris: Iterable[str]) -> frozenset[str]:
    return frozenset(u[len(_PREFIX) :] for u in uris if u.startswith(_PREFIX)) & ANY_ROLE


def certificate_roles(pem: bytes) -> frozenset[str]:
    """The roles a PEM certificate carries (empty: none)."""
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(pem)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    return _roles_of_uris(names.value.get_values_for_type(x509.UniformResourceIdentifier))


def no_role_message(whose: str) -> str:
    """Why a certificate without roles is refused."""
    return f"the certificate of {whose} {_NO_ROLE}"


def peer_roles(context: grpc.ServicerContext) -> frozenset[str] | None:
    """The roles of the certificate the caller presented; None without TLS."""
    try:
        auth = context.auth_context()
    except Exception:  # a call that already ended
        return frozenset()
    if not auth.get("x509_pem_cert") and not auth.get("x509_common_name"):
        return None
    return _roles_of_uris(u.decode("utf-8", "replace") for u in auth.get("peer_uri", ()))


def _peer_name(context: grpc.ServicerContext) -> str:
    try:
        names = context.auth_context().get("x509_common_name") or [b"?"]
    except Exception:
        names = [b"?"]
    return f"'{names[0].decode('utf-8', 'replace')}'"


def refusal(context: grpc.ServicerContext, allowed: frozenset[str], what: str) -> str | None:
    """Why the caller of ``what`` may not call it (None: it may, or there is no TLS)."""
    roles = peer_roles(context)
    if roles is None or roles & allowed:
        return None
    if not roles:
        return no_role_message(f"the caller {_peer_name(context)}")
    return (
        f"{what} needs a certificate with the role {' or '.join(sorted(allowed))}; the "
        f"caller's certificate {_peer_name(context)} has {', '.join(sorted(roles))}"
    )


class RoleGuard(grpc.ServerInterceptor):
    """Refuses calls whose peer's certificate lacks the method's role.

    ``policy`` maps a full method name (``/strom.rpc.Service/Method``) or a service prefix
    (``/strom.rpc.Service/``) to the roles that may call it; a method neither names is open to
    any role. With TLS off every call passes.
    """

    def __init__(self, policy: Mapping[str, Iterable[str]]) -> None:
        self._policy = {key: frozenset(roles) for key, roles in policy.items()}

    def _allowed(self, method: str) -> frozenset[str]:
        allowed = self._policy.get(method)
        if allowed is None:
            allowed = self._policy.get(method[: method.rfind("/") + 1], ANY_ROLE)
        return allowed

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        allowed = self._allowed(method)
        what = method.rsplit("/", 1)[-1]

        def guard(behavior):
            def checked(request_or_iterator, context):
                reason = refusal(context, allowed, what)
                if reason is not None:
                    log.warning("refused %s from %s: %s", what, context.peer(), reason)
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)
                return behavior(request_or_iterator, context)

            return checked

        kind = (
            "stream_stream"
            if handler.request_streaming and handler.response_streaming
            else "stream_unary"
            if handler.request_streaming
            else "unary_stream"
            if handler.response_streaming
            else "unary_unary"
        )
        return handler._replace(**{kind: guard(getattr(handler, kind))})


def check_own_certificate(certificate: bytes | None, role: str, where: str) -> None:
    """Raise a :class:`ConfigurationError` unless this process's certificate (None: no TLS)
    carries ``role``, so that a daemon with an old or wrong certificate says so at start
    rather than being refused by every peer."""
    from strom.errors import ConfigurationError

    if certificate is None:
        return
    roles = certificate_roles(certificate)
    if not roles:
        raise ConfigurationError(no_role_message(f"this {role} ({where})"))
    if role not in roles:
        raise ConfigurationError(
            f"the certificate of this {role} ({where}) has the role "
            f"{', '.join(sorted(roles))}, not {role}: give it the certificate 'bin/strom certs' "
            f"made for a host of {'conf/masters' if role == JOBMANAGER else 'conf/slaves'}"
        )


_S = "/strom.rpc."
#: who may call what on a JobManager
JOBMANAGER_POLICY: dict[str, frozenset[str]] = {
    **{
        f"{_S}JobManagerGateway/{method}": frozenset({TASKMANAGER})
        for method in (
            "TaskManagerSession",
            "UpdateTaskExecutionState",
            "AcknowledgeCheckpoint",
            "DeclineCheckpoint",
        )
    },
    **{
        f"{_S}JobManagerGateway/{method}": frozenset({CLIENT, JOBMANAGER})
        for method in ("SubmitJob", "CancelJob", "TriggerSavepoint")
    },
}
#: who may call what on a TaskManager: its JobManager commands it; slot processes fetch
#: partitions from it
TASKMANAGER_POLICY: dict[str, frozenset[str]] = {
    f"{_S}TaskExecutorGateway/": frozenset({JOBMANAGER}),
    f"{_S}TaskExecutorGateway/Ping": ANY_ROLE,
    f"{_S}TaskManagerObservability/": frozenset({JOBMANAGER}),
    f"{_S}DataExchange/": frozenset({TASKMANAGER}),
}
#: who may call what on a slot process: its TaskManager commands it, peers send it records
SLOT_PROCESS_POLICY: dict[str, frozenset[str]] = {
    f"{_S}TaskExecutorGateway/": frozenset({TASKMANAGER}),
    f"{_S}TaskExecutorGateway/Ping": ANY_ROLE,
    f"{_S}TaskManagerObservability/": frozenset({JOBMANAGER, TASKMANAGER}),
    f"{_S}DataExchange/": frozenset({TASKMANAGER}),
    f"{_S}DataConnection/": frozenset({TASKMANAGER}),
}
#: who may call a client's result receiver: the slot processes of its job
CLIENT_POLICY: dict[str, frozenset[str]] = {
    f"{_S}CollectService/": frozenset({TASKMANAGER}),
}
