"""What a job ships to the TaskManagers is what PyFlink's flags name (``-pyfs``, ``-pym``,
``-pyarch``, ``-pyreq``) plus its script's folder, within ``client.job-files.max-size``
(issue 10), run with the real ``strom`` CLI against a real cluster."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from harness import REPO_ROOT, http_json, python_env

JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")


def strom(cluster, *args: str, timeout: float = 90, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd or REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
    )


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from harness import LocalCluster

    cluster = LocalCluster(tmp_path_factory.mktemp("shipping"), slots=2)
    try:
        cluster.start(taskmanagers=1)
        yield cluster
    finally:
        cluster.stop()


def results(path: Path) -> list[str]:
    return sorted(path.read_text().split())


# The job writes what its function computed, from the TaskManager, to the file it is given.
JOB = """
    import sys
    from {module} import compute
    from strom.datastream import StreamExecutionEnvironment

    OUT = sys.argv[1]

    def record(value):
        with open(OUT, "a") as out:
            out.write(f"{{compute(value)}}\\n")
        return value

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(record)
    env.execute("shipping")
"""


def test_pyfs_folder_ships_modules_from_outside_the_scripts_folder(cluster, tmp_path):
    write(tmp_path / "lib" / "libmod.py", "def compute(x):\n    return x * 100\n")
    job = write(tmp_path / "job" / "job.py", JOB.format(module="libmod"))
    out = tmp_path / "out.txt"
    result = strom(cluster, "run", "-pyfs", str(tmp_path / "lib"), str(job), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert results(out) == ["100", "200", "300"]


def test_pyfs_zip_and_file_entries_comma_separated(cluster, tmp_path):
    with zipfile.ZipFile(tmp_path / "zipped.zip", "w") as bundle:
        bundle.writestr("zippedmod.py", "def compute(x):\n    return x + 1000\n")
    write(tmp_path / "single" / "bridge.py", "from zippedmod import compute  # noqa\n")
    job = write(tmp_path / "job" / "job.py", JOB.format(module="bridge"))
    out = tmp_path / "out.txt"
    entries = f"{tmp_path / 'zipped.zip'},{tmp_path / 'single' / 'bridge.py'}"
    result = strom(cluster, "run", "-pyfs", entries, str(job), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert results(out) == ["1001", "1002", "1003"]


def test_pym_runs_the_entry_module_found_in_pyfs(cluster, tmp_path):
    package = tmp_path / "app"
    write(package / "appmath.py", "def compute(x):\n    return -x\n")
    write(package / "entry.py", JOB.format(module="appmath"))
    out = tmp_path / "out.txt"
    result = strom(cluster, "run", "-pym", "entry", "-pyfs", str(package), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert results(out) == ["-1", "-2", "-3"]


def test_pyarch_unpacks_into_the_jobs_folder_under_its_target(cluster, tmp_path):
    with zipfile.ZipFile(tmp_path / "tables.zip", "w") as bundle:
        bundle.writestr("factor.txt", "7")
    write(
        tmp_path / "job" / "tablemod.py",
        """
        import os

        def compute(x):
            here = os.path.dirname(__file__)  # the job's folder on the TaskManager
            with open(os.path.join(here, "tables", "factor.txt")) as table:
                return x * int(table.read())
        """,
    )
    job = write(tmp_path / "job" / "job.py", JOB.format(module="tablemod"))
    out = tmp_path / "out.txt"
    archive = f"{tmp_path / 'tables.zip'}#tables"
    result = strom(cluster, "run", "-pyarch", archive, str(job), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert results(out) == ["14", "21", "7"]


def make_wheel(folder: Path) -> None:
    """A minimal pure-Python wheel, so pip installs offline from ``folder``."""
    folder.mkdir(parents=True)
    info = "tinydep-1.0.dist-info"
    with zipfile.ZipFile(folder / "tinydep-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("tinydep/__init__.py", "def compute(x):\n    return x * 3\n")
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n")
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")


def test_pyreq_installs_requirements_from_a_cache_and_ships_them(cluster, tmp_path):
    make_wheel(tmp_path / "wheels")
    requirements = write(tmp_path / "requirements.txt", "tinydep==1.0\n")
    job = write(
        tmp_path / "job" / "job.py",
        JOB.format(module="tinydep"),
    )
    out = tmp_path / "out.txt"
    flag = f"{requirements}#{tmp_path / 'wheels'}"
    result = strom(cluster, "run", "-pyreq", flag, str(job), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert results(out) == ["3", "6", "9"]


def test_shipping_more_than_the_limit_is_an_error_naming_the_key(cluster, tmp_path):
    write(tmp_path / "job" / "helper.py", "def compute(x):\n    return x\n")
    job = write(tmp_path / "job" / "job.py", JOB.format(module="helper"))
    (tmp_path / "job" / "data.bin").write_bytes(b"x" * 4096)
    before = len(http_json(f"{cluster.rest_url}/jobs/overview")["jobs"])
    result = strom(cluster, "run", "-D", "client.job-files.max-size=2kb", str(job), "/dev/null")
    assert result.returncode != 0
    assert "client.job-files.max-size" in result.stderr, result.stderr
    assert len(http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]) == before


def test_version_and_pyexec(cluster, tmp_path):
    version = strom(cluster, "--version")
    assert version.returncode == 0 and re.match(r"Strom \d+\.\d+\.\d+", version.stdout)
    job = write(tmp_path / "job" / "job.py", JOB.format(module="helper"))
    missing = strom(cluster, "run", "-pyexec", str(tmp_path / "no-python"), str(job), "x")
    assert missing.returncode != 0 and "-pyexec" in missing.stderr


PYEXEC_JOB = """
    import sys
    from strom.datastream import StreamExecutionEnvironment

    OUT = sys.argv[1]

    def record(value):
        import venvonly  # a package only the -pyexec interpreter has

        with open(OUT, "a") as out:
            out.write(f"{{sys.executable}} {{venvonly.MARK}} {{value}}\\n")
        return value

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2]).map(record)
    env.execute("pyexec")
