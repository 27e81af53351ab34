"""The process's one data-plane thread: an asyncio event loop that runs every connection.

Every remote channel of a process, sending or receiving, is served by coroutines on this one
loop (gRPC's asyncio API), so the number of threads does not grow with the parallelism of a job
nor with the number of peers (DESIGN.md §5). The loop starts on first use: a process that never
exchanges records with another, or a template process that forks workers before any exchange,
starts no thread.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc.aio

from taskmanager import cpu_claims

__all__ = ["DataPlaneLoop", "data_plane_loop"]

T = TypeVar("T")


class DataPlaneLoop:
    """An asyncio loop on a daemon thread; other threads hand it callbacks and coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        # gRPC's asyncio layer is process-wide and counts its users (servers, channels): when
        # the last one is freed it closes its poller, on whatever thread freed it. If this loop
        # is running then, it may still call the poller's reader on the closed descriptor
        # ("Exception in callback ... Bad file descriptor" on the log: a stopped
        # DataExchangeService did it, and a PyFlink example that logs to stdout printed it).
        # So the loop counts as a user from its first turn until it has stopped.
        holds_grpc: list[bool] = []

        def hold_grpc() -> None:
            grpc.aio.init_grpc_aio()
            holds_grpc.append(True)

        def run() -> None:
            # In a process that runs tasks, this thread moves their records to and from other
            # processes: it takes turns with them under the GIL, so it stays on their CPU.
            cpu_claims.pin_thread()
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(hold_grpc)
            self.loop.call_soon(started.set)
            try:
                self.loop.run_forever()
            finally:
                if holds_grpc:
                    grpc.aio.shutdown_grpc_aio()

        self.thread = threading.Thread(target=run, name="data-plane", daemon=True)
        self.thread.start()
        started.wait()
        # Stop the loop before the interpreter tears gRPC down under it (which otherwise logs
        # "Bad file descriptor" from gRPC's poller at exit). atexit alone is not enough: its
        # handlers run last-registered first, and gRPC registers its own shutdown when it is
        # first used, which can be after this loop started; threading's exit hooks run before
        # any atexit handler (concurrent.futures stops its workers the same way).
        register_early = getattr(threading, "_register_atexit", None)
        try:
            if register_early is not None:
                register_early(self.stop)
        except RuntimeError:  # the interpreter is already shutting threads down
            pass
        atexit.register(self.stop)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the loop and wait up to ``timeout`` seconds for its thread (process exit)."""
        if self.loop.is_closed() or not self.thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon; never blocks; safe from any thread."""
        if threading.current_thread() is self.thread:
            self.loop.call_soon(callback, *args)
        else:
            self.loop.call_soon_threadsafe(callback, *args)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coroutine`` on the loop; its result arrives in the returned future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result (never call from the loop)."""
        if threading.current_thread() is self.thread:
            raise RuntimeError("DataPlaneLoop.run called on the loop's own thread")
        if not self.thread.is_alive():  # stopped at exit: nothing would ever run it
            coroutine.close()
            raise RuntimeError("the data-plane loop has stopped (the process is exiting)")
        return self.submit(coroutine).result(timeout)

    def in_loop(self) -> bool:
        """Whether the caller runs on the loop's thread."""
        return threading.current_thread() is self.thread


_lock = threading.Lock()
_instance: DataPlaneLoop | None = None
_instance_pid = 0


def data_plane_loop() -> DataPlaneLoop:
    """The process's data-plane loop, started on first use (again in a forked child)."""
    global _instance, _instance_pid
    pid = os.getpid()
    instance = _instance
    if instance is not None and _instance_pid == pid:
        return instance
    with _lock:
        if _instance is None or _instance_pid != pid:
            _instance = DataPlaneLoop()
            _instance_pid = pid
        return _instance
