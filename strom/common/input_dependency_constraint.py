"""``InputDependencyConstraint``, as ``pyflink.common.input_dependency_constraint`` (deprecated
in Flink; accepted and without effect)."""

from __future__ import annotations

from enum import Enum

__all__ = ["InputDependencyConstraint"]


class InputDependencyConstraint(Enum):
    """When a task with several inputs may be scheduled (Flink's batch scheduling hint)."""

    ANY = 0
    ALL = 1
