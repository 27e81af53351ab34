"""Tracebacks pytest can print.

pytest-timeout fails a test from a SIGALRM handler, which raises in whatever instruction the
main thread is at. On Python 3.11 that can be an instruction without a line (a ``with``
block's exit path, say); its traceback entry then has ``tb_lineno = None`` and pytest's
report crashes on it (``INTERNALERROR ... unsupported operand type(s) for -: 'NoneType' and
'int'``), which ends the whole session instead of failing one test. ``with_lines`` gives such
entries the first line of their function, so the test fails with a readable report.
"""

from __future__ import annotations

from types import TracebackType


def _rebuilt(tb: TracebackType | None) -> TracebackType | None:
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if all(entry.tb_lineno is not None for entry in entries):
        return entries[0] if entries else None
    rebuilt = None
    for entry in reversed(entries):
        line, instruction = entry.tb_lineno, entry.tb_lasti
        if line is None:  # no position either: the function's first line, no instruction
            line, instruction = entry.tb_frame.f_code.co_firstlineno, -1
        rebuilt = TracebackType(rebuilt, entry.tb_frame, instruction, line)
    return rebuilt


def with_lines(error: BaseException) -> BaseException:
    """Give every traceback entry of ``error``, its causes, contexts and group members a line."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = _rebuilt(current.__traceback__)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        pending.extend(getattr(current, "exceptions", ()))
    return error
