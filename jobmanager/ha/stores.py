"""What a new leader recovers jobs from: submitted job graphs and each job's latest completed
checkpoint, as Flink's ``JobGraphStore`` and ``CompletedCheckpointStore`` on ZooKeeper.

Job graphs can be large, so they are files in ``high-availability.storageDir`` and ZooKeeper
holds only a pointer to each (``<root>/jobgraphs/<job-id>``); a checkpoint's metadata already
lies in its checkpoint folder, so ``<root>/checkpoints/<job-id>`` points at it. Every change
is one ZooKeeper transaction fenced by the leader's election (see
:meth:`jobmanager.ha.leader_election.LeaderElection.fence`), so a deposed leader cannot
overwrite or delete what the new leader relies on.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobmanager.ha.leader_election import NotLeader

JOB_GRAPHS = "jobgraphs"
CHECKPOINTS = "checkpoints"
ATTEMPTS = "attempts"

#: Adds the leadership check to a ZooKeeper transaction (``LeaderElection.fence``); ``None``
#: for unfenced use, such as tests and tools.
Fence = Callable[[Any], None] | None


def local_folder(uri: str) -> Path:
    """A ``file://`` URI or plain path as a local folder."""
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def _commit(client: Any, fence: Fence, build: Callable[[Any], None]) -> None:
    from kazoo.exceptions import BadVersionError, NoNodeError, RolledBackError

    transaction = client.transaction()
    if fence is not None:
        fence(transaction)
    build(transaction)
    results = transaction.commit()
    failures = [r for r in results if isinstance(r, Exception)]
    if not failures:
        return
    first = next((f for f in failures if not isinstance(f, RolledBackError)), failures[0])
    if fence is not None and isinstance(results[0], NoNodeError | BadVersionError):
        raise NotLeader("this JobManager no longer leads; the write was refused") from first
    raise first


def _put_node(client: Any, fence: Fence, path: str, data: bytes) -> None:
    parent = path.rsplit("/", 1)[0]
    client.ensure_path(parent)
    if client.exists(path) is None:
        _commit(client, fence, lambda t: t.create(path, data))
    else:
        _commit(client, fence, lambda t: t.set_data(path, data))


class JobGraphStore:
    """Submitted job graphs (opaque bytes) by job id, for a new leader to recover."""

    def __init__(self, client: Any, root: str, storage_dir: str, fence: Fence = None) -> None:
        self._client = client
        self._path = f"{root}/{JOB_GRAPHS}"
        cluster = root.strip("/").replace("/", "_")
        self._folder = local_folder(storage_dir) / cluster / JOB_GRAPHS
        self._fence = fence

    def put(self, job_id: str, graph: bytes) -> None:
        """Keep ``graph`` for ``job_id``: the file first, then the pointer to it."""
        self._folder.mkdir(parents=True, exist_ok=True)
        # A fresh name per write: a pointer never names a file that is being rewritten.
        target = self._folder / f"{job_id}-{uuid.uuid4().hex[:8]}.graph"
        with tempfile.NamedTemporaryFile(dir=self._folder, delete=False) as handle:
            handle.write(graph)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
        previous = self._file_of(job_id)
        pointer = json.dumps({"path": str(target)}).encode()
        try:
            _put_node(self._client, self._fence, f"{self._path}/{job_id}", pointer)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        if previous is not None and previous != target:
            previous.unlink(missing_ok=True)

    def _file_of(self, job_id: str) -> Path | None:
        from kazoo.exceptions import NoNodeError

        try:
            data, _ = self._client.get(f"{self._path}/{job_id}")
        except NoNodeError:
            return None
        return Path(json.loads(data.decode())["path"])

    def get(self, job_id: str) -> bytes | None:
        """The graph of ``job_id``, or ``None`` when none is kept."""
        path = self._file_of(job_id)
        return None if path is None else path.read_bytes()

    def job_ids(self) -> list[str]:
        """The ids of the jobs whose graphs are kept."""
        if self._client.exists(self._path) is None:
            return []
        return sorted(self._client.get_children(self._path))

    def remove(self, job_id: str) -> None:
        """Forget ``job_id`` (it finished, failed or was cancelled): pointer, then file."""
        from kazoo.exceptions import NoNodeError

        path = self._file_of(job_id)
        if path is None:
            return
        try:
            _commit(self._client, self._fence, lambda t: t.delete(f"{self._path}/{job_id}"))
        except NoNodeError:
            pass
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class CheckpointPointer:
    """Where a job's latest completed checkpoint lies."""

    checkpoint_id: int
    external_path: str


