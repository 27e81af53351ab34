"""The REST server's HTTP layer: aiohttp on one event-loop thread, with the JobManager's rules.

Everything a network peer can do to the REST port is decided here, before a route runs:

- **Requests that change anything** (every method but GET, HEAD and OPTIONS) need
  ``Authorization: Bearer <security.rest.token>`` when a token is configured (401 without), and
  are refused (403) from a web page of a foreign origin, so another site open in an
  operator's browser can neither cancel nor stop jobs.
- **CORS**: none by default (same-origin only); origins listed in
  ``web.access-control-allow-origin`` get their origin echoed, never ``*``.
- **Bodies**: JSON only (415 otherwise), at most ``rest.server.max-content-length`` bytes (413).
- **Connections**: at most ``rest.server.max-connections`` open; one that has not sent a whole
  request within ``rest.server.header-timeout`` is closed, as is one idle between requests for
  ``rest.server.idle-timeout``. Idle and slow connections cost a socket and no thread, so a
  flood of them cannot starve the JobManager's gRPC threads (heartbeats).
- **Work**: routes run on ``rest.server.numThreads`` threads; when too many requests wait for
  one, the rest are answered 503 at once.
- **TLS** with ``security.ssl.rest.enabled`` and the certificate and key of
  ``security.ssl.rest.keystore`` (PEM).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from strom.configuration import rest_token
from strom.errors import ConfigurationError

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

#: requests that may wait for a thread, per thread; more are answered 503 at once
PENDING_PER_THREAD = 32
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ALLOWED_METHODS = "GET, POST, PATCH, PUT, DELETE"


@dataclass(frozen=True)
class Answer:
    """What a route produced: status, content type, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


#: (method, request target as sent: path and query, parsed JSON body or None) -> Answer
Dispatch = Callable[[str, str, Any], Answer]


@dataclass(frozen=True)
class RestPolicy:
    """The REST server's security and resource settings, read from the configuration."""

    token: str | None = None
    allowed_origins: frozenset[str] = frozenset()
    max_body_bytes: int = 1_048_576
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    threads: int = 8
    max_connections: int = 1000
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_config(cls, config: Any) -> RestPolicy:
        """The policy of ``config``; a missing or unreadable file is an error naming its key."""
        return cls(
            token=rest_token(config),
            allowed_origins=frozenset(
                filter(None, (config["web.access-control-allow-origin"] or "").split(","))
            ),
            max_body_bytes=config["rest.server.max-content-length"],
            header_timeout_s=config["rest.server.header-timeout"] / 1000.0,
            idle_timeout_s=config["rest.server.idle-timeout"] / 1000.0,
            threads=config["rest.server.numThreads"],
            max_connections=config["rest.server.max-connections"],
            ssl_context=server_ssl_context(config),
        )

    @property
    def max_pending(self) -> int:
        return self.threads * PENDING_PER_THREAD


