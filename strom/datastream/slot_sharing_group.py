"""``SlotSharingGroup`` and ``MemorySize``, as ``pyflink.datastream.slot_sharing_group``.

Strom places operators by slot sharing group name; the resource figures are kept for the
program to read back (Strom's slots are processes, not memory budgets).
"""

from __future__ import annotations

__all__ = ["MemorySize", "SlotSharingGroup"]


class MemorySize:
    """A number of bytes, e.g. ``MemorySize.of_mebi_bytes(100)``."""

    def __init__(self, bytes_size: int | None = None) -> None:
        self._bytes = int(bytes_size or 0)

    @staticmethod
    def of_mebi_bytes(mebi_bytes: int) -> MemorySize:
        return MemorySize(mebi_bytes << 20)

    def get_bytes(self) -> int:
        return self._bytes

    def get_kibi_bytes(self) -> int:
        return self._bytes >> 10

    def get_mebi_bytes(self) -> int:
        return self._bytes >> 20

    def get_gibi_bytes(self) -> int:
        return self._bytes >> 30

    def get_tebi_bytes(self) -> int:
        return self._bytes >> 40

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemorySize) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"MemorySize({self._bytes})"


class SlotSharingGroup:
    """A named group of operators that may share slots:
    ``SlotSharingGroup.builder("heavy").set_cpu_cores(1.0).build()``."""

    def __init__(self, name: str, resources: dict | None = None) -> None:
        self._name = name
        self._resources = dict(resources or {})

    @staticmethod
    def builder(name: str) -> SlotSharingGroup.Builder:
        return SlotSharingGroup.Builder(name)

    def get_name(self) -> str:
        return self._name

    def get_cpu_cores(self) -> float | None:
        return self._resources.get("cpu_cores")

    def get_task_heap_memory(self) -> MemorySize | None:
        return self._resources.get("task_heap_memory")

    def get_task_off_heap_memory(self) -> MemorySize | None:
        return self._resources.get("task_off_heap_memory")

    def get_managed_memory(self) -> MemorySize | None:
        return self._resources.get("managed_memory")

    def get_external_resources(self) -> dict:
        return dict(self._resources.get("external_resources", {}))

    def __repr__(self) -> str:
        return f"SlotSharingGroup({self._name!r})"

    class Builder:
        def __init__(self, name: str) -> None:
            self._name = name
            self._resources: dict = {}

        def set_cpu_cores(self, cpu_cores: float) -> SlotSharingGroup.Builder:
            self._resources["cpu_cores"] = cpu_cores
            return self

        def set_task_heap_memory(self, task_heap_memory: MemorySize) -> SlotSharingGroup.Builder:
            self._resources["task_heap_memory"] = task_heap_memory
            return self

        def set_task_heap_memory_mb(self, task_heap_memory_mb: int) -> SlotSharingGroup.Builder:
            return self.set_task_heap_memory(MemorySize.of_mebi_bytes(task_heap_memory_mb))

        def set_task_off_heap_memory(
            self, task_off_heap_memory: MemorySize
        ) -> SlotSharingGroup.Builder:
            self._resources["task_off_heap_memory"] = task_off_heap_memory
            return self

        def set_task_off_heap_memory_mb(
            self, task_off_heap_memory_mb: int
        ) -> SlotSharingGroup.Builder:
            return self.set_task_off_heap_memory(MemorySize.of_mebi_bytes(task_off_heap_memory_mb))

        def set_managed_memory(self, managed_memory: MemorySize) -> SlotSharingGroup.Builder:
            self._resources["managed_memory"] = managed_memory
            return self

        def set_managed_memory_mb(self, managed_memory_mb: int) -> SlotSharingGroup.Builder:
            return self.set_managed_memory(MemorySize.of_mebi_bytes(managed_memory_mb))

        def set_external_resource(self, name: str, value: float) -> SlotSharingGroup.Builder:
            self._resources.setdefault("external_resources", {})[name] = value
            return self

        def build(self) -> SlotSharingGroup:
            return SlotSharingGroup(self._name, self._resources)
