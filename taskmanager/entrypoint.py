"""``python -m taskmanager`` / ``strom-taskmanager``: run a TaskManager in the foreground."""

from __future__ import annotations

import sys

from strom.daemon import run_daemon
from strom.process_identity import TASKMANAGER
from taskmanager.task_executor import TaskExecutor


def main(argv: list[str] | None = None) -> int:
    return run_daemon(TASKMANAGER, "Run a Strom TaskManager.", argv, TaskExecutor)


if __name__ == "__main__":
    sys.exit(main())
