"""What stands between a deployment and its tasks' first records: nothing a slot process could
have done before it was forked, and no round trip to the JobManager the task can do without.

Each test here fails on the start-up path as it was before (bench/startup.py measures it)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import threading
from concurrent import futures
from types import SimpleNamespace

import grpc
from harness import REPO_ROOT, poll_for, python_env

from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc
from taskmanager.deployment import TaskDeployer
from taskmanager.runtime.task import TaskId
from taskmanager.slot_process import SlotProcessSpec, _supervise


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=python_env(),
        timeout=60,
    )


def test_a_slot_process_names_itself_without_running_ldconfig():
    # ctypes.util.find_library runs `ldconfig -p`: milliseconds, twice per slot process.
    result = _run_python(
        """
        import ctypes.util

        def refuse(name):
            raise RuntimeError("find_library was called")

        ctypes.util.find_library = refuse
        from strom.process_identity import TASK_SLOT, set_process_role

        set_process_role(TASK_SLOT)
        print(open("/proc/self/comm").read().strip())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "strom-slot"


def test_the_slot_template_has_imported_what_a_slot_process_serves_with():
    # What the template (multiprocessing's forkserver) has not imported, every slot process
    # imports again between its fork and its first answer (grpc's client modules: ~1.5 ms).
    result = _run_python(
        """
        import importlib
        import sys
        from concurrent import futures

        from taskmanager.slots import PRELOAD

        for name in PRELOAD:
            importlib.import_module(name)
        before = set(sys.modules)
        import grpc
        from strom.rpc.roles import SLOT_PROCESS_POLICY, RoleGuard

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=1), interceptors=[RoleGuard(SLOT_PROCESS_POLICY)]
        )
        server.add_insecure_port("127.0.0.1:0")
        server.start()
        server.stop(None)
        # and the channel it reports to the JobManager on, as TaskDeployer.connect opens it
        grpc.insecure_channel("127.0.0.1:1").close()
        print(sorted(set(sys.modules) - before))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


class _JobManager(cluster_pb2_grpc.JobManagerGatewayServicer):
    """Answers task state reports; holds each RUNNING report until ``release`` is set, and
    records a report when it answers it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received: list[str] = []
        self.answered: list[str] = []

    def UpdateTaskExecutionState(self, request, context):
        self.received.append(request.state)
        if request.state == "RUNNING":
            self.release.wait(30)
        self.answered.append(request.state)
        return pb.Ack(ok=True)


def _task() -> SimpleNamespace:
    """What a state report reads of a task."""
    return SimpleNamespace(
        id=TaskId("j" * 32, 0, "v", 0),
        name="Map (1/1)",
        partition_reader=None,
        consequential=False,
        source=None,
        records_in=0,
        records_out=0,
        writers=[],
        vertex=SimpleNamespace(is_source=False),
    )


def test_a_task_goes_on_while_the_jobmanager_hears_it_runs_and_reports_in_order(tmp_path):
    jobmanager = _JobManager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    cluster_pb2_grpc.add_JobManagerGatewayServicer_to_server(jobmanager, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    deployer = TaskDeployer(lambda: "tm", lambda: "127.0.0.1:1", work_dir=tmp_path / "work")
    try:
        report = deployer._reporter(f"127.0.0.1:{port}")
        task = _task()
        deployer.deployed = True
        deployer.tasks[task.id] = task

        report(task, "RUNNING", "")  # returns with the JobManager still holding it
        poll_for(lambda: jobmanager.received == ["RUNNING"], timeout=10, what="RUNNING sent")
        assert jobmanager.answered == []

        finishing = threading.Thread(target=report, args=(task, "FINISHED", ""))
        finishing.start()
        finishing.join(0.5)
        assert finishing.is_alive(), "FINISHED did not wait for RUNNING's answer"
        assert jobmanager.received == ["RUNNING"]

        jobmanager.release.set()
        finishing.join(10)
        assert jobmanager.answered == ["RUNNING", "FINISHED"]
        assert deployer.all_ended.is_set()  # forgotten once reported
    finally:
        jobmanager.release.set()
        deployer.close()
        server.stop(None)


class _RecordedEvent(threading.Event):
    """An event that keeps the timeouts it was waited with."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(timeout)


def _spec(tmp_path, metrics_interval_s: float) -> SlotProcessSpec:
    return SlotProcessSpec(
        job_id="j" * 32,
        attempt=0,
        slot=0,
        resource_id="tm",
        host="127.0.0.1",
        bind_host="127.0.0.1",
        folder=str(tmp_path),
        log_file=None,
        log_level="INFO",
        metrics_interval_s=metrics_interval_s,
        config={},
    )


def test_a_slot_process_sleeps_until_its_tasks_end_or_its_metrics_are_due(tmp_path):
    # It polled every 50 ms: twenty wake-ups a second of every slot process of a long job,
    # and up to 50 ms between its tasks' end and its own.
    deployer = TaskDeployer(lambda: "tm", lambda: "127.0.0.1:1", work_dir=tmp_path / "work")
    deployer.all_ended = ended = _RecordedEvent()
    deployer.deployed = True
    ours, theirs = multiprocessing.Pipe()
    answers: list[bool] = []
    supervising = threading.Thread(
        target=lambda: answers.append(_supervise(_spec(tmp_path, 30.0), deployer, theirs))
    )
    try:
        supervising.start()
        assert ours.poll(10) and ours.recv()[0] == "metrics"
        poll_for(lambda: ended.timeouts, timeout=10, what="it to wait")
        assert ended.timeouts[0] > 29, "it sleeps until the next metrics are due"
        ended.set()  # the tasks have ended: it is woken at once
        supervising.join(10)
        assert answers == [False]
        # A TaskManager that is gone is seen at the latest when the next metrics are due.
        deployer.all_ended = threading.Event()
        ours.close()
        assert _supervise(_spec(tmp_path, 0.05), deployer, theirs) is True
    finally:
        deployer.all_ended.set()
        supervising.join(10)
        deployer.close()
