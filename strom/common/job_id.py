"""``JobID``, as ``pyflink.common.job_id``: a job's id of 32 hex characters."""

from __future__ import annotations

__all__ = ["JobID"]


class JobID:
    """The id of a job, e.g. ``JobID("9cff4804f3074f91af582d5c2d01504c")``."""

    def __init__(self, job_id: str) -> None:
        self._hex = str(job_id)

    def to_hex_string(self) -> str:
        return self._hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobID) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        return f"JobID({self._hex!r})"
