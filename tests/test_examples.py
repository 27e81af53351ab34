"""The programs in ``examples/`` run as a user runs them, and print exactly what plain Python
computes from the same input."""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

from harness import REPO_ROOT, kill_tree, poll_for, python_env

EXAMPLES = REPO_ROOT / "examples"
SUBTASK_PREFIX = re.compile(r"^(\d+)> (.*)$")


def load_example(name: str) -> ModuleType:
    """The example's module, imported without running its ``__main__`` block."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name: str, *args: str) -> list[str]:
    """Run ``examples/<name>.py`` with ``args``; its stdout lines, after checking it succeeded."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO_ROOT),
        env=python_env(),
    )
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stderr}"
    return result.stdout.splitlines()


def running_counts(keys: Iterable[object]) -> Iterator[tuple[object, int]]:
    """``(key, count so far)`` for every key in order: what ``key_by(...).reduce(sum)`` emits."""
    counts: Counter = Counter()
    for key in keys:
        counts[key] += 1
        yield key, counts[key]


# ------------------------------------------------------------------ word_count.py


def expected_word_counts(lines: Iterable[str]) -> list[str]:
    split = load_example("word_count").split
    return [repr(update) for update in running_counts(w for line in lines for w, _ in split(line))]


def test_word_count_prints_running_counts_of_its_built_in_text():
    words = load_example("word_count").WORDS
    expected = expected_word_counts(words)
    assert len(expected) > 50
    assert run_example("word_count") == expected


def test_word_count_reads_input_and_writes_part_files(tmp_path: Path):
    text = ["the cat and the hat", "The end; and THE END.", "", "cat"]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(text) + "\n")
    output = tmp_path / "out"
    assert run_example("word_count", "--input", str(source), "--output", str(output)) == []
    parts = [path for path in output.rglob("*") if path.is_file()]
    assert parts, "no part files were written"
    assert all(p.name.startswith("prefix-") and p.suffix == ".txt" for p in parts), parts
    written = [line for part in parts for line in part.read_text().splitlines()]
    assert Counter(written) == Counter(expected_word_counts(text))
    assert "('the', 4)" in written and "('end', 2)" in written


# ------------------------------------------------------------------ streaming_events.py


def expected_page_counts(count: int | None, every: int, seed: int = 42) -> Iterator[str]:
    events = load_example("streaming_events").click_events(seed, count)
    for page, total in running_counts(page for _, page, _ in events):
        if total % every == 0:
            yield repr((page, total))


def test_streaming_events_bounded_prints_every_nth_count():
    expected = list(expected_page_counts(2000, every=100))
    assert len(expected) > 10
    assert run_example("streaming_events", "--count", "2000", "--every", "100") == expected


def test_streaming_events_at_parallelism_2_keeps_each_page_on_one_subtask_in_order():
    lines = run_example(
        "streaming_events", "--count", "2000", "--every", "100", "--parallelism", "2"
    )
    subtask_of: dict[str, str] = {}
    per_page: defaultdict[str, list[str]] = defaultdict(list)
    for line in lines:
        match = SUBTASK_PREFIX.match(line)
        assert match, f"no subtask prefix: {line!r}"
        subtask, record = match.groups()
        page = record.split("'")[1]
        assert subtask_of.setdefault(page, subtask) == subtask, f"{page} on two subtasks"
        per_page[page].append(record)
    expected: defaultdict[str, list[str]] = defaultdict(list)
    for record in expected_page_counts(2000, every=100):
        expected[record.split("'")[1]].append(record)
    assert per_page == expected
    assert set(subtask_of.values()) <= {"1", "2"}


def test_streaming_events_forever_stops_on_ctrl_c(tmp_path: Path):
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as errors:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "streaming_events.py"), "--forever"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=str(REPO_ROOT),
            env=python_env(),
            # A shell without job control starts background jobs ignoring SIGINT; undo that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    lines: list[str] = []

    def read_stdout() -> None:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        poll_for(lambda: len(lines) >= 3, timeout=20, what="three counts from --forever")
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=20)
        reader.join(timeout=5)
    finally:
        if process.poll() is None:
            kill_tree(process.pid)
    assert returncode == 0, stderr.read_text()
    expected = expected_page_counts(None, every=1000)
    assert lines == [next(expected) for _ in lines]


# ------------------------------------------------------------------ keyed_state.py


def test_keyed_state_alerts_on_a_large_transaction_right_after_a_small_one():
    transactions = load_example("keyed_state").transactions(1000)
    small_before: dict[int, bool] = {}
    expected = []
    for account, amount in transactions:
        if small_before.get(account) and amount > 500.00:
            expected.append(f"Alert(account_id={account}, amount={amount!r})")
        small_before[account] = amount < 1.00
    assert len(expected) > 10
    assert run_example("keyed_state") == expected
