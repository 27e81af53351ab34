"""Where ``execute()`` sends a job: set by ``strom run``, embedded otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExecutionContext:
    #: "embedded" runs a mini-cluster in this process; "remote" submits to ``jobmanager``
    target: str = "embedded"
    jobmanager: str | None = None
    parallelism: int | None = None
    detached: bool = False
    config: dict[str, str] = field(default_factory=dict)
    savepoint_path: str | None = None
    allow_non_restored_state: bool = False
    #: the folder whose files travel with the job (default: the main script's folder)
    job_root: str | None = None
    #: job ids submitted under this context, in order (the CLI reports them)
    submitted: list[str] = field(default_factory=list)


_current = ExecutionContext()


def current() -> ExecutionContext:
    return _current


def set_current(context: ExecutionContext) -> ExecutionContext:
    """Install ``context``; returns the previous one so callers can restore it."""
    global _current
    previous, _current = _current, context
    return previous
