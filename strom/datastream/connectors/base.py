"""The connector contract the runtime drives: sources with readers, sinks with writers.

As in ``pyflink.datastream.connectors.base``, ``Source`` and ``Sink`` are what a job hands to
``env.from_source(...)`` and ``ds.sink_to(...)``. A source splits its work deterministically from
``(subtask_index, parallelism)`` alone, so every subtask reads a disjoint part and all parts
together are everything; a reader's position is a picklable value from which it resumes exactly.
A sink writer commits in two phases: ``prepare_commit`` at a checkpoint, ``commit`` once the
checkpoint is complete.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "FINISHED_POSITION",
    "DeliveryGuarantee",
    "FinishedSubtask",
    "Sink",
    "SinkWriter",
    "Source",
    "SourceReader",
    "SplitPlan",
    "StreamTransformer",
    "SupportsPreprocessing",
    "SupportsSplitAssignment",
]

#: the position, in a restore at another parallelism, of an old subtask that had read
#: everything and finished before the checkpoint
FINISHED_POSITION = "finished"


class DeliveryGuarantee(Enum):
    """What a sink promises about records reaching the outside world after failures."""

    EXACTLY_ONCE = 0
    AT_LEAST_ONCE = 1
    NONE = 2


class SourceReader(ABC):
    """Reads one subtask's share of a source."""

    @abstractmethod
    def read_batch(self, max_records: int) -> list | None:
        """Up to ``max_records`` values; ``[]`` if nothing is available right now (unbounded);
        None once exhausted (then never called again)."""

    @abstractmethod
    def snapshot_position(self) -> object:
        """A picklable position from which ``restore_position`` resumes exactly after the last
        value returned."""

    @abstractmethod
    def restore_position(self, position: object) -> None:
        """Continue from a position taken by ``snapshot_position`` of a reader of the same
        source, subtask and parallelism."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files, connections and the like."""

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:  # noqa: B027 - optional
        """A checkpoint that includes this reader's position completed everywhere (Flink's
        ``SourceReader.notifyCheckpointComplete``): acknowledge what it covers to the system
        read from (commit offsets, advance a replication slot). Called on the task's thread,
        between ``read_batch`` calls."""

    def input_progress(self) -> tuple[int, int] | None:
        """``(bytes read, bytes in all)`` of this reader's share of a bounded input whose size
        is known (files), for the progress the attached client shows; None when unknown.

        Called from another thread than ``read_batch``: it only reads numbers the reader
        keeps, and an answer a moment old is good enough.
        """
        return None


class Source(ABC):
    """The base of all sources given to ``env.from_source(...)``."""

    @abstractmethod
    def is_bounded(self) -> bool:
        """Whether the source ends (batch) or runs until cancelled (streaming)."""

    @abstractmethod
    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        """The reader of subtask ``subtask_index`` of ``parallelism``."""


@dataclass(frozen=True)
class FinishedSubtask:
    """The position, in a restore, of an old subtask that had finished before the checkpoint:
    ``splits`` are the splits the JobManager had given it in its attempt (all read), or None
    when its splits were not assigned by the JobManager."""

    splits: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SplitPlan:
    """What is left of a source whose splits the JobManager hands out (``split_plan``)."""

    #: how many splits the source has in all; every reader computes the same number
    split_count: int
    #: the splits left to read, in the order to hand them out: ``(index, offset)``, the offset
    #: where a split some reader had started resumes, or None
    pool: list[tuple[int, int | None]]
    #: the position of a reader of this plan that has read nothing yet (a snapshot taken
    #: before it starts must still say what earlier attempts read)
    position: object
    #: what else the source's reader needs of the plan (the source's own)
    detail: Any = None
    #: splits a reader asks for at a time (many small files: fewer requests)
    per_request: int = 1


class SupportsSplitAssignment(ABC):
    """A source whose splits are handed to its readers while the job runs, one at a time on
    request, as Flink's FLIP-27 split enumerator does: a subtask that reads faster reads more
    splits, and none idles while another still has a queue of its own. The runtime uses it
    in STREAMING jobs (embedded or on a cluster) and calls ``create_reader`` otherwise.

    Every reader's position says which splits it finished and where it is in the one it
    reads; at a restore each subtask derives the same plan from all of them, and the first
    to ask sets the JobManager's pool (``jobmanager/split_assignment.py``).
    """

    @abstractmethod
    def split_plan(self, parallelism: int, positions: dict[int, object] | None) -> SplitPlan | None:
        """The plan at a start (``positions`` None) or a restore (old subtask -> its
        position: a reader's ``snapshot_position``, a ``FinishedSubtask``, or None for one
        that had not started). None when the positions are those of ``create_reader``'s
        readers, which then resume as before."""

    @abstractmethod
    def create_assigned_reader(
        self,
        plan: SplitPlan,
        next_split: Callable[[], tuple[int, int | None] | None],
    ) -> SourceReader:
        """A reader that reads the splits ``next_split()`` gives it (``(index, offset)``),
        one after the other, and ends when it gives None."""


class SinkWriter(ABC):
    """Writes one subtask's records of a sink."""

    @abstractmethod
    def write_batch(self, values: list) -> None:
        """Write ``values`` (may stay in progress until ``prepare_commit``)."""

    def prepare_commit(self, checkpoint_id: int) -> object:
        """Close in-progress data into pending form; return picklable committables."""
        return None

    def commit(self, committables: object) -> None:  # noqa: B027 - optional hook
        """Make pending data final; idempotent."""

    def finish(self) -> None:
        """End of input: make everything final (used when a bounded job ends)."""
        self.commit(self.prepare_commit(-1))

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Job cancelled/failed: drop uncommitted in-progress data if possible."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files, connections and the like."""


class Sink(ABC):
    """The base of all sinks given to ``ds.sink_to(...)``."""

    @abstractmethod
    def create_writer(self, subtask_index: int, parallelism: int) -> SinkWriter:
        """The writer of subtask ``subtask_index`` of ``parallelism``."""


def check_subtask(subtask_index: int, parallelism: int) -> None:
    """Raise when ``subtask_index`` is not a subtask of ``parallelism``."""
    if parallelism < 1 or not 0 <= subtask_index < parallelism:
        raise ValueError(f"subtask {subtask_index} of parallelism {parallelism} does not exist")


class StreamTransformer(ABC):
    """Turns a stream into the stream a sink writes (``SupportsPreprocessing``)."""

    @abstractmethod
    def apply(self, ds: Any) -> Any:
        """The stream to write instead of ``ds``."""


class SupportsPreprocessing(ABC):
    """A sink that reshapes the stream before writing it (``sink_to`` applies the
    transformer first, as PyFlink does)."""

    @abstractmethod
    def get_transformer(self) -> StreamTransformer | None:
        """The transformer to apply, or None."""
