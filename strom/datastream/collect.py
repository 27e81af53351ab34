"""``execute_and_collect``: the collect sink's spec and its sending side.

The client starts a receiver and writes its address and a token into the spec before the job
is submitted; each subtask of the sink streams its records there over gRPC, each batch marked
with the execution (``attempt``) that sent it. A subtask that runs again sends its records
again; in BATCH the client keeps those of one complete execution (``client/collect.py``), in
STREAMING it is at-least-once, as in Flink.
"""

from __future__ import annotations

import pickle
import queue
import threading
import uuid
from typing import Any

import cloudpickle
import grpc

from strom.rpc import collect_pb2 as pb
from strom.rpc import collect_pb2_grpc, tls

_QUEUE_BATCHES = 16


def dumps(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        return cloudpickle.dumps(value, protocol=5)


class CollectSinkSpec:
    """Picklable: what the sink needs to reach the client that collects its records."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.address: str | None = None
        self.receiver: Any = None  # client side only; not pickled

    def __getstate__(self) -> dict[str, Any]:
        return {"token": self.token, "address": self.address, "receiver": None}

    def iterator(self, job_client: Any) -> Any:
        if self.receiver is None:
            raise RuntimeError("the collect sink was not connected to a receiver by the client")
        return self.receiver.iterator(self.token, job_client)

    def open_sender(self, context: Any) -> CollectSender:
        if not self.address:
            raise RuntimeError("the collect sink has no client address")
        return CollectSender(self, context.subtask_index, context.parallelism, context.attempt)


class CollectSender:
    """One subtask's stream of record batches to the client; blocks when the client lags."""

    def __init__(self, spec: CollectSinkSpec, subtask: int, parallelism: int, attempt: int):
        self.spec = spec
        self.subtask, self.parallelism, self.attempt = subtask, parallelism, attempt
        self.queue: queue.Queue[pb.CollectBatch | None] = queue.Queue(_QUEUE_BATCHES)
        self.channel = tls.channel(spec.address)
        stub = collect_pb2_grpc.CollectServiceStub(self.channel)
        self.error: BaseException | None = None
        self.done = threading.Event()

        def requests():
            while True:
                item = self.queue.get()
                if item is None:
                    return
                yield item

        def call() -> None:
            try:
                stub.Push(requests())
            except grpc.RpcError as error:
                self.error = error
            finally:
                self.done.set()

        self.thread = threading.Thread(target=call, name="collect-sender", daemon=True)
        self.thread.start()

    def _message(self, payload: bytes = b"", end: bool = False) -> pb.CollectBatch:
        return pb.CollectBatch(
            token=self.spec.token,
            subtask=self.subtask,
            parallelism=self.parallelism,
            attempt=self.attempt,
            payload=payload,
            end=end,
        )

    def _put(self, message: pb.CollectBatch | None) -> None:
        while True:
            if self.error is not None or self.done.is_set():
                raise RuntimeError(f"the client stopped collecting results: {self.error}")
            try:
                self.queue.put(message, timeout=0.5)
                return
            except queue.Full:
                continue

    def send(self, values: list) -> None:
        self._put(self._message(dumps(values)))

    def finish(self) -> None:
        self._put(self._message(end=True))
        self._put(None)
        self.done.wait(30)
        if self.error is not None:
            raise RuntimeError(f"could not deliver collected results: {self.error}")

    def close(self) -> None:
        if not self.done.is_set():
            try:
                self.queue.put_nowait(None)
            except queue.Full:
                pass
        self.channel.close()
