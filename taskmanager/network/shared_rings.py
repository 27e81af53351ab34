"""Shared-memory rings: the local transport between two processes of one host (DESIGN.md §5).

A remote channel whose consumer runs on the same host offers it a ring when it opens
(``ChannelHeader.ring``): a file in ``/dev/shm`` that both processes map, holding the encoded
elements, and two FIFOs that wake a side that waits for the other. Once the consumer has
attached it, every element of the channel goes through the ring: the producer's task thread
writes it, the consumer's task thread reads it in ``InputGate.poll``, and no data-plane thread
or gRPC message is on the way. The gRPC connection still opens, closes, cancels and fails the
channel, so a ring changes nothing of a channel's life. A consumer that cannot attach the ring
(its ``/dev/shm`` is another, or the offer is not one of ours) answers with credits, and the
channel goes over gRPC as it would have.

Measured: ``bench/ab.py`` with word count at p=2 (bench/README.md, "Session 14"): the data-plane
thread's work goes, and the task threads, no longer sharing the GIL with it, burn less too.

The ring (one producer, one consumer)::

    header (64 bytes): head u64 (the consumer's read position), tail u64 (the producer's write
      position), consumer_waiting u32, producer_waiting u32, closed u32 (the consumer closed its
      input), magic u32, capacity u64
    entries: u32 (bit 31: more chunks of this element follow; bits 0-30: the chunk's length),
      the chunk, padded to 8 bytes

Positions only grow; a position's byte is at ``position % capacity``, and an entry may wrap.
An element larger than a quarter of the ring goes in chunks, so it never needs more room than
the ring has, and the consumer frees each chunk as it reads it.

Memory ordering: the producer writes an entry, fences, stores ``tail``; the consumer loads
``tail``, fences, reads, fences, stores ``head``. A side about to sleep sets its waiting flag,
fences and looks again; the other side, having published, fences and pokes the FIFO when the
flag is set. ``head`` and ``tail`` are loaded and stored whole, in one atomic access each
(``struct`` would read them a byte at a time, and a read racing a store could mix two values).
The fence and the atomic accesses are ``strom._speedups``' (C11); Python has neither, so
without the compiled module no ring is offered.

Files are named ``strom-ring-<producer pid>-<random>``; the consumer removes them once it has
them open, the producer when no consumer took them, and the TaskManager those of a slot
process that died (``remove_rings_of``).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import re
import select
import stat
import struct
import threading
import uuid
import weakref

try:
    from strom._speedups import fence, load_u64, store_u64
except ImportError:  # no compiler at install time: channels go over gRPC
    fence = load_u64 = store_u64 = None

__all__ = [
    "Ring",
    "RingRefused",
    "available",
    "configure",
    "remove_rings_of",
]

log = logging.getLogger(__name__)

#: where rings are made: a tmpfs every process of the host sees
DIRECTORY = "/dev/shm"
#: the bytes of a ring's entries (a power of two); about what a channel's credits hold in flight
CAPACITY = 256 * 1024
_MIN_CAPACITY = 4 * 1024
_MAX_CAPACITY = 64 * 1024 * 1024

HEADER = 64
_MAGIC = 0x5354524D  # "STRM"
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEAD, _TAIL, _CONSUMER_WAITING, _PRODUCER_WAITING, _CLOSED, _MAGIC_AT, _CAPACITY_AT = (
    0,
    8,
    16,
    20,
    24,
    28,
    32,
)
_MORE = 1 << 31
_NAME = re.compile(r"strom-ring-(\d+)-[0-9a-f]{32}")

_enabled = True


class RingRefused(OSError):
    """A ring offered by a peer was not attached (not ours, not there, not a ring)."""


def configure(config: dict) -> None:
    """Read ``taskmanager.network.shared-memory`` (default on) for this process."""
    global _enabled
    value = config.get("taskmanager.network.shared-memory", True)
    _enabled = value if isinstance(value, bool) else str(value).strip().lower() == "true"


def available() -> bool:
    """Whether this process offers rings: enabled, compiled fence, a usable directory."""
    return _enabled and fence is not None and os.access(DIRECTORY, os.W_OK | os.X_OK)


def remove_rings_of(pid: int) -> int:
    """Remove the ring files a (dead) producer process left; returns how many."""
    removed = 0
    prefix = f"strom-ring-{pid}-"
    with contextlib.suppress(OSError):
        for name in os.listdir(DIRECTORY):
            if name.startswith(prefix):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(DIRECTORY, name))
                    removed += 1
    return removed


def _close(view: memoryview, memory: mmap.mmap, fds: tuple[int, ...]) -> None:
    view.release()
    memory.close()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _poke(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, OSError):
        os.write(fd, b"\0")


def drain(fd: int) -> None:
    """Empty a wake-up FIFO or pipe (non-blocking)."""
    with contextlib.suppress(BlockingIOError, OSError):
        while os.read(fd, 4096):
            pass


class Ring:
    """One end of a ring: the producer's (``create``) or the consumer's (``attach``)."""

    def __init__(self, path: str, memory: mmap.mmap, wake_consumer: int, wake_producer: int):
        self.path = path
        self._memory = memory
        self._view = memoryview(memory)
        self.capacity = len(memory) - HEADER
        self._max_chunk = self.capacity // 4 - 8
        #: the FIFO the consumer sleeps on, and the one the producer sleeps on
        self.wake_consumer = wake_consumer
        self.wake_producer = wake_producer
        self._position = 0  # this end's own: tail for the producer, head for the consumer
        self._partial: list[bytes] = []  # the consumer's chunks of an element not yet whole
        self._attached = False
        self._discarded = False
        self._released = False
        self._lock = threading.Lock()  # ``interrupt`` (any thread) against ``release``
        self._finalizer = weakref.finalize(
            self, _close, self._view, memory, (wake_consumer, wake_producer)
        )
        self._poller: select.poll | None = None  # the producer's, on wake_producer

    # ------------------------------------------------------------------ making and opening

    @classmethod
    def create(cls, capacity: int = CAPACITY) -> Ring:
        """A new ring and its FIFOs, for the producer; the consumer opens it by ``path``."""
        path = os.path.join(DIRECTORY, f"strom-ring-{os.getpid()}-{uuid.uuid4().hex}")
        made: list[str] = []
        fds: list[int] = []
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            made.append(path)
            try:
                os.ftruncate(fd, HEADER + capacity)
                memory = mmap.mmap(fd, HEADER + capacity)
            finally:
                os.close(fd)
            _U32.pack_into(memory, _MAGIC_AT, _MAGIC)
            _U64.pack_into(memory, _CAPACITY_AT, capacity)
            for suffix in (".c", ".p"):
                os.mkfifo(path + suffix, 0o600)
                made.append(path + suffix)
                # Read and write: opening never blocks nor fails for want of the other end.
                fds.append(os.open(path + suffix, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW))
        except OSError:
            for fd in fds:
                os.close(fd)
            for name in made:
                with contextlib.suppress(OSError):
                    os.unlink(name)
            raise
        return cls(path, memory, fds[0], fds[1])

    @classmethod
    def attach(cls, path: str) -> Ring:
        """The consumer's end of the ring at ``path`` (a peer's offer: checked, never trusted);
        removes its files. Raises ``RingRefused``."""
        if not available():
            raise RingRefused("this process takes no rings (shared memory is off here)")
        directory, name = os.path.split(path)
        if directory != DIRECTORY or not _NAME.fullmatch(name):
            raise RingRefused(f"{path!r} is not a ring of this host")
        fds: list[int] = []
        memory = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
            try:
                info = os.fstat(fd)
                size = info.st_size
                if (
                    not stat.S_ISREG(info.st_mode)
                    or info.st_uid != os.geteuid()
                    or not HEADER + _MIN_CAPACITY <= size <= HEADER + _MAX_CAPACITY
                ):
                    raise RingRefused(f"{path} is not a ring")
                memory = mmap.mmap(fd, size)
            finally:
                os.close(fd)
            if (
                _U32.unpack_from(memory, _MAGIC_AT)[0] != _MAGIC
                or _U64.unpack_from(memory, _CAPACITY_AT)[0] != size - HEADER
                or load_u64(memory, _HEAD) != 0
            ):
                raise RingRefused(f"{path} is not a new ring")
            for suffix in (".c", ".p"):
                fd = os.open(path + suffix, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW)
                fds.append(fd)
                info = os.fstat(fd)
                if not stat.S_ISFIFO(info.st_mode) or info.st_uid != os.geteuid():
                    raise RingRefused(f"{path}{suffix} is not a ring's FIFO")
        except OSError as error:
            for fd in fds:
                os.close(fd)
            if memory is not None:
                memory.close()
            if isinstance(error, RingRefused):
                raise
            raise RingRefused(f"cannot open the ring {path}: {error}") from None
        for suffix in ("", ".c", ".p"):
            with contextlib.suppress(OSError):
                os.unlink(path + suffix)
        ring = cls(path, memory, fds[0], fds[1])
        ring._attached = True
        return ring

    def discard(self) -> None:
        """Remove the ring's files if no consumer took them (the producer's end; any thread)."""
        if not self._attached and not self._discarded:
            self._discarded = True
            for suffix in ("", ".c", ".p"):
                with contextlib.suppress(OSError):
                    os.unlink(self.path + suffix)

    def release(self) -> None:
        """Let go of the ring: its files if no consumer took them, its memory and FIFOs.
        Only on the thread that uses this end, or once none does; idempotent. A ring never
        released lets go when it is collected."""
        self.discard()
        with self._lock:
            self._released = True
            self._finalizer()

    # ------------------------------------------------------------------ the producer's end

    def write(self, payload: bytes, wait_for_room) -> None:
        """Append ``payload`` (in chunks if large), calling ``wait_for_room(bytes)`` while the
        ring has too little; that call may raise to give up (a chunk already written stays)."""
        memory = self._memory
        size = len(payload)
        offset = 0
        while True:
            chunk = min(size - offset, self._max_chunk)
            last = offset + chunk >= size
            need = (4 + chunk + 7) & ~7
            tail = self._position
            while tail + need - load_u64(memory, _HEAD) > self.capacity:
                wait_for_room(need)
            self._copy_in(tail, _U32.pack(chunk if last else chunk | _MORE))
            whole = last and not offset
            self._copy_in(tail + 4, payload if whole else memoryview(payload)[offset:][:chunk])
            tail += need
            self._position = tail
            fence()  # the entry before the tail that shows it
            store_u64(memory, _TAIL, tail)
            fence()  # the tail before the look at the flag
            if _U32.unpack_from(memory, _CONSUMER_WAITING)[0]:
                _poke(self.wake_consumer)
            if last:
                return
            offset += chunk

    def room_for(self, size: int) -> int:
        """The ring bytes an element of ``size`` bytes takes (its chunks' entries)."""
        chunks, rest = divmod(size, self._max_chunk)
        entries = chunks * ((4 + self._max_chunk + 7) & ~7)
        if rest or not chunks:
            entries += (4 + rest + 7) & ~7
        return entries

    def _copy_in(self, position: int, data: bytes) -> None:
        capacity = self.capacity
        start = position % capacity
        end = start + len(data)
        view = self._view
        if end <= capacity:
            view[HEADER + start : HEADER + end] = data
        else:
            first = capacity - start
            view[HEADER + start : HEADER + capacity] = data[:first]
            view[HEADER : HEADER + end - capacity] = data[first:]

    def wait_for_room(self, need: int, timeout: float) -> None:
        """Sleep until the consumer frees ``need`` bytes (or it closes, or ``timeout`` s pass,
        or ``wake_producer`` is poked)."""
        memory = self._memory
        _U32.pack_into(memory, _PRODUCER_WAITING, 1)
        fence()
        try:
            head = load_u64(memory, _HEAD)
            if self._position + need - head <= self.capacity or self.consumer_closed:
                return
            if self._poller is None:
                self._poller = select.poll()
                self._poller.register(self.wake_producer, select.POLLIN)
            self._poller.poll(timeout * 1000)
        finally:
            _U32.pack_into(memory, _PRODUCER_WAITING, 0)
        drain(self.wake_producer)

    def interrupt(self) -> None:
        """Wake the producer's end if it waits for room (it then looks at its channel); any
        thread."""
        with self._lock:
            if not self._released:
                _poke(self.wake_producer)

    @property
    def consumer_closed(self) -> bool:
        return _U32.unpack_from(self._memory, _CLOSED)[0] != 0

    @property
    def free(self) -> int:
        """Bytes the producer may write now."""
        return self.capacity - (self._position - load_u64(self._memory, _HEAD))

    # ------------------------------------------------------------------ the consumer's end

    def take(self) -> bytes | None:
        """The next whole element's bytes, or None when none is whole yet."""
        memory = self._memory
        head = self._position
        tail = load_u64(memory, _TAIL)
        if tail == head:
            return None
        fence()  # the tail before the entries it shows
        element = None
        while head != tail:
            word = _U32.unpack_from(self._copy_out(head, 4))[0]
            length = word & ~_MORE
            if head + 4 + length > tail or length > self.capacity:
                raise RingRefused(f"a corrupt entry in the ring {self.path}")
            data = self._copy_out(head + 4, length)
            head += (4 + length + 7) & ~7
            if word & _MORE:
                self._partial.append(data)
                continue
            if self._partial:
                self._partial.append(data)
                data = b"".join(self._partial)
                self._partial = []
            element = data
            break
        self._position = head
        fence()  # done reading before the head that frees the room
        store_u64(memory, _HEAD, head)
        fence()
        if _U32.unpack_from(memory, _PRODUCER_WAITING)[0]:
            _poke(self.wake_producer)
        return element

    def _copy_out(self, position: int, size: int) -> bytes:
        capacity = self.capacity
        start = position % capacity
        end = start + size
        view = self._view
        if end <= capacity:
            return view[HEADER + start : HEADER + end].tobytes()
        return (
            view[HEADER + start : HEADER + capacity].tobytes()
            + view[HEADER : HEADER + end - capacity].tobytes()
        )

    def has_data(self) -> bool:
        """Whether the producer has written something not taken yet."""
        return load_u64(self._memory, _TAIL) != self._position

    def set_waiting(self, waiting: bool) -> None:
        """The consumer is about to sleep on ``wake_consumer`` (or has woken)."""
        _U32.pack_into(self._memory, _CONSUMER_WAITING, 1 if waiting else 0)
        if waiting:
            fence()  # the flag before the last look at the tail

    @property
    def producer_waiting(self) -> bool:
        return _U32.unpack_from(self._memory, _PRODUCER_WAITING)[0] != 0

    def close_consumer(self) -> None:
        """The consumer takes nothing more: its producer's writes fail from now on."""
        if self._released:
            return
        _U32.pack_into(self._memory, _CLOSED, 1)
        fence()
        _poke(self.wake_producer)

    def __repr__(self) -> str:
        return f"Ring({os.path.basename(self.path)}, {self.capacity} bytes)"
