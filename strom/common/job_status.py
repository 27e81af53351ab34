"""``JobStatus``, as ``pyflink.common.job_status``."""

from __future__ import annotations

from enum import Enum

__all__ = ["JobStatus", "JobStatusText"]

_GLOBALLY_TERMINAL = {"FAILED", "CANCELED", "FINISHED"}


class JobStatus(Enum):
    """The states of a job, as Flink names them."""

    INITIALIZING = 0
    CREATED = 1
    RUNNING = 2
    FAILING = 3
    FAILED = 4
    CANCELLING = 5
    CANCELED = 6
    FINISHED = 7
    RESTARTING = 8
    SUSPENDED = 9
    RECONCILING = 10

    def is_globally_terminal_state(self) -> bool:
        """Whether the job is over for good (finished, failed or cancelled)."""
        return self.name in _GLOBALLY_TERMINAL

    def is_terminal_state(self) -> bool:
        """Whether this JobManager is done with the job (also when only suspended)."""
        return self.name in _GLOBALLY_TERMINAL or self is JobStatus.SUSPENDED


class JobStatusText(str):
    """A job's state name (``"RUNNING"``) that also answers ``result()`` with its
    :class:`JobStatus`: PyFlink's ``JobClient.get_job_status()`` returns a future of one, so
    ``client.get_job_status().result()`` works as in PyFlink and ``== "RUNNING"`` as in Strom."""

    __slots__ = ()

    def result(self, timeout: float | None = None) -> JobStatus | str:
        try:
            return JobStatus[str(self)]
        except KeyError:
            return str(self)

    def done(self) -> bool:
        return True
