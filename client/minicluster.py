"""The embedded mini-cluster: a JobManager and a TaskManager inside the program's process.

``python job.py`` runs the job here, the way PyFlink runs a program started with plain
``python``: the same runtime as a cluster, over loopback, with no processes to manage.
"""

from __future__ import annotations

import logging

from jobmanager.service import JobManager
from strom.configuration import StromConfig
from taskmanager import cpu_claims
from taskmanager.task_executor import TaskExecutor

_LOOPBACK = "127.0.0.1"
_DAEMON_LOGGERS = ("jobmanager", "taskmanager", "client", "strom")


class MiniCluster:
    def __init__(self, slots: int, config: dict | None = None) -> None:
        self.slots = max(1, slots)
        self.overrides = dict(config or {})
        self.jobmanager: JobManager | None = None
        self.taskmanager: TaskExecutor | None = None

    @property
    def address(self) -> str:
        assert self.jobmanager is not None
        return f"{_LOOPBACK}:{self.jobmanager.rpc_port}"

    def start(self) -> MiniCluster:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        # A program that logs at INFO to stdout (PyFlink's examples do) must not get the
        # embedded daemons' INFO lines among its output: PyFlink's JVM logs elsewhere.
        for name in _DAEMON_LOGGERS:
            daemon_logger = logging.getLogger(name)
            if daemon_logger.level == logging.NOTSET:
                daemon_logger.setLevel(logging.WARNING)
        jm_config = StromConfig(
            {
                **self.overrides,
                "jobmanager.rpc.address": _LOOPBACK,
                "jobmanager.rpc.port": 0,
                "rest.port": 0,
            }
        )
        self.jobmanager = JobManager(jm_config)
        self.jobmanager.start()
        tm_config = jm_config.with_overrides(
            {
                "jobmanager.rpc.port": self.jobmanager.rpc_port,
                "taskmanager.numberOfTaskSlots": self.slots,
                "taskmanager.host": _LOOPBACK,
                "cluster.registration.initial-timeout": 10,
            }
        )
        if tm_config["taskmanager.cpu-affinity"]:
            cpu_claims.claim_cpu()  # the tasks run in this process (taskmanager/cpu_claims.py)
        self.taskmanager = TaskExecutor(tm_config, slot_processes=False)
        self.taskmanager.start()
        if not self.taskmanager.registered.wait(30):
            self.stop()
            raise RuntimeError("the embedded TaskManager did not register with its JobManager")
        return self

    def stop(self) -> None:
        if self.jobmanager is not None:
            self.jobmanager.stop(grace=0)
            self.jobmanager = None
        if self.taskmanager is not None:
            self.taskmanager.stop()
            self.taskmanager = None
        cpu_claims.release_cpu()  # also when the TaskManager never started
