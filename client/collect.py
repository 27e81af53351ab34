"""The client's side of ``execute_and_collect``: a gRPC receiver and the result iterator.

Only a sender that knows a collect sink's token (a random secret made by this client and
shipped inside the job) is heard: a batch naming any other token is refused before anything is
kept or unpickled, so a peer that merely reaches the receiver's port can neither run code here
nor make it hold memory. With internal TLS on, the receiver also asks for a certificate of the
cluster CA.
"""

from __future__ import annotations

import hmac
import logging
import pickle
import queue
import threading
from concurrent import futures
from typing import Any

import grpc

from strom.datastream.data_stream import CloseableIterator
from strom.errors import JobExecutionError
from strom.rpc import collect_pb2 as pb
from strom.rpc import collect_pb2_grpc
from strom.rpc.roles import CLIENT_POLICY, RoleGuard
from strom.rpc.tls import InternalTls, add_port

log = logging.getLogger(__name__)

_QUEUE_BATCHES = 64
_END = object()


class _Stream:
    def __init__(self, exact: bool) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(_QUEUE_BATCHES)
        self.finished: set[int] = set()
        self.parallelism: int | None = None
        self.closed = threading.Event()
        #: hold each subtask's results until one of its executions has sent them all (BATCH)
        self.exact = exact
        #: batches taken in so far (read by other threads: progress only)
        self.received = 0
        #: exact streams: every subtask's results are in; what comes later is dropped
        self.complete = False


class _HeldResults:
    """BATCH: each sink subtask's pickled batches per execution, until one execution ends."""

    def __init__(self) -> None:
        self.batches: dict[int, dict[int, list[bytes]]] = {}  # subtask -> attempt -> batches
        self.done: set[int] = set()  # subtasks whose results were handed out

    def add(self, subtask: int, attempt: int, payload: bytes) -> None:
        if subtask not in self.done:
            self.batches.setdefault(subtask, {}).setdefault(attempt, []).append(payload)

    def end(self, subtask: int, attempt: int) -> list[bytes]:
        """The batches of ``attempt`` if it is the first execution of ``subtask`` to end;
        what every other execution of the subtask sent, or sends later, is dropped."""
        if subtask in self.done:
            return []
        self.done.add(subtask)
        return self.batches.pop(subtask, {}).get(attempt, [])


class CollectReceiver(collect_pb2_grpc.CollectServiceServicer):
    """Receives collected batches for every collect sink of the jobs this client runs."""

    def __init__(self, host: str, tls: InternalTls | None = None) -> None:
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="collect"),
            # with TLS, only the job's slot processes (TaskManagers' certificates) push results
            interceptors=[RoleGuard(CLIENT_POLICY)],
        )
        collect_pb2_grpc.add_CollectServiceServicer_to_server(self, self._server)
        self.port = add_port(self._server, f"{host}:0", tls=tls)
        self.address = f"{host}:{self.port}"
        self._server.start()

    def stop(self) -> None:
        self._server.stop(0)

    def expect(self, token: str, exact: bool = False) -> None:
        """Accept batches carrying ``token`` (a collect sink's secret) from now on; ``exact``
        (BATCH jobs): hand out each sink subtask's results from one complete execution only."""
        with self._lock:
            self._streams.setdefault(token, _Stream(exact))

    def _stream(self, token: str) -> _Stream:
        with self._lock:
            return self._streams[token]

    def _known(self, token: str) -> _Stream | None:
        """The stream of ``token``, compared in constant time; None for a stranger's."""
        with self._lock:
            streams = list(self._streams.items())
        found = None
        for known, stream in streams:
            if hmac.compare_digest(known.encode(), token.encode()):
                found = stream
        return found

    def Push(self, request_iterator, context) -> pb.CollectAck:
        for batch in request_iterator:
            stream = self._known(batch.token)
            if stream is None:
                log.warning("refused collected results from %s: unknown token", context.peer())
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "unknown collect token")
            if batch.end:
                item = ("end", batch.subtask, batch.attempt, batch.parallelism)
            else:
                item = ("data", batch.subtask, batch.attempt, batch.payload)
            while not stream.closed.is_set():
                try:
                    stream.queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    if not context.is_active():
                        return pb.CollectAck(ok=False)
            else:
                if stream.complete:
                    # A sink subtask that runs again after its results were all handed out
                    # (its execution failed after sending its end): heard, dropped, and not
                    # failed.
                    continue
                return pb.CollectAck(ok=False)
            stream.received += 1
        return pb.CollectAck(ok=True)

    def iterator(self, token: str, job_client: Any) -> CloseableIterator:
        stream = self._stream(token)
        pending: list = []
        held = _HeldResults() if stream.exact else None

        def hand_out(payloads: list[bytes]) -> None:
            # Only called when pending is empty (it is used up before the queue is read).
            for payload in reversed(payloads):
                pending.extend(reversed(pickle.loads(payload)))  # popped from its end

        def finish() -> None:
            stream.closed.set()
            wait = getattr(job_client, "wait", None)
            if callable(wait):
                wait()

        def next_value() -> Any:
            while True:
                if pending:
                    return pending.pop()
                if stream.closed.is_set():
                    raise StopIteration
                try:
                    kind, subtask, attempt, body = stream.queue.get(timeout=0.2)
                except queue.Empty:
                    status = job_client.get_job_status()
                    if status in ("FAILED", "CANCELED", "FINISHED") and stream.queue.empty():
                        if status == "FAILED":
                            job_client.get_job_execution_result()  # raises with the traceback
                            raise JobExecutionError("the job failed") from None
                        finish()
                        raise StopIteration from None
                    continue
                if kind == "data":
                    if held is None:
                        hand_out([body])
                    else:
                        held.add(subtask, attempt, body)
                else:
                    if held is not None:
                        hand_out(held.end(subtask, attempt))
                    stream.finished.add(subtask)
                    stream.parallelism = body
                    if len(stream.finished) >= body:
                        stream.complete = held is not None
                        finish()
                        if not pending:
                            raise StopIteration

        def close() -> None:
            if not stream.closed.is_set():
                stream.closed.set()
                if job_client.get_job_status() not in ("FAILED", "CANCELED", "FINISHED"):
                    job_client.cancel()
            finish()

        iterator = CloseableIterator(next_value, close)
        iterator.batches_received = lambda: stream.received  # how far the sink got (tests)
        return iterator