class CheckpointPointerStore:
    """Each job's latest completed checkpoint, for a new leader to restore the job from."""

    def __init__(self, client: Any, root: str, fence: Fence = None) -> None:
        self._client = client
        self._path = f"{root}/{CHECKPOINTS}"
        self._fence = fence

    def put(self, job_id: str, checkpoint_id: int, external_path: str) -> bool:
        """Point at a newly completed checkpoint; an older one than kept is ignored (False)."""
        current = self.get(job_id)
        if current is not None and current.checkpoint_id >= checkpoint_id:
            return False
        data = json.dumps({"checkpoint_id": checkpoint_id, "path": external_path}).encode()
        _put_node(self._client, self._fence, f"{self._path}/{job_id}", data)
        return True

    def get(self, job_id: str) -> CheckpointPointer | None:
        """The latest completed checkpoint of ``job_id``, or ``None``."""
        from kazoo.exceptions import NoNodeError

        try:
            data, _ = self._client.get(f"{self._path}/{job_id}")
        except NoNodeError:
            return None
        values = json.loads(data.decode())
        return CheckpointPointer(int(values["checkpoint_id"]), values["path"])

    def remove(self, job_id: str) -> None:
        """Forget the job's pointer (the job reached a final state)."""
        from kazoo.exceptions import NoNodeError

        try:
            _commit(self._client, self._fence, lambda t: t.delete(f"{self._path}/{job_id}"))
        except NoNodeError:
            pass


class AttemptStore:
    """The highest attempt number any leader has deployed of each job
    (``<root>/attempts/<job-id>``), so that a new leader numbers its attempts above it.

    Channels, slot processes, checkpoint acknowledgements and task reports are all keyed by
    (job, attempt): a deposed leader's tasks may still run or be tearing down on the
    TaskManagers when the new leader deploys, and must never be taken for the new ones (Flink's
    ExecutionAttemptID is unique per deployment). A leader records an attempt here, fenced,
    before it sends any command for it, so a recovering leader that reads this store knows
    every attempt an earlier leader can have used.
    """

    def __init__(self, client: Any, root: str, fence: Fence = None) -> None:
        self._client = client
        self._path = f"{root}/{ATTEMPTS}"
        self._fence = fence

    def reserve(self, job_id: str, attempt: int) -> None:
        """Record that ``attempt`` of ``job_id`` is about to be deployed (before it is);
        raises :class:`NotLeader` when this JobManager no longer leads."""
        if self.highest(job_id) >= attempt:
            return
        data = json.dumps({"attempt": attempt}).encode()
        _put_node(self._client, self._fence, f"{self._path}/{job_id}", data)

    def highest(self, job_id: str) -> int:
        """The highest attempt of ``job_id`` any leader recorded, or -1 when none did."""
        from kazoo.exceptions import NoNodeError

        try:
            data, _ = self._client.get(f"{self._path}/{job_id}")
        except NoNodeError:
            return -1
        return int(json.loads(data.decode())["attempt"])

    def remove(self, job_id: str) -> None:
        """Forget the job's attempts (it reached a final state)."""
        from kazoo.exceptions import NoNodeError

        try:
            _commit(self._client, self._fence, lambda t: t.delete(f"{self._path}/{job_id}"))
        except NoNodeError:
            pass
