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
from strom.checkpoint_storage import storage_for
from strom.common.completable_future import CompletableFuture
from strom.common.job_status import JobStatusText
from strom.configuration import CLIENT_KEYS, OPTIONS, check_job_settings
from strom.datastream import execution_context
from strom.datastream.stream_execution_environment import JobClient, JobExecutionResult
from strom.errors import ClusterUnreachableError, JobExecutionError, StromError
from strom.graph import pickling
from strom.graph.job_graph import JobGraph
from strom.rpc import cluster_pb2 as pb

_TERMINAL = ("FINISHED", "FAILED", "CANCELED")
#: How long an attached client waits for a JobManager that went away to come back.
JOBMANAGER_RETURN_TIMEOUT_S = 30.0
#: ... and, with high availability, for a standby to take over (a dead leader's lead lasts
#: its ZooKeeper session, up to 40 s with ZooKeeper's default limits).
LEADER_TAKEOVER_TIMEOUT_S = 120.0


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
        checkpoints_dir: str | None = None,
        find_leader: Callable[[], str | None] | None = None,
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
        #: where the job's checkpoints go (to name the latest if the JobManager loses the job)
        self.checkpoints_dir = checkpoints_dir
        self._name = ""
        #: with high availability: where the leading JobManager is now
        self._find_leader = find_leader

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
                details = self._poll(lambda: self.cluster.job(self.job_id))  # waiting for slots?
            else:
                details = self._poll(lambda: self.cluster.await_job(self.job_id, timeout_s=1.0))
            poll_s = 0.5 if self.watch is not None else 1.0
            while True:
                self._name = details.summary.name
                if self.watch is not None:
                    self.watch.update(details)
                if details.summary.state in _TERMINAL:
                    break
                details = self._poll(lambda: self.cluster.await_job(self.job_id, timeout_s=poll_s))
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

    def _poll(self, call: Callable[[], pb.JobDetails]) -> pb.JobDetails:
        """``call``; when the JobManager went away, wait for it and ask again, or say why not."""
        try:
            return call()
        except ClusterUnreachableError:
            if self.embedded:
                raise
        address = self.cluster.address
        patience = (
            JOBMANAGER_RETURN_TIMEOUT_S if self._find_leader is None else LEADER_TAKEOVER_TIMEOUT_S
        )
        successor = "it to come back" if self._find_leader is None else "a new leader"
        print(
            f"The JobManager at {address} went away while running job {self.job_id}; waiting "
            f"up to {patience:.0f} s for {successor}.",
            file=sys.stderr,
            flush=True,
        )
        deadline = time.monotonic() + patience
        while True:
            self._follow_leader()
            try:
                self.cluster.overview()
                break
            except ClusterUnreachableError:
                if time.monotonic() > deadline:
                    raise JobExecutionError(
                        self._loss_message(f"and did not come back within {patience:.0f} s")
                    ) from None
                time.sleep(0.5)
        try:
            return self.cluster.job(self.job_id)
        except ClusterUnreachableError:
            return self._poll(call)
        except StromError as unknown:
            raise JobExecutionError(
                self._loss_message(f"and came back without it ({unknown})")
            ) from None

    def _follow_leader(self) -> None:
        """With high availability, talk to the JobManager that leads now."""
        if self._find_leader is None:
            return
        try:
            address = self._find_leader()
        except StromError:
            return
        if address and address != self.cluster.address:
            print(f"JobManager {address} leads now.", file=sys.stderr, flush=True)
            self.cluster.close()
            self.cluster = ClusterClient(address, tls=self.cluster.tls)

    def _loss_message(self, what_happened: str) -> str:
        """What an attached client says when the JobManager lost its job, and how to resume."""
        name = f" ({self._name})" if self._name else ""
        lines = [
            f"The JobManager at {self.cluster.address} went away while running job "
            f"{self.job_id}{name} {what_happened}. Without high-availability the jobs of a "
            f"JobManager's previous run are lost; with high-availability "
            f"(high-availability.type: zookeeper) the job would resume."
        ]
        latest = None
        if self.checkpoints_dir:
            try:
                latest = storage_for(self.checkpoints_dir).latest_complete(self.job_id)
            except (OSError, AttributeError):
                latest = None
        if latest:
            lines.append(
                f"Resume it from its last retained checkpoint with: strom run -s {latest} "
                f"<the same program and arguments>"
            )
        elif self.checkpoints_dir:
            lines.append(
                f"No completed checkpoint of it was found in {self.checkpoints_dir}: run it anew."
            )
        else:
            lines.append("It kept no checkpoints (state.checkpoints.dir is unset): run it anew.")
        return "\n".join(lines)

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
    mini = None
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
    # A mini-cluster never runs internal TLS (security.* keys configure a cluster, not a job).
    cluster = ClusterClient(address) if mini is None else ClusterClient(address, tls=None)
    cleanups.append(cluster.close)
    try:
        specs = _collect_specs(graph)
        if specs:
            from client.collect import CollectReceiver

            receiver_host = address_reaching(host, int(address.rsplit(":", 1)[1]))
            receiver = CollectReceiver(receiver_host, tls=cluster.tls)
            cleanups.insert(0, receiver.stop)
            # BATCH: a sink subtask that fails halfway runs again, so the receiver hands out
            # each subtask's results from one complete execution only.
            exact = graph.settings.get("runtime_mode") == "BATCH"
            for spec in specs:
                spec.address, spec.receiver = receiver.address, receiver
                receiver.expect(spec.token, exact=exact)
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

    job_client = ClusterJobClient(
        cluster,
        job_id,
        detached=context.detached,
        on_done=done,
        embedded=context.target != "remote",
        find_leader=context.find_leader,
        checkpoints_dir=config.get("state.checkpoints.dir")
        or context.cluster_config.get("state.checkpoints.dir"),
    )
    if context.target == "remote" and not context.detached:
        # Through the job client: with high availability it follows a new leader.
        job_client.watch = JobWatch(
            job_id,
            lambda: job_client.cluster.overview().slots_available,
            interval_s=context.progress_interval_s,
        )
    return job_client


def _cluster_settings(config: dict) -> dict:
    """The job's settings that are cluster configuration keys (for the mini-cluster)."""
    return {k: v for k, v in config.items() if k in OPTIONS}
