"""The dispatcher: owns the job table and runs every job's :class:`JobMaster` on one loop.

Each job's decisions are its JobMaster's (``job_master.py``, pure: events in, effects out).
This module is the shell around them: gRPC and REST handlers post events to the
dispatcher's loop (``jm-main``), which hands each to its job's JobMaster, one at a time, and
carries the effects out — slot requests against the TaskManager registry, timers kept in the
loop's own heap, and every blocking call (DeployTasks, CancelTasks, deleting checkpoints,
ZooKeeper) on a bounded executor whose outcome comes back as another event.

One loop thread owns all the JobMasters rather than one thread per job: the slots are one
pool shared by every job, which one owner hands out in order without a lock between jobs;
Python runs one thread at a time anyway, so per-job threads would add switches, not speed;
and the JobManager's thread count stays the same with 1 job or 1,000. Nothing on the loop
blocks, so one slow TaskManager delays no job's events.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import queue
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from jobmanager import restart_strategy
from jobmanager.batch_execution import BatchExecution, BatchJobs
from jobmanager.checkpoint_coordinator import CheckpointCoordinator, CompletedCheckpoint
from jobmanager.checkpoint_service import CheckpointService
from jobmanager.execution_graph import (
    CREATED,
    RESTARTING,
    RUNNING,
    TERMINAL_JOB_STATES,
    TERMINAL_TASK_STATES,
    ExecutionGraph,
)
from jobmanager.job_master import (
    SUSPENDED,
    AbortCheckpoints,
    CancelTasks,
    Deploy,
    Effect,
    JobMaster,
    JobTerminated,
    ReleaseSlots,
    RequestSlots,
    StartTimer,
    StateChanged,
)
from jobmanager.job_snapshots import JobSnapshot, snapshot
from jobmanager.split_assignment import SplitAssigners
from strom.checkpoint_storage import FileSystemCheckpointStorage, storage_for
from strom.configuration import OPTIONS, StromConfig
from strom.errors import ConfigurationError
from strom.rpc import cluster_pb2 as pb
from strom.rpc import cluster_pb2_grpc

if TYPE_CHECKING:
    from jobmanager.service import JobManager
    from jobmanager.taskmanager_registry import TaskManagerRecord

log = logging.getLogger(__name__)

__all__ = ["SUSPENDED", "Dispatcher", "JobRecord"]

JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_RPC_TIMEOUT_S = 30.0
#: how many slot processes a deployment starts (or deploys to) at once, over all TaskManagers:
#: at 16, the parallelism-64 test (8 TaskManagers x 8 slots on 2 cores) still failed once in a
#: full suite run (a connection timed out before gRPC's SETTINGS frame); at 8 a TaskManager of
#: 8 slots is a wave of its own, as when every TaskManager was called in turn
_PROCESSES_AT_ONCE = 8
#: threads carrying out blocking effects (deployments, cancels, deletions, ZooKeeper writes)
_IO_WORKERS = 16
#: the loop looks at waiting jobs and expired history at least this often
_HOUSEKEEPING_S = 0.5
#: how long a handler waits for the loop to answer it
_ASK_TIMEOUT_S = 60.0


@dataclass
class JobRecord:
    request: pb.SubmitJobRequest
    graph: ExecutionGraph
    plan: dict[str, Any]
    submitted_at: float
    config: StromConfig
    storage: FileSystemCheckpointStorage
    strategy: restart_strategy.RestartStrategy
    sources: set[str]
    started_at: float = -1.0
    ended_at: float = -1.0
    placement: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    coordinator: CheckpointCoordinator | None = None
    checkpoint_metadata: dict[int, dict] = field(default_factory=dict)
    #: the savepoint the job was started from (strom run -s)
    initial_restore: dict | None = None
    #: a BATCH job's stage-by-stage run (None for STREAMING): see batch_execution.py
    batch: BatchExecution | None = None
    #: the job's state machine (made when the loop accepts the job)
    master: JobMaster | None = None

    @property
    def job_id(self) -> str:
        return self.request.job_id

    @property
    def state(self) -> str:
        return self.graph.state


class Dispatcher:
    """The job table and the loop that runs every job's JobMaster."""

    def __init__(self, jobmanager: JobManager) -> None:
        self.jm = jobmanager
        #: the JobManager's lock guards the TaskManager registry (its slots); the loop holds it
        #: while it handles an event, as the slot pool and BATCH's scheduler use the registry.
        #: Job state is the loop's alone: handlers read the snapshots it publishes.
        self.lock = jobmanager.lock
        self.jobs: dict[str, JobRecord] = {}
        #: jobs waiting for slots, in the order they asked
        self._pending: list[str] = []
        self._job_state_changed = threading.Condition(threading.Lock())
        #: what handlers read: the newest snapshot of each job, replaced whole by the loop
        self._views: dict[str, JobSnapshot] = {}
        #: jobs whose snapshot the loop must publish anew
        self._dirty: set[str] = set()
        #: (handler, its arguments, urgent): urgent events are handled even while paused
        self._events: queue.SimpleQueue[tuple[Callable[..., Any], tuple, bool]] = (
            queue.SimpleQueue()
        )
        #: while paused (leadership in doubt) the loop holds every event but the urgent ones,
        #: and handles them in order once it resumes; loop-owned
        self._paused = False
        self._held: deque[tuple[Callable[..., Any], tuple, bool]] = deque()
        #: (due time, sequence, callback): touched only by the loop thread
        self._timers: list[tuple[float, int, Callable[[], Any]]] = []
        self._sequence = itertools.count()
        self._stopped = threading.Event()
        self._channels: dict[str, grpc.Channel] = {}
        self._channels_lock = threading.Lock()
        self._io = ThreadPoolExecutor(_IO_WORKERS, thread_name_prefix="jm-io")
        self._thread = threading.Thread(target=self._loop, name="jm-main", daemon=True)
        self.checkpointing = CheckpointService(self)
        self.batch = BatchJobs(self)
        #: the splits handed to source readers while jobs run (split_assignment.py)
        self.splits = SplitAssigners()

    def start(self) -> None:
        self._thread.start()
        self.checkpointing.start()

    def stop(self) -> None:
        self._stopped.set()
        self.checkpointing.stop()
        self.wake()
        self._io.shutdown(wait=False, cancel_futures=True)
        with self._channels_lock:
            channels = list(self._channels.values())
            self._channels.clear()
        for channel in channels:
            channel.close()

    # -------------------------------------------------------------- the loop

    def post(self, handler: Callable[..., Any], *args: Any) -> None:
        """Have the loop call ``handler(*args)`` (any thread; returns at once)."""
        self._events.put((handler, args, False))

    def ask(self, handler: Callable[..., Any], *args: Any, urgent: bool = False) -> Any:
        """Have the loop call ``handler(*args)`` and answer its result (or raise its error);
        ``urgent``: even while the loop is paused. On the loop itself, call it directly."""
        if threading.current_thread() is self._thread:
            return handler(*args)
        answer: Future = Future()

        def run() -> None:
            try:
                answer.set_result(handler(*args))
            except BaseException as error:  # handed to the asking thread
                answer.set_exception(error)

        self._events.put((run, (), urgent))
        return answer.result(timeout=_ASK_TIMEOUT_S)

    def pause(self) -> None:
        """Stop acting (this JobManager's leadership is in doubt): hold every job event —
        task reports, timers, checkpoint ticks, slot offers — so that no command goes to a
        TaskManager, until :meth:`resume` or :meth:`suspend_jobs`."""
        self._events.put((self._set_paused, (True,), True))

    def resume(self) -> None:
        """Act again: handle the held events in order, then the new ones."""
        self._events.put((self._set_paused, (False,), True))

    def _set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            log.warning(
                "the dispatcher %s", "holds every job event" if paused else "handles events again"
            )
        self._paused = paused

    def call_later(self, delay_s: float, handler: Callable[[], Any]) -> None:
        """Have the loop call ``handler()`` after ``delay_s`` (a timer: no thread)."""
        self.post(self._add_timer, time.time() + max(0.0, delay_s), handler)

    def run_io(self, work: Callable[..., Any], *args: Any) -> None:
        """Run blocking ``work(*args)`` on the bounded executor (never on the loop)."""
        try:
            self._io.submit(self._guarded, work, *args)
        except RuntimeError:  # shut down
            pass

    @staticmethod
    def _guarded(work: Callable[..., Any], *args: Any) -> None:
        try:
            work(*args)
        except Exception:
            log.exception("%s failed", getattr(work, "__qualname__", work))

    def wake(self) -> None:
        """Have the loop look at the waiting jobs now (a slot may have become free)."""
        self.post(_nothing)

    def _add_timer(self, at: float, handler: Callable[[], Any]) -> None:
        heapq.heappush(self._timers, (at, next(self._sequence), handler))

    def _next_event(self, housekeeping: float) -> tuple[Callable[..., Any], tuple, bool] | None:
        """The next event to handle: a held one once resumed, else a new one, waiting at
        most until the next timer or housekeeping is due."""
        if self._held and not self._paused:
            return self._held.popleft()
        now = time.time()
        due = self._timers[0][0] if self._timers else now + _HOUSEKEEPING_S
        wait = max(0.0, min(due, housekeeping + _HOUSEKEEPING_S) - now)
        try:
            return self._events.get(timeout=_HOUSEKEEPING_S if self._paused else wait)
        except queue.Empty:
            return None

    def _loop(self) -> None:
        housekeeping = 0.0
        while not self._stopped.is_set():
            event = self._next_event(housekeeping)
            if self._stopped.is_set():
                return
            if event is not None and self._paused and not event[2]:
                self._held.append(event)
                continue
            with self.lock:
                try:
                    if event is not None:
                        handler, args, _ = event
                        handler(*args)
                    if self._paused:
                        self._publish()
                        continue
                    now = time.time()
                    while self._timers and self._timers[0][0] <= now:
                        _, _, handler = heapq.heappop(self._timers)
                        handler()
                    self._schedule(now)
                    if now - housekeeping >= _HOUSEKEEPING_S:
                        housekeeping = now
                        self._expire_history(now)
                    self._publish()
                except Exception:
                    log.exception("the dispatcher's loop failed to handle an event")

    # -------------------------------------------------------------- jobs

    def submit(
        self, request: pb.SubmitJobRequest, recovered: bool = False, first_attempt: int = 0
    ) -> str:
        """Accept a job. ``recovered``: a new leader resubmits it from HA storage, and its
        ``execution.savepoint.path`` is the job's own latest checkpoint, not the user's.
        ``first_attempt``: the number of its first attempt here (a new leader's is above
        every attempt an earlier leader deployed)."""
        job_id = request.job_id
        if not JOB_ID_PATTERN.match(job_id):
            raise ValueError(f"job id '{job_id}' is not 32 lowercase hex characters")
        try:
            plan = json.loads(request.plan_json)
            graph = ExecutionGraph.from_plan(job_id, plan)
            graph.attempt = first_attempt
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"the job's plan is malformed: {error}") from None
        settings = {k: v for k, v in request.config.items() if k in OPTIONS}
        try:
            config = self.jm.config.with_overrides(settings, source="the job's configuration")
        except ConfigurationError as error:
            raise ValueError(str(error)) from None
        if config["execution.runtime-mode"] == "batch":  # no checkpoints in BATCH, as in Flink
            config = config.with_overrides({"execution.checkpointing.interval": None})
        checkpointing = config["execution.checkpointing.interval"] is not None
        strategy = restart_strategy.from_config(
            {**{k: v for k, v in config.explicit().items()}, **request.config}, checkpointing
        )
        storage = storage_for(config["state.checkpoints.dir"])
        initial_restore = None
        savepoint_path = request.config.get("execution.savepoint.path")
        if savepoint_path:
            initial_restore = storage.read_metadata(savepoint_path)
            if initial_restore is None:
                raise ValueError(
                    f"'{savepoint_path}' is not a finished savepoint or checkpoint (it has no "
                    "_metadata)"
                )
            uids = {op["uid"] for node in plan["nodes"] for op in node.get("operators", [])}
            unknown = sorted(set(initial_restore["operators"]) - uids)
            allow = request.config.get("execution.savepoint.ignore-unclaimed-state") == "true"
            if unknown and not allow:
                raise ValueError(
                    f"the savepoint has state for operators this job does not have: "
                    f"{', '.join(unknown)}. Set matching uid()s, or allow dropping that state "
                    "with -n/--allowNonRestoredState"
                )
        sources = {node["id"] for node in plan["nodes"] if node.get("pact") == "Data Source"}
        record = JobRecord(
            request,
            graph,
            plan,
            time.time(),
            config,
            storage,
            strategy,
            sources,
            initial_restore=initial_restore,
        )
        graph.name = request.job_name or graph.name
        self.ask(self._accept, record, savepoint_path, recovered)
        log.info(
            "job %s (%s) submitted: %d vertices, needs %d slot(s)",
            job_id,
            graph.name,
            len(graph.vertices),
            graph.slots_required(),
        )
        return job_id

    def _accept(self, record: JobRecord, savepoint_path: str | None, recovered: bool) -> None:
        """On the loop: enter the job in the table and start its JobMaster."""
        job_id = record.job_id
        if job_id in self.jobs:
            raise ValueError(f"a job with id {job_id} was already submitted")
        record.master = master = JobMaster(
            record.graph,
            record.strategy,
            # the job's own setting (strom run -D, its code) over the cluster's
            slot_request_timeout_s=record.config["slot.request.timeout"] / 1000.0,
        )
        coordinator = self.checkpointing.coordinator_for(record)
        initial_restore = record.initial_restore
        if initial_restore is not None:
            coordinator.restored(
                CompletedCheckpoint(
                    initial_restore["checkpoint_id"],
                    0.0,
                    0.0,
                    {},
                    savepoint_path,
                    bool(initial_restore.get("is_savepoint")),
                ),
                owned=recovered,
            )
            if recovered:
                record.checkpoint_metadata[initial_restore["checkpoint_id"]] = initial_restore
        self.jobs[job_id] = record
        self._dirty.add(job_id)
        if record.config["execution.runtime-mode"] == "batch":
            self.batch.submitted(record)  # stage by stage: batch_execution.py schedules it
            return
        self._execute(record, master.submitted(time.time()))

    def cancel(self, job_id: str) -> None:
        """Cancel the job; KeyError when there is no such job."""
        self.ask(self._cancel, job_id)

    def _cancel(self, job_id: str) -> None:
        record = self._get(job_id)
        if record.batch is not None and record.graph.state == RUNNING:
            self.batch.stopping(record)
        self._execute(record, record.master.cancel(time.time()))

    def job(self, job_id: str) -> JobRecord:
        """The job's record; KeyError when there is no such job."""
        return self._get(job_id)

    def _get(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise KeyError(f"no job with id {job_id}")
        return record

    # -------------------------------------------------------------- effects

    def _execute(self, record: JobRecord, effects: list[Effect]) -> None:
        """On the loop: carry out a JobMaster's effects (blocking ones on the executor)."""
        self._dirty.add(record.job_id)
        for effect in effects:
            if isinstance(effect, RequestSlots):
                if record.job_id not in self._pending:
                    self._pending.append(record.job_id)
            elif isinstance(effect, Deploy):
                record.placement = dict(effect.placement)
                # the deploying event's time: the clock its subtasks' start times come from
                record.started_at = record.master.now
                source = self.checkpointing.restore_source(record)
                self.run_io(self._deploy_or_fail, record, effect.attempt, source)
            elif isinstance(effect, CancelTasks):
                self._cancel_tasks(record, effect.attempt)
            elif isinstance(effect, ReleaseSlots):
                self.jm.registry.release(record.job_id)
            elif isinstance(effect, StartTimer):
                self._add_timer(effect.at, lambda e=effect: self._timer_fired(record, e))
            elif isinstance(effect, AbortCheckpoints):
                self.checkpointing.abort_pending(record, effect.reason)
            elif isinstance(effect, StateChanged):
                self._state_changed(record, effect.state)
            elif isinstance(effect, JobTerminated):
                self._terminated(record)

    def _timer_fired(self, record: JobRecord, timer: StartTimer) -> None:
        if self.jobs.get(record.job_id) is record:
            self._execute(record, record.master.timer_fired(time.time(), timer.kind, timer.token))

    def _state_changed(self, record: JobRecord, state: str) -> None:
        graph = record.graph
        if state == RESTARTING:
            delay = max(0.0, record.master.restart_at - time.time())
            log.warning(
                "job %s failed (%s); restarting in %.1f s",
                record.job_id,
                graph.failure.strip().splitlines()[-1] if graph.failure else "",
                delay,
            )
        elif state == CREATED and graph.restarts > 0:  # a restart's new attempt
            record.placement = {}
            if record.coordinator is not None:
                record.coordinator.tasks = set(graph.subtasks)
                if record.coordinator.latest() is not None:
                    record.coordinator.counts["restored"] += 1
        if state == SUSPENDED:
            log.warning(
                "job %s (%s) is SUSPENDED: %s", record.job_id, graph.name, graph.status_message
            )
        else:
            log.info("job %s (%s) is %s", record.job_id, graph.name, state)

    def _terminated(self, record: JobRecord) -> None:
        """The job ended: archive it (keep what its history shows) and free what it held."""
        if record.ended_at >= 0:
            return
        record.ended_at = record.master.now  # the ending event's, as its subtasks' end times
        self._clean_up_checkpoints(record)
        if record.batch is not None:
            self.batch.job_ended(record)
        self._release(record)
        if record.job_id in self._pending:
            self._pending.remove(record.job_id)
        self._expire_history(record.ended_at)
        self.run_io(self.jm.job_terminated, record.job_id)  # high availability forgets it

    # -------------------------------------------------------------- scheduling

    def _schedule(self, now: float) -> None:
        """On the loop: offer free slots to the jobs waiting for them, in order."""
        for record in [r for r in self.jobs.values() if r.batch is not None]:
            self._dirty.add(record.job_id)  # its stages' progress
            record.master.now = now
            decision = self.batch.schedule(record, now)  # stage by stage
            if decision is not None:
                log.warning("job %s failed: %s", record.job_id, record.graph.failure)
                self._execute(record, record.master.decided(decision))
        registry = self.jm.registry
        for job_id in list(self._pending):
            record = self.jobs.get(job_id)
            if record is None or not record.master.waiting_for_slots or record.batch is not None:
                self._pending.remove(job_id)
                continue
            slots = registry.allocate(job_id, record.graph.slots_required())
            if slots is None:
                free, total = registry.slots_available, registry.slots_total
                self._execute(record, record.master.slots_unavailable(now, free, total))
                continue
            self._pending.remove(job_id)
            offered = []
            for slot in slots:
                tm = registry.get(slot.resource_id)
                offered.append((slot.resource_id, tm.address if tm else ""))
            self._execute(record, record.master.slots_offered(now, offered))

    def waiting_for_slots(self) -> list[str]:
        """The ids of the jobs waiting for slots, in the order they came (read on the loop)."""
        return list(self._pending)

    def taskmanager_stub(self, address: str) -> cluster_pb2_grpc.TaskExecutorGatewayStub:
        """A stub for commands to the TaskManager at ``address`` (this JobManager's tokens on
        every call; one channel per address, kept)."""
        with self._channels_lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = self.jm.command_channel(address)
        return cluster_pb2_grpc.TaskExecutorGatewayStub(channel)

    def _deploy_or_fail(self, record: JobRecord, attempt: int, restore: Any) -> None:
        """On the executor: deploy, and tell the loop how it went. An unexpected error fails
        the job (restart strategy applies) instead of leaving it waiting for tasks that never
        start."""
        try:
            self.jm.attempt_deploying(record.job_id, attempt)
            failure = self._deploy(record, attempt, restore)
        except Exception as error:
            log.exception("deploying job %s failed", record.job_id)
            failure = ("", error)
        if failure is None:
            self.post(self._deployed, record, attempt)
        else:
            self.post(self._deploy_failed, record, attempt, *failure)

    def _deploy(
        self, record: JobRecord, attempt: int, restore_source: Any
    ) -> tuple[str, Exception] | None:
        """Deploy in two phases: each TaskManager first starts the job's slot processes and
        answers their data addresses, so that every producer is deployed knowing where its
        consumers listen; then every TaskManager gets the subtasks with those locations.
        Answers the TaskManager and error that stopped it, or None."""
        request = record.request
        graph = record.graph
        by_address: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for (vertex_id, index), (_, address) in record.placement.items():
            by_address[address].append((vertex_id, index))
        slot_numbers = graph.slot_numbers()
        restore = self.checkpointing.restore_bytes(record, restore_source)
        log.info(
            "deploying job %s attempt %d to %d TaskManager(s)",
            record.job_id,
            attempt,
            len(by_address),
        )
        prepares: dict[str, tuple[pb.PrepareSlotsRequest, dict[int, list[tuple[str, int]]]]] = {}
        for address, tasks in by_address.items():
            slots: dict[int, list[tuple[str, int]]] = defaultdict(list)
            for task in tasks:
                slots[slot_numbers[task]].append(task)
            prepare = pb.PrepareSlotsRequest(
                job_id=request.job_id,
                attempt=attempt,
                jobmanager_address=self.jm.advertised_address,
                # the job's (or -D's) python.executable, else the cluster configuration's
                python_executable=request.config.get("python.executable")
                or self.jm.config["python.executable"]
                or "",
                slots=[
                    pb.SlotAssignment(
                        slot=slot,
                        tasks=[pb.TaskSpec(vertex_id=v, subtask=i) for v, i in members],
                    )
                    for slot, members in sorted(slots.items())
                ],
            )
            prepares[address] = (prepare, slots)
        processes = {address: len(slots) for address, (_, slots) in prepares.items()}
        answers, failure = self._call_all(
            {address: ("PrepareSlots", prepare) for address, (prepare, _) in prepares.items()},
            processes,
        )
        if failure is not None:
            return failure
        data_addresses: dict[tuple[str, int], str] = {}
        for address, (_, slots) in prepares.items():
            prepared = {slot.slot: slot.address for slot in answers[address].slots}
            for slot, members in slots.items():
                for task in members:
                    data_addresses[task] = prepared.get(slot, address)
        locations = [
            pb.TaskLocation(vertex_id=v, subtask=i, address=data_address)
            for (v, i), data_address in data_addresses.items()
        ]
        checkpointing = bool(record.coordinator and record.coordinator.settings.interval_ms)
        deployments = {
            address: (
                "DeployTasks",
                pb.DeployTasksRequest(
                    job_id=request.job_id,
                    attempt=attempt,
                    job_name=graph.name,
                    job_graph=request.job_graph,
                    files=request.files,
                    tasks=[pb.TaskSpec(vertex_id=v, subtask=i) for v, i in tasks],
                    locations=locations,
                    config=request.config,
                    jobmanager_address=self.jm.advertised_address,
                    restore=restore,
                    checkpointing=checkpointing,
                ),
            )
            for address, tasks in by_address.items()
        }
        return self._call_all(deployments, processes)[1]

    def _call_all(
        self, calls: dict[str, tuple[str, Any]], processes: dict[str, int]
    ) -> tuple[dict[str, Any], tuple[str, Exception] | None]:
        """Send each TaskManager its ``(method, request)``: in waves of TaskManagers that
        together start at most ``_PROCESSES_AT_ONCE`` slot processes (``processes``: how many
        each starts), every call of a wave at once, up to the first wave with a failure.
        Returns the answers by address, and a TaskManager that failed with its error, or None.

        Not every TaskManager at once: a job at parallelism 64 on 8 TaskManagers × 8 slots on
        one 2-core host then forked its 64 slot processes together and their producers'
        connections timed out in the TCP handshake (test_transport_scale). Not one after
        another either: then a job's start-up grows with its TaskManagers (a p=2 job on two
        took twice p=1's; bench/startup.py)."""
        answers: dict[str, Any] = {}
        for wave in _waves(list(calls), processes, _PROCESSES_AT_ONCE):
            pending = []
            for address in wave:
                method, request = calls[address]
                call = getattr(self.taskmanager_stub(address), method)
                pending.append((address, call.future(request, timeout=_RPC_TIMEOUT_S)))
            failure: tuple[str, Exception] | None = None
            for address, future in pending:
                try:
                    answer = future.result()
                    if not answer.ok:
                        raise RuntimeError(answer.message)
                except (grpc.RpcError, RuntimeError) as error:
                    failure = failure or (address, error)
                    continue
                answers[address] = answer
            if failure is not None:
                return answers, failure
        return answers, None

    def _deployed(self, record: JobRecord, attempt: int) -> None:
        if self.jobs.get(record.job_id) is record:
            self._execute(record, record.master.deployed(time.time(), attempt))

    def _deploy_failed(
        self, record: JobRecord, attempt: int, address: str, error: Exception
    ) -> None:
        detail = error.details() if isinstance(error, grpc.RpcError) else str(error)
        where = f"to TaskManager {address}" if address else "(JobManager)"
        reason = f"could not deploy tasks {where}: {detail or repr(error)}"
        log.warning("job %s: %s", record.job_id, reason)
        if self.jobs.get(record.job_id) is record:
            self._execute(record, record.master.deploy_failed(time.time(), attempt, reason))

    def _cancel_tasks(self, record: JobRecord, attempt: int | None = None) -> None:
        """Tell every registered TaskManager running the job (``attempt`` of it, by default
        the current one) to cancel it, all at once: a lost TaskManager is not asked (and cannot
        hold up the others)."""
        registered = {tm.address for tm in self.jm.registry.all()}
        addresses = {a for _, a in record.placement.values() if a in registered}
        if record.batch is not None:  # every execution of a BATCH job
            attempt = -1
        elif attempt is None:
            attempt = record.graph.attempt
        request = pb.CancelTasksRequest(job_id=record.job_id, attempt=attempt)

        def cancel(address: str) -> None:
            try:
                self.taskmanager_stub(address).CancelTasks(request, timeout=5)
            except grpc.RpcError as error:
                log.info("could not cancel tasks on %s: %s", address, error.code())

        for address in addresses:
            self.run_io(cancel, address)

    def _release(self, record: JobRecord) -> None:
        """An ended job keeps what its history shows, not its code: the pickled graph and the
        job's files (50 MB for a job with a 50 MB collection) go now."""
        request = record.request
        record.request = pb.SubmitJobRequest(
            job_id=request.job_id, job_name=request.job_name, config=request.config
        )
        record.checkpoint_metadata.clear()
        record.placement = {}

    def _expire_history(self, now: float) -> None:
        """Keep ended jobs as Flink's job store does: at most ``jobstore.max-capacity`` of
        them, none ended more than ``jobstore.expiration-time`` ago."""
        capacity = self.jm.config["jobstore.max-capacity"]
        expiration_s = self.jm.config["jobstore.expiration-time"] / 1000.0
        ended = sorted((r for r in self.jobs.values() if r.ended_at > 0), key=lambda r: r.ended_at)
        excess = max(0, len(ended) - capacity)
        for index, record in enumerate(ended):
            if index < excess or now - record.ended_at > expiration_s:
                del self.jobs[record.job_id]
                self._dirty.add(record.job_id)
                self.checkpointing.forget(record.job_id)

    def expire_history(self) -> None:
        """Drop ended jobs past ``jobstore.expiration-time`` now."""
        self.ask(self._expire_history, time.time())

    def _clean_up_checkpoints(self, record: JobRecord) -> None:
        """A finished job's checkpoints go; a cancelled one's as the retention setting says;
        a failed job keeps them (to resume from by hand)."""
        coordinator = record.coordinator
        if coordinator is None or not coordinator.completed or not self.jm.serves():
            return  # (a deposed leader leaves them: the new one may be restoring from them)
        retention = record.config["execution.checkpointing.externalized-checkpoint-retention"]
        state = record.graph.state
        if state == "FINISHED" or (state == "CANCELED" and retention == "DELETE_ON_CANCELLATION"):
            for checkpoint in coordinator.completed:
                self.run_io(record.storage.discard, checkpoint.external_path)

    def suspend_jobs(self, reason: str) -> None:
        """Leadership is lost: forget every job not ended, as Flink's JobMaster suspends them.
        Nothing is cancelled on the TaskManagers (the new leader owns those tasks now); the
        jobs stop being scheduled and checkpointed, and a deployment or restart under way
        finds them gone and stops."""
        self.ask(self._suspend_jobs, reason, urgent=True)

    def _suspend_jobs(self, reason: str) -> None:
        now = time.time()
        for record in [r for r in self.jobs.values() if not r.master.ended]:
            del self.jobs[record.job_id]
            self._execute(record, record.master.suspend(now, reason))
        self._pending.clear()
        self._paused = False  # what was held concerns jobs it no longer has

    def fail_job(self, record: JobRecord, reason: str) -> None:
        """Fail the job from outside its tasks (too many failed checkpoints)."""
        self.post(self._fail_job, record, reason)

    def _fail_job(self, record: JobRecord, reason: str) -> None:
        if self.jobs.get(record.job_id) is not record or not self.jm.serves():
            return
        if record.batch is not None and record.graph.state == RUNNING:
            self.batch.stopping(record)
        self._execute(record, record.master.fail(time.time(), reason))

    def finish_after_savepoint(self, record: JobRecord, then: str) -> None:
        """A savepoint followed by stop or cancel is complete: the job goes on to end."""
        self.post(self._finish_after_savepoint, record, then)

    def _finish_after_savepoint(self, record: JobRecord, then: str) -> None:
        if self.jobs.get(record.job_id) is not record:
            return
        now = time.time()
        master = record.master
        self._execute(record, master.stop(now) if then == "stop" else master.cancel(now))

    # -------------------------------------------------------------- savepoints

    def trigger_savepoint(
        self, job_id: str, target_dir: str | None = None, cancel_job: bool = False
    ) -> str:
        record = self._get(job_id)
        return self.checkpointing.trigger_savepoint(
            record, target_dir, "cancel" if cancel_job else ""
        )

    def stop_with_savepoint(
        self, job_id: str, target_dir: str | None = None, drain: bool = False
    ) -> str:
        record = self._get(job_id)
        return self.checkpointing.trigger_savepoint(record, target_dir, "stop")

    def savepoint_status(self, job_id: str, trigger_id: str) -> dict:
        """A savepoint's progress (Flink's REST shape); KeyError for an unknown one."""
        return self.ask(self._savepoint_status, job_id, trigger_id)

    def _savepoint_status(self, job_id: str, trigger_id: str) -> dict:
        status = self.checkpointing.savepoints.get(trigger_id)
        if status is None or status["job_id"] != job_id:
            raise KeyError(f"no savepoint {trigger_id} for job {job_id}")
        return {k: v for k, v in status.items() if k in ("status", "operation")}

    def checkpoint_stats(self, job_id: str) -> dict:
        """The job's checkpoint statistics; KeyError for an unknown job."""
        return self.ask(lambda: self.checkpointing.stats(self._get(job_id)))

    def checkpoint_config(self, job_id: str) -> dict:
        record = self._get(job_id)
        config = record.config
        interval = config["execution.checkpointing.interval"]
        return {
            "mode": "exactly_once"
            if config["execution.checkpointing.mode"] == "exactly_once"
            else "at_least_once",
            "interval": interval if interval is not None else 0x7FFFFFFFFFFFFFFF,
            "timeout": config["execution.checkpointing.timeout"],
            "min_pause": config["execution.checkpointing.min-pause"],
            "max_concurrent": config["execution.checkpointing.max-concurrent-checkpoints"],
            "tolerable_failed_checkpoints": config[
                "execution.checkpointing.tolerable-failed-checkpoints"
            ],
            "externalization": {
                "enabled": True,
                "delete_on_cancellation": config[
                    "execution.checkpointing.externalized-checkpoint-retention"
                ]
                == "DELETE_ON_CANCELLATION",
            },
            "checkpoint_storage": f"FileSystemCheckpointStorage ({record.storage.base})",
            "state_backend": "HashMapStateBackend",
        }

    # -------------------------------------------------------------- events

    def task_state_changed(self, update: pb.TaskExecutionState) -> None:
        """A TaskManager reported a subtask's state (any thread)."""
        self.post(self._task_state_changed, update)

    def _task_state_changed(self, update: pb.TaskExecutionState) -> None:
        record = self.jobs.get(update.job_id)
        if record is None:
            return
        now = time.time()
        master = record.master
        if record.batch is not None:  # executions of a BATCH job (batch_execution.py)
            master.now = now
            effects = master.decided(self.batch.task_state_changed(record, update))
        else:
            subtask = record.graph.subtasks.get((update.vertex_id, update.subtask))
            if subtask is not None and update.HasField("metrics"):
                subtask.records_in = update.metrics.records_in
                subtask.records_out = update.metrics.records_out
                subtask.input_bytes_read = update.metrics.input_bytes_read
                subtask.input_bytes_total = update.metrics.input_bytes_total
            effects = master.task_state(
                now,
                update.vertex_id,
                update.subtask,
                update.attempt,
                update.state,
                update.failure,
                update.consequential,
            )
        if (
            update.state == "FINISHED"
            and update.attempt == record.graph.attempt
            and record.batch is None
        ):
            self.checkpointing.task_finished(record)
        self._execute(record, effects)

    def update_metrics(self, metrics: list[pb.TaskMetrics]) -> None:
        """A heartbeat's samples of running subtasks (any thread)."""
        if metrics:
            self.post(self._update_metrics, metrics)

    def _update_metrics(self, metrics: list[pb.TaskMetrics]) -> None:
        for metric in metrics:
            record = self.jobs.get(metric.job_id)
            if record is not None:
                self._dirty.add(record.job_id)
            if record is not None and record.batch is not None:
                self.batch.metrics(record, metric)
                continue
            if record is None or record.graph.attempt != metric.attempt:
                continue
            subtask = record.graph.subtasks.get((metric.vertex_id, metric.subtask))
            # A heartbeat may carry a slot process's sample taken before the subtask's
            # final report: that report's counts stand.
            if subtask is not None and subtask.state not in TERMINAL_TASK_STATES:
                subtask.records_in = metric.records_in
                subtask.records_out = metric.records_out
                subtask.input_bytes_read = metric.input_bytes_read
                subtask.input_bytes_total = metric.input_bytes_total

    def taskmanager_lost(self, tm: TaskManagerRecord, reason: str) -> None:
        """A TaskManager is gone (any thread)."""
        self.post(self._taskmanager_lost, tm, reason)

    def _taskmanager_lost(self, tm: TaskManagerRecord, reason: str) -> None:
        now = time.time()
        for record in list(self.jobs.values()):
            master = record.master
            if record.batch is not None:
                master.now = now
                effects = master.decided(self.batch.taskmanager_lost(record, tm, reason))
            else:
                effects = master.taskmanager_lost(now, tm.resource_id, reason)
            self._execute(record, effects)

    # -------------------------------------------------------------- views

    def _publish(self) -> None:
        """On the loop: publish a new snapshot of every job the last events touched."""
        if not self._dirty:
            return
        views = dict(self._views)
        changed = False
        for job_id in self._dirty:
            record = self.jobs.get(job_id)
            if record is None:
                views.pop(job_id, None)
                continue
            view = snapshot(record)
            previous = views.get(job_id)
            changed = changed or previous is None or previous.state != view.state
            views[job_id] = view
        self._dirty.clear()
        self._views = views  # one assignment: readers see the old table or the new one
        if changed:
            with self._job_state_changed:
                self._job_state_changed.notify_all()

    def _view(self, job_id: str) -> JobSnapshot:
        view = self._views.get(job_id)
        if view is None:
            raise KeyError(f"no job with id {job_id}")
        return view

    def summaries(self) -> list[dict[str, Any]]:
        """Every job's line of ``/jobs/overview``, newest first (any thread)."""
        now = time.time()
        views = sorted(self._views.values(), key=lambda v: v.submitted_at, reverse=True)
        return [view.summary(now) for view in views]

    def details(self, job_id: str) -> dict[str, Any]:
        """The job's details (any thread); KeyError when there is no such job. The nested
        values are the published snapshot's: read them, do not change them."""
        return self._view(job_id).full()

    def reported_records(self, job_id: str) -> dict[tuple[str, int], tuple[int, int]]:
        """Records in and out per subtask as last reported (empty for an unknown job)."""
        view = self._views.get(job_id)
        return dict(view.records) if view is not None else {}

    def await_termination(self, job_id: str, timeout_s: float) -> None:
        """Block until the job has ended or ``timeout_s`` passed (any thread)."""
        deadline = time.monotonic() + timeout_s
        self._view(job_id)
        with self._job_state_changed:
            while True:
                view = self._views.get(job_id)
                if view is not None and view.state in TERMINAL_JOB_STATES:
                    return  # (a suspended job is gone from the table: wait as for a running one)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._job_state_changed.wait(remaining)

    def counts(self) -> list[str]:
        """The state of every job (any thread)."""
        return [view.state for view in self._views.values()]


def _nothing() -> None:
    """An event that only wakes the loop."""


def _waves(addresses: list[str], weights: dict[str, int], budget: int) -> list[list[str]]:
    """``addresses`` in order, cut into consecutive groups whose weights add up to at most
    ``budget`` (a group of one may weigh more)."""
    waves: list[list[str]] = []
    total = 0
    for address in addresses:
        weight = weights.get(address, 1)
        if waves and total + weight <= budget:
            waves[-1].append(address)
            total += weight
        else:
            waves.append([address])
            total = weight
    return waves
