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
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from harness import REPO_ROOT, LocalCluster, kill_tree, poll_for, python_env

EXAMPLES = REPO_ROOT / "examples"
SUBTASK_PREFIX = re.compile(r"^(\d+)> (.*)$")


def load_example(name: str) -> ModuleType:
    """The example's module, imported without running its ``__main__`` block."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name: str, *args: str) -> list[str]:
    """Run ``examples/<name>.py`` with ``args``; its stdout lines, after checking it succeeded.

    At parallelism 1 unless ``args`` name one: the output is then in the order plain Python
    computes it (an embedded job's default is the machine's cores, as in PyFlink)."""
    if "--parallelism" not in args:
        args = (*args, "--parallelism", "1")
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


def java_tuple(*fields: object) -> str:
    """How PyFlink (and Strom) prints a ``Types.TUPLE`` record: Java's ``(a,1)``."""
    return "(" + ",".join(map(str, fields)) + ")"


def running_counts(keys: Iterable[object]) -> Iterator[tuple[object, int]]:
    """``(key, count so far)`` for every key in order: what ``key_by(...).reduce(sum)`` emits."""
    counts: Counter = Counter()
    for key in keys:
        counts[key] += 1
        yield key, counts[key]


# ------------------------------------------------------------------ word_count.py


def expected_word_counts(lines: Iterable[str]) -> list[str]:
    split = load_example("word_count").split
    counts = running_counts(w for line in lines for w, _ in split(line))
    return [java_tuple(*update) for update in counts]


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
    assert "(the,4)" in written and "(end,2)" in written


# ------------------------------------------------------------------ streaming_events.py


def expected_page_counts(count: int | None, every: int, seed: int = 42) -> Iterator[str]:
    events = load_example("streaming_events").click_events(seed, count)
    for page, total in running_counts(page for _, page, _ in events):
        if total % every == 0:
            yield java_tuple(page, total)


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
        page = record[1:].split(",")[0]
        assert subtask_of.setdefault(page, subtask) == subtask, f"{page} on two subtasks"
        per_page[page].append(record)
    expected: defaultdict[str, list[str]] = defaultdict(list)
    for record in expected_page_counts(2000, every=100):
        expected[record[1:].split(",")[0]].append(record)
    assert per_page == expected
    assert set(subtask_of.values()) <= {"1", "2"}


def test_streaming_events_forever_stops_on_ctrl_c(tmp_path: Path):
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLES / "streaming_events.py"),
                "--forever",
                "--parallelism",
                "1",
            ],
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


# ------------------------------------------------------------------ event time: shared checks


def hms(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%H:%M:%S")


def assert_out_of_order_within(timestamps: list[int], bound_ms: int) -> None:
    """The input really is out of order, but never by ``bound_ms`` or more: with a watermark
    that trails the newest timestamp by ``bound_ms`` no record is late, which is what makes the
    examples' output the same on every run."""
    newest, behind = timestamps[0], 0
    for timestamp in timestamps:
        if timestamp < newest:
            behind += 1
            assert newest - timestamp < bound_ms, (timestamp, newest)
        newest = max(newest, timestamp)
    assert behind > len(timestamps) // 20, f"only {behind} of {len(timestamps)} out of order"


def in_firing_order(lines: Iterable[str], time_of: Callable[[str], str]) -> list[list[str]]:
    """``lines`` cut where ``time_of(line)`` changes; each run sorted. Windows and timers fire in
    event-time order; the order of those that fire at the same time is the runtime's."""
    runs: list[list[str]] = []
    last = None
    for line in lines:
        if not runs or time_of(line) != last:
            runs.append([])
            last = time_of(line)
        runs[-1].append(line)
    return [sorted(run) for run in runs]


def bin_strom_run(cluster: LocalCluster, example: str, *args: str) -> None:
    """``bin/strom run -p 2 examples/<example>.py args`` against ``cluster``, as a user types it."""
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "strom"), "run", "-p", "2", str(EXAMPLES / f"{example}.py")]
        + list(args),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir), STROM_PYTHON=sys.executable),
    )
    assert result.returncode == 0, f"{example} exited {result.returncode}:\n{result.stderr}"
    assert "Job Runtime:" in result.stdout, result.stdout


