"""``CompletableFuture``, as ``pyflink.common.completable_future``: a result to come."""

from __future__ import annotations

from concurrent.futures import Future

__all__ = ["CompletableFuture"]


class CompletableFuture(Future):
    """A ``concurrent.futures.Future``: ``result()``, ``exception()``, ``done()``,
    ``add_done_callback()``, as PyFlink's offers them."""

    def __init__(self, py_class: type | None = None) -> None:
        super().__init__()
        self._py_class = py_class
