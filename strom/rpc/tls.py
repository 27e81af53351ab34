"""Every gRPC server and channel of the cluster, with mutual TLS when it is on (DESIGN.md §10).

``security.ssl.internal.enabled: true`` (Flink's key) turns on mutual TLS for all gRPC between
JobManagers, TaskManagers, slot processes, their data exchange and clients. Flink's internal
keystore and truststore are PEM files here: ``security.ssl.internal.cert`` (this node's
certificate), ``security.ssl.internal.key`` (its private key) and
``security.ssl.internal.trust-cert`` (the cluster's CA). Each side presents its certificate and
accepts only one signed by that CA, so a peer without one is refused during the handshake,
before any method runs.

Every certificate must name :data:`INTERNAL_SERVER_NAME` (``bin/strom certs`` puts it in each
one): connections check that name rather than the host they dial, because TaskManagers
advertise whichever address reaches the JobManager, often an IP. What authenticates a peer is
the CA's signature; its certificate's common name is its identity (:func:`peer_identity`),
and its ``strom:role:`` URIs what it may call (strom/rpc/roles.py).

Daemons call :func:`use_for_process` once at start; the functions below then use that setting
unless given another, so code deep in a TaskManager need not carry it around.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from strom.errors import ConfigurationError

log = logging.getLogger(__name__)

#: the server name every internal certificate carries and every internal connection checks
INTERNAL_SERVER_NAME = "strom-internal"
#: in the paths of security.ssl.internal.*, this host's name: one configuration serves all hosts
HOST_PLACEHOLDER = "{host}"
#: the common name of the certificate ``bin/strom certs`` makes for clients: it cannot
#: register as a TaskManager
CLIENT_IDENTITY = "client"

_KEYS = {
    "certificate": "security.ssl.internal.cert",
    "private_key": "security.ssl.internal.key",
    "trusted_ca": "security.ssl.internal.trust-cert",
}


@dataclass(frozen=True)
class InternalTls:
    """One process's PEM certificate, private key and the cluster CA it trusts."""

    certificate: bytes
    private_key: bytes
    trusted_ca: bytes

    def server_credentials(self) -> grpc.ServerCredentials:
        """A server that asks every client for a certificate of the cluster CA."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate)],
            root_certificates=self.trusted_ca,
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """A client that shows this process's certificate and trusts only the cluster CA."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.trusted_ca,
            private_key=self.private_key,
            certificate_chain=self.certificate,
        )


def internal_tls(config: Mapping[str, Any]) -> InternalTls | None:
    """The internal TLS material ``config`` asks for (None when it is off); a missing or
    unreadable file is a :class:`ConfigurationError` naming its key."""
    if not config["security.ssl.internal.enabled"]:
        return None
    material = {}
    for field, key in _KEYS.items():
        path = config[key]
        if path:
            path = path.replace(HOST_PLACEHOLDER, socket.gethostname())
        if not path:
            raise ConfigurationError(
                f"security.ssl.internal.enabled is true but '{key}' is not set: set "
                f"{', '.join(_KEYS.values())} to PEM files ('bin/strom certs <dir>' makes them)."
            )
        try:
            material[field] = Path(path).read_bytes()
        except OSError as error:
            raise ConfigurationError(f"Cannot read '{path}' ({key}): {error}") from None
        if b"-----BEGIN" not in material[field]:
            raise ConfigurationError(f"'{path}' ({key}) is not a PEM file.")
    return InternalTls(**material)


_process_tls: InternalTls | None = None


def use_for_process(config: Mapping[str, Any] | InternalTls | None) -> InternalTls | None:
    """Make ``config``'s internal TLS (or the given one, or none) this process's default for
    every server and channel made here; returns it."""
    global _process_tls
    tls = config if config is None or isinstance(config, InternalTls) else internal_tls(config)
    _process_tls = tls
    return tls


def process_tls() -> InternalTls | None:
    """This process's internal TLS (None: plaintext)."""
    return _process_tls


class _Default:
    pass


#: "this process's setting": the default of the ``tls`` arguments below
PROCESS = _Default()


def _resolve(tls: InternalTls | None | _Default) -> InternalTls | None:
    return _process_tls if isinstance(tls, _Default) else tls


def _with_server_name(options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [*options, ("grpc.ssl_target_name_override", INTERNAL_SERVER_NAME)]


def add_port(
    server: grpc.Server | grpc.aio.Server,
    target: str,
    tls: InternalTls | None | _Default = PROCESS,
) -> int:
    """Bind ``server`` to ``target`` (with mutual TLS when on); returns the port bound."""
    chosen = _resolve(tls)
    if chosen is None:
        return server.add_insecure_port(target)
    return server.add_secure_port(target, chosen.server_credentials())


def channel(
    address: str,
    options: Sequence[tuple[str, Any]] = (),
    tls: InternalTls | None | _Default = PROCESS,
) -> grpc.Channel:
    """A channel to another process of the cluster (with mutual TLS when on)."""
    chosen = _resolve(tls)
    if chosen is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(
        address, chosen.channel_credentials(), options=_with_server_name(options)
    )


def aio_channel(
    address: str,
    options: Sequence[tuple[str, Any]] = (),
    tls: InternalTls | None | _Default = PROCESS,
) -> grpc.aio.Channel:
    """An asyncio channel to another process of the cluster (with mutual TLS when on)."""
    chosen = _resolve(tls)
    if chosen is None:
        return grpc.aio.insecure_channel(address, list(options))
    return grpc.aio.secure_channel(
        address, chosen.channel_credentials(), _with_server_name(options)
    )


#: the metadata key of a TaskManager registration's report token (RegistrationAccepted)
REPORT_TOKEN_METADATA = "strom-report-token"


class _MetadataInterceptor(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, key: str, value: Callable[[], str]) -> None:
        self._key, self._value = key, value

    def intercept_unary_unary(self, continuation, client_call_details, request):
        value = self._value()
        if not value:
            return continuation(client_call_details, request)
        metadata = [*(client_call_details.metadata or ()), (self._key, value)]
        details = client_call_details._replace(metadata=metadata)
        return continuation(details, request)


def reporting_channel(channel: grpc.Channel, token: Callable[[], str]) -> grpc.Channel:
    """``channel`` whose unary calls carry ``token()`` as the registration's report token:
    the JobManager takes task states and checkpoint acks only with the token of the
    TaskManager it deployed the task to."""
    return grpc.intercept_channel(channel, _MetadataInterceptor(REPORT_TOKEN_METADATA, token))


def peer_identity(context: grpc.ServicerContext) -> str | None:
    """The common name of the certificate the caller presented (None without TLS)."""
    try:
        names = context.auth_context().get("x509_common_name")
    except Exception:  # an aio context or a call already ended
        return None
    if not names:
        return None
    return names[0].decode("utf-8", "replace")
