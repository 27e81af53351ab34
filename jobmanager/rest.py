"""The REST API and web dashboard on ``rest.port``, with Flink's paths and JSON shapes.

Errors answer as Flink's do: ``{"errors": ["..."]}`` with the status that fits — 404 for an
unknown job, TaskManager or path, 400 for a malformed body or query, 405 for a method a path
does not take, 503 for what this JobManager cannot do (yet). Malformed requests never take the
process down. The API is described in ``jobmanager/web/openapi.yaml``; the dashboard is the
static page in ``jobmanager/web/`` served at ``/``. The HTTP layer under the routes (tokens,
CORS, limits, timeouts, TLS) is :mod:`jobmanager.rest_transport`.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from jobmanager import job_views, metrics
from jobmanager.observability import (
    DEFAULT_TAIL_BYTES,
    MAX_TAIL_BYTES,
    LogFile,
    TaskManagerObserver,
    TaskManagerUnavailable,
    own_log_file,
)
from jobmanager.rest_transport import Answer, RestPolicy, RestTransport

if TYPE_CHECKING:
    from jobmanager.service import JobManager

log = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).resolve().parent / "web"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".yaml": "application/yaml; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_TEXT = "text/plain; charset=utf-8"
_LIVE_TIMEOUT_S = 1.0


class RestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Response:
    """An answer other than a JSON 200: another status, a content type, extra headers."""

    def __init__(
        self,
        payload: Any,
        status: HTTPStatus = HTTPStatus.OK,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.payload = payload
        self.status = status
        self.content_type = content_type
        self.headers = headers or {}


def text(body: str, status: HTTPStatus = HTTPStatus.OK, **headers: str) -> Response:
    return Response(body.encode(), status, _TEXT, headers)


class Route:
    """A method and path pattern and the handler that serves them."""

    def __init__(self, method: str, pattern: str, handler: Callable[..., Any]) -> None:
        self.method = method
        self.pattern = re.compile(f"^{pattern}/?$")
        self.handler = handler
        parameters = inspect.signature(handler).parameters
        self.takes_body = "body" in parameters
        self.takes_query = "query" in parameters


class RestServer:
    """The REST routes; :class:`~jobmanager.rest_transport.RestTransport` serves them."""

    def __init__(self, jobmanager: JobManager, host: str, port: int) -> None:
        self.jm = jobmanager
        self.routes: list[Route] = []
        self.observer = TaskManagerObserver()
        self._register_routes()
        self.policy = RestPolicy.from_config(jobmanager.config)
        self._transport = RestTransport(host, port, self.policy, self.dispatch)
        self.port = self._transport.port

    def add_route(self, method: str, pattern: str, handler: Callable[..., Any]) -> None:
        """Serve ``handler(**groups)`` for requests matching the regex ``pattern``.

        A handler with a ``body`` parameter gets the parsed JSON body (None without one), with
        a ``query`` parameter the query string as a dict of single values. It returns what to
        send as JSON, a :class:`Response`, or ``(content_type, bytes)``.
        """
        self.routes.append(Route(method, pattern, handler))

    def _register_routes(self) -> None:
        job = r"/jobs/(?P<job_id>[^/]+)"
        tm = r"/taskmanagers/(?P<tm_id>[^/]+)"
        for method, pattern, handler in [
            ("GET", r"/", lambda: self._static("index.html")),
            ("GET", r"/index\.html", lambda: self._static("index.html")),
            ("GET", r"/web/(?P<name>[^/]+)", self._static),
            ("GET", r"/overview", lambda: self.jm.overview()),
            ("GET", r"/config", self._config),
            ("GET", r"/metrics", self._metrics),
            ("GET", r"/taskmanagers", lambda: {"taskmanagers": self._taskmanager_list()}),
            ("GET", tm, self._taskmanager),
            ("GET", tm + r"/metrics", self._taskmanager_metrics),
            ("GET", tm + r"/logs?", lambda tm_id, query: self._taskmanager_log(tm_id, query)),
            (
                "GET",
                tm + r"/stdout",
                lambda tm_id, query: self._taskmanager_log(tm_id, query, "stdout"),
            ),
            ("GET", r"/jobmanager/config", self._jobmanager_config),
            ("GET", r"/jobmanager/logs?", lambda query: self._jobmanager_log(query)),
            ("GET", r"/jobmanager/stdout", lambda query: self._jobmanager_log(query, "stdout")),
            ("GET", r"/jobs/overview", lambda: {"jobs": self.jm.dispatcher.summaries()}),
            ("GET", r"/jobs", self._jobs),
            ("GET", job, self._job),
            ("PATCH", job, self._cancel),
            ("GET", job + r"/plan", self._plan),
            ("GET", job + r"/config", self._job_config),
            ("GET", job + r"/exceptions", self._exceptions),
            ("GET", job + r"/checkpoints", self._checkpoints),
            ("GET", job + r"/checkpoints/config", self._checkpoint_config),
            ("GET", job + r"/checkpoints/details/(?P<checkpoint_id>[^/]+)", self._checkpoint),
            ("GET", job + r"/vertices/(?P<vertex_id>[^/]+)", self._vertex),
            ("GET", job + r"/vertices/(?P<vertex_id>[^/]+)/backpressure", self._backpressure),
            ("GET", job + r"/vertices/(?P<vertex_id>[^/]+)/watermarks", self._watermarks),
            ("POST", job + r"/savepoints", self._trigger_savepoint),
            ("GET", job + r"/savepoints/(?P<trigger_id>[^/]+)", self._savepoint_status),
            ("POST", job + r"/stop", self._stop),
        ]:
            self.add_route(method, pattern, handler)

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._transport.start()

    def stop(self) -> None:
        self._transport.stop()
        self.observer.close()

    # -------------------------------------------------------------- dispatching

    def dispatch(self, method: str, target: str, body: Any) -> Answer:
        """Answer one request (on a REST worker thread); ``target`` is the path and query as
        sent, ``body`` the parsed JSON body or None."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        leader = self.jm.standby_rest_redirect(target)  # high availability: a standby
        if leader is not None:
            return self._answer(
                HTTPStatus.TEMPORARY_REDIRECT, {"leader": leader}, {"Location": leader}
            )
        try:
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            allowed: list[str] = []
            for route in self.routes:
                match = route.pattern.match(path)
                if not match:
                    continue
                if route.method != method:
                    allowed.append(route.method)
                    continue
                kwargs = match.groupdict()
                if route.takes_body:
                    kwargs["body"] = body
                if route.takes_query:
                    kwargs["query"] = query
                return self._answer(HTTPStatus.OK, route.handler(**kwargs))
            if allowed:
                methods = ", ".join(sorted(set(allowed)))
                return self._answer(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    {"errors": [f"Method {method} is not allowed for {path}; allowed: {methods}"]},
                    {"Allow": methods},
                )
            raise RestError(HTTPStatus.NOT_FOUND, f"Not found: {method} {path}")
        except RestError as error:
            return self._answer(error.status, {"errors": [str(error)]})
        except ValueError as error:
            return self._answer(HTTPStatus.BAD_REQUEST, {"errors": [f"Bad request: {error}"]})
        except Exception as error:  # a bug must not take the server down
            log.exception("REST handler failed for %s %s", method, path)
            return self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"errors": [repr(error)]})

    @staticmethod
    def _answer(status: HTTPStatus, payload: Any, headers: dict[str, str] | None = None) -> Answer:
        extra = dict(headers or {})
        if isinstance(payload, Response):
            status, extra = payload.status, {**extra, **payload.headers}
            content_type = payload.content_type
            payload = payload.payload
            if content_type is None:
                content_type, data = "application/json", json.dumps(payload).encode()
            else:
                data = payload
        elif isinstance(payload, tuple):  # (content_type, bytes) for non-JSON answers
            content_type, data = payload
        else:
            content_type, data = "application/json", json.dumps(payload).encode()
        return Answer(int(status), content_type, data, extra)

    # -------------------------------------------------------------- static files

    def _static(self, name: str) -> Response:
        path = WEB_ROOT / name
        if not _STATIC_NAME.match(name) or not path.is_file():
            raise RestError(HTTPStatus.NOT_FOUND, f"Not found: /web/{name}")
        content_type = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        return Response(path.read_bytes(), content_type=content_type)

    # -------------------------------------------------------------- cluster

    def _config(self) -> dict[str, Any]:
        import strom

        return {
            "refresh-interval": 3000,
            "timezone-name": "UTC",
            "timezone-offset": 0,
            "strom-version": strom.__version__,
            "features": {
                "web-submit": bool(self.jm.config["web.submit.enable"]),
                "web-cancel": True,
                "web-history": False,
            },
        }

    def _checkpoint_stats_of(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self.jm.dispatcher.checkpoint_stats(job_id)
        except KeyError:  # gone from the history meanwhile
            return None

    def _metrics(self) -> Response:
        jobs = []
        for summary in self.jm.dispatcher.summaries():
            try:
                details = self.jm.dispatcher.details(summary["jid"])
            except KeyError:
                continue
            jobs.append(job_views.job_view(details, None, self._reported(summary["jid"])))
        stats = {}
        for job in jobs:
            job_stats = self._checkpoint_stats_of(job["jid"])
            if job_stats is not None:
                stats[job["jid"]] = job_stats
        families = metrics.jobmanager_families(
            self.jm.overview(), jobs, stats, now_ms=int(time.time() * 1000)
        )
        return Response(metrics.render(families).encode(), content_type=metrics.CONTENT_TYPE)

    # -------------------------------------------------------------- TaskManagers

    def _taskmanager_list(self) -> list[dict[str, Any]]:
        items = self.jm.taskmanagers()
        for item in items:
            host, _, port = item["address"].rpartition(":")
            item.setdefault("path", item["address"])
            item.setdefault("dataPort", int(port) if port.isdigit() else -1)
            item.setdefault("jmxPort", -1)
        self.observer.forget(item["address"] for item in items)
        return items

    def _find_taskmanager(self, tm_id: str) -> dict[str, Any]:
        for item in self._taskmanager_list():
            if item["id"] == tm_id:
                return item
        raise RestError(HTTPStatus.NOT_FOUND, f"TaskManager {tm_id} not found")

    def _taskmanager(self, tm_id: str) -> dict[str, Any]:
        item = self._find_taskmanager(tm_id)
        with self.jm.lock:
            record = self.jm.registry.get(tm_id)
            allocated = dict(record.allocated) if record is not None else {}
        item["allocatedSlots"] = [
            {"index": index, "jobId": job_id, "resource": {}}
            for index, job_id in sorted(allocated.items())
        ]
        try:
            observed = self.observer.metrics(item["address"])
        except TaskManagerUnavailable as error:
            item["metrics"] = {}
            item["metricsPort"] = 0
            item["metricsError"] = str(error)
            item["tasks"] = []
            item["slotProcesses"] = []
            return item
        process = observed.process
        item["metrics"] = {
            "cpuLoad": round(process.cpu_percent / 100.0, 4),
            "memoryRss": process.rss_bytes,
            "threads": process.threads,
            "openFiles": process.open_files,
            "uptime": process.uptime_ms,
            "cpuCores": process.cpu_cores,
            "physicalMemory": process.physical_memory,
            "availableMemory": process.available_memory,
            "runningTasks": len(observed.subtasks),
        }
        item["hardware"]["freeMemory"] = process.available_memory
        item["metricsPort"] = observed.prometheus_port
        item["tasks"] = [
            {
                "jobId": s.job_id,
                "vertexId": s.vertex_id,
                "subtask": s.subtask,
                "name": s.task_name,
                "status": s.state,
                "read-records": s.records_in,
                "write-records": s.records_out,
                "pid": s.pid,
            }
            for s in observed.subtasks
        ]
        # Strom's addition: each slot's process (a job attempt's subtasks in one slot)
        item["slotProcesses"] = [
            {
                "pid": p.pid,
                "jobId": p.job_id,
                "attempt": p.attempt,
                "slot": p.slot,
                "memoryRss": p.rss_bytes,
                "threads": p.threads,
                "tasks": p.tasks,
            }
            for p in observed.slot_processes
        ]
        return item

    def _taskmanager_metrics(self, tm_id: str) -> Response:
        item = self._find_taskmanager(tm_id)
        try:
            observed = self.observer.metrics(item["address"])
        except TaskManagerUnavailable as error:
            raise RestError(HTTPStatus.SERVICE_UNAVAILABLE, str(error)) from None
        return Response(observed.prometheus_text.encode(), content_type=metrics.CONTENT_TYPE)

    @staticmethod
    def _tail_size(query: dict[str, str]) -> int:
        value = query.get("bytes", "")
        if not value:
            return DEFAULT_TAIL_BYTES
        if not value.isdigit() or not 0 < int(value) <= MAX_TAIL_BYTES:
            raise RestError(
                HTTPStatus.BAD_REQUEST,
                f"Bad request: bytes={value!r}; expected a number from 1 to {MAX_TAIL_BYTES}",
            )
        return int(value)

    @staticmethod
    def _log_response(file: LogFile) -> Response:
        headers = {"X-Strom-Log-Available": "true" if file.available else "false"}
        if file.path:
            headers["X-Strom-Log-Path"] = file.path.encode("ascii", "replace").decode()
        if file.truncated:
            headers["X-Strom-Log-Truncated"] = "true"
        return text(file.text, **headers)

    def _taskmanager_log(self, tm_id: str, query: dict[str, str], kind: str = "log") -> Response:
        size = self._tail_size(query)
        item = self._find_taskmanager(tm_id)
        try:
            file = self.observer.read_log(item["address"], kind, size)
        except TaskManagerUnavailable as error:
            raise RestError(HTTPStatus.SERVICE_UNAVAILABLE, str(error)) from None
        return self._log_response(file)

    # -------------------------------------------------------------- JobManager

    def _jobmanager_config(self) -> list[dict[str, str]]:
        config = self.jm.config

        def text(value: Any) -> str:
            return str(value).lower() if isinstance(value, bool) else str(value)

        return [
            {"key": key, "value": text(config[key])}
            for key in sorted(config)
            if config[key] is not None
        ]

    def _jobmanager_log(self, query: dict[str, str], kind: str = "log") -> Response:
        return self._log_response(own_log_file(kind, self._tail_size(query)))

    # -------------------------------------------------------------- jobs

    def _jobs(self) -> dict[str, Any]:
        summaries = self.jm.dispatcher.summaries()
        return {"jobs": [{"id": s["jid"], "status": s["state"]} for s in summaries]}

    def _details(self, job_id: str) -> dict[str, Any]:
        if not _JOB_ID.match(job_id):
            raise RestError(
                HTTPStatus.NOT_FOUND,
                f"Job {job_id!r} not found: a job id is 32 lowercase hexadecimal characters",
            )
        try:
            return self.jm.dispatcher.details(job_id)
        except KeyError:
            raise RestError(HTTPStatus.NOT_FOUND, f"Job {job_id} not found") from None

    def _record(self, job_id: str) -> Any:
        return self.jm.dispatcher.jobs.get(job_id)

    def _reported(self, job_id: str) -> dict[tuple[str, int], tuple[int, int]]:
        """Records per subtask as last reported by heartbeats and final task states."""
        return self.jm.dispatcher.reported_records(job_id)

    def _live(self, details: dict[str, Any]) -> job_views.LiveSample | None:
        """What the TaskManagers running the job sample right now; None for a job not running."""
        if details["state"] in job_views.TERMINAL_STATES or details["state"] == "CREATED":
            return None
        registered = {tm["address"] for tm in self.jm.taskmanagers()}
        addresses = {  # a TaskManager declared lost is not asked (it would only time out)
            subtask["host"]
            for vertex in details.get("vertices", [])
            for subtask in vertex.get("subtasks", [])
            if subtask.get("host") in registered
        }
        answers = self.observer.metrics_of(addresses, details["jid"], timeout=_LIVE_TIMEOUT_S)
        live = job_views.LiveSample()
        attempt = int(details.get("attempt", 0))
        for observed in answers.values():
            for s in observed.subtasks:
                if s.attempt != attempt:
                    continue
                live.subtasks[(s.vertex_id, s.subtask)] = job_views.SubtaskSample(
                    records_in=s.records_in,
                    records_out=s.records_out,
                    busy_ratio=s.busy_ratio,
                    watermark=s.watermark if s.has_watermark else None,
                    queued_batches=s.queued_batches,
                    queue_capacity=s.queue_capacity,
                    is_source=s.is_source,
                    pid=s.pid,
                    rss_bytes=s.rss_bytes,
                )
                # Back pressure as the producer saw it (waiting to send), and as its consumers
                # saw it (a producer in their process waiting for room): the larger counts.
                seen = [((s.vertex_id, s.subtask), s.backpressured_ratio)]
                seen += [((p.vertex_id, p.subtask), p.ratio) for p in s.blocked_producers]
                for key, ratio in seen:
                    live.backpressured[key] = max(live.backpressured.get(key, 0.0), ratio)
        return live

    def _job(self, job_id: str) -> dict[str, Any]:
        details = self._details(job_id)
        return job_views.job_view(details, self._live(details), self._reported(job_id))

    def _cancel(self, job_id: str, query: dict[str, str], body: Any = None) -> Response:
        mode = query.get("mode", "cancel")
        if mode != "cancel":
            raise RestError(
                HTTPStatus.BAD_REQUEST,
                f"Bad request: mode={mode!r}; the only mode is 'cancel' (stop a job with "
                "POST /jobs/<jobid>/stop)",
            )
        self._details(job_id)
        try:
            self.jm.dispatcher.cancel(job_id)
        except KeyError:
            raise RestError(HTTPStatus.NOT_FOUND, f"Job {job_id} not found") from None
        return Response({}, HTTPStatus.ACCEPTED)

    def _plan(self, job_id: str) -> dict[str, Any]:
        details = self._details(job_id)
        return {"plan": job_views.flink_plan(job_id, details["name"], details.get("plan") or {})}

    def _job_config(self, job_id: str) -> dict[str, Any]:
        details = self._details(job_id)
        record = self._record(job_id)
        user_config = dict(record.request.config) if record is not None else {}
        strategy = (
            user_config.get("restart-strategy.type") or self.jm.config["restart-strategy.type"]
        )
        parallelism = max((v["parallelism"] for v in details.get("vertices", [])), default=1)
        return {
            "jid": job_id,
            "name": details["name"],
            "execution-config": {
                "execution-mode": user_config.get("execution.runtime-mode", "streaming").upper(),
                "restart-strategy": strategy or "none",
                "job-parallelism": parallelism,
                "object-reuse-mode": False,
                "user-config": user_config,
            },
        }

    def _exceptions(self, job_id: str, query: dict[str, str]) -> dict[str, Any]:
        value = query.get("maxExceptions", "20")
        if not value.isdigit() or int(value) < 1:
            raise RestError(
                HTTPStatus.BAD_REQUEST,
                f"Bad request: maxExceptions={value!r}; expected a positive integer",
            )
        return job_views.exceptions_view(self._details(job_id), int(value))

    # -------------------------------------------------------------- checkpoints

    @staticmethod
    def _call(method: Any, *args: Any) -> Any:
        """Call a dispatcher method: an unknown job or trigger is a 404, a refusal a 400."""
        try:
            return method(*args)
        except KeyError as error:
            message = error.args[0] if error.args else f"not found: {args}"
            raise RestError(HTTPStatus.NOT_FOUND, str(message)) from None
        except ValueError as error:
            raise RestError(HTTPStatus.BAD_REQUEST, f"Bad request: {error}") from None

    def _checkpoints(self, job_id: str) -> dict[str, Any]:
        self._details(job_id)
        stats = self._call(self.jm.dispatcher.checkpoint_stats, job_id)
        empty = job_views.empty_checkpoint_stats()
        return {**empty, **stats, "summary": stats.get("summary") or empty["summary"]}

    def _checkpoint_config(self, job_id: str) -> dict[str, Any]:
        self._details(job_id)
        return self._call(self.jm.dispatcher.checkpoint_config, job_id)

    def _checkpoint(self, job_id: str, checkpoint_id: str) -> dict[str, Any]:
        self._details(job_id)
        if not checkpoint_id.isdigit():
            raise RestError(
                HTTPStatus.BAD_REQUEST,
                f"Bad request: checkpoint id {checkpoint_id!r} is not a number",
            )
        history = self._call(self.jm.dispatcher.checkpoint_stats, job_id)["history"]
        details = next((c for c in history if c.get("id") == int(checkpoint_id)), None)
        if not details:
            raise RestError(
                HTTPStatus.NOT_FOUND,
                f"Checkpoint {checkpoint_id} of job {job_id} not found",
            )
        return details

    # -------------------------------------------------------------- vertices

    def _vertex_view(self, job_id: str, vertex_id: str) -> tuple[dict[str, Any], bool]:
        details = self._details(job_id)
        if not any(v["id"] == vertex_id for v in details.get("vertices", [])):
            raise RestError(HTTPStatus.NOT_FOUND, f"Vertex {vertex_id} of job {job_id} not found")
        live = self._live(details)
        view = job_views.vertex_view(details, vertex_id, live, self._reported(job_id))
        return view, live is not None

    def _vertex(self, job_id: str, vertex_id: str) -> dict[str, Any]:
        return self._vertex_view(job_id, vertex_id)[0]

    def _backpressure(self, job_id: str, vertex_id: str) -> dict[str, Any]:
        view, sampled = self._vertex_view(job_id, vertex_id)
        return job_views.backpressure_view(view, sampled, time.time())

    def _watermarks(self, job_id: str, vertex_id: str) -> list[dict[str, str]]:
        view, _ = self._vertex_view(job_id, vertex_id)
        return [
            {"id": f"{s['subtask']}.currentInputWatermark", "value": str(s["watermark"])}
            for s in view["subtasks"]
            if s["watermark"] is not None
        ]

    # -------------------------------------------------------------- savepoints

    @staticmethod
    def _options(body: Any, fields: dict[str, type]) -> dict[str, Any]:
        """The body's known fields, checked: an object whose fields have the given types."""
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise RestError(HTTPStatus.BAD_REQUEST, "Bad request: the body must be a JSON object")
        options = {}
        for name, kind in fields.items():
            value = body.get(name)
            if value is not None and not isinstance(value, kind):
                raise RestError(
                    HTTPStatus.BAD_REQUEST,
                    f"Bad request: '{name}' must be a {'boolean' if kind is bool else 'string'}",
                )
            options[name] = value
        return options

    @staticmethod
    def _accepted(trigger: Any) -> Response:
        request_id = trigger.get("request-id") if isinstance(trigger, dict) else str(trigger)
        return Response({"request-id": request_id}, HTTPStatus.ACCEPTED)

    def _trigger_savepoint(self, job_id: str, body: Any = None) -> Response:
        self._details(job_id)
        options = self._options(body, {"target-directory": str, "cancel-job": bool})
        trigger = self._call(
            self.jm.dispatcher.trigger_savepoint,
            job_id,
            options.get("target-directory"),
            bool(options.get("cancel-job")),
        )
        return self._accepted(trigger)

    def _savepoint_status(self, job_id: str, trigger_id: str) -> dict[str, Any]:
        self._details(job_id)
        return self._call(self.jm.dispatcher.savepoint_status, job_id, trigger_id)

    def _stop(self, job_id: str, body: Any = None) -> Response:
        self._details(job_id)
        options = self._options(body, {"targetDirectory": str, "drain": bool})
        trigger = self._call(
            self.jm.dispatcher.stop_with_savepoint,
            job_id,
            options.get("targetDirectory"),
            bool(options.get("drain")),
        )
        return self._accepted(trigger)