def server_ssl_context(config: Any) -> ssl.SSLContext | None:
    """The REST server's TLS context when ``security.ssl.rest.enabled``, else None."""
    if not config["security.ssl.rest.enabled"]:
        return None
    keystore = config["security.ssl.rest.keystore"]
    if not keystore:
        raise ConfigurationError(
            "security.ssl.rest.enabled is true but 'security.ssl.rest.keystore' is not set: "
            "give a PEM file with the server's certificate chain and private key."
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(keystore, password=config["security.ssl.rest.key-password"])
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(
            f"Cannot load the REST certificate and key from '{keystore}' "
            f"(security.ssl.rest.keystore): {error}"
        ) from None
    return context


def _errors(status: int, message: str, **headers: str) -> web.Response:
    from aiohttp import web

    return web.Response(
        status=status,
        body=json.dumps({"errors": [message]}).encode(),
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache", **headers},
    )


class _Refused(asyncio.Protocol):
    """A connection over the limit: closed as soon as it is accepted."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


_server_class: type | None = None


def _limited_server(handler: Any, limit: int, max_body_bytes: int, **kwargs: Any) -> Any:
    """aiohttp's low-level server that refuses connections beyond ``limit`` as they come.

    aiohttp is imported here, on the REST thread, not when the JobManager module is: it
    takes a second on a loaded machine, and the embedded mini-cluster need not wait for it.
    """
    global _server_class
    if _server_class is None:
        from aiohttp import web

        class LimitedServer(web.Server):
            """A server counting connections from when their protocol is handed out."""

            def __init__(
                self, handler: Any, limit: int, max_body_bytes: int, **kwargs: Any
            ) -> None:
                super().__init__(handler, request_factory=self._request, **kwargs)
                self.limit = limit
                self.max_body_bytes = max_body_bytes
                self.refused = 0
                #: protocols handed out whose connection is not made yet (accepting, TLS handshake)
                self.unmade: set[Any] = set()

            def _request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any):
                return web.BaseRequest(
                    message,
                    payload,
                    protocol,
                    writer,
                    task,
                    self._loop,
                    client_max_size=self.max_body_bytes,
                )

            def protocol(self) -> asyncio.BaseProtocol:
                """A handler for a new connection, or :class:`_Refused` when ``limit`` are open."""
                if len(self._connections) + len(self.unmade) >= self.limit:
                    self.refused += 1
                    return _Refused()
                handler = self()
                self.unmade.add(handler)
                return handler

            def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
                self.unmade.discard(handler)
                super().connection_made(handler, transport)

        _server_class = LimitedServer
    return _server_class(handler, limit, max_body_bytes, **kwargs)


class RestTransport:
    """Serves ``dispatch`` over HTTP(S) on a socket bound at construction."""

    def __init__(self, host: str, port: int, policy: RestPolicy, dispatch: Dispatch) -> None:
        self.policy = policy
        self._dispatch = dispatch
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=1024)
        self.port: int = self._socket.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._workers = ThreadPoolExecutor(policy.threads, thread_name_prefix="jm-rest-worker")
        self._pending = 0
        #: connections that have not yet sent a whole request; closed at the header timeout
        self._silent: set[Any] = set()
        self._thread: threading.Thread | None = None
        self._web_server: Any = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Serve from a thread of its own; returns at once (the socket is bound already, so
        early connections wait in its backlog while the thread imports aiohttp)."""
        self._thread = threading.Thread(target=self._run, name="jm-rest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            self._socket.close()
            return
        if self._ready.wait(timeout=10):
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                future.result(timeout=5)
            except Exception:  # stopping anyway
                log.debug("REST server shutdown", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._socket.close()
        self._workers.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException:
            log.exception("the REST server could not start")
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _serve(self) -> None:
        policy = self.policy
        web_server = _limited_server(
            self._handle,
            policy.max_connections,
            policy.max_body_bytes,
            loop=self._loop,
            access_log=None,
            keepalive_timeout=policy.idle_timeout_s,
            max_line_size=8190,
            max_field_size=8190,
        )
        self._web_server = web_server

        def protocol() -> asyncio.BaseProtocol:
            handler = web_server.protocol()
            if not isinstance(handler, _Refused):
                self._silent.add(handler)
                self._loop.call_later(policy.header_timeout_s, self._close_if_silent, handler)
            return handler

        self._server = await self._loop.create_server(
            protocol,
            sock=self._socket,
            ssl=policy.ssl_context,
            ssl_handshake_timeout=policy.header_timeout_s if policy.ssl_context else None,
            backlog=1024,
        )

    @property
    def refused_connections(self) -> int:
        """Connections closed at once because ``rest.server.max-connections`` were open."""
        return self._web_server.refused if self._web_server is not None else 0

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._web_server is not None:
            await self._web_server.shutdown(timeout=1.0)

    def _close_if_silent(self, handler: Any) -> None:
        """The header timeout: a connection that has sent no whole request yet is closed."""
        if self._web_server is not None:
            self._web_server.unmade.discard(handler)  # its TLS handshake failed, if still there
        if handler in self._silent:
            self._silent.discard(handler)
            handler.force_close()

    # -------------------------------------------------------------- requests

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:

        self._silent.discard(request.protocol)
        origin = request.headers.get("Origin")
        cross_origin = origin is not None and origin != self._own_origin(request)
        allowed_origin = origin if cross_origin and origin in self.policy.allowed_origins else None
        cors = {"Access-Control-Allow-Origin": allowed_origin, "Vary": "Origin"}
        if not allowed_origin:
            cors = {"Vary": "Origin"}
        if request.method == "OPTIONS":
            return self._preflight(allowed_origin, cors)
        response = await self._checked(request, cross_origin and not allowed_origin)
        response.headers.update(cors)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"  # no clicking its buttons from a frame
        return response

    @staticmethod
    def _own_origin(request: web.BaseRequest) -> str:
        return f"{request.scheme}://{request.host}"

    def _preflight(self, allowed_origin: str | None, cors: dict[str, str]) -> web.Response:
        from aiohttp import web  # noqa: F811

        if allowed_origin is None:
            return _errors(
                HTTPStatus.FORBIDDEN,
                "Cross-origin requests are not allowed from this origin "
                "(see web.access-control-allow-origin)",
                **cors,
            )
        return web.Response(
            status=HTTPStatus.NO_CONTENT,
            headers={
                **cors,
                "Access-Control-Allow-Methods": _ALLOWED_METHODS,
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            },
        )

    async def _checked(self, request: web.BaseRequest, foreign: bool) -> web.Response:
        from aiohttp import web  # noqa: F811

        method = request.method
        if method not in SAFE_METHODS:
            if foreign:
                return _errors(
                    HTTPStatus.FORBIDDEN,
                    f"A page of another origin ({request.headers.get('Origin')}) may not "
                    f"{method} here (see web.access-control-allow-origin)",
                )
            if self.policy.token is not None and not self._authorized(request):
                return _errors(
                    HTTPStatus.UNAUTHORIZED,
                    "This request changes the cluster and needs the access token: send "
                    "'Authorization: Bearer <security.rest.token>'",
                    **{"WWW-Authenticate": 'Bearer realm="strom"'},
                )
        body: Any = None
        if request.body_exists:
            length = request.content_length
            if length is not None and length > self.policy.max_body_bytes:
                return _errors(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"The body is {length} bytes; at most {self.policy.max_body_bytes} are "
                    "accepted (rest.server.max-content-length)",
                    Connection="close",
                )
            if request.content_type != "application/json":
                return _errors(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    f"Bodies must be JSON (Content-Type: application/json), not "
                    f"{request.content_type!r}",
                )
            try:
                async with asyncio.timeout(self.policy.header_timeout_s):
                    raw = await request.read()
            except TimeoutError:
                return _errors(
                    HTTPStatus.REQUEST_TIMEOUT,
                    "The body did not arrive in time",
                    Connection="close",
                )
            except web.HTTPRequestEntityTooLarge:
                return _errors(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"The body is larger than {self.policy.max_body_bytes} bytes "
                    "(rest.server.max-content-length)",
                    Connection="close",
                )
            if raw.strip():
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as error:
                    return _errors(
                        HTTPStatus.BAD_REQUEST, f"Bad request: the body is not JSON: {error}"
                    )
        if self._pending >= self.policy.max_pending:
            return _errors(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "The JobManager is busy answering other REST requests; try again",
                **{"Retry-After": "1"},
            )
        self._pending += 1
        try:
            answer = await self._loop.run_in_executor(
                self._workers, self._dispatch, method, request.raw_path, body
            )
        finally:
            self._pending -= 1
        return web.Response(
            status=answer.status,
            body=answer.body,
            headers={"Content-Type": answer.content_type, **answer.headers},
        )

    def _authorized(self, request: web.BaseRequest) -> bool:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        expected = self.policy.token or ""
        return scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), expected.encode()
        )
