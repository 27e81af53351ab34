"""Blocking result partitions: how the stages of a BATCH job hand data to each other.

In BATCH every exchange between job vertices is blocking, as in Flink with
``ALL_EXCHANGES_BLOCKING``: a producing subtask writes its whole output on an edge, one file
per consumer subtask, and its consumers are deployed only after it finished (the JobManager's
stage-by-stage scheduling, ``jobmanager/batch_execution.py``). A consumer reads each of its
input partitions from start to end, one after the other, into its input gate.

The files live in a folder of the **TaskManager** (``<work dir>/partitions/<job>/``), not of
the slot process: a slot process ends with its tasks, and the consumers of its partitions run
later, often in slot processes that start after it ended. The TaskManager serves them over the
data plane (``DataExchange.FetchPartition`` on its gRPC address, the address the JobManager
gives consumers as their producer's location); a consumer on the same TaskManager reads the
file directly. A producer's files go once all its consumers have finished, the rest when the
job ends (``ReleasePartitions``), and all when the TaskManager stops; a partition lost with its
TaskManager is produced again by re-running its producer (region failover).

A partition file is a sequence of frames: a 4-byte little-endian length, then one element
encoded by ``elements.encode``; the last one is END_OF_PARTITION. It is written under a
temporary name and renamed when complete, so a partition that exists is whole.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from strom.errors import StromError
from strom.rpc import data_pb2 as pb
from strom.rpc import data_pb2_grpc, tls
from taskmanager.network import data_tokens
from taskmanager.network.channels import ChannelError, OutputChannel
from taskmanager.network.elements import DecodeError, decode, encode
from taskmanager.network.input_gate import GateClosed

if TYPE_CHECKING:
    from taskmanager.network.input_gate import InputGate

__all__ = [
    "BlockingPartitionChannel",
    "PartitionNotFound",
    "PartitionReader",
    "ResultPartitions",
]

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<I")
#: how much of a partition one read (and one streamed chunk) takes
CHUNK_BYTES = 1024 * 1024
_WRITE_BUFFER_BYTES = 1024 * 1024
_temporary_names = itertools.count()


class PartitionNotFound(StromError):
    """A partition a consumer needs is not where the JobManager said it is (its TaskManager
    was lost or released it): ``producer`` ("vertex/subtask") must run again."""

    def __init__(self, message: str, producer: str = "") -> None:
        super().__init__(message)
        self.producer = producer


class ResultPartitions:
    """The finished result partitions kept by one TaskManager, under ``root``.

    ``address`` gives the gRPC address of the TaskManager that serves them: a consumer whose
    producer's location is that address reads the file itself.
    """

    def __init__(self, root: Path, address: Callable[[], str]) -> None:
        self.root = Path(root)
        self._address = address

    @property
    def address(self) -> str:
        """The gRPC address of the TaskManager that keeps these partitions."""
        return self._address()

    def path(
        self, job_id: str, producer_vertex: str, producer_subtask: int, edge: int, consumer: int
    ) -> Path:
        """Where the partition of one producer subtask for one consumer subtask is; raises
        ``ValueError`` for names that are not one plain path component (a peer's request must
        not reach outside the partitions' folder)."""
        _one_component(job_id)
        _one_component(producer_vertex)
        return self.root / job_id / f"{producer_vertex}-{producer_subtask}" / f"e{edge}-c{consumer}"

    def chunks(self, request: pb.PartitionRequest) -> Iterator[bytes]:
        """The bytes of a finished partition, a chunk at a time; raises PartitionNotFound."""
        path = self.path(
            request.job_id,
            request.producer_vertex,
            request.producer_subtask,
            request.edge,
            request.consumer_subtask,
        )
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise PartitionNotFound(
                f"no partition {path.parent.name}/{path.name} of job {request.job_id} on "
                f"TaskManager {self.address}",
                f"{request.producer_vertex}/{request.producer_subtask}",
            ) from None
        with file:
            while chunk := file.read(CHUNK_BYTES):
                yield chunk

    def release(self, job_id: str, producer_vertex: str = "", producer_subtask: int = 0) -> None:
        """Delete every partition of ``job_id`` kept here, or only those of one producer
        subtask when ``producer_vertex`` is given."""
        try:
            _one_component(job_id)
            if producer_vertex:
                _one_component(producer_vertex)
        except ValueError:
            return
        folder = self.root / job_id
        if producer_vertex:
            folder = folder / f"{producer_vertex}-{producer_subtask}"
        shutil.rmtree(folder, ignore_errors=True)

    def release_all(self) -> None:
        """Delete every partition kept here (the TaskManager stops)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def serve(self, request: pb.PartitionRequest, context: Any) -> Iterator[pb.PartitionChunk]:
        """``DataExchange.FetchPartition``: stream a partition; NOT_FOUND if it is not here."""
        try:
            for chunk in self.chunks(request):
                yield pb.PartitionChunk(data=chunk)
        except PartitionNotFound as error:
            context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


def _one_component(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is one plain, non-empty path component."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise ValueError(f"not a valid name for a result partition: {name!r}")


class BlockingPartitionChannel(OutputChannel):
    """A producer's channel to one consumer in BATCH: the elements go to the partition file.

    The file is opened at the first element, and takes its final name on ``close``; ``cancel``
    deletes what was written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temporary = path.with_name(
            f".{path.name}.{os.getpid()}-{next(_temporary_names)}.inprogress"
        )
        self._file: Any = None
        self._closed = False
        self.bytes_written = 0

    def send(self, element: Any) -> None:
        if self._closed:
            raise ChannelError(f"send on the closed partition {self.path}")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._temporary, "wb", buffering=_WRITE_BUFFER_BYTES)  # noqa: SIM115
        data = encode(element)
        self._file.write(_LENGTH.pack(len(data)))
        self._file.write(data)
        self.bytes_written += _LENGTH.size + len(data)

    def close(self) -> None:
        """The partition is complete: give it its final name."""
        if self._closed:
            return
        self._closed = True
        if self._file is None:  # nothing was sent at all: still a (empty) finished partition
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._temporary, "wb")  # noqa: SIM115
        self._file.close()
        os.replace(self._temporary, self.path)

    def cancel(self) -> None:
        """Abandon the partition: what was written is deleted."""
        self._closed = True
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        try:
            self._temporary.unlink()
        except OSError:
            pass


