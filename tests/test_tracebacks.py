"""A failure raised where Python 3.11 records no line (a pytest-timeout SIGALRM in a ``with``
block's exit path) must be reported as a failure; pytest itself crashes on it."""

from __future__ import annotations

import sys
from types import TracebackType

import pytest
from tracebacks import with_lines


def _failure_without_a_line() -> BaseException:
    def here():
        return sys._getframe()

    frame = here()
    # An instruction offset past the code: the entry's tb_lineno is None, as in the CI crash.
    lineless = TracebackType(None, frame, 1_000_000, -1)
    assert lineless.tb_lineno is None
    cause = ValueError("the cause")
    cause.__traceback__ = TracebackType(None, frame, 1_000_000, -1)
    error = TimeoutError("Timeout >300.0s")
    error.__cause__ = cause
    return error.with_traceback(lineless)


def test_pytest_cannot_report_an_entry_without_a_line():
    with pytest.raises(TypeError):
        pytest.ExceptionInfo.from_exception(_failure_without_a_line()).getrepr()


def test_with_lines_makes_it_reportable():
    error = with_lines(_failure_without_a_line())
    report = str(pytest.ExceptionInfo.from_exception(error).getrepr())
    assert "Timeout >300.0s" in report and "the cause" in report
    assert error.__traceback__.tb_lineno == error.__traceback__.tb_frame.f_code.co_firstlineno