def printed_on_cluster(cluster: LocalCluster, pattern: str, count: int) -> list[tuple[str, str]]:
    """``(subtask, line)`` of the ``count`` lines ``print()`` wrote to the TaskManagers' stdout
    that match ``pattern``, once they are all there."""
    regex = re.compile(rf"^(\d+)> ({pattern})$", re.MULTILINE)
    poll_for(
        lambda: len(regex.findall(cluster.logs())) >= count,
        what=f"{count} printed lines matching {pattern!r}",
    )
    return regex.findall(cluster.logs())


def check_per_subtask(
    printed: list[tuple[str, str]],
    expected: list[str],
    key_of: Callable[[str], str],
    time_of: Callable[[str], str],
) -> set[str]:
    """At parallelism 2 each key's lines come from one subtask, which prints them in firing
    order; the two subtasks together print ``expected``. The subtasks that printed."""
    assert Counter(line for _, line in printed) == Counter(expected)
    subtask_of: dict[str, str] = {}
    for subtask, line in printed:
        assert subtask_of.setdefault(key_of(line), subtask) == subtask, f"{line}: two subtasks"
    subtasks = set(subtask_of.values())
    assert subtasks <= {"1", "2"}
    for subtask in subtasks:
        lines = [line for s, line in printed if s == subtask]
        own = [line for line in expected if subtask_of[key_of(line)] == subtask]
        assert in_firing_order(lines, time_of) == in_firing_order(own, time_of), subtask
    return subtasks


# ------------------------------------------------------------------ event_time_windows.py


def expected_page_statistics(count: int, size_s: int, slide_s: int) -> list[str]:
    """The example's lines in the order the windows end, from its input and plain Python."""
    size, slide = size_s * 1000, slide_s * 1000
    per_window: defaultdict[tuple[int, str], list] = defaultdict(lambda: [0, set()])
    views = load_example("event_time_windows").page_views(count)
    assert_out_of_order_within([timestamp for _, _, timestamp in views], 5_000)
    for user, page, timestamp in views:
        start = timestamp - timestamp % slide  # the last window that holds the view
        while start > timestamp - size:
            per_window[(start, page)][0] += 1
            per_window[(start, page)][1].add(user)
            start -= slide
    return [
        f"{hms(start)}-{hms(start + size)} {page:<9} views={views:<4} visitors={len(users)}"
        for (start, page), (views, users) in sorted(per_window.items())
    ]


def window_span(line: str) -> str:
    return line.split()[0]


def test_event_time_windows_counts_views_and_visitors_per_page_and_minute():
    expected = expected_page_statistics(1500, 60, 60)
    assert len(expected) == 50  # ten minutes, five pages
    lines = run_example("event_time_windows")
    assert in_firing_order(lines, window_span) == in_firing_order(expected, window_span)


def test_event_time_windows_slide():
    expected = expected_page_statistics(400, 120, 30)
    lines = run_example("event_time_windows", "--count", "400", "--size", "120", "--slide", "30")
    assert in_firing_order(lines, window_span) == in_firing_order(expected, window_span)
    assert window_span(lines[0]) == "08:58:30-09:00:30"  # a view's first window starts early


# ------------------------------------------------------------------ session_windows.py


def expected_sessions(users: int, gap_ms: int = 5 * 60_000) -> list[str]:
    """The example's lines in the order the sessions end, from its input and plain Python."""
    clicks = load_example("session_windows").clicks(users)
    assert_out_of_order_within([timestamp for _, _, timestamp in clicks], 10_000)
    times_of: defaultdict[str, list[int]] = defaultdict(list)
    for user, _, timestamp in clicks:
        times_of[user].append(timestamp)
    sessions = []  # (end, line)
    for user, times in times_of.items():
        times.sort()
        first, count = times[0], 0
        for previous, timestamp in zip(times, times[1:] + [None], strict=True):
            count += 1
            if timestamp is not None:
                # No pause is near the gap, so no click's lateness can decide a session.
                assert abs(timestamp - previous - gap_ms) > 10_000
            if timestamp is None or timestamp - previous > gap_ms:
                end = previous + gap_ms
                sessions.append((end, f"{user:<8} {hms(first)}-{hms(end)} clicks={count}"))
                first, count = timestamp, 0
    assert len(sessions) > len(times_of)  # some users come back
    return [line for _, line in sorted(sessions)]


