"""Where ``execute()`` sends a job: set by ``strom run``, embedded otherwise."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ExecutionContext:
    #: "embedded" runs a mini-cluster in this process; "remote" submits to ``jobmanager``
    target: str = "embedded"
    jobmanager: str | None = None
    parallelism: int | None = None
    detached: bool = False
    #: job settings given with -D (over the cluster's, under the job's own)
    config: dict[str, str] = field(default_factory=dict)
    #: the cluster configuration's job-level settings, as the JobManager reports them
    cluster_config: dict[str, str] = field(default_factory=dict)
    savepoint_path: str | None = None
    allow_non_restored_state: bool = False
    #: the folder whose files travel with the job (default: the main script's folder)
    job_root: str | None = None
    #: what ships besides the script's folder (strom run -pyfs and what -pyreq installed;
    #: -pyarch)
    python_files: list[str] = field(default_factory=list)
    python_archives: list[str] = field(default_factory=list)
    #: client.job-files.max-size
    job_files_max_bytes: int = 64 * 1024 * 1024
    #: how often the attached client prints a progress line when not on a terminal
    progress_interval_s: float = 10.0
    #: with high availability, finds the leading JobManager's address (None: none leads)
    find_leader: Callable[[], str | None] | None = None
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


def job_setting(job_configuration: dict, key: str) -> object:
    """A job-level setting with Flink's precedence: the job's own configuration, then -D,
    then the cluster configuration, then the default (parsed and validated)."""
    from strom.configuration import OPTIONS, validate

    context = current()
    for layer, source in (
        (job_configuration, "the job's configuration"),
        (context.config, "-D"),
        (context.cluster_config, "the cluster configuration"),
    ):
        if key in layer:
            return validate(key, layer[key], source)
    return OPTIONS[key].default


def job_setting_given(job_configuration: dict, key: str) -> bool:
    """Whether the job's configuration, -D or the cluster configuration sets ``key``."""
    context = current()
    return any(
        key in layer for layer in (job_configuration, context.config, context.cluster_config)
    )


def local_default_parallelism() -> int:
    """The parallelism of an embedded job that sets none: as PyFlink's local environment,
    the number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