"""


def virtualenv_with_a_package(folder: Path) -> Path:
    """A virtualenv of this Python whose own package ``venvonly`` nobody else has; its
    interpreter."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120
    )
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (folder / "lib" / version / "site-packages" / "venvonly.py").write_text("MARK = 'venv'\n")
    return folder / "bin" / "python"


def test_pyexec_runs_the_jobs_functions_in_that_interpreter(cluster, tmp_path):
    """As PyFlink's -pyexec names the interpreter of the Python workers: a virtualenv with a
    package of its own, which the TaskManagers' interpreter does not have."""
    python = virtualenv_with_a_package(tmp_path / "venv")
    job = write(tmp_path / "job" / "job.py", PYEXEC_JOB.format())
    out = tmp_path / "out.txt"
    result = strom(cluster, "run", "-pyexec", str(python), str(job), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(out.read_text().splitlines()) == [f"{python} venv 1", f"{python} venv 2"]


def test_pyexec_that_cannot_run_the_job_is_refused_with_the_reason(cluster, tmp_path):
    job = write(tmp_path / "job" / "job.py", JOB.format(module="helper"))
    other = tmp_path / "python3.99"
    other.write_text("#!/bin/sh\necho 3.99\n")
    other.chmod(0o755)
    older = strom(cluster, "run", "-pyexec", str(other), str(job), "x")
    assert older.returncode != 0 and "runs Python 3.99" in older.stderr, older.stderr
    shipped = strom(cluster, "run", "-pyexec", "venv.zip/venv/bin/python", str(job), "x")
    assert shipped.returncode != 0 and "relative path" in shipped.stderr, shipped.stderr


def test_python_executable_of_the_cluster_configuration_applies_to_every_job(
    local_cluster, tmp_path
):
    python = virtualenv_with_a_package(tmp_path / "venv")
    configured = local_cluster(slots=1, **{"python.executable": str(python)})
    configured.start(taskmanagers=1)
    job = write(tmp_path / "job" / "job.py", PYEXEC_JOB.format())
    out = tmp_path / "out.txt"
    result = strom(configured, "run", str(job), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(out.read_text().splitlines()) == [f"{python} venv 1", f"{python} venv 2"]
