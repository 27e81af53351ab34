"""What the attached ``strom run`` tells while its job runs: waiting for slots, each restart
and its cause, and progress (records in and out, and the share of their input file sources
have read) — a line redrawn in place on a terminal,
plain lines every ``client.progress.interval`` otherwise.

:class:`JobWatch` is fed every :class:`JobDetails` the client polls and decides what to say;
it does no I/O of its own beyond writing to its stream, so it is driven directly in tests.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import TextIO

from strom.rpc import cluster_pb2 as pb

_WAITING_STATES = ("CREATED", "RESTARTING")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown cause"


def _count(number: int) -> str:
    if number >= 10_000_000:
        return f"{number / 1_000_000:.1f}M"
    if number >= 10_000:
        return f"{number / 1000:.1f}k"
    return str(number)


class JobWatch:
    """Reports one attached job's life as the client polls it."""

    def __init__(
        self,
        job_id: str,
        slots_available: Callable[[], int],
        interval_s: float = 10.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self._slots_available = slots_available
        self.interval_s = interval_s
        self.stream = stream or sys.stdout
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._clock = clock
        self._started = clock()
        self._last_progress = clock()
        self._progress_shown = False
        self._waiting_for: tuple[int, int] | None = None
        self._restarts_seen = 0
        self._sources: set[str] | None = None
        self._sinks: set[str] | None = None

    # ------------------------------------------------------------------ feeding

    def update(self, details: pb.JobDetails) -> None:
        """Say what changed since the previous poll."""
        self._roles(details)
        state = details.summary.state
        self._report_restarts(details)
        if state in _WAITING_STATES and details.status_message.startswith(
            ("waiting for", "restarting: waiting for")
        ):
            self._report_waiting(details)
        elif state == "RUNNING":
            self._waiting_for = None
            self._report_progress(details)

    def close(self) -> None:
        """End a progress line drawn in place, so what follows starts on its own line."""
        if self.terminal and self._progress_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._progress_shown = False

    # ------------------------------------------------------------------ what is said

    def _say(self, line: str) -> None:
        self.close()
        self.stream.write(line + "\n")
        self.stream.flush()

    def _report_waiting(self, details: pb.JobDetails) -> None:
        needed = self._slots_needed(details)
        try:
            available = self._slots_available()
        except Exception:
            available = -1
        if self._waiting_for == (needed, available):
            return
        self._waiting_for = (needed, available)
        shown = f"{available} available" if available >= 0 else "free slots unknown"
        self._say(
            f"Job {self.job_id} is waiting for {needed} slot{'s' if needed != 1 else ''}, "
            f"{shown} (start more TaskManagers, raise taskmanager.numberOfTaskSlots or lower "
            "the job's parallelism; it fails after slot.request.timeout)"
        )

    def _report_restarts(self, details: pb.JobDetails) -> None:
        begun = details.restarts + (1 if details.summary.state == "RESTARTING" else 0)
        while self._restarts_seen < begun:
            self._restarts_seen += 1
            latest = details.exceptions[-1] if details.exceptions else None
            cause = _last_line(latest.exception) if latest else "unknown cause"
            where = f" in {latest.location}" if latest and latest.location else ""
            self._say(
                f"Job {self.job_id} failed{where} and restarts (restart {self._restarts_seen}):"
                f" {cause}"
            )

    def _report_progress(self, details: pb.JobDetails) -> None:
        now = self._clock()
        records_in = sum(v.records_out for v in details.vertices if v.id in (self._sources or ()))
        records_out = sum(v.records_in for v in details.vertices if v.id in (self._sinks or ()))
        elapsed = int(now - self._started)
        line = (
            f"Job {self.job_id} running {elapsed // 60}:{elapsed % 60:02d}: "
            f"records in {_count(records_in)}, records out {_count(records_out)}"
        )
        share = self._input_share(details)
        if share is not None:
            line += f", reading input: {share} %"
        if self.terminal:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self._progress_shown = True
        elif now - self._last_progress >= self.interval_s:
            self._last_progress = now
            self._say(line)

    def _input_share(self, details: pb.JobDetails) -> int | None:
        """The percentage of their input the job's file sources have read (rounded down, so
        100 means all of it); None when no source knows the size of its input."""
        read = total = 0
        for vertex in details.vertices:
            if vertex.id in (self._sources or ()) and vertex.input_bytes_total > 0:
                read += vertex.input_bytes_read
                total += vertex.input_bytes_total
        if total <= 0:
            return None
        return min(100, read * 100 // total)

    # ------------------------------------------------------------------ the job's shape

    def _roles(self, details: pb.JobDetails) -> None:
        if self._sources is not None or not details.plan:
            return
        try:
            nodes = json.loads(details.plan)["nodes"]
        except (ValueError, KeyError, TypeError):
            self._sources, self._sinks = set(), set()
            return
        upstream = {p["id"] for node in nodes for p in node.get("predecessors", [])}
        self._sources = {n["id"] for n in nodes if n.get("pact") == "Data Source"}
        self._sinks = {n["id"] for n in nodes if n["id"] not in upstream}
        groups: dict[str, int] = {}
        for node in nodes:
            group = node.get("slot_sharing_group", "default")
            groups[group] = max(groups.get(group, 0), int(node.get("parallelism", 1)))
        self._needed = sum(groups.values())

    def _slots_needed(self, details: pb.JobDetails) -> int:
        return getattr(self, "_needed", 0) or max(
            (v.parallelism for v in details.vertices), default=1
        )
