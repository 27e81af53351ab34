"""PyFlink programs run on Strom with only ``pyflink`` replaced by ``strom``, and print what
PyFlink 2.3 printed for them (``tests/pyflink_compat/expected``, recorded with
``tests/pyflink_compat/record.py``).

The examples shipped in the ``apache-flink`` 2.3 wheel are fetched at test time (``pip
download``, never installed, never copied into the repository); our own programs are in
``tests/pyflink_compat/programs``. Outputs compare as multisets of lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from harness import python_env

sys.path.insert(0, str(Path(__file__).resolve().parent / "pyflink_compat"))

from runs import (  # noqa: E402
    EXPECTED,
    PROGRAMS,
    PYFLINK_VERSION,
    Run,
    all_runs,
    arguments,
    comparable,
    output_lines,
)

EXAMPLES_IN_WHEEL = "pyflink/examples/datastream/"
_PYFLINK_IMPORT = re.compile(r"\bpyflink\b")


def _cache_dir() -> Path:
    return Path(
        os.environ.get("STROM_PYFLINK_CACHE")
        or Path(tempfile.gettempdir()) / f"strom-pyflink-{PYFLINK_VERSION}"
    )


def _rewrite(source: str) -> str:
    """The program with its ``pyflink`` imports turned into ``strom`` ones."""
    return _PYFLINK_IMPORT.sub("strom", source)


@pytest.fixture(scope="session")
def shipped_examples() -> Path:
    """The wheel's DataStream examples, imports rewritten, in a cache directory."""
    cache = _cache_dir()
    examples = cache / "examples"
    if (examples / "word_count.py").exists():
        return examples
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("apache_flink-*.whl"))
    if not wheels:
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache)]
            + [f"apache-flink=={PYFLINK_VERSION}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        wheels = list(cache.glob("apache_flink-*.whl"))
        if download.returncode != 0 or not wheels:
            pytest.skip(
                f"cannot download apache-flink=={PYFLINK_VERSION} to read its examples "
                f"(pip said: {download.stderr.strip()[-300:]})"
            )
    staging = cache / "examples.partial"
    with zipfile.ZipFile(wheels[0]) as wheel:
        for member in wheel.namelist():
            if member.startswith(EXAMPLES_IN_WHEEL) and member.endswith(".py"):
                target = staging / member[len(EXAMPLES_IN_WHEEL) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(_rewrite(wheel.read(member).decode("utf-8")))
    staging.rename(examples)  # complete or absent, for concurrent or interrupted runs
    return examples


def _params() -> list:
    params = []
    for run in all_runs():
        marks = []
        if run.differs_because:
            marks.append(pytest.mark.xfail(reason=run.differs_because, strict=True))
        params.append(pytest.param(run, id=run.name, marks=marks))
    return params


def test_every_run_has_a_recording():
    recorded = {path.stem for path in EXPECTED.glob("*.txt")}
    assert {run.name for run in all_runs()} == recorded
    assert len([run for run in all_runs() if run.example]) == 17


@pytest.mark.parametrize("run", _params())
def test_program_prints_what_pyflink_printed(run: Run, request, tmp_path: Path):
    if run.example:
        script = request.getfixturevalue("shipped_examples") / run.script
    else:
        script = tmp_path / run.script
        script.write_text(_rewrite((PROGRAMS / run.script).read_text()))
    output_dir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(script), *arguments(run, output_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
        env=python_env(),
    )
    assert result.returncode == 0, f"{run.name} exited {result.returncode}:\n{result.stderr}"
    got = comparable(output_lines(result.stdout, output_dir), run)
    expected = comparable((EXPECTED / f"{run.name}.txt").read_text().splitlines(), run)
    missing = Counter(expected) - Counter(got)
    extra = Counter(got) - Counter(expected)
    assert not missing and not extra, (
        f"{run.name}: lines PyFlink printed that Strom did not: {sorted(missing.elements())}\n"
        f"lines Strom printed that PyFlink did not: {sorted(extra.elements())}"
    )
