"""The TaskManager registry: who is in the cluster, their slots, and who has gone silent.

A pure state machine: events come in with the current time, decisions come out. The gRPC
service around it does the I/O, so this part is tested without sockets or sleeps.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field


@dataclass
class Hardware:
    cpu_cores: int = 0
    physical_memory: int = 0
    free_memory: int = 0


@dataclass
class TaskManagerRecord:
    resource_id: str
    instance_id: str
    address: str
    hostname: str
    num_slots: int
    hardware: Hardware
    pid: int
    registered_at: float
    last_heartbeat: float
    # slot index -> the job id holding it
    allocated: dict[int, str] = field(default_factory=dict)

    @property
    def free_slots(self) -> int:
        return self.num_slots - len(self.allocated)


@dataclass(frozen=True)
class SlotId:
    resource_id: str
    instance_id: str
    index: int


class TaskManagerRegistry:
    """TaskManagers by resource id. A re-registration replaces the earlier instance."""

    def __init__(self, heartbeat_timeout_s: float) -> None:
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._taskmanagers: dict[str, TaskManagerRecord] = {}
        self._instance_counter = itertools.count(1)

    def register(
        self,
        resource_id: str,
        address: str,
        hostname: str,
        num_slots: int,
        hardware: Hardware,
        pid: int,
        now: float,
    ) -> tuple[TaskManagerRecord, TaskManagerRecord | None]:
        """Add a TaskManager; returns it and the earlier instance it replaced, if any."""
        previous = self._taskmanagers.pop(resource_id, None)
        record = TaskManagerRecord(
            resource_id=resource_id,
            instance_id=f"{next(self._instance_counter)}-{uuid.uuid4().hex[:8]}",
            address=address,
            hostname=hostname,
            num_slots=num_slots,
            hardware=hardware,
            pid=pid,
            registered_at=now,
            last_heartbeat=now,
        )
        self._taskmanagers[resource_id] = record
        return record, previous

    def heartbeat(self, resource_id: str, instance_id: str, now: float) -> bool:
        """Record a heartbeat; False if that instance is no longer registered."""
        record = self._taskmanagers.get(resource_id)
        if record is None or record.instance_id != instance_id:
            return False
        record.last_heartbeat = now
        return True

    def unregister(self, resource_id: str, instance_id: str) -> TaskManagerRecord | None:
        """Remove one instance (its connection broke); a newer instance is left alone."""
        record = self._taskmanagers.get(resource_id)
        if record is None or record.instance_id != instance_id:
            return None
        return self._taskmanagers.pop(resource_id)

    def expire(self, now: float) -> list[TaskManagerRecord]:
        """Remove and return every TaskManager silent for longer than the heartbeat timeout."""
        lost = [
            record
            for record in self._taskmanagers.values()
            if now - record.last_heartbeat > self.heartbeat_timeout_s
        ]
        for record in lost:
            del self._taskmanagers[record.resource_id]
        return lost

    def get(self, resource_id: str) -> TaskManagerRecord | None:
        return self._taskmanagers.get(resource_id)

    def is_current(self, resource_id: str, instance_id: str) -> bool:
        record = self._taskmanagers.get(resource_id)
        return record is not None and record.instance_id == instance_id

    def all(self) -> list[TaskManagerRecord]:
        return sorted(self._taskmanagers.values(), key=lambda r: r.registered_at)

    @property
    def slots_total(self) -> int:
        return sum(record.num_slots for record in self._taskmanagers.values())

    @property
    def slots_available(self) -> int:
        return sum(record.free_slots for record in self._taskmanagers.values())

    # -------------------------------------------------------------- slots

    def allocate(self, job_id: str, count: int) -> list[SlotId] | None:
        """Take ``count`` free slots for a job, spread over TaskManagers; None if too few."""
        if self.slots_available < count:
            return None
        chosen: list[SlotId] = []
        # Round-robin over TaskManagers so a job spreads across processes (and cores).
        records = sorted(self.all(), key=lambda r: (-r.free_slots, r.registered_at))
        while len(chosen) < count:
            progressed = False
            for record in records:
                if len(chosen) == count:
                    break
                free = [i for i in range(record.num_slots) if i not in record.allocated]
                if not free:
                    continue
                record.allocated[free[0]] = job_id
                chosen.append(SlotId(record.resource_id, record.instance_id, free[0]))
                progressed = True
            if not progressed:  # pragma: no cover - guarded by slots_available
                break
        return chosen

    def release(self, job_id: str) -> None:
        """Free every slot the job holds."""
        for record in self._taskmanagers.values():
            for index in [i for i, j in record.allocated.items() if j == job_id]:
                del record.allocated[index]

    def release_slot(self, slot: SlotId) -> None:
        """Free one slot (a BATCH job gives each back when its subtask ends); a slot of a
        TaskManager instance that is gone is gone with it."""
        record = self._taskmanagers.get(slot.resource_id)
        if record is not None and record.instance_id == slot.instance_id:
            record.allocated.pop(slot.index, None)
