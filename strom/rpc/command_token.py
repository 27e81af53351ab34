"""Who may command a TaskManager or a slot process (issue 15's fencing by session token).

A TaskManager takes ``TaskExecutorGateway`` commands (deploy, cancel, trigger, notify,
release) only with the secret token of its current JobManager session: the JobManager makes
one for each TaskManager address from a secret of its own and hands it over in
``RegistrationAccepted.command_token``, so no TaskManager can command another; its command
channels send it as metadata. A slot process takes the commands its TaskManager forwards only
with a token the TaskManager gave it at start. Anyone else, including a peer holding a
certificate of the cluster CA, is refused with PERMISSION_DENIED before the request (a job
graph is a pickle) is read. ``Ping`` stays open: it says nothing and runs nothing.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc

log = logging.getLogger(__name__)

METADATA_KEY = "strom-command-token"
#: the metadata of a job's data token (taskmanager/network/data_tokens.py)
DATA_TOKEN_METADATA = "strom-data-token"

GUARDED_SERVICE = "/strom.rpc.TaskExecutorGateway/"
#: open to callers without the token: Ping says nothing and runs nothing; ConfirmRegistration
#: is how the JobManager checks a registration, before it has handed over the token
#: the commands that carry their job's data token to the TaskManager
DATA_TOKEN_METHODS = frozenset({GUARDED_SERVICE + "PrepareSlots", GUARDED_SERVICE + "DeployTasks"})
OPEN_METHODS = frozenset({GUARDED_SERVICE + "Ping", GUARDED_SERVICE + "ConfirmRegistration"})


def new_token() -> str:
    """A fresh secret (128 bits, hex)."""
    return secrets.token_hex(16)


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class _ClientCallDetails(_CallDetails, grpc.ClientCallDetails):
    pass


def with_metadata(details: grpc.ClientCallDetails, pairs: Sequence[tuple[str, str]]) -> Any:
    """``details`` of a client call with ``pairs`` added to its metadata."""
    return _ClientCallDetails(
        details.method,
        details.timeout,
        [*(details.metadata or ()), *pairs],
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


class _SendsToken(grpc.UnaryUnaryClientInterceptor):
    def __init__(
        self, token: Callable[[], str], data_token: Callable[[str], str] | None = None
    ) -> None:
        self._token = token
        self._data_token = data_token

    def intercept_unary_unary(self, continuation, client_call_details, request):
        pairs = [(METADATA_KEY, self._token())]
        if self._data_token is not None and client_call_details.method in DATA_TOKEN_METHODS:
            pairs.append((DATA_TOKEN_METADATA, self._data_token(request.job_id)))
        return continuation(with_metadata(client_call_details, pairs), request)


def commanding(
    channel: grpc.Channel,
    token: Callable[[], str],
    data_token: Callable[[str], str] | None = None,
) -> grpc.Channel:
    """``channel`` with every call carrying ``token()`` as the command token, and the
    deployments of a job ``data_token(job_id)`` as that job's data token."""
    return grpc.intercept_channel(channel, _SendsToken(token, data_token))


class CommandGuard(grpc.ServerInterceptor):
    """Refuses ``TaskExecutorGateway`` calls (but ``Ping``) without ``expected()``'s token;
    with no token expected yet (not registered) every such call is refused.

    ``settle(timeout)``, when given, is called before a call with another token is refused:
    it returns once the process holds its current session's token (at once when it does),
    waiting up to ``timeout`` seconds. A JobManager commands a TaskManager as soon as it has
    accepted its registration, and the first command can arrive before the TaskManager has
    read the acceptance that carries the token; without the wait that command is refused and
    the job fails once for nothing.
    """

    def __init__(
        self,
        expected: Callable[[], str],
        whose: str,
        settle: Callable[[float], object] | None = None,
        settle_timeout_s: float = 5.0,
    ) -> None:
        self._expected = expected
        self._whose = whose
        self._settle = settle
        self._settle_timeout_s = settle_timeout_s

    def _carries_token(self, sent: Any) -> bool:
        expected = self._expected()
        return bool(expected) and isinstance(sent, str) and hmac.compare_digest(sent, expected)

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if not method.startswith(GUARDED_SERVICE) or method in OPEN_METHODS:
            return continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get(METADATA_KEY, "")
        if self._carries_token(sent):
            return continuation(handler_call_details)
        if self._settle is not None:
            self._settle(self._settle_timeout_s)
            if self._carries_token(sent):
                return continuation(handler_call_details)
        message = f"{method.rsplit('/', 1)[-1]} needs the token of {self._whose}"
        log.warning("refused a command: %s", message)

        def refuse(request, context):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, message)

        return grpc.unary_unary_rpc_method_handler(refuse)
