"""Splits of sources handed out while a job runs (Flink's FLIP-27 split enumerator).

A source reader that supports it asks the JobManager for its next split whenever it has
read the last one, so a fast subtask reads more of the input than a slow one and no subtask
idles while another still has a queue of its own (DESIGN.md §5). The JobManager keeps no
state of its own for this that a restart would need: every reader's snapshot holds the
splits it finished and the one it is reading, and at a restore every reader derives the
same pool of splits left from the restored snapshots, and sends it with its first request.
The first request of an attempt sets the pool; later ones take from it. Splits are
numbers here (an index into the list every reader of the source computes alike, and a
resume offset), so nothing a job sent is unpickled.

A checkpoint keeps what a finished reader had read: the splits it was given in the running
attempt (``assigned``), which the checkpoint coordinator stores with the finished
subtask, since a finished task takes no snapshot.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: splits a source may have; a request claiming more is refused
MAX_SPLITS = 1_000_000

#: splits one request may take at most
MAX_PER_REQUEST = 10_000


@dataclass
class _SourceSplits:
    attempt: int
    split_count: int
    pool: deque[tuple[int, int | None]]
    #: subtask -> the splits given to it in this attempt, in order
    given: dict[int, list[int]] = field(default_factory=dict)


class SplitRequestError(ValueError):
    """A request that cannot be answered: stale, inconsistent or malformed."""


class SplitAssigners:
    """The split pools of the running attempts of every job's sources, by (job, vertex)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[tuple[str, str], _SourceSplits] = {}

    def assign(
        self,
        job_id: str,
        vertex_id: str,
        attempt: int,
        subtask: int,
        split_count: int,
        initial_pool: list[tuple[int, int | None]] | None,
        count: int = 1,
    ) -> list[tuple[int, int | None]]:
        """The next splits for ``subtask``, ``count`` at most; none when none is left.
        ``initial_pool``: the reader's first request of the attempt (its derived pool); None
        on later requests."""
        if not 0 <= split_count <= MAX_SPLITS:
            raise SplitRequestError(f"a source of {split_count} splits is not served")
        if count > MAX_PER_REQUEST:
            raise SplitRequestError(f"{count} splits at once are more than {MAX_PER_REQUEST}")
        key = (job_id, vertex_id)
        with self._lock:
            entry = self._sources.get(key)
            if entry is not None and attempt < entry.attempt:
                raise SplitRequestError(f"attempt {attempt} of job {job_id} is over")
            if entry is None or attempt > entry.attempt:
                if initial_pool is None:
                    raise SplitRequestError(
                        f"no splits of {vertex_id} are known for attempt {attempt} of job "
                        f"{job_id} (the JobManager changed): the attempt must restart"
                    )
                entry = self._sources[key] = _SourceSplits(
                    attempt, split_count, deque(_checked(initial_pool, split_count))
                )
            elif split_count != entry.split_count:
                raise SplitRequestError(
                    f"readers of {vertex_id} disagree on its splits ({split_count} against "
                    f"{entry.split_count}): its files changed while the job started"
                )
            pool = entry.pool
            splits = [pool.popleft() for _ in range(min(len(pool), max(1, count)))]
            entry.given.setdefault(subtask, []).extend(index for index, _ in splits)
            return splits

    def assigned(self, job_id: str, vertex_id: str, attempt: int, subtask: int) -> list[int] | None:
        """The splits given to ``subtask`` in ``attempt``; None when the source's splits are
        not assigned here (a source that splits its input by itself, or another attempt)."""
        with self._lock:
            entry = self._sources.get((job_id, vertex_id))
            if entry is None or entry.attempt != attempt:
                return None
            return list(entry.given.get(subtask, ()))

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the pools of jobs for which ``keep(job_id)`` is false (jobs that ended)."""
        with self._lock:
            for key in [key for key in self._sources if not keep(key[0])]:
                del self._sources[key]


def _checked(pool: list[tuple[int, int | None]], split_count: int) -> list[tuple[int, int | None]]:
    if len(pool) > split_count:
        raise SplitRequestError(f"a pool of {len(pool)} splits of a source of {split_count}")
    seen: set[int] = set()
    for index, offset in pool:
        if not 0 <= index < split_count or index in seen:
            raise SplitRequestError(f"split {index} is not one of {split_count}, or repeated")
        if offset is not None and offset < 0:
            raise SplitRequestError(f"split {index} resumes at a negative offset")
        seen.add(index)
    return list(pool)
