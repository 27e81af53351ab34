"""``RuntimeExecutionMode`` as PyFlink names it."""

from __future__ import annotations

from enum import Enum


class RuntimeExecutionMode(Enum):
    """How a job runs. Bounded streams finish in every mode; BATCH is accepted for
    compatibility and runs the same pipelined engine."""

    STREAMING = 0
    BATCH = 1
    AUTOMATIC = 2
