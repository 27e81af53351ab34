"""The inbox of one subtask: bounded per-channel queues plus the task's mailbox (DESIGN.md §5).

Producers (local channels, or the data service on behalf of remote ones) ``put`` elements into
their channel and block while it is full, which is how a slow consumer slows its producers.
The task's own thread takes one thing at a time with ``poll``: mailbox actions first (timers,
checkpoint triggers, cancellation), then channel data round-robin, so no input starves another
and user code runs one step at a time, on the task's own thread. A ``put`` that wakes the
waiting consumer gives up the GIL at once, so that thread takes the element while its records
are still in the cache (two task threads of one process share one GIL; bench/handoff.py).

A *blocked* channel keeps its data queued and is skipped by ``poll``; checkpoint barrier
alignment blocks the channels whose barrier already arrived.

A channel fed from another process is *watched* (``watch``): the receiving connection hands
its producer one credit per free slot and gets one back each time ``poll`` takes an element
from the channel, so remote data is only sent when there is room for it and ``put`` never
waits for it (credit-based flow control, as in Flink).

A channel fed from another process of this host may instead read a shared-memory *ring*
(``attach_ring``, ``shared_rings.py``): ``poll`` takes its elements from the ring itself, and
the ring's room is the channel's flow control. A gate with rings waits on file descriptors
(its own pipe, which local producers and mailbox posts write to, and each ring's FIFO) instead
of its condition, so that another process can wake it.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from taskmanager.network import shared_rings
from taskmanager.network.elements import decode_on_receipt
from taskmanager.network.shared_rings import Ring, RingRefused

__all__ = ["GateClosed", "InputGate"]

#: the longest a consumer waits in one go (a lock cannot wait past threading.TIMEOUT_MAX)
_LONGEST_WAIT_S = 3600.0


class GateClosed(Exception):
    """The gate was closed (its task finished, failed or was cancelled)."""


class InputGate:
    """``num_channels`` bounded input queues and a mailbox, read by one consumer thread.

    All state is guarded by one lock. ``_ready`` lists the channels that have data and are not
    blocked, each at most once, in the order ``poll`` serves them: a served channel that still
    has data goes to the back, which makes the order round-robin without scanning.
    """

    def __init__(self, num_channels: int, capacity_per_channel: int = 8) -> None:
        if num_channels < 0:
            raise ValueError(f"num_channels must be >= 0, not {num_channels}")
        if capacity_per_channel < 1:
            raise ValueError(f"capacity_per_channel must be >= 1, not {capacity_per_channel}")
        self.num_channels = num_channels
        self.capacity_per_channel = capacity_per_channel
        self._lock = threading.Lock()
        # The consumer waits on this one; each channel's producers on their own condition,
        # so freeing a slot wakes only a producer of that channel.
        self._data_available = threading.Condition(self._lock)
        self._space_available = [threading.Condition(self._lock) for _ in range(num_channels)]
        self._queues: list[deque[Any]] = [deque() for _ in range(num_channels)]
        self._mailbox: deque[Callable[[], None]] = deque()
        self._ready: deque[int] = deque()
        self._is_ready = [False] * num_channels
        self._blocked = [False] * num_channels
        self._waiting_producers = [0] * num_channels
        self._waiting_consumers = 0
        self._closed = False
        # A blocked producer resumes once its channel drained to half: it then sends a burst
        # instead of one element per wake-up, which saves thread hand-offs under the GIL.
        self._resume_level = capacity_per_channel // 2
        # Watched channels: called after ``poll`` took an element, and when the gate closes.
        self._on_consumed: list[Callable[[], None] | None] = [None] * num_channels
        self._on_closed: list[Callable[[], None] | None] = [None] * num_channels
        # Rings (shared memory, from producers on this host): read by ``poll`` itself.
        self._rings: list[tuple[int, Ring]] = []
        self._ring_of: list[Ring | None] = [None] * num_channels
        self._ring_turn = 0
        self._prefer_rings = True
        self._wake_read = self._wake_write = -1  # the gate's pipe, once it has rings
        self._poller: select.poll | None = None

    # ------------------------------------------------------------------ producers

    def put(self, channel: int, element: Any, timeout: float | None = None) -> None:
        """Append ``element`` to ``channel``, waiting while the channel is full; when that
        wakes the consumer, let it run before going on.

        Raises ``GateClosed`` when the gate is or gets closed, ``TimeoutError`` when no room
        was made within ``timeout`` seconds (None: wait as long as it takes).
        """
        woken = False
        with self._lock:
            queue = self._queues[channel]
            if len(queue) >= self.capacity_per_channel or self._closed:
                self._wait_for_space(channel, queue, timeout)
            queue.append(element)
            if not self._is_ready[channel] and not self._blocked[channel]:
                self._is_ready[channel] = True
                self._ready.append(channel)
                if self._waiting_consumers:
                    self._wake_consumer()
                    woken = True
            if self._waiting_producers[channel] and len(queue) < self.capacity_per_channel:
                # Several producers on one channel: pass a spare slot on.
                self._space_available[channel].notify()
        if woken:
            # Give up the GIL now, so the consumer's thread takes the element while its records
            # are still in the cache, instead of when the interpreter next forces a switch
            # (5 ms on: a producer makes ~10,000 more records meanwhile). Measured on word
            # count (bench/handoff.py, bench/RESULTS.md "Session 4"): fewer slow runs on a
            # busy machine; the consumer still runs on its own thread.
            time.sleep(0)

    def _wake_consumer(self) -> None:
        # With the lock held, a consumer waiting: wake it where it waits.
        if self._wake_write >= 0:
            self._poke_pipe()
        else:
            self._data_available.notify()

    def _poke_pipe(self) -> None:
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def attach_ring(self, channel: int, ring: Ring) -> None:
        """``channel``'s elements come through ``ring`` from now on (the gate owns it).

        Raises ``GateClosed`` when the gate is closed, ``RingRefused`` when the channel has a
        ring already (the ring is then the caller's).
        """
        with self._lock:
            if self._closed:
                raise GateClosed("input gate closed")
            if self._ring_of[channel] is not None:
                raise RingRefused(f"channel {channel} reads a ring already")
            if self._wake_read < 0:
                self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                self._poller = select.poll()
                self._poller.register(self._wake_read, select.POLLIN)
            self._poller.register(ring.wake_consumer, select.POLLIN)
            self._rings.append((channel, ring))
            self._ring_of[channel] = ring
            # A consumer waiting already waits without this ring's flag and FIFO: wake it, so
            # that it waits again with them (on the condition from before a first ring, on the
            # pipes after).
            self._data_available.notify_all()
            if self._waiting_consumers:
                self._poke_pipe()

    def _take_from_rings(self) -> tuple[int, Any] | None:
        # With the lock held: the next element of a ring not blocked, rings in turn.
        rings = self._rings
        count = len(rings)
        turn = self._ring_turn
        blocked = self._blocked
        for step in range(count):
            channel, ring = rings[(turn + step) % count]
            if blocked[channel]:
                continue
            payload = ring.take()
            if payload is not None:
                self._ring_turn = (turn + step + 1) % count
                return channel, decode_on_receipt(payload)
        return None

    def _wait_on_pipes(self, remaining: float | None) -> None:
        # With the lock held and nothing to take: sleep until a producer, here or in another
        # process, writes a wake-up (or ``remaining`` s pass). Returns with the lock held.
        rings = self._rings
        for _, ring in rings:
            ring.set_waiting(True)
        try:
            blocked = self._blocked
            if any(ring.has_data() for channel, ring in rings if not blocked[channel]):
                return
            self._waiting_consumers += 1
            self._lock.release()
            try:
                timeout = _LONGEST_WAIT_S if remaining is None else min(remaining, _LONGEST_WAIT_S)
                events = self._poller.poll(timeout * 1000)
            finally:
                self._lock.acquire()
                self._waiting_consumers -= 1
            if not self._closed:  # closed: its descriptors are gone (and may be reused)
                for fd, _ in events:
                    shared_rings.drain(fd)
        finally:
            for _, ring in self._rings:
                ring.set_waiting(False)

    def put_credited(self, channel: int, element: Any) -> None:
        """Append ``element`` to ``channel`` whatever it holds: for a watched channel, whose
        producer sends only against credits, so the connection bounds what it holds.

        Raises ``GateClosed`` when the gate is closed.
        """
        with self._lock:
            if self._closed:
                raise GateClosed(f"input gate closed; channel {channel} accepts no more data")
            self._queues[channel].append(element)
            if not self._is_ready[channel] and not self._blocked[channel]:
                self._is_ready[channel] = True
                self._ready.append(channel)
                if self._waiting_consumers:
                    self._wake_consumer()

    def _wait_for_space(self, channel: int, queue: deque, timeout: float | None) -> None:
        # Called with the lock held; returns with room in ``queue``.
        deadline = None if timeout is None else time.monotonic() + timeout
        condition = self._space_available[channel]
        capacity = self.capacity_per_channel
        while True:
            if self._closed:
                raise GateClosed(f"input gate closed; channel {channel} accepts no more data")
            if len(queue) < capacity:
                return
            if deadline is None:
                remaining = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"channel {channel} stayed full ({capacity} elements) for {timeout}s"
                    )
            self._waiting_producers[channel] += 1
            try:
                condition.wait(remaining)
            finally:
                self._waiting_producers[channel] -= 1

    def post(self, action: Callable[[], None]) -> None:
        """Queue ``action`` to run on the consumer's thread before any pending channel data.

        Never blocks; raises ``GateClosed`` when the gate is closed.
        """
        with self._lock:
            if self._closed:
                raise GateClosed("input gate closed; it takes no more mailbox actions")
            self._mailbox.append(action)
            if self._waiting_consumers:
                self._wake_consumer()

    # ------------------------------------------------------------------ the consumer

    def poll(self, timeout: float | None = None) -> tuple[int, Any] | None:
        """The next mailbox action as ``(-1, action)``, else the next ``(channel, element)``.

        Waits up to ``timeout`` seconds (None: without limit; 0: not at all) and returns None
        when nothing came. Raises ``GateClosed`` once the gate is closed.
        """
        with self._lock:
            deadline = None
            while True:
                if self._closed:
                    raise GateClosed("input gate closed")
                if self._mailbox:
                    return (-1, self._mailbox.popleft())
                if self._rings:
                    # Rings and the other channels in turn, so that neither starves the other.
                    if self._prefer_rings or not self._ready:
                        taken = self._take_from_rings()
                        if taken is not None:
                            self._prefer_rings = False
                            return taken
                    self._prefer_rings = True
                ready = self._ready
                if ready:
                    channel = ready.popleft()
                    queue = self._queues[channel]
                    element = queue.popleft()
                    if queue:
                        ready.append(channel)
                    else:
                        self._is_ready[channel] = False
                    if self._waiting_producers[channel] and len(queue) <= self._resume_level:
                        self._space_available[channel].notify()
                    consumed = self._on_consumed[channel]
                    if consumed is None:
                        return (channel, element)
                    break
                # Nothing to take: the slow path.
                if timeout is None:
                    remaining = None
                elif deadline is None:
                    if timeout <= 0:
                        return None
                    deadline = time.monotonic() + timeout
                    remaining = timeout
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                if self._rings:
                    self._wait_on_pipes(remaining)
                    continue
                self._waiting_consumers += 1
                try:
                    # A deadline far away (a timer at the end of time) is more than a lock
                    # can wait; waking once in a long while instead changes nothing.
                    self._data_available.wait(
                        None if remaining is None else min(remaining, _LONGEST_WAIT_S)
                    )
                finally:
                    self._waiting_consumers -= 1
        consumed()  # outside the lock: it hands a credit to the connection of a watched channel
        return (channel, element)

    def watch(
        self, channel: int, on_consumed: Callable[[], None], on_closed: Callable[[], None]
    ) -> int:
        """Call ``on_consumed`` after each element ``poll`` takes from ``channel``, and
        ``on_closed`` once when the gate closes (both outside the gate's lock, on whichever
        thread polls or closes). Returns how many free slots the channel has now.

        Raises ``GateClosed`` when the gate is closed already.
        """
        with self._lock:
            if self._closed:
                raise GateClosed("input gate closed")
            self._on_consumed[channel] = on_consumed
            self._on_closed[channel] = on_closed
            return max(0, self.capacity_per_channel - len(self._queues[channel]))

    def watched(self, channel: int) -> bool:
        """Whether a connection watches ``channel`` (its producer is in another process)."""
        return self._on_consumed[channel] is not None

    def unwatch(self, channel: int, on_consumed: Callable[[], None] | None = None) -> None:
        """Stop calling back for ``channel`` (only if ``on_consumed`` is still the one watching,
        when given)."""
        with self._lock:
            if on_consumed is None or self._on_consumed[channel] is on_consumed:
                self._on_consumed[channel] = None
                self._on_closed[channel] = None

    # ------------------------------------------------------------------ alignment

    def block(self, channel: int) -> None:
        """Stop ``poll`` from returning ``channel``'s data until it is unblocked."""
        with self._lock:
            if self._blocked[channel]:
                return
            self._blocked[channel] = True
            if self._is_ready[channel]:
                self._is_ready[channel] = False
                self._ready.remove(channel)

    def unblock(self, channel: int) -> None:
        """Let ``poll`` return ``channel``'s data again."""
        with self._lock:
            self._unblock(channel)

    def unblock_all(self) -> None:
        """Unblock every channel."""
        with self._lock:
            for channel in range(self.num_channels):
                self._unblock(channel)

    def _unblock(self, channel: int) -> None:
        if not self._blocked[channel]:
            return
        self._blocked[channel] = False
        if self._queues[channel] and not self._is_ready[channel]:
            self._is_ready[channel] = True
            self._ready.append(channel)
            if self._waiting_consumers:
                self._wake_consumer()
        elif self._ring_of[channel] is not None and self._waiting_consumers:
            self._wake_consumer()  # its ring may hold data

    def is_blocked(self, channel: int) -> bool:
        """Whether ``channel`` is blocked."""
        return self._blocked[channel]

    # ------------------------------------------------------------------ lifecycle and metrics

    def close(self) -> None:
        """Drop everything queued and wake every waiting producer and the consumer.

        From then on ``put``, ``post`` and ``poll`` raise ``GateClosed``. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for queue in self._queues:
                queue.clear()
            self._mailbox.clear()
            self._ready.clear()
            self._is_ready = [False] * self.num_channels
            self._data_available.notify_all()
            for condition in self._space_available:
                condition.notify_all()
            on_closed = [callback for callback in self._on_closed if callback is not None]
            for _, ring in self._rings:  # their producers fail from now on
                ring.close_consumer()
                ring.release()
            self._rings = []
            self._ring_of = [None] * self.num_channels
            if self._wake_write >= 0:
                self._poke_pipe()  # a consumer waiting wakes, and raises
                os.close(self._wake_write)
                os.close(self._wake_read)
                self._wake_read = self._wake_write = -1
            self._on_consumed = [None] * self.num_channels
            self._on_closed = [None] * self.num_channels
        for callback in on_closed:
            callback()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def pending(self, channel: int) -> int:
        """How many elements ``channel`` holds now (at most ``capacity_per_channel``, but for
        a watched channel of small elements, see ``put_credited``)."""
        return len(self._queues[channel])

    def backpressured(self, channel: int) -> bool:
        """Whether a producer is waiting right now for room in ``channel`` (for a watched
        channel: whether it is full, its remote producer then having no credit)."""
        ring = self._ring_of[channel]
        if ring is not None:
            return ring.producer_waiting
        if self._on_consumed[channel] is not None:
            return len(self._queues[channel]) >= self.capacity_per_channel
        return self._waiting_producers[channel] > 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.num_channels} channels"
        return f"InputGate({state}, capacity {self.capacity_per_channel})"
