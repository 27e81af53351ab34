"""The TaskManager registry as a pure state machine: no sockets, no clocks."""

from __future__ import annotations

from jobmanager.taskmanager_registry import Hardware, TaskManagerRegistry


def register(registry, rid, slots=2, now=0.0):
    record, previous = registry.register(
        rid, f"{rid}:1", rid, slots, Hardware(2, 1 << 30, 1 << 29), 1, now
    )
    return record, previous


def test_register_heartbeat_and_expire():
    registry = TaskManagerRegistry(heartbeat_timeout_s=5)
    a, _ = register(registry, "a")
    b, _ = register(registry, "b", slots=3)
    assert registry.slots_total == 5 and registry.slots_available == 5
    assert registry.heartbeat("a", a.instance_id, now=4.0)
    assert registry.expire(now=5.5) == [b]  # b was silent since 0, a heard at 4
    assert [r.resource_id for r in registry.all()] == ["a"]
    assert registry.expire(now=9.0) == []
    assert [r.resource_id for r in registry.expire(now=9.1)] == ["a"]
    assert registry.slots_total == 0


def test_reregistration_replaces_and_stale_instance_is_ignored():
    registry = TaskManagerRegistry(heartbeat_timeout_s=5)
    first, _ = register(registry, "a")
    second, previous = register(registry, "a", now=1.0)
    assert previous is first and second.instance_id != first.instance_id
    assert not registry.heartbeat("a", first.instance_id, now=2.0)
    assert registry.unregister("a", first.instance_id) is None  # the old session closing
    assert registry.get("a") is second
    assert registry.unregister("a", second.instance_id) is second
    assert registry.all() == []


def test_allocate_spreads_and_release():
    registry = TaskManagerRegistry(heartbeat_timeout_s=5)
    register(registry, "a", slots=2)
    register(registry, "b", slots=2, now=1.0)
    slots = registry.allocate("job1", 2)
    assert sorted(s.resource_id for s in slots) == ["a", "b"]
    assert registry.slots_available == 2
    assert registry.allocate("job2", 3) is None
    assert registry.slots_available == 2  # a failed request takes nothing
    registry.release("job1")
    assert registry.slots_available == 4
