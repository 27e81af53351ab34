from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import LocalCluster  # noqa: E402
from jobs_support import Mode  # noqa: E402
from tracebacks import with_lines  # noqa: E402


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failure whose traceback has an entry without a line is reported, not an INTERNALERROR
    that ends the session (see tracebacks.py)."""
    if call.excinfo is not None:
        error = with_lines(call.excinfo.value)
        call.excinfo = pytest.ExceptionInfo.from_exception(error)
    report = yield
    if report.failed:
        # The ends of the logs of the clusters this test made: CI keeps only its output.
        for made_by, cluster in LocalCluster.made:
            if made_by.startswith(item.nodeid + " "):
                report.sections.append((f"cluster logs {cluster.log_dir}", cluster.log_tails()))
    return report


@pytest.fixture
def local_cluster(tmp_path):
    """A factory for real clusters on loopback; everything it started is stopped afterwards."""
    clusters: list[LocalCluster] = []

    def make(slots: int = 2, **config) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster{len(clusters)}", slots=slots, **config)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory):
    """One JobManager and two TaskManagers (2 slots each) for the job tests of a session."""
    cluster = LocalCluster(tmp_path_factory.mktemp("shared-cluster"), slots=2)
    try:
        cluster.start(taskmanagers=2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["embedded", "cluster"])
def mode(request) -> Mode:
    """Runs a test's job embedded and on a real 2-TaskManager cluster over gRPC."""
    if request.param == "embedded":
        return Mode("embedded")
    cluster = request.getfixturevalue("shared_cluster")
    return Mode("cluster", cluster.address, cluster)
