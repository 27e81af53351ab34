"""Operator (non-keyed) state, and what a task restores from a checkpoint or savepoint.

List state is redistributed on restore as Flink does: "split" lists are cut evenly over the
new subtasks, "union" lists go whole to every subtask. Keyed state comes back by key group,
so any parallelism up to the max parallelism can restore it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strom.datastream import state as api
from taskmanager.state.heap import StoredKeyedState


class _OperatorListState(api.ListState):
    def __init__(self, items: list) -> None:
        self.items = items

    def get(self) -> Iterable[Any]:
        return list(self.items)

    def add(self, value: Any) -> None:
        self.items.append(value)

    def add_all(self, values: Iterable[Any]) -> None:
        self.items.extend(values)

    def update(self, values: Iterable[Any]) -> None:
        self.items[:] = list(values or ())

    def clear(self) -> None:
        self.items.clear()

    def __iter__(self):
        return iter(list(self.items))


class OperatorStateStore(api.OperatorStateStore):
    """The list states of one operator instance."""

    def __init__(self, restored: dict[str, tuple[str, list]] | None = None) -> None:
        self._lists: dict[str, tuple[str, list]] = dict(restored or {})
        self._states: dict[str, _OperatorListState] = {}

    def _get(self, descriptor: Any, mode: str) -> _OperatorListState:
        name = descriptor.get_name()
        if name not in self._lists:
            self._lists[name] = (mode, [])
        if name not in self._states:
            self._states[name] = _OperatorListState(self._lists[name][1])
        return self._states[name]

    def get_list_state(self, state_descriptor: Any) -> api.ListState:
        return self._get(state_descriptor, "split")

    def get_union_list_state(self, state_descriptor: Any) -> api.ListState:
        return self._get(state_descriptor, "union")

    def get_broadcast_state(self, state_descriptor: Any) -> Any:
        raise NotImplementedError("broadcast state arrives with the time and windows work")

    def snapshot(self) -> dict[str, tuple[str, list]]:
        return {name: (mode, list(items)) for name, (mode, items) in self._lists.items()}


class FunctionInitializationContext:
    def __init__(self, store: OperatorStateStore, keyed: Any, restored: bool) -> None:
        self._store, self._keyed, self._restored = store, keyed, restored

    def get_operator_state_store(self) -> OperatorStateStore:
        return self._store

    def get_keyed_state_store(self) -> Any:
        return self._keyed

    def is_restored(self) -> bool:
        return self._restored


class FunctionSnapshotContext:
    def __init__(self, checkpoint_id: int, timestamp: int) -> None:
        self._checkpoint_id, self._timestamp = checkpoint_id, timestamp

    def get_checkpoint_id(self) -> int:
        return self._checkpoint_id

    def get_checkpoint_timestamp(self) -> int:
        return self._timestamp


#: the snapshot of a subtask that had finished when the checkpoint was taken
FINISHED: dict[str, Any] = {"finished": True}


class OperatorRestore:
    """The snapshots of one operator (by uid) from every subtask of the earlier run."""

    def __init__(
        self,
        snapshots: dict[int, dict[str, Any]],
        old_parallelism: int,
        subtask: int,
        parallelism: int,
    ) -> None:
        self.snapshots = snapshots
        self.old_parallelism = old_parallelism
        self.subtask = subtask
        self.parallelism = parallelism

    @property
    def rescaled(self) -> bool:
        return self.old_parallelism != self.parallelism

    @property
    def finished(self) -> bool:
        """Whether this subtask had finished (same parallelism only)."""
        return not self.rescaled and bool((self.snapshots.get(self.subtask) or {}).get("finished"))

    def own(self) -> dict[str, Any] | None:
        """This subtask's own earlier snapshot (same parallelism only)."""
        if self.rescaled:
            return None
        return self.snapshots.get(self.subtask)

    def all(self) -> list[dict[str, Any]]:
        return [self.snapshots[index] for index in sorted(self.snapshots)]

    def keyed(self) -> list[StoredKeyedState]:
        """Every earlier subtask's keyed state, with what tells which key groups it held."""
        return [
            StoredKeyedState(index, self.old_parallelism, self.snapshots[index]["keyed"])
            for index in sorted(self.snapshots)
            if self.snapshots[index].get("keyed")
        ]

    def assigned(self) -> list[dict[str, Any]]:
        """Old subtasks' snapshots this subtask takes over (old index mod new parallelism)."""
        return [
            self.snapshots[index]
            for index in sorted(self.snapshots)
            if index % self.parallelism == self.subtask
        ]

    def operator_lists(self) -> dict[str, tuple[str, list]]:
        """Operator list state for this subtask, redistributed as Flink does."""
        merged: dict[str, tuple[str, list]] = {}
        for snapshot in self.all():
            for name, (mode, items) in (snapshot.get("operator") or {}).items():
                merged.setdefault(name, (mode, []))[1].extend(items)
        result: dict[str, tuple[str, list]] = {}
        for name, (mode, items) in merged.items():
            if mode == "union":
                result[name] = (mode, list(items))
                continue
            if not self.rescaled:
                own = (self.own() or {}).get("operator", {}).get(name)
                result[name] = (mode, list(own[1]) if own else [])
                continue
            start = len(items) * self.subtask // self.parallelism
            end = len(items) * (self.subtask + 1) // self.parallelism
            result[name] = (mode, items[start:end])
        return result
