"""Keyed state snapshots of the heap backend: exact at the barrier, restored by key group."""

from __future__ import annotations

import pickle
import threading

import pytest

from strom.common import Types
from strom.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor
from strom.graph.partitioning import key_group_of, key_group_range
from taskmanager.state.heap import HeapKeyedStateBackend, KeyedSnapshot
from taskmanager.state.operator_state import OperatorRestore

ANY = Types.PICKLED_BYTE_ARRAY()
MAX_PARALLELISM = 128
KEYS = [*range(2_000), *(f"user-{n}" for n in range(500)), ("pair", 7), None, 2.5]


def owner(key, parallelism: int, max_parallelism: int = MAX_PARALLELISM) -> int:
    group = key_group_of(key, max_parallelism)
    return group * parallelism // max_parallelism


def fill(backend: HeapKeyedStateBackend, keys) -> None:
    """Value, list and map state for every key, as a keyed operator would write them."""
    count = backend.get_state(ValueStateDescriptor("count", ANY))
    seen = backend.get_state(ListStateDescriptor("seen", ANY))
    last = backend.get_state(MapStateDescriptor("last", ANY, ANY))
    for key in keys:
        backend.current_key = key
        count.update(len(str(key)))
        seen.add(repr(key))
        seen.add("again")
        last.put("key", key)


def checkpoint_files(parallelism: int, max_parallelism: int = MAX_PARALLELISM) -> dict:
    """What a restore reads from a checkpoint of ``parallelism`` subtasks: one file each."""
    files = {}
    for subtask in range(parallelism):
        backend = HeapKeyedStateBackend(max_parallelism)
        fill(backend, [k for k in KEYS if owner(k, parallelism, max_parallelism) == subtask])
        stored = backend.snapshot().stored()
        files[subtask] = pickle.loads(pickle.dumps({"keyed": stored}, protocol=5))
    return files


def restored(files: dict, old_parallelism: int, subtask: int, parallelism: int, **kw):
    backend = HeapKeyedStateBackend(kw.get("max_parallelism", MAX_PARALLELISM))
    restore = OperatorRestore(files, old_parallelism, subtask, parallelism)
    groups = key_group_range(subtask, parallelism, backend.max_parallelism)
    backend.restore(restore.keyed(), groups)
    return backend


def expected_tables(keys) -> dict:
    backend = HeapKeyedStateBackend(MAX_PARALLELISM)
    fill(backend, keys)
    return backend.tables


@pytest.mark.parametrize(("old", "new"), [(2, 2), (2, 3), (2, 1), (3, 2), (1, 4), (4, 4)])
def test_restore_at_any_parallelism_gives_each_subtask_exactly_its_key_groups(old, new):
    files = checkpoint_files(old)
    seen: set = set()
    for subtask in range(new):
        backend = restored(files, old, subtask, new)
        mine = [k for k in KEYS if owner(k, new) == subtask]
        assert backend.tables == expected_tables(mine)
        seen.update(backend.tables["count"])
    assert seen == set(KEYS)


def test_a_snapshot_is_the_state_at_the_barrier_not_what_changes_later():
    backend = HeapKeyedStateBackend(MAX_PARALLELISM)
    fill(backend, ["a", "b"])
    snapshot = backend.snapshot()
    seen = backend.get_state(ListStateDescriptor("seen", ANY))
    last = backend.get_state(MapStateDescriptor("last", ANY, ANY))
    backend.current_key = "a"
    seen.add("after the barrier")  # in place: the same list object as at the barrier
    last.put("later", 1)
    backend.tables["count"].clear()
    files = {0: {"keyed": snapshot.stored()}}
    assert restored(files, 1, 0, 1).tables == expected_tables(["a", "b"])


def test_a_restore_skips_snapshots_of_key_groups_it_does_not_own_without_reading_them():
    files = checkpoint_files(2)
    tag, max_parallelism, _ = files[1]["keyed"]
    files[1]["keyed"] = (tag, max_parallelism, b"not a pickle")
    backend = restored(files, 2, 0, 2)  # subtask 0 owns none of old subtask 1's key groups
    assert backend.tables == expected_tables([k for k in KEYS if owner(k, 2) == 0])
    with pytest.raises(pickle.UnpicklingError):
        restored(files, 2, 1, 2)


def test_a_changed_max_parallelism_still_places_every_key_by_its_key_group():
    files = checkpoint_files(2, max_parallelism=64)
    for subtask in range(3):
        backend = restored(files, 2, subtask, 3)  # restored with max parallelism 128
        mine = [k for k in KEYS if owner(k, 3) == subtask]
        assert backend.tables == expected_tables(mine)


def test_snapshots_in_the_earlier_by_key_group_form_still_restore():
    files = {}
    for subtask in range(2):
        by_group: dict = {}
        for key in KEYS:
            if owner(key, 2) == subtask:
                group = key_group_of(key, MAX_PARALLELISM)
                by_group.setdefault("count", {}).setdefault(group, {})[key] = len(str(key))
        files[subtask] = {"keyed": by_group}
    for subtask in range(3):
        backend = restored(files, 2, subtask, 3)
        mine = [k for k in KEYS if owner(k, 3) == subtask]
        assert backend.tables == {"count": {k: len(str(k)) for k in mine}}


def test_state_pickle_cannot_write_is_written_by_value_or_fails_only_the_checkpoint():
    backend = HeapKeyedStateBackend(MAX_PARALLELISM)
    state = backend.get_state(ValueStateDescriptor("function", ANY))
    backend.current_key = "k"
    state.update(lambda x: x + 1)  # pickle cannot, cloudpickle can
    files = {0: {"keyed": backend.snapshot().stored()}}
    assert restored(files, 1, 0, 1).tables["function"]["k"](1) == 2

    state.update(threading.Lock())  # nothing can
    snapshot = backend.snapshot()
    assert isinstance(snapshot, KeyedSnapshot)
    with pytest.raises(TypeError):
        snapshot.stored()


def test_state_that_refers_to_itself_still_snapshots():
    backend = HeapKeyedStateBackend(MAX_PARALLELISM)
    state = backend.get_state(ValueStateDescriptor("graph", ANY))
    node: list = ["node"]
    node.append(node)
    backend.current_key = "k"
    state.update(node)
    files = {0: {"keyed": backend.snapshot().stored()}}
    value = restored(files, 1, 0, 1).tables["graph"]["k"]
    assert value[0] == "node" and value[1] is value
