"""``FileSource`` and ``FileSink``, as in ``pyflink.datastream.connectors.file_system``.

``FileSource`` reads lines of text from files and directories on a file system every
TaskManager sees (local disks, NFS and the like). Files are cut into byte-range splits; a line
belongs to the split in which it starts, so splits can be read in parallel and each line is
read exactly once. Compressed files (``.gz``, ``.bz2``, ``.xz``) are read whole by one subtask.
In a STREAMING job the JobManager hands a bounded source's splits to its subtasks one at a
time as they ask (Flink's split enumerator), so a subtask on a faster or less loaded host reads
more of the input; elsewhere subtask ``k`` reads splits ``k, k + n, ...``.

``FileSink`` writes rows into part files under bucket directories with a two-phase commit, as
Flink's: data goes to hidden in-progress files, which become visible (final) only when the
checkpoint that covers them completes, or when a bounded job finishes.
"""

from __future__ import annotations

import bz2
import codecs
import datetime
import gzip
import lzma
import math
import os
import re
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from typing import IO, Any, NamedTuple

from strom._unsupported import JVM_FORMAT, NOT_BUILT, module_getattr, raise_unsupported
from strom.common.serialization import Encoder
from strom.common.time import Duration, to_milliseconds
from strom.datastream.connectors.base import (
    FinishedSubtask,
    Sink,
    SinkWriter,
    Source,
    SourceReader,
    SplitPlan,
    SupportsSplitAssignment,
    check_subtask,
)

__all__ = [
    "BucketAssigner",
    "FileSink",
    "FileSource",
    "FileSourceBuilder",
    "OutputFileConfig",
    "OutputFileConfigBuilder",
    "RollingPolicy",
    "RowFormatBuilder",
    "StreamFormat",
]

MIN_SPLIT_SIZE = 1 << 20
"""Splits are at least this many bytes (fewer only at the end of a file)."""

READ_CHUNK_BYTES = 1 << 20
"""How much a reader reads from a file at a time."""

_WRITE_BUFFER_BYTES = 1 << 18
_WHOLE_FILE = sys.maxsize

_DECOMPRESSORS: dict[str, Callable[[str], IO[bytes]]] = {
    ".gz": lambda p: gzip.open(p, "rb"),
    ".gzip": lambda p: gzip.open(p, "rb"),
    ".bz2": lambda p: bz2.open(p, "rb"),
    ".xz": lambda p: lzma.open(p, "rb"),
}


def _local_path(path: Any) -> str:
    """An absolute local path from a path or a ``file://`` URI; other schemes are refused.

    A relative path is taken relative to where the job is defined (the client's current
    folder), not to wherever a TaskManager happens to run.
    """
    text = os.fspath(path)
    if text.startswith("file://"):
        return text[len("file://") :] or "/"
    if text.startswith("file:"):
        return text[len("file:") :]
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+://", text):
        raise ValueError(
            f"{text!r}: only local paths and file:// URIs are supported (a path every "
            "TaskManager can read, e.g. on a shared mount)"
        )
    return os.path.abspath(text)


