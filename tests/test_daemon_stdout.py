"""A TaskManager's stdout keeps each thread's lines whole (print() writes text, then newline)."""

from __future__ import annotations

import io
import sys
import threading

from strom.daemon import LineAtomicWriter


class YieldingStream(io.StringIO):
    """Like a file whose write lets other threads run (a real one releases the GIL in write)."""

    def write(self, text: str) -> int:
        for _ in range(20):
            pass
        return super().write(text)


def test_lines_of_threads_printing_at_once_stay_whole():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    target = YieldingStream()
    out = LineAtomicWriter(target)
    start = threading.Barrier(4)

    def printer(name: str) -> None:
        start.wait()
        for i in range(2000):
            print(f"{name}> value-{i}", file=out)

    threads = [threading.Thread(target=printer, args=(str(n),)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    lines = target.getvalue().splitlines()
    assert sorted(lines) == sorted(f"{n}> value-{i}" for n in range(4) for i in range(2000))


def test_flush_writes_a_partial_line():
    target = io.StringIO()
    out = LineAtomicWriter(target)
    out.write("no newline yet")
    assert target.getvalue() == ""
    out.flush()
    assert target.getvalue() == "no newline yet"
    out.write("a\nb")
    assert target.getvalue() == "no newline yeta\n"