def _frames(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The encoded elements in a stream of partition bytes cut anywhere."""
    pending = b""
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        offset, end = 0, len(data)
        while end - offset >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(data, offset)
            start = offset + _LENGTH.size
            if end - start < length:
                break
            yield data[start : start + length]
            offset = start + length
        pending = data[offset:]
    if pending:
        raise DecodeError(f"a partition ends inside an element ({len(pending)} bytes left)")


class PartitionReader:
    """Feeds a consumer task's input gate from the partitions it consumes, one after the other.

    ``inputs`` are ``(gate channel, partition request, location)``: the location is the
    address of the TaskManager that keeps the partition. One thread per consumer task: the
    gate's bounded channels hold it back while the task is busy (back pressure, as with
    pipelined exchanges). A failure is posted into the task's mailbox, so the task fails with
    it.
    """

    def __init__(
        self,
        gate: InputGate,
        inputs: list[tuple[int, pb.PartitionRequest, str]],
        partitions: ResultPartitions,
        name: str,
    ) -> None:
        self.gate = gate
        self.inputs = inputs
        self.partitions = partitions
        #: the producers ("vertex/subtask") whose partitions could not be read
        self.lost: list[str] = []
        self._thread = threading.Thread(target=self._run, name=f"partitions of {name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _chunks(self, request: pb.PartitionRequest, location: str) -> Iterator[bytes]:
        if location == self.partitions.address:
            yield from self.partitions.chunks(request)
            return
        channel = tls.channel(
            location, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        try:
            stub = data_pb2_grpc.DataExchangeStub(channel)
            try:
                metadata = data_tokens.metadata(request.job_id)
                for chunk in stub.FetchPartition(request, metadata=metadata):
                    yield chunk.data
            except grpc.RpcError as error:
                raise PartitionNotFound(
                    f"cannot read partition {request.producer_vertex}[{request.producer_subtask}]"
                    f" of job {request.job_id} from TaskManager {location}: "
                    f"{error.code().name} {error.details()}",
                    f"{request.producer_vertex}/{request.producer_subtask}",
                ) from None
        finally:
            channel.close()

    def _missing_here(self, position: int) -> list[str]:
        """The producers of the inputs after ``position`` kept on this TaskManager whose
        partition is not there either: reported together, they are produced again at once."""
        missing = []
        for _, request, location in self.inputs[position + 1 :]:
            path = self.partitions.path(
                request.job_id,
                request.producer_vertex,
                request.producer_subtask,
                request.edge,
                request.consumer_subtask,
            )
            if location == self.partitions.address and not path.exists():
                missing.append(f"{request.producer_vertex}/{request.producer_subtask}")
        return missing

    def _run(self) -> None:
        put = self.gate.put
        position = 0
        try:
            for number, (index, request, location) in enumerate(self.inputs):
                position = number  # where a failure happened
                for frame in _frames(self._chunks(request, location)):
                    put(index, decode(frame))
        except GateClosed:
            return  # the task ended (cancelled, or failed elsewhere)
        except Exception as error:  # the task fails with the reason
            log.warning("reading a partition failed: %s", error)
            failure = error if isinstance(error, StromError) else PartitionNotFound(repr(error))
            if isinstance(error, PartitionNotFound) and error.producer:
                self.lost.extend([error.producer, *self._missing_here(position)])

            def fail() -> None:
                raise failure

            try:
                self.gate.post(fail)
            except GateClosed:
                pass