def session_end(line: str) -> str:
    return line.split()[1].split("-")[1]


def test_session_windows_prints_each_users_sessions():
    expected = expected_sessions(40)
    lines = run_example("session_windows")
    assert in_firing_order(lines, session_end) == in_firing_order(expected, session_end)


# ------------------------------------------------------------------ timer_alert.py


def expected_alerts(sensors: int, seconds: int, threshold: float, duration_s: int) -> list[str]:
    """The example's alerts in time order: a run of readings above ``threshold`` that no cooler
    reading ends within ``duration_s`` (or that the input ends) alerts ``duration_s`` after its
    first reading."""
    readings = load_example("timer_alert").readings(sensors, seconds)
    assert_out_of_order_within([timestamp for _, _, timestamp in readings], 3_000)
    duration = duration_s * 1000
    per_sensor: defaultdict[str, list[tuple[float, int]]] = defaultdict(list)
    for sensor, temperature, timestamp in readings:
        per_sensor[sensor].append((temperature, timestamp))
    alerts, cut_short, mixed_up = [], 0, 0
    for sensor, series in per_sensor.items():
        in_order = sorted(series, key=lambda reading: reading[1])
        mixed_up += series != in_order
        hot_since = None
        for temperature, timestamp in [*in_order, (float("-inf"), None)]:
            if temperature > threshold:
                hot_since = timestamp if hot_since is None else hot_since
                continue
            if hot_since is not None:
                if timestamp is None or timestamp - hot_since >= duration:
                    alerts.append((hot_since + duration, sensor, hot_since))
                else:
                    cut_short += 1
            hot_since = None
    assert mixed_up == len(per_sensor)  # every sensor's readings arrive out of order
    assert cut_short > 0  # some timers are deleted again
    return [
        f"{hms(at)} ALERT {sensor}: above {threshold} for {duration_s} s, since {hms(since)}"
        for at, sensor, since in sorted(alerts)
    ]


def alert_time(line: str) -> str:
    return line.split()[0]


def test_timer_alert_alerts_on_sensors_too_hot_for_30_seconds():
    expected = expected_alerts(4, 600, 80.0, 30)
    assert len(expected) > 5
    lines = run_example("timer_alert")
    assert in_firing_order(lines, alert_time) == in_firing_order(expected, alert_time)


def test_timer_alert_with_other_sensors_threshold_and_duration():
    expected = expected_alerts(10, 300, 78.5, 20)
    assert len(expected) > 5
    arguments = ["--sensors", "10", "--seconds", "300", "--threshold", "78.5", "--duration", "20"]
    lines = run_example("timer_alert", *arguments)
    assert in_firing_order(lines, alert_time) == in_firing_order(expected, alert_time)


# ------------------------------------------------------------------ on a cluster


def test_event_time_examples_run_on_a_cluster_at_parallelism_2(shared_cluster):
    """``bin/strom run -p 2``: each example's keys spread over two subtasks of the cluster."""
    bin_strom_run(shared_cluster, "event_time_windows", "--count", "600")
    bin_strom_run(shared_cluster, "session_windows")
    bin_strom_run(shared_cluster, "timer_alert", "--sensors", "20", "--seconds", "300")
    windows = expected_page_statistics(600, 60, 60)
    sessions = expected_sessions(40)
    alerts = expected_alerts(20, 300, 80.0, 30)
    checks = [
        (r"\S+ /\S+ +views=.*", windows, lambda line: line.split()[1], window_span),
        (r"user-\S+ +\S+ clicks=\d+", sessions, lambda line: line.split()[0], session_end),
        (r"\S+ ALERT sensor-.*", alerts, lambda line: line.split()[2], alert_time),
    ]
    for pattern, expected, key_of, time_of in checks:
        printed = printed_on_cluster(shared_cluster, pattern, len(expected))
        assert check_per_subtask(printed, expected, key_of, time_of) == {"1", "2"}
