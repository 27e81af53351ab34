"""How ``env.execute()`` runs a job: on an embedded mini-cluster, or on the cluster that
``strom run`` names (see :mod:`strom.datastream.execution_context`)."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable

from client.gateway import ClusterClient
from client.packaging import collect_job_files
from client.progress import JobWatch
from strom.addresses import address_reaching
from strom.common.completable_future import CompletableFuture
from strom.common.job_status import JobStatusText
from strom.configuration import CLIENT_KEYS, OPTIONS, check_job_settings
from strom.datastream import execution_context
from strom.datastream.stream_execution_environment import JobClient, JobExecutionResult
from strom.errors import JobExecutionError
from strom.graph import pickling
from strom.graph.job_graph import JobGraph
from strom.rpc import cluster_pb2 as pb

_TERMINAL = ("FINISHED", "FAILED", "CANCELED")


class PlanRequested(Exception):
    """Raised instead of running when ``strom info`` only wants the plan."""

    def __init__(self, plan_json: str) -> None:
        super().__init__("plan requested")
        self.plan_json = plan_json


class ClusterJobClient(JobClient):
    def __init__(
        self,
        cluster: ClusterClient,
        job_id: str,
        detached: bool = False,
        on_done: Callable[[], None] | None = None,
        embedded: bool = False,
        watch: JobWatch | None = None,
    ) -> None:
        self.cluster = cluster
        self.job_id = job_id
        self.detached = detached
        self.embedded = embedded
        self._on_done = on_done
        self._done_lock = threading.Lock()
        self._final: pb.JobDetails | None = None
        #: what the attached client tells while the job runs (None: nothing)
        self.watch = watch

    def get_job_id(self) -> str:
        return self.job_id

    def get_job_status(self) -> str:
        """The job's state name, which also answers PyFlink's ``.result()`` (a JobStatus)."""
        if self._final is not None:
            return JobStatusText(self._final.summary.state)
        return JobStatusText(self.cluster.job(self.job_id).summary.state)

    def cancel(self) -> CompletableFuture:
        """Cancel the job; a completed future, as PyFlink returns one."""
        self.cluster.cancel(self.job_id)
        done = CompletableFuture()
        done.set_result(None)
        return done

    def trigger_savepoint(self, savepoint_directory: str | None = None) -> CompletableFuture:
        return self._savepoint(savepoint_directory, "")

    def stop_with_savepoint(
        self, advance_to_end_of_event_time: bool, savepoint_directory: str | None = None
    ) -> CompletableFuture:
        return self._savepoint(savepoint_directory, "stop")

    def _savepoint(self, directory: str | None, then: str) -> CompletableFuture:
        """Trigger a savepoint and complete the future with its location once it is written."""
        target = os.path.abspath(directory) if directory else None
        trigger_id = self.cluster.trigger_savepoint(self.job_id, target, then=then)
        future = CompletableFuture()

        def wait() -> None:
            try:
                while True:
                    status = self.cluster.savepoint(self.job_id, trigger_id)
                    if status.state != "IN_PROGRESS":
                        break
                    time.sleep(0.05)
                if status.failure:
                    future.set_exception(RuntimeError(f"savepoint failed: {status.failure}"))
                else:
                    future.set_result(status.location)
            except Exception as error:  # noqa: BLE001 - handed to the future's reader
                future.set_exception(error)

        threading.Thread(target=wait, name=f"savepoint-{self.job_id[:8]}", daemon=True).start()
        return future

    def wait(self) -> pb.JobDetails:
        """Block until the job reaches a terminal state; returns its final details."""
        if self._final is not None:
            return self._final
        try:
            if self.watch is not None:
                details = self.cluster.job(self.job_id)  # say at once if it waits for slots
            else:
                details = self.cluster.await_job(self.job_id, timeout_s=1.0)
            while True:
                if self.watch is not None:
                    self.watch.update(details)
                if details.summary.state in _TERMINAL:
                    break
                poll_s = 0.5 if self.watch is not None else 1.0
                details = self.cluster.await_job(self.job_id, timeout_s=poll_s)
        except KeyboardInterrupt:
            if self.embedded:
                # Ctrl-C ends an embedded job with the program, as PyFlink's local runs do;
                # a job on a cluster keeps running (cancel it with strom cancel).
                try:
                    self.cluster.cancel(self.job_id)
                    self.cluster.await_job(self.job_id, timeout_s=10.0)
                except Exception:
                    pass
                finally:
                    self._finish()
            raise
        finally:
            if self.watch is not None:
                self.watch.close()
        self._final = details
        self._finish()
        return details

    def _finish(self) -> None:
        with self._done_lock:
            callback, self._on_done = self._on_done, None
        if callback is not None:
            callback()

    def get_job_execution_result(self) -> JobExecutionResult:
        if self.detached:
            return JobExecutionResult(self.job_id, 0)
        details = self.wait()
        state = details.summary.state
        if state == "FAILED":
            raise JobExecutionError(
                f"Job {self.job_id} ({details.summary.name}) failed.", details.failure
            )
        if state == "CANCELED":
            raise JobExecutionError(f"Job {self.job_id} ({details.summary.name}) was cancelled.")
        return JobExecutionResult(self.job_id, int(details.summary.duration))


def _collect_specs(graph: JobGraph) -> list:
    return [
        op.spec.args["collect"]
        for vertex in graph.vertices
        for op in vertex.operators
        if op.spec.kind == "sink_collect"
    ]


def submit_job(graph: JobGraph, job_root: str) -> ClusterJobClient:
    """Submit ``graph`` where the current execution context says; returns its client."""
    context = execution_context.current()
    if context.target == "plan":
        raise PlanRequested(graph.plan_json())
    cleanups: list[Callable[[], None]] = []
    own = dict(graph.settings.get("configuration") or {})
    if context.target == "remote":
        check_job_settings(
            {k: v for k, v in own.items() if k in OPTIONS}, "the job's configuration"
        )
    config = {k: v for k, v in context.config.items() if k not in CLIENT_KEYS}
    config.update(own)
    if context.savepoint_path:
        config["execution.savepoint.path"] = os.path.abspath(context.savepoint_path)
        if context.allow_non_restored_state:
            config["execution.savepoint.ignore-unclaimed-state"] = "true"
    if context.target == "remote":
        address = context.jobmanager or "localhost:6123"
        files = collect_job_files(
            job_root,
            context.python_files,
            context.python_archives,
            context.job_files_max_bytes,
        )
        host = address.rsplit(":", 1)[0]
    else:
        from client.minicluster import MiniCluster

        mini = MiniCluster(graph.slots_required(), _cluster_settings(config)).start()
        cleanups.append(mini.stop)
        address, files, host = mini.address, [], "127.0.0.1"
    cluster = ClusterClient(address)
    cleanups.append(cluster.close)
    try:
        specs = _collect_specs(graph)
        if specs:
            from client.collect import CollectReceiver

            receiver_host = address_reaching(host, int(address.rsplit(":", 1)[1]))
            receiver = CollectReceiver(receiver_host)
            cleanups.insert(0, receiver.stop)
            for spec in specs:
                spec.address, spec.receiver = receiver.address, receiver
        job_id = uuid.uuid4().hex
        request = pb.SubmitJobRequest(
            job_id=job_id,
            job_name=graph.name,
            job_graph=pickling.dumps(graph),
            files=files,
            config={k: str(v) for k, v in config.items()},
            plan_json=graph.plan_json(),
        )
        cluster.submit(request)
    except BaseException:
        for cleanup in reversed(cleanups):
            cleanup()
        raise
    context.submitted.append(job_id)
    if context.target == "remote":
        print(f"Job has been submitted with JobID {job_id}", flush=True)
        sys.stdout.flush()

    def done() -> None:
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception:
                pass

    watch = None
    if context.target == "remote" and not context.detached:
        watch = JobWatch(
            job_id,
            lambda: cluster.overview().slots_available,
            interval_s=context.progress_interval_s,
        )
    return ClusterJobClient(
        cluster,
        job_id,
        detached=context.detached,
        on_done=done,
        embedded=context.target != "remote",
        watch=watch,
    )


def _cluster_settings(config: dict) -> dict:
    """The job's settings that are cluster configuration keys (for the mini-cluster)."""
    return {k: v for k, v in config.items() if k in OPTIONS}
