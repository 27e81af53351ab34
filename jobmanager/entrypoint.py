"""``python -m jobmanager`` / ``strom-jobmanager``: run a JobManager in the foreground."""

from __future__ import annotations

import sys

from jobmanager.service import JobManager
from strom.daemon import run_daemon
from strom.process_identity import JOBMANAGER


def main(argv: list[str] | None = None) -> int:
    return run_daemon(JOBMANAGER, "Run a Strom JobManager.", argv, JobManager)


if __name__ == "__main__":
    sys.exit(main())
