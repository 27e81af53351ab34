"""Who may send records to a process: a peer holding its job's data token (issue 15).

Record batches are pickles, so whoever could open a ``DataConnection.Connect`` stream to a slot
process's data endpoint, or ``FetchPartition`` from a TaskManager, could make it run code.
The JobManager makes a data token for each job (an HMAC of a secret of its own and the job
id) and sends it, as ``strom-data-token`` metadata, with the ``PrepareSlots`` and
``DeployTasks`` commands of that job, which only it can give (strom/rpc/command_token.py). A
TaskManager :func:`admit`\\ s it and hands it to the job's slot processes at start; they send
it when they connect to a peer's data endpoint or fetch a partition, and a process refuses a
connection or fetch without a token it admitted before it reads anything of it
(taskmanager/network/data_service.py). The check is once per connection, never per batch.

A slot process admits only its own job's token, so one job cannot send records into
another's. The TaskManager process keeps the tokens of the last jobs it was given (partitions
of BATCH jobs are served from it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

__all__ = ["METADATA_KEY", "admit", "admits", "metadata", "own_token", "token_of_job"]

#: the metadata key of the data token, on Connect, FetchPartition and the JobManager's commands
METADATA_KEY = "strom-data-token"
#: jobs whose tokens a process keeps; the oldest is forgotten first
_JOBS_KEPT = 1024
#: tokens kept per job: a new JobManager leader makes new ones
_TOKENS_PER_JOB = 4

_lock = threading.Lock()
_by_job: OrderedDict[str, deque[str]] = OrderedDict()
_admitted: dict[str, str] = {}  # token -> job id
_own = ""


def admit(job_id: str, token: str) -> None:
    """Accept ``token`` from peers for ``job_id``'s data, and send it from now on."""
    global _own
    if not token:
        return
    with _lock:
        tokens = _by_job.get(job_id)
        if tokens is None:
            tokens = _by_job[job_id] = deque(maxlen=_TOKENS_PER_JOB)
            while len(_by_job) > _JOBS_KEPT:
                _, forgotten = _by_job.popitem(last=False)
                for old in forgotten:
                    _admitted.pop(old, None)
        else:
            _by_job.move_to_end(job_id)
        # The latest admitted is the one sent: a deposed leader that leads again brings back
        # its old token, which the job's new slot processes here and elsewhere must share.
        if token in tokens:
            tokens.remove(token)
        elif len(tokens) == tokens.maxlen:
            _admitted.pop(tokens[0], None)
        tokens.append(token)
        _admitted[token] = job_id
        _own = token


def admits(token: str, job_id: str | None = None) -> bool:
    """Whether ``token`` was admitted (for ``job_id``, when given)."""
    if not token or not isinstance(token, str):
        return False
    with _lock:
        # A hash lookup: its timing says nothing of how much of a token was right.
        owner = _admitted.get(token)
    return owner is not None and (job_id is None or owner == job_id)


def own_token() -> str:
    """The token this process sends (its job's, in a slot process); "" if it has none."""
    return _own


def token_of_job(job_id: str) -> str:
    """The latest token admitted for ``job_id`` ("" if none)."""
    with _lock:
        tokens = _by_job.get(job_id)
        return tokens[-1] if tokens else ""


def metadata(job_id: str | None = None) -> tuple[tuple[str, str], ...]:
    """The call metadata carrying ``job_id``'s token, or this process's own."""
    token = token_of_job(job_id) if job_id else ""
    token = token or _own
    return ((METADATA_KEY, token),) if token else ()
