"""Fencing tokens on JobManager → TaskManager commands (Flink's fencing tokens).

With high availability the leading JobManager sends its token (see
:mod:`jobmanager.ha.leader_election`: it grows from one leader to the next) in the gRPC
metadata of every call on a TaskManager's ``TaskExecutorGateway``. The TaskManager keeps the
highest token it has seen — on commands and on the leader ZooKeeper publishes — and refuses
commands with a lower one, so a deposed leader that has not noticed yet cannot deploy, cancel
or checkpoint anything. Calls without a token (no high availability) pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import grpc

from strom.rpc import tls
from strom.rpc.command_token import with_metadata

log = logging.getLogger(__name__)

METADATA_KEY = "strom-fencing-token"
FENCED_SERVICE = "/strom.rpc.TaskExecutorGateway/"


class FencingTokenClientInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Adds the JobManager's current fencing token to each call (-1 while not leading)."""

    def __init__(self, token: Callable[[], int | None]) -> None:
        self._token = token

    def intercept_unary_unary(self, continuation, client_call_details, request):
        token = self._token()
        pairs = [(METADATA_KEY, str(-1 if token is None else token))]
        return continuation(with_metadata(client_call_details, pairs), request)


def fenced_channel(address: str, token: Callable[[], int | None]) -> grpc.Channel:
    """A channel to a TaskManager whose calls carry ``token()``."""
    return grpc.intercept_channel(tls.channel(address), FencingTokenClientInterceptor(token))


class FencingTokenServerInterceptor(grpc.ServerInterceptor):
    """A TaskManager's guard: refuses ``TaskExecutorGateway`` calls from a deposed leader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.highest = -1

    def leader_seen(self, token: int) -> None:
        """ZooKeeper published a leader with ``token``."""
        with self._lock:
            self.highest = max(self.highest, token)

    def intercept_service(self, continuation, handler_call_details):
        if not handler_call_details.method.startswith(FENCED_SERVICE):
            return continuation(handler_call_details)
        value = dict(handler_call_details.invocation_metadata or ()).get(METADATA_KEY)
        if value is None:
            return continuation(handler_call_details)
        try:
            token = int(value)
        except ValueError:
            token = -1  # not a token: as stale as can be
        with self._lock:
            stale = token < self.highest
            if not stale:
                self.highest = token
            highest = self.highest
        if not stale:
            return continuation(handler_call_details)
        message = (
            f"fencing token {token} is stale: the leading JobManager's is {highest}; "
            f"a deposed JobManager's command is ignored"
        )
        log.warning("refused %s: %s", handler_call_details.method, message)

        def refuse(request, context):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, message)

        return grpc.unary_unary_rpc_method_handler(refuse)
