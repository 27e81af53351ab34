"""The PyFlink programs whose output Strom must reproduce, and how their output is compared.

Two sets: the DataStream examples shipped inside the ``apache-flink`` 2.3 wheel (read from the
wheel at test time, never copied here) and programs of our own in ``programs/``. Each run's
output as PyFlink 2.3 printed it is in ``expected/<run>.txt`` (``record.py`` makes them).

A run's output is its stdout lines and, when it writes files (``{output}``), every line of
every file under its output directory prefixed with ``[file] ``. Lines are compared as
multisets: parallel subtasks interleave in any order.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
EXPECTED = HERE / "expected"
WORDS_INPUT = HERE / "words.txt"

PYFLINK_VERSION = "2.3.0"


@dataclass(frozen=True)
class Run:
    """One run of a program: ``script`` is a path inside the wheel's
    ``pyflink/examples/datastream/`` for an example, else a file in ``programs/``."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    example: bool = False
    #: the program leaves parallelism at its default (the machine's cores in PyFlink)
    default_parallelism: bool = False
    #: why Strom's output differs today (an open issue), or None when it must match
    differs_because: str | None = None


_WINDOWING = (
    "tumbling_time_window",
    "sliding_time_window",
    "session_with_gap_window",
    "session_with_dynamic_gap_window",
    "tumbling_count_window",
)

EXAMPLE_RUNS: list[Run] = [
    Run("word_count", "word_count.py", example=True),
    Run(
        "word_count-input",
        "word_count.py",
        ("--input", "{words}"),
        example=True,
    ),
    Run(
        "word_count-output",
        "word_count.py",
        ("--output", "{output}"),
        example=True,
    ),
    *(Run(name, f"windowing/{name}.py", example=True) for name in _WINDOWING),
    *(
        Run(f"{name}-output", f"windowing/{name}.py", ("--output", "{output}"), example=True)
        for name in _WINDOWING
    ),
    Run("basic_operations", "basic_operations.py", example=True),
    Run("event_time_timer", "event_time_timer.py", example=True, default_parallelism=True),
    Run("process_json_data", "process_json_data.py", example=True, default_parallelism=True),
    Run("state_access", "state_access.py", example=True, default_parallelism=True),
]


def program_runs() -> list[Run]:
    """Our own programs: each ``programs/<name>.py`` once, plus ``--output`` where it takes one."""
    runs = []
    for path in sorted(PROGRAMS.glob("*.py")):
        runs.append(Run(path.stem, path.name))
        if "--output" in path.read_text():
            runs.append(Run(f"{path.stem}-output", path.name, ("--output", "{output}")))
    return runs


def all_runs() -> list[Run]:
    return EXAMPLE_RUNS + program_runs()


def arguments(run: Run, output_dir: Path) -> list[str]:
    """The run's command-line arguments with ``{output}`` and ``{words}`` filled in."""
    return [
        a.replace("{output}", str(output_dir)).replace("{words}", str(WORDS_INPUT))
        for a in run.args
    ]


# Lines PyFlink's own machinery logs to stdout (the examples log at INFO to stdout).
_NOISE = (
    re.compile(r"^Using Any for unsupported type: "),
    re.compile(r"^No module named google\.cloud\."),
    re.compile(r"^PYFLINK_CYTHON_ENABLED: "),
)

_SUBTASK_PREFIX = re.compile(r"^((?:[^\s:>]+:)?)(\d+)> ")


def output_lines(stdout: str, output_dir: Path | None) -> list[str]:
    """The run's output as compared: stdout lines without PyFlink's log noise, then the lines
    of the files it wrote."""
    lines = [line for line in stdout.splitlines() if not any(p.match(line) for p in _NOISE)]
    if output_dir is not None and output_dir.exists():
        for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
            if path.name.startswith("."):
                continue  # in-progress files
            lines.extend(f"[file] {line}" for line in path.read_text().splitlines())
    return lines


def comparable(lines: list[str], run: Run, cores: int | None = None) -> list[str]:
    """Lines made independent of what may differ between two correct runs: which subtask
    printed a record (Strom's key hashing is not Java's). At default parallelism both PyFlink
    and Strom run on as many subtasks as the machine has cores, so a run prints subtask
    prefixes exactly when the machine has more than one core, as the recording machine had;
    on a machine of one core the prefixes are compared away."""
    if cores is None:
        cores = local_cores()
    if run.default_parallelism and cores == 1:
        return [_SUBTASK_PREFIX.sub(r"\1", line) for line in lines]
    return [_SUBTASK_PREFIX.sub(r"\1*> ", line) for line in lines]


def local_cores() -> int:
    """The cores this process may run on (PyFlink's and Strom's local default parallelism)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
