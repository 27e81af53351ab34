"""The REST API on ``rest.port``, with Flink's paths and JSON shapes.

Errors answer as Flink's do: ``{"errors": ["..."]}`` with a 4xx/5xx status. Malformed requests
never take the process down.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobmanager.service import JobManager

log = logging.getLogger(__name__)

Route = tuple[str, re.Pattern[str], Callable[..., Any]]


class RestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class RestServer:
    def __init__(self, jobmanager: JobManager, host: str, port: int) -> None:
        self.jm = jobmanager
        self.routes: list[Route] = []
        self.add_route("GET", r"/overview", lambda: self.jm.overview())
        self.add_route("GET", r"/taskmanagers", lambda: {"taskmanagers": self.jm.taskmanagers()})
        self.add_route("GET", r"/config", self._config)
        self.add_route("GET", r"/jobs/overview", lambda: {"jobs": self.jm.dispatcher.summaries()})
        self.add_route(
            "GET",
            r"/jobs",
            lambda: {
                "jobs": [
                    {"id": s["jid"], "status": s["state"]} for s in self.jm.dispatcher.summaries()
                ]
            },
        )
        self.add_route("GET", r"/jobs/(?P<job_id>[0-9a-f]{32})", self._job)
        self.add_route("PATCH", r"/jobs/(?P<job_id>[0-9a-f]{32})", self._cancel)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                server.handle(self, "POST")

            def do_PATCH(self) -> None:  # noqa: N802
                server.handle(self, "PATCH")

            def do_DELETE(self) -> None:  # noqa: N802
                server.handle(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("rest: " + format, *args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def add_route(self, method: str, pattern: str, handler: Callable[..., Any]) -> None:
        """Serve ``handler(**groups)`` for requests matching the regex ``pattern``."""
        self.routes.append((method, re.compile(f"^{pattern}/?$"), handler))

    def _job(self, job_id: str) -> dict[str, Any]:
        try:
            return self.jm.dispatcher.details(job_id)
        except KeyError:
            raise RestError(HTTPStatus.NOT_FOUND, f"Job {job_id} not found") from None

    def _cancel(self, job_id: str, body: Any = None) -> dict[str, Any]:
        try:
            self.jm.dispatcher.cancel(job_id)
        except KeyError:
            raise RestError(HTTPStatus.NOT_FOUND, f"Job {job_id} not found") from None
        return {}

    def _config(self) -> dict[str, Any]:
        import strom

        return {
            "refresh-interval": 3000,
            "timezone-name": "UTC",
            "strom-version": strom.__version__,
            "features": {"web-submit": bool(self.jm.config["web.submit.enable"])},
        }

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # how quickly stop() takes effect
            name="jm-rest",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = request.path.split("?", 1)[0]
        try:
            body = None
            length = int(request.headers.get("Content-Length") or 0)
            if length:
                raw = request.rfile.read(length)
                body = json.loads(raw) if raw.strip() else None
            for route_method, pattern, handler in self.routes:
                match = pattern.match(path)
                if match and route_method == method:
                    kwargs = match.groupdict()
                    if body is not None:
                        kwargs["body"] = body
                    result = handler(**kwargs)
                    self._send(request, HTTPStatus.OK, result)
                    return
            raise RestError(HTTPStatus.NOT_FOUND, f"Not found: {method} {path}")
        except RestError as error:
            self._send(request, error.status, {"errors": [str(error)]})
        except (ValueError, json.JSONDecodeError) as error:
            self._send(request, HTTPStatus.BAD_REQUEST, {"errors": [f"Bad request: {error}"]})
        except Exception as error:  # a bug must not take the server down
            log.exception("REST handler failed for %s %s", method, path)
            self._send(request, HTTPStatus.INTERNAL_SERVER_ERROR, {"errors": [repr(error)]})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: HTTPStatus, payload: Any) -> None:
        if isinstance(payload, tuple):  # (content_type, bytes) for non-JSON answers
            content_type, data = payload
        else:
            content_type, data = "application/json", json.dumps(payload).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(data)))
            request.send_header("Access-Control-Allow-Origin", "*")
            request.end_headers()
            request.wfile.write(data)
        except OSError:
            pass  # the client went away