def _is_compressed(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in _DECOMPRESSORS


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_")


# ====================================================================== FileSource


class StreamFormat:
    """How a ``FileSource`` turns bytes into records.

    Example::

        StreamFormat.text_line_format()          # one str per line, UTF-8
        StreamFormat.text_line_format("latin-1")
    """

    def __init__(self, charset: str = "UTF-8") -> None:
        try:
            codec = codecs.lookup(charset)
        except LookupError:
            raise ValueError(f"unknown charset {charset!r} (try 'UTF-8')") from None
        if "a\nb\r".encode(codec.name) != b"a\nb\r":
            raise ValueError(
                f"charset {charset!r} is not ASCII-compatible; text_line_format reads "
                "ASCII-compatible charsets such as UTF-8 or latin-1"
            )
        self.charset = codec.name

    @staticmethod
    def text_line_format(charset_name: str = "UTF-8") -> StreamFormat:
        """One record per line (a str without its line ending; ``\\n`` and ``\\r\\n`` both
        end a line)."""
        return StreamFormat(charset_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamFormat) and other.charset == self.charset

    def __hash__(self) -> int:
        return hash(self.charset)

    def __repr__(self) -> str:
        return f"StreamFormat.text_line_format({self.charset!r})"


class FileSplit(NamedTuple):
    """Lines starting in the bytes ``[start, end)`` of ``path`` (a whole compressed file when
    ``compressed``)."""

    path: str
    start: int
    end: int
    compressed: bool


def split_size(split: FileSplit) -> int:
    """The bytes of input a split stands for: its range, or a compressed file's size on disk
    (0 when it vanished)."""
    if not split.compressed:
        return split.end - split.start
    try:
        return os.path.getsize(split.path)
    except OSError:
        return 0


def enumerate_files(paths: list[str]) -> list[tuple[str, int]]:
    """``(path, size)`` of every file under ``paths``, sorted by path. Directories are read
    recursively, skipping names that start with ``.`` or ``_`` (as Flink does)."""
    found: dict[str, int] = {}
    for root in paths:
        if os.path.isfile(root):
            found[root] = os.path.getsize(root)
        elif os.path.isdir(root):
            for directory, subdirectories, names in os.walk(root, followlinks=True):
                subdirectories[:] = [d for d in subdirectories if not _is_hidden(d)]
                for name in names:
                    if not _is_hidden(name):
                        path = os.path.join(directory, name)
                        try:
                            found[path] = os.path.getsize(path)
                        except OSError:  # vanished or unreadable: as if not there
                            continue
        else:
            raise FileNotFoundError(f"FileSource: {root!r} is neither a file nor a directory")
    return sorted(found.items())


def compute_splits(
    files: list[tuple[str, int]],
    parallelism: int,
    min_split_size: int | None = None,
    per_subtask: int = 4,
    tail_split_size: int | None = None,
) -> list[FileSplit]:
    """Cut files into splits of at most ``max(min_split_size, ceil(total / (per_subtask *
    n)))`` bytes.

    Split ``k`` is read by subtask ``k % parallelism`` (unless the JobManager hands them out).

    With ``tail_split_size`` (splits handed out in order, by the JobManager), the last splits
    are smaller, down to that size: none is more than a ``2 * parallelism``-th of the bytes
    from its start to the end (guided self-scheduling). Readers that take the next split
    whenever they finish one then end within a small split of each other, where equal
    splits left one reader alone with a whole split at the end.
    """
    minimum = MIN_SPLIT_SIZE if min_split_size is None else min_split_size
    if minimum < 1:
        raise ValueError(f"the minimum split size must be at least 1 byte; got {minimum}")
    total = sum(size for path, size in files if not _is_compressed(path))
    split_size = max(minimum, math.ceil(total / (parallelism * per_subtask)))
    left = total  # bytes from the next split's start to the end of the input
    splits: list[FileSplit] = []
    for path, size in files:
        if size == 0:
            continue
        if _is_compressed(path):
            splits.append(FileSplit(path, 0, _WHOLE_FILE, True))
            continue
        start = 0
        while start < size:
            length = split_size
            if tail_split_size is not None:
                guided = math.ceil(left / (2 * parallelism))
                length = min(split_size, max(tail_split_size, guided))
            end = min(start + length, size)
            splits.append(FileSplit(path, start, end, False))
            left -= end - start
            start = end
    return splits


class _LineRange:
    """Reads the lines that start in ``[start, end)`` of one file, in large chunks.

    ``offset`` resumes at a known line start (from :meth:`position`) instead of aligning to
    the first line start at or after ``start``.
    """

    def __init__(self, split: FileSplit, charset: str, offset: int | None = None) -> None:
        self.split = split
        self.charset = charset
        self.end = split.end
        if split.compressed:
            self._file: IO[bytes] = _DECOMPRESSORS[os.path.splitext(split.path)[1].lower()](
                split.path
            )
        else:
            self._file = open(split.path, "rb")  # noqa: SIM115 - closed by close()
        try:
            if offset is not None:
                self._file.seek(offset)
                position = offset
            elif split.start > 0:
                # The line containing byte start-1 belongs to an earlier split.
                self._file.seek(split.start - 1)
                position = split.start - 1 + len(self._file.readline())
            else:
                position = 0
        except BaseException:
            self._file.close()
            raise
        self._pending = b""  # read bytes of a line not yet complete
        self._pending_at = position  # file offset of the first byte of _pending
        self._chunk = b""  # the complete lines decoded into _lines
        self._chunk_at = position
        self._lines: list[str] = []
        self._taken = 0
        self._done = position >= self.end
        #: a compressed file: how far into the file on disk its decompressor has read
        self._raw_at = 0

    def read_lines(self, max_records: int) -> list[str] | None:
        """Up to ``max_records`` lines; None when the range is exhausted."""
        if self._taken >= len(self._lines) and not self._fill():
            return None
        start = self._taken
        self._taken = start + max_records
        return self._lines[start : self._taken]

    def position(self) -> int:
        """The file offset of the first line not yet returned."""
        if self._taken >= len(self._lines):
            return self._chunk_at + len(self._chunk)
        index = -1
        chunk = self._chunk
        for _ in range(self._taken):
            index = chunk.find(b"\n", index + 1)
        return self._chunk_at + index + 1

    def size(self) -> int:
        """The bytes of input this range stands for (a compressed file's size on disk)."""
        return split_size(self.split)

    def consumed(self) -> int:
        """About how many of :meth:`size`'s bytes were handed on (read by another thread for
        progress: only plain numbers are read, never the file)."""
        if self.split.compressed:
            return self._raw_at if not self._done else self.size()
        lines, chunk = len(self._lines), len(self._chunk)
        done = self._chunk_at + (chunk * min(self._taken, lines) // lines if lines else chunk)
        return min(max(0, done - self.split.start), self.split.end - self.split.start)

    def close(self) -> None:
        self._file.close()

    def _fill(self) -> bool:
        while not self._done:
            block = self._file.read(READ_CHUNK_BYTES)
            if self.split.compressed:
                raw = getattr(self._file, "fileobj", None) or getattr(self._file, "_fp", None)
                try:
                    self._raw_at = raw.tell() if raw is not None else 0
                except (OSError, ValueError):
                    pass
            data = self._pending + block if self._pending else block
            at = self._pending_at
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # a line longer than a chunk: keep reading
                    self._pending = data
                    continue
                complete, self._pending = data[:cut], data[cut:]
                self._pending_at = at + cut
            else:  # end of file: what is left is a last line without a line ending
                self._done = True
                complete, self._pending = data, b""
                if not complete:
                    break
            limit = self.end - at
            if limit < len(complete):
                # Lines that start at or after `end` belong to the next split.
                newline = complete.find(b"\n", limit - 1) if limit > 0 else -1
                complete = complete[: newline + 1] if newline >= 0 or limit <= 0 else complete
                self._done = True
                if not complete:
                    break
            self._chunk, self._chunk_at = complete, at
            self._lines = self._decode(complete)
            self._taken = 0
            return True
        self._chunk_at, self._chunk = self._chunk_at + len(self._chunk), b""
        self._lines, self._taken = [], 0
        return False

    def _decode(self, chunk: bytes) -> list[str]:
        try:
            text = chunk.decode(self.charset)
        except UnicodeDecodeError as error:
            raise ValueError(
                f"FileSource: {self.split.path} is not valid {self.charset} near byte "
                f"{self._chunk_at + error.start}: {error.reason}"
            ) from None
        lines = text.split("\n")
        if chunk.endswith(b"\n"):
            lines.pop()
        if "\r" in text:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        return lines


class _BoundedFileReader(SourceReader):
    """Reads this subtask's splits in order. Position: ``(split index, byte offset of the next
    line)``; the offset is None before the split was started, ``(None, None)`` when done."""

    def __init__(self, splits: list[FileSplit], mine: list[int], charset: str) -> None:
        self._splits = splits
        self._mine = mine
        self._charset = charset
        self._next = 0  # index into self._mine
        self._current: _LineRange | None = None
        self._resume_offset: int | None = None
        self._sizes = [split_size(splits[index]) for index in mine]
        self._total_bytes = sum(self._sizes)
        self._finished_bytes = 0  # of the splits before self._next

    def read_batch(self, max_records: int) -> list | None:
        max_records = max(1, max_records)
        while True:
            if self._current is None:
                if self._next >= len(self._mine):
                    return None
                split = self._splits[self._mine[self._next]]
                self._current = _LineRange(split, self._charset, self._resume_offset)
                self._resume_offset = None
            lines = self._current.read_lines(max_records)
            if lines is not None:
                return lines
            self._current.close()
            self._finished_bytes += self._sizes[self._next]
            self._current = None
            self._next += 1

    def input_progress(self) -> tuple[int, int]:
        current = self._current
        done = self._finished_bytes + (current.consumed() if current is not None else 0)
        return (min(done, self._total_bytes), self._total_bytes)

    def snapshot_position(self) -> tuple[int | None, int | None]:
        if self._next >= len(self._mine):
            return (None, None)
        index = self._mine[self._next]
        if self._current is None:
            return (index, self._resume_offset)
        return (index, self._current.position())

    def restore_position(self, position: object) -> None:
        try:
            index, offset = position  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError(f"invalid FileSource position {position!r}") from None
        self.close()
        if index is None:
            self._next = len(self._mine)
            self._finished_bytes = self._total_bytes
            return
        if index not in self._mine:
            raise ValueError(
                f"FileSource position {position!r} does not belong to this reader: the files "
                "or the parallelism changed since it was taken"
            )
        self._next = self._mine.index(index)
        self._finished_bytes = sum(self._sizes[: self._next])
        self._resume_offset = offset

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


#: the smallest split when the JobManager hands splits out (``FileSource.split_plan``): the
#: next split is asked for while one is read, so a small split costs little, and small ones
#: let a faster reader take more of the input
ASSIGNED_MIN_SPLIT_SIZE = 256 << 10

#: splits per subtask when the JobManager hands them out
ASSIGNED_SPLITS_PER_SUBTASK = 16

#: the smallest of the last splits when the JobManager hands them out (``compute_splits``;
#: never below a source's own minimum): about how far apart the readers of one input end
ASSIGNED_TAIL_SPLIT_SIZE = 32 << 10

#: the ``kind`` of an assigned reader's position
_ASSIGNED = "assigned"


def _assigned_plan(
    files: Callable[[], list[tuple[str, int]]],
    parallelism: int,
    positions: dict[int, object] | None,
    min_split_size: int | None,
    tail_split_size: int | None = ASSIGNED_TAIL_SPLIT_SIZE,
) -> SplitPlan | None:
    """The plan of a bounded FileSource whose splits the JobManager hands out. Its detail:
    the splits, their layout (the parallelism they were cut for), the parallelism now, and
    their tail (the smallest of their last splits; None: all of one size, as before there
    were tails). Layout and tail stay the same through restores, so every attempt numbers
    the splits alike, also at another parallelism or after an upgrade of Strom."""
    layout, done, current, resume = parallelism, set(), {}, {}
    tail = None if tail_split_size is None else max(min_split_size or 0, tail_split_size)
    readers = finished = 0
    for position in (positions or {}).values():
        if isinstance(position, FinishedSubtask):
            if position.splits is not None:
                finished += 1
                done.update(position.splits)
        elif isinstance(position, dict) and position.get("kind") == _ASSIGNED:
            if position.get("complete"):
                return _complete_plan(parallelism)
            readers += 1
            layout, tail = position["layout"], position.get("tail")
            done.update(position["done"])
            resume.update(position["resume"])
            if position["current"] is not None:
                index, offset = position["current"]
                current[index] = offset
        elif position is not None:
            return None  # a reader that split the files by itself: it resumes so
    if finished and not readers:
        # Readers finish only once no split is left to hand out, so all were read by the
        # finished ones (the others had not started).
        return _complete_plan(parallelism)
    if not finished and not readers and any(p is not None for p in (positions or {}).values()):
        return None  # subtasks that split the files by themselves and finished
    minimum = ASSIGNED_MIN_SPLIT_SIZE if min_split_size is None else min_split_size
    splits = compute_splits(files(), layout, minimum, ASSIGNED_SPLITS_PER_SUBTASK, tail)
    started = [(index, current.get(index, resume.get(index))) for index in range(len(splits))]
    left = [(index, offset) for index, offset in started if index not in done]
    # Splits some reader had started go first, so that none stays half read for long.
    pool = [entry for entry in left if entry[1] is not None]
    pool += [entry for entry in left if entry[1] is None]
    resume = dict(e for e in pool if e[1] is not None)
    position = _assigned_position(layout, tail, done, resume, None)
    # Many small files are many splits: a request takes a sixteenth of a subtask's share.
    per_request = max(1, len(pool) // (parallelism * ASSIGNED_SPLITS_PER_SUBTASK))
    return SplitPlan(len(splits), pool, position, (splits, layout, parallelism, tail), per_request)


def _complete_plan(parallelism: int) -> SplitPlan:
    """The plan of a source all of whose splits were read: its readers end at once, and
    their positions say so (the finished readers that read the splits keep no record)."""
    position = _assigned_position(parallelism, None, set(), {}, None, complete=True)
    return SplitPlan(0, [], position, ([], parallelism, parallelism, None))


def _assigned_position(
    layout: int,
    tail: int | None,
    done: set[int],
    resume: dict[int, int],
    current: tuple[int, int] | None,
    complete: bool = False,
) -> dict[str, Any]:
    position = {
        "kind": _ASSIGNED,
        "layout": layout,
        "tail": tail,
        "done": sorted(done),
        "resume": {i: o for i, o in resume.items() if i not in done},
        "current": current,
    }
    if complete:
        position["complete"] = True
    return position


class _AssignedFileReader(SourceReader):
    """Reads the splits the JobManager gives it, one after the other (``split_plan``).

    Position: ``{"kind": "assigned", "layout", "tail", "done", "resume", "current"}``: the
    splits cut for ``layout`` subtasks with last splits down to ``tail`` bytes; the splits
    read to the end by any subtask as far as this one knows (earlier attempts' included, so
    that a restore still knows them when their readers finished); where restored splits
    nobody has taken up again resume; and the split it reads with the offset of its next line.
    """

    def __init__(
        self,
        plan: SplitPlan,
        splits: list[FileSplit],
        layout: int,
        parallelism: int,
        tail: int | None,
        charset: str,
        next_split: Callable[[], tuple[int, int | None] | None],
    ) -> None:
        start = plan.position
        self._splits = splits
        self._layout, self._tail = layout, tail
        self._charset = charset
        self._next_split = next_split
        self._done: set[int] = set(start["done"])  # type: ignore[index]
        self._resume: dict[int, int] = dict(start["resume"])  # type: ignore[index]
        self._complete = bool(start.get("complete"))  # type: ignore[union-attr]
        self._current: _LineRange | None = None
        self._index: int | None = None
        self._ended = False
        # Progress (input_progress): an equal share of what was left, as no reader knows
        # how much of it will be its own.
        left = sum(split_size(splits[index]) for index, _ in plan.pool)
        self._share = max(1, left // max(1, parallelism))
        self._finished_bytes = 0

    def read_batch(self, max_records: int) -> list | None:
        max_records = max(1, max_records)
        while True:
            if self._current is None:
                if self._ended:
                    return None
                split = self._next_split()
                if split is None:
                    self._ended = True
                    return None
                index, offset = split
                self._current = _LineRange(self._splits[index], self._charset, offset)
                self._index = index
            lines = self._current.read_lines(max_records)
            if lines is not None:
                return lines
            self._finished_bytes += self._current.size()
            self._current.close()
            self._current = None
            self._done.add(self._index)  # type: ignore[arg-type]
            self._index = None

    def input_progress(self) -> tuple[int, int]:
        if self._ended:
            return (self._share, self._share)
        current = self._current
        done = self._finished_bytes + (current.consumed() if current is not None else 0)
        return (min(done, self._share), self._share)

    def snapshot_position(self) -> dict[str, Any]:
        current = None
        if self._current is not None:
            current = (self._index, self._current.position())
        return _assigned_position(
            self._layout, self._tail, self._done, self._resume, current, self._complete
        )

    def restore_position(self, position: object) -> None:
        raise ValueError("a reader of assigned splits starts from its SplitPlan")

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


class _ContinuousFileReader(SourceReader):
    """Reads the files of this subtask (by a stable hash of the path) and looks for new ones
    every discovery interval. Files must be complete when they appear (move them in).

    Position: ``("continuous", finished paths, current path, offset in it)``.
    """

    def __init__(
        self,
        roots: list[str],
        charset: str,
        subtask_index: int,
        parallelism: int,
        discovery_interval_ms: int,
    ) -> None:
        self._roots = roots
        self._charset = charset
        self._subtask_index = subtask_index
        self._parallelism = parallelism
        self._interval_s = discovery_interval_ms / 1000.0
        self._finished: set[str] = set()
        self._queue: list[str] = []
        self._current: _LineRange | None = None
        self._resume: tuple[str, int] | None = None
        self._last_scan: float | None = None

    def _is_mine(self, path: str) -> bool:
        return zlib.crc32(path.encode("utf-8", "surrogateescape")) % self._parallelism == (
            self._subtask_index
        )

    def _scan(self) -> None:
        queued = set(self._queue)
        for path, _size in enumerate_files(self._roots):
            if path not in self._finished and path not in queued and self._is_mine(path):
                self._queue.append(path)

    def read_batch(self, max_records: int) -> list | None:
        max_records = max(1, max_records)
        while True:
            if self._current is None:
                if not self._queue:
                    now = time.monotonic()
                    if self._last_scan is None or now - self._last_scan >= self._interval_s:
                        self._last_scan = now
                        self._scan()
                    if not self._queue:
                        return []
                path = self._queue.pop(0)
                offset = None
                if self._resume is not None and self._resume[0] == path:
                    offset, self._resume = self._resume[1], None
                split = FileSplit(path, 0, _WHOLE_FILE, _is_compressed(path))
                self._current = _LineRange(split, self._charset, offset)
            lines = self._current.read_lines(max_records)
            if lines is not None:
                return lines
            self._finished.add(self._current.split.path)
            self._current.close()
            self._current = None

    def snapshot_position(self) -> tuple[str, tuple[str, ...], str | None, int | None]:
        if self._current is not None:
            current, offset = self._current.split.path, self._current.position()
        elif self._resume is not None:
            current, offset = self._resume
        else:
            current, offset = None, None
        return ("continuous", tuple(sorted(self._finished)), current, offset)

    def restore_position(self, position: object) -> None:
        try:
            tag, finished, current, offset = position  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError(f"invalid FileSource position {position!r}") from None
        if tag != "continuous":
            raise ValueError(f"invalid FileSource position {position!r}")
        self.close()
        self._finished = set(finished)
        self._queue = []
        self._resume = None if current is None else (current, offset)
        self._last_scan = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


class FileSource(Source, SupportsSplitAssignment):
    """Lines of text from files and directories (recursively), in parallel.

    Example::

        source = FileSource.for_record_stream_format(
            StreamFormat.text_line_format(), "/data/logs"
        ).build()
        lines = env.from_source(source, WatermarkStrategy.no_watermarks(), "logs")

    Bounded by default; ``monitor_continuously(Duration)`` on the builder keeps looking for
    new files instead.
    """

    def __init__(
        self,
        paths: list[str],
        stream_format: StreamFormat,
        discovery_interval_ms: int | None = None,
        min_split_size: int | None = None,
    ) -> None:
        if not paths:
            raise ValueError("FileSource needs at least one path")
        if not isinstance(stream_format, StreamFormat):
            raise TypeError(
                "FileSource reads a StreamFormat such as StreamFormat.text_line_format(); "
                f"got {stream_format!r}"
            )
        self.paths = [_local_path(p) for p in paths]
        self.stream_format = stream_format
        self.discovery_interval_ms = discovery_interval_ms
        self.min_split_size = min_split_size
        #: the smallest of the last splits handed out (``compute_splits``); None: equal splits
        self.tail_split_size: int | None = ASSIGNED_TAIL_SPLIT_SIZE

    @staticmethod
    def for_record_stream_format(stream_format: StreamFormat, *paths: str) -> FileSourceBuilder:
        """A builder of a source reading ``paths`` (files or directories) with
        ``stream_format``."""
        return FileSourceBuilder(stream_format, list(paths))

    def is_bounded(self) -> bool:
        return self.discovery_interval_ms is None

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        check_subtask(subtask_index, parallelism)
        charset = self.stream_format.charset
        if self.discovery_interval_ms is not None:
            return _ContinuousFileReader(
                self.paths, charset, subtask_index, parallelism, self.discovery_interval_ms
            )
        splits = compute_splits(enumerate_files(self.paths), parallelism, self.min_split_size)
        mine = list(range(subtask_index, len(splits), parallelism))
        return _BoundedFileReader(splits, mine, charset)

    def split_plan(self, parallelism: int, positions: dict[int, object] | None) -> SplitPlan | None:
        """A bounded source's splits are handed out by the JobManager (FLIP-27, as Flink's
        FileSource does); a continuous one's files go to subtasks by a hash of their path."""
        if not self.is_bounded():
            return None
        paths = self.paths
        return _assigned_plan(
            lambda: enumerate_files(paths),
            parallelism,
            positions,
            self.min_split_size,
            # (a source pickled by a version before tails has no such attribute)
            getattr(self, "tail_split_size", ASSIGNED_TAIL_SPLIT_SIZE),
        )

    def create_assigned_reader(
        self, plan: SplitPlan, next_split: Callable[[], tuple[int, int | None] | None]
    ) -> SourceReader:
        splits, layout, parallelism, tail = plan.detail
        return _AssignedFileReader(
            plan, splits, layout, parallelism, tail, self.stream_format.charset, next_split
        )

    def __repr__(self) -> str:
        mode = "bounded" if self.is_bounded() else f"every {self.discovery_interval_ms} ms"
        return f"FileSource({self.paths}, {self.stream_format!r}, {mode})"


class FileSourceBuilder:
    """Builds a :class:`FileSource`; made by ``FileSource.for_record_stream_format``."""

    def __init__(self, stream_format: StreamFormat, paths: list[str]) -> None:
        self._stream_format = stream_format
        self._paths = list(paths)
        self._discovery_interval_ms: int | None = None

    def monitor_continuously(self, discovery_interval: Duration) -> FileSourceBuilder:
        """Make the source unbounded: look for new files every ``discovery_interval``."""
        millis = to_milliseconds(discovery_interval, "discovery_interval")
        if millis <= 0:
            raise ValueError(f"the discovery interval must be positive; got {millis} ms")
        self._discovery_interval_ms = millis
        return self

    def process_static_file_set(self) -> FileSourceBuilder:
        """Make the source bounded: read the files present at start, then end (default)."""
        self._discovery_interval_ms = None
        return self

    def build(self) -> FileSource:
        return FileSource(self._paths, self._stream_format, self._discovery_interval_ms)


# ====================================================================== FileSink


class OutputFileConfig:
    """The prefix and suffix of part file names (``<prefix>-<uuid>-<subtask>-<n><suffix>``).

    Example::

        OutputFileConfig.builder().with_part_prefix("counts").with_part_suffix(".txt").build()
    """

    def __init__(self, part_prefix: str = "part", part_suffix: str = "") -> None:
        for what, value in (("prefix", part_prefix), ("suffix", part_suffix)):
            if not isinstance(value, str) or os.sep in value or "/" in value:
                raise ValueError(f"the part {what} must be a str without '/'; got {value!r}")
        self.part_prefix = part_prefix
        self.part_suffix = part_suffix

    @staticmethod
    def builder() -> OutputFileConfigBuilder:
        return OutputFileConfigBuilder()

    def get_part_prefix(self) -> str:
        return self.part_prefix

    def get_part_suffix(self) -> str:
        return self.part_suffix

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputFileConfig) and vars(other) == vars(self)

    def __repr__(self) -> str:
        return f"OutputFileConfig({self.part_prefix!r}, {self.part_suffix!r})"


class OutputFileConfigBuilder:
    """Builds an :class:`OutputFileConfig`."""

    def __init__(self) -> None:
        self._prefix = "part"
        self._suffix = ""

    def with_part_prefix(self, prefix: str) -> OutputFileConfigBuilder:
        self._prefix = prefix
        return self

    def with_part_suffix(self, suffix: str) -> OutputFileConfigBuilder:
        self._suffix = suffix
        return self

    def build(self) -> OutputFileConfig:
        return OutputFileConfig(self._prefix, self._suffix)


OutputFileConfig.OutputFileConfigBuilder = OutputFileConfigBuilder  # type: ignore[attr-defined]


class RollingPolicy:
    """When an in-progress part file is closed and a new one started.

    A part always rolls at a checkpoint (that is when it becomes committable). The default
    policy also rolls when a part exceeds ``part_size`` bytes, is ``rollover_interval`` ms
    old, or had no writes for ``inactivity_interval`` ms (checked when records arrive).

    Example::

        RollingPolicy.default_rolling_policy(part_size=64 * 1024 * 1024)
        RollingPolicy.on_checkpoint_rolling_policy()
    """

    def __init__(
        self,
        part_size: int | None,
        rollover_interval: int | None,
        inactivity_interval: int | None,
    ) -> None:
        for what, value in (
            ("part_size", part_size),
            ("rollover_interval", rollover_interval),
            ("inactivity_interval", inactivity_interval),
        ):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{what} must be a positive int; got {value!r}")
        self.part_size = part_size
        self.rollover_interval = rollover_interval
        self.inactivity_interval = inactivity_interval

    @staticmethod
    def default_rolling_policy(
        part_size: int = 1024 * 1024 * 128,
        rollover_interval: int = 60 * 1000,
        inactivity_interval: int = 60 * 1000,
    ) -> RollingPolicy:
        """Roll by size (bytes), age (ms) and inactivity (ms), and at every checkpoint."""
        return RollingPolicy(part_size, rollover_interval, inactivity_interval)

    @staticmethod
    def on_checkpoint_rolling_policy() -> RollingPolicy:
        """Roll only at checkpoints (and when the input ends)."""
        return RollingPolicy(None, None, None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RollingPolicy) and vars(other) == vars(self)

    def __repr__(self) -> str:
        if self.part_size is None and self.rollover_interval is None:
            return "RollingPolicy.on_checkpoint_rolling_policy()"
        return (
            f"RollingPolicy.default_rolling_policy({self.part_size}, {self.rollover_interval}, "
            f"{self.inactivity_interval})"
        )


class _BucketContext:
    """The ``context`` of ``BucketAssigner.get_bucket_id``."""

    __slots__ = ("_now_ms",)

    def __init__(self, now_ms: int) -> None:
        self._now_ms = now_ms

    def current_processing_time(self) -> int:
        return self._now_ms

    def current_watermark(self) -> int:
        return -(2**63)

    def timestamp(self) -> int | None:
        return None


class BucketAssigner:
    """Chooses the bucket (sub-directory of the base path) a record is written to.

    Example::

        BucketAssigner.date_time_bucket_assigner("%Y-%m-%d")   # one directory per day
        BucketAssigner.base_path_bucket_assigner()            # straight into the base path

    A subclass may override ``get_bucket_id(element, context)`` to bucket by content.
    """

    def get_bucket_id(self, element: Any, context: Any) -> str:
        """The bucket of ``element``: a relative directory ('' is the base path)."""
        raise NotImplementedError

    def assign(self, values: list, now_ms: int) -> list[tuple[str, list]]:
        """``values`` grouped by bucket, in order of first appearance."""
        context = _BucketContext(now_ms)
        groups: dict[str, list] = {}
        for value in values:
            bucket = str(self.get_bucket_id(value, context))
            group = groups.get(bucket)
            if group is None:
                group = groups[bucket] = []
            group.append(value)
        return list(groups.items())

    @staticmethod
    def base_path_bucket_assigner() -> BucketAssigner:
        """Every record in the base path itself."""
        return _BasePathBucketAssigner()

    @staticmethod
    def date_time_bucket_assigner(
        format_str: str = "yyyy-MM-dd--HH", timezone_id: str | None = None
    ) -> BucketAssigner:
        """One bucket per period of processing time, named by ``format_str`` (strftime, or a
        Java pattern such as ``yyyy-MM-dd--HH``) in ``timezone_id`` (local time if None)."""
        return _DateTimeBucketAssigner(format_str, timezone_id)


class _BasePathBucketAssigner(BucketAssigner):
    def get_bucket_id(self, element: Any, context: Any) -> str:
        return ""

    def assign(self, values: list, now_ms: int) -> list[tuple[str, list]]:
        return [("", values)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BasePathBucketAssigner)

    def __repr__(self) -> str:
        return "BucketAssigner.base_path_bucket_assigner()"


_JAVA_PATTERN = re.compile(r"y+|M+|d+|H+|h+|m+|s+|S+|a")
_JAVA_TO_STRFTIME = {"y": "%Y", "M": "%m", "d": "%d", "H": "%H", "h": "%I", "m": "%M", "s": "%S"}


def _strftime_format(format_str: str) -> str:
    """A strftime format from a strftime format or a Java ``DateTimeFormatter`` pattern."""
    if "%" in format_str:
        return format_str

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "a":
            return "%p"
        if token[0] == "y":
            return "%y" if len(token) == 2 else "%Y"
        if token[0] == "S":
            return "%f"
        return _JAVA_TO_STRFTIME[token[0]]

    return _JAVA_PATTERN.sub(replace, format_str)


class _DateTimeBucketAssigner(BucketAssigner):
    def __init__(self, format_str: str, timezone_id: str | None) -> None:
        self.format_str = format_str
        self.timezone_id = timezone_id
        self._format = _strftime_format(format_str)
        self._zone = self._load_zone()

    def _load_zone(self) -> datetime.tzinfo | None:
        if self.timezone_id is None:
            return None
        if self.timezone_id.upper() in ("UTC", "Z", "GMT"):
            return datetime.UTC
        from zoneinfo import ZoneInfo

        try:
            return ZoneInfo(self.timezone_id)
        except Exception:
            raise ValueError(f"unknown time zone {self.timezone_id!r}") from None

    def bucket_at(self, now_ms: int) -> str:
        return datetime.datetime.fromtimestamp(now_ms / 1000.0, self._zone).strftime(self._format)

    def get_bucket_id(self, element: Any, context: Any) -> str:
        return self.bucket_at(context.current_processing_time())

    def assign(self, values: list, now_ms: int) -> list[tuple[str, list]]:
        return [(self.bucket_at(now_ms), values)]

    def __getstate__(self) -> dict[str, Any]:
        return {"format_str": self.format_str, "timezone_id": self.timezone_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["format_str"], state["timezone_id"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _DateTimeBucketAssigner)
            and other.format_str == self.format_str
            and other.timezone_id == self.timezone_id
        )

    def __repr__(self) -> str:
        return (
            f"BucketAssigner.date_time_bucket_assigner({self.format_str!r}, {self.timezone_id!r})"
        )


class FileSink(Sink):
    """Writes records as lines (or any encoding) into part files with exactly-once commits.

    Example::

        sink = (
            FileSink.for_row_format("/out", Encoder.simple_string_encoder())
            .with_output_file_config(
                OutputFileConfig.builder().with_part_prefix("counts").build())
            .with_rolling_policy(RollingPolicy.default_rolling_policy(part_size=1 << 26))
            .build()
        )
        stream.sink_to(sink)

    Finished part files are ``<base>/<bucket>/<prefix>-<uuid>-<subtask>-<n><suffix>``;
    in-progress ones are hidden (their names start with ``.``).
    """

    def __init__(
        self,
        base_path: str,
        encoder: Encoder,
        bucket_assigner: BucketAssigner | None = None,
        rolling_policy: RollingPolicy | None = None,
        output_file_config: OutputFileConfig | None = None,
        bucket_check_interval: int = 60 * 1000,
    ) -> None:
        if isinstance(encoder, (str, bytes)) or not callable(getattr(encoder, "encode", None)):
            raise TypeError(
                "FileSink.for_row_format() takes an Encoder such as "
                f"Encoder.simple_string_encoder(); got {encoder!r}"
            )
        self.base_path = _local_path(base_path)
        self.encoder = encoder
        self.bucket_assigner = bucket_assigner or BucketAssigner.date_time_bucket_assigner()
        self.rolling_policy = rolling_policy or RollingPolicy.default_rolling_policy()
        self.output_file_config = output_file_config or OutputFileConfig()
        self.bucket_check_interval = bucket_check_interval

    def get_transformer(self) -> None:
        """No reshaping before writing (``SupportsPreprocessing``)."""
        return None

    @staticmethod
    def for_row_format(base_path: str, encoder: Encoder) -> RowFormatBuilder:
        """A builder of a sink writing each record with ``encoder`` under ``base_path``."""
        return RowFormatBuilder(base_path, encoder)

    def create_writer(self, subtask_index: int, parallelism: int) -> FileSinkWriter:
        check_subtask(subtask_index, parallelism)
        return FileSinkWriter(self, subtask_index)

    def __repr__(self) -> str:
        return f"FileSink({self.base_path!r})"


class RowFormatBuilder:
    """Builds a row-format :class:`FileSink`; made by ``FileSink.for_row_format``."""

    def __init__(self, base_path: str, encoder: Encoder) -> None:
        self._base_path = base_path
        self._encoder = encoder
        self._bucket_assigner: BucketAssigner | None = None
        self._rolling_policy: RollingPolicy | None = None
        self._output_file_config: OutputFileConfig | None = None
        self._bucket_check_interval = 60 * 1000

    def with_bucket_check_interval(self, interval: int) -> RowFormatBuilder:
        """How often (ms) time-based rolling is checked (Strom checks as records arrive)."""
        self._bucket_check_interval = interval
        return self

    def with_bucket_assigner(self, bucket_assigner: BucketAssigner) -> RowFormatBuilder:
        if not isinstance(bucket_assigner, BucketAssigner):
            raise TypeError(
                f"with_bucket_assigner() takes a BucketAssigner; got {bucket_assigner!r}"
            )
        self._bucket_assigner = bucket_assigner
        return self

    def with_rolling_policy(self, rolling_policy: RollingPolicy) -> RowFormatBuilder:
        if not isinstance(rolling_policy, RollingPolicy):
            raise TypeError(f"with_rolling_policy() takes a RollingPolicy; got {rolling_policy!r}")
        self._rolling_policy = rolling_policy
        return self

    def with_output_file_config(self, output_file_config: OutputFileConfig) -> RowFormatBuilder:
        if not isinstance(output_file_config, OutputFileConfig):
            raise TypeError(
                f"with_output_file_config() takes an OutputFileConfig; got {output_file_config!r}"
            )
        self._output_file_config = output_file_config
        return self

    def enable_compact(self, strategy: Any, compactor: Any) -> RowFormatBuilder:
        raise_unsupported(
            "pyflink.datastream.connectors.file_system.FileSink.RowFormatBuilder.enable_compact",
            NOT_BUILT + " (part files are not compacted)",
        )

    def disable_compact(self) -> RowFormatBuilder:
        return self

    def build(self) -> FileSink:
        return FileSink(
            self._base_path,
            self._encoder,
            self._bucket_assigner,
            self._rolling_policy,
            self._output_file_config,
            self._bucket_check_interval,
        )


FileSink.RowFormatBuilder = RowFormatBuilder  # type: ignore[attr-defined]


# PyFlink nests the builders in FileSink.
FileSink.RowFormatBuilder = RowFormatBuilder  # type: ignore[attr-defined]
FileSink.BaseBuilder = RowFormatBuilder  # type: ignore[attr-defined]


class _PartFile:
    """An open in-progress part file of one bucket."""

    __slots__ = ("in_progress", "final", "handle", "size", "opened_at", "written_at")

    def __init__(self, in_progress: str, final: str, now_ms: int) -> None:
        self.in_progress = in_progress
        self.final = final
        self.handle = open(in_progress, "xb", buffering=_WRITE_BUFFER_BYTES)  # noqa: SIM115
        self.size = 0
        self.opened_at = now_ms
        self.written_at = now_ms

    def write(self, data: bytes, now_ms: int) -> None:
        self.handle.write(data)
        self.size += len(data)
        self.written_at = now_ms


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FileSinkWriter(SinkWriter):
    """One subtask's writer of a :class:`FileSink`.

    Records go to ``<bucket>/.<prefix>-<uuid>-<subtask>-<n><suffix>.inprogress.<uuid>``.
    ``prepare_commit`` closes the open parts and returns every pending ``(in-progress path,
    final path)`` not yet committed; ``commit`` renames them to their final names.
    """

    def __init__(self, sink: FileSink, subtask_index: int) -> None:
        self._sink = sink
        self._subtask_index = subtask_index
        self._uuid = str(uuid.uuid4())
        self._counter = 0
        self._open: dict[str, _PartFile] = {}
        self._rolled: list[tuple[str, str]] = []  # closed, not yet handed out
        self._handed_out: list[tuple[str, str]] = []  # handed out, not yet committed
        policy = sink.rolling_policy
        self._part_size = policy.part_size
        self._rollover_ms = policy.rollover_interval
        self._inactivity_ms = policy.inactivity_interval
        config = sink.output_file_config
        self._prefix, self._suffix = config.part_prefix, config.part_suffix

    # -------------------------------------------------------------- writing

    def write_batch(self, values: list) -> None:
        if not values:
            return
        now = _now_ms()
        for bucket, group in self._sink.bucket_assigner.assign(values, now):
            self._write_bucket(bucket, group, now)

    def _write_bucket(self, bucket: str, values: list, now: int) -> None:
        part = self._open.get(bucket)
        if part is not None and self._should_roll_on_time(part, now):
            self._roll(bucket)
            part = None
        part_size = self._part_size
        encoder = self._sink.encoder
        data = encoder.encode_batch(values)
        if part_size is None or (part is not None and part.size + len(data) <= part_size):
            if part is None:
                part = self._new_part(bucket, now)
            part.write(data, now)
            return
        if part is None and len(data) <= part_size:
            self._new_part(bucket, now).write(data, now)
            return
        # Near or past the size limit: roll between records, as Flink does per record.
        for value in values:
            if part is not None and part.size > part_size:
                self._roll(bucket)
                part = None
            if part is None:
                part = self._new_part(bucket, now)
            part.write(encoder.encode(value), now)

    def _should_roll_on_time(self, part: _PartFile, now: int) -> bool:
        if self._rollover_ms is not None and now - part.opened_at >= self._rollover_ms:
            return True
        return self._inactivity_ms is not None and now - part.written_at >= self._inactivity_ms

    def _new_part(self, bucket: str, now: int) -> _PartFile:
        directory = os.path.join(self._sink.base_path, bucket) if bucket else self._sink.base_path
        os.makedirs(directory, exist_ok=True)
        name = f"{self._prefix}-{self._uuid}-{self._subtask_index}-{self._counter}{self._suffix}"
        self._counter += 1
        in_progress = os.path.join(directory, f".{name}.inprogress.{uuid.uuid4()}")
        part = _PartFile(in_progress, os.path.join(directory, name), now)
        self._open[bucket] = part
        return part

    def _roll(self, bucket: str) -> None:
        part = self._open.pop(bucket)
        part.handle.close()
        self._rolled.append((part.in_progress, part.final))

    # -------------------------------------------------------------- two-phase commit

    def prepare_commit(self, checkpoint_id: int) -> list[tuple[str, str]]:
        for bucket in list(self._open):
            self._roll(bucket)
        self._handed_out.extend(self._rolled)
        self._rolled = []
        return list(self._handed_out)

    def commit(self, committables: object) -> None:
        done: set[tuple[str, str]] = set()
        for in_progress, final in committables or ():  # type: ignore[union-attr]
            if os.path.exists(in_progress):
                os.replace(in_progress, final)
            elif not os.path.exists(final):
                raise FileNotFoundError(
                    f"FileSink cannot commit {final}: neither it nor its in-progress file "
                    f"{in_progress} exists"
                )
            done.add((in_progress, final))
        if done:
            self._handed_out = [p for p in self._handed_out if p not in done]

    def finish(self) -> None:
        self.commit(self.prepare_commit(-1))

    def adopt_run_id(self, run_id: str) -> None:
        """Name this subtask's part files after ``run_id`` rather than a random id, and delete
        the part files an earlier attempt of the same run committed under it. A BATCH job that
        fails restarts whole, so each subtask writes all of its output again: it must replace
        what the earlier attempt committed, never add to it."""
        self._uuid = run_id
        head = f"{self._prefix}-{run_id}-{self._subtask_index}-"
        for folder, _dirs, names in os.walk(self._sink.base_path):
            for name in names:
                if name.startswith(head) and name.endswith(self._suffix):
                    os.remove(os.path.join(folder, name))

    def abort(self) -> None:
        """Delete in-progress files not handed out by ``prepare_commit`` (those may belong
        to a completed checkpoint and stay for its commit)."""
        for bucket in list(self._open):
            self._roll(bucket)
        for in_progress, _final in self._rolled:
            try:
                os.remove(in_progress)
            except FileNotFoundError:
                pass
        self._rolled = []

    def close(self) -> None:
        for part in self._open.values():
            part.handle.close()
        for part in self._open.values():
            self._rolled.append((part.in_progress, part.final))
        self._open.clear()


__getattr__ = module_getattr(
    __name__,
    {
        "BulkFormat": JVM_FORMAT,
        "FileCompactStrategy": NOT_BUILT + " (part files are not compacted)",
        "FileCompactor": NOT_BUILT + " (part files are not compacted)",
        "FileEnumeratorProvider": "it plugs a Java file enumerator into FileSource",
        "FileSplitAssignerProvider": "it plugs a Java split assigner into FileSource",
        "StreamingFileSink": "the deprecated sink function; use FileSink, which writes the same "
        "part files",
    },
)
