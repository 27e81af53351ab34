"""How records of an edge are spread over the consuming subtasks (DESIGN.md §3–§4).

A partitioner is a small picklable object. ``select`` answers for one record; ``split``
distributes a whole batch, which is what the runtime calls on the hot path.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

try:
    # The hash split's per-record loop in C (strom/_speedups.c), where the install found a
    # compiler (setup.py); otherwise the same loop in Python below.
    from strom import _speedups
except ImportError:
    _speedups = None

DEFAULT_MAX_PARALLELISM = 128

_MASK64 = (1 << 64) - 1


def _mix64(value: int) -> int:
    # The finaliser of MurmurHash3's 64-bit variant: spreads nearby integers.
    value &= _MASK64
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & _MASK64
    value ^= value >> 33
    value = (value * 0xC4CEB9FE1A85EC53) & _MASK64
    value ^= value >> 33
    return value


def _spread(crc: int) -> int:
    """A CRC-32 with its bits mixed (Fibonacci hashing). CRC-32 is linear, so keys that differ
    only in a last character ("k0", "k1", ...) have equal low bits: taken as they are, they all
    fell into the key groups of one subtask."""
    return ((crc * 0x9E3779B1) & 0xFFFFFFFF) >> 16


def stable_hash(key: Any) -> int:
    """A non-negative hash that is the same in every process on every host.

    Python's ``hash()`` of ``str`` is salted per process, so it must never decide placement.
    """
    if isinstance(key, str):
        return _spread(zlib.crc32(key.encode("utf-8", "surrogatepass")))
    if isinstance(key, bool) or key is None:
        return _mix64(int(bool(key)) + (2 if key is None else 0))
    if isinstance(key, int):
        return _mix64(key)
    if isinstance(key, (bytes, bytearray, memoryview)):
        return _spread(zlib.crc32(bytes(key)))
    if isinstance(key, float):
        if key.is_integer():
            return _mix64(int(key))
        return _spread(zlib.crc32(struct.pack("<d", key)))
    if isinstance(key, (tuple, list)):
        result = 17
        for item in key:
            result = (result * 31 + stable_hash(item)) & 0xFFFFFFFF
        return result
    fields = getattr(key, "_values", None)  # strom.common.Row
    if fields is not None:
        return stable_hash(tuple(fields))
    if isinstance(key, frozenset):
        return _mix64(sum(stable_hash(item) for item in key))
    raise TypeError(
        f"key {key!r} of type {type(key).__name__} has no stable hash; "
        "key by a str, int, float, bytes, bool, None, tuple or Row instead"
    )


def key_group_of(key: Any, max_parallelism: int) -> int:
    return stable_hash(key) % max_parallelism


def operator_index_of_key_group(key_group: int, parallelism: int, max_parallelism: int) -> int:
    return key_group * parallelism // max_parallelism


def key_group_range(subtask: int, parallelism: int, max_parallelism: int) -> range:
    """The key groups that subtask ``subtask`` of ``parallelism`` owns."""
    start = (subtask * max_parallelism + parallelism - 1) // parallelism
    end = ((subtask + 1) * max_parallelism + parallelism - 1) // parallelism
    return range(start, end)


class Partitioner:
    """Chooses target channels for records; ``n`` is the number of consuming subtasks."""

    name = "partitioner"
    #: whether the edge needs equal parallelism and may be chained
    is_forward = False
    #: whether every record goes to all channels
    is_broadcast = False
    #: whether an upstream subtask talks only to a subset (rescale) of channels
    pointwise = False

    def setup(self, producer_index: int, producer_parallelism: int, n: int) -> None:
        """Called once per producing subtask before any record."""
        self.n = n

    def split(self, values: list, timestamps: list | None) -> list[tuple[int, list, list | None]]:
        """Distribute a batch: ``[(channel, values, timestamps), ...]``."""
        raise NotImplementedError

    def split_with_keys(
        self, values: list, timestamps: list | None
    ) -> list[tuple[int, list, list | None, list | None]]:
        """``split``, each share with the keys of its records (a list parallel to its values)
        when the partitioner computed them, else None. What the record writer calls: a keyed
        consumer uses these keys instead of calling its key selector once more."""
        return [
            (channel, share, stamps, None)
            for channel, share, stamps in self.split(values, timestamps)
        ]

    def __repr__(self) -> str:
        return self.name.upper()


def _split_by(channels: list[int], values: list, timestamps: list | None, n: int):
    buckets: list[list] = [[] for _ in range(n)]
    if timestamps is None:
        for channel, value in zip(channels, values, strict=True):
            buckets[channel].append(value)
        return [(c, b, None) for c, b in enumerate(buckets) if b]
    stamp_buckets: list[list] = [[] for _ in range(n)]
    for channel, value, stamp in zip(channels, values, timestamps, strict=True):
        buckets[channel].append(value)
        stamp_buckets[channel].append(stamp)
    return [(c, b, stamp_buckets[c]) for c, b in enumerate(buckets) if b]


class ForwardPartitioner(Partitioner):
    name = "forward"
    is_forward = True
    pointwise = True

    def setup(self, producer_index: int, producer_parallelism: int, n: int) -> None:
        self.n = n
        self.target = producer_index % max(n, 1)

    def split(self, values, timestamps):
        return [(self.target, values, timestamps)]


class KeyGroupPartitioner(Partitioner):
    """Hash by key: key → key group → subtask, identical on every host."""

    name = "hash"

    def __init__(self, key_selector: Callable[[Any], Any], max_parallelism: int) -> None:
        self.key_selector = key_selector
        self.max_parallelism = max_parallelism

    #: keys whose channel is remembered per producer; the cache is emptied when it is full.
    #: Only small keys are kept (``_small_key``), so it holds a few MB at most.
    CACHE_SIZE = 16_384

    def setup(self, producer_index: int, producer_parallelism: int, n: int) -> None:
        self.n = n
        # key -> channel. Python's hash() only finds the entry in this process; the channel
        # itself comes from stable_hash, so placement is the same in every process. Equal
        # keys have equal stable hashes (1 == 1.0 == True, "a" == "a"), so a cached entry is
        # right for every key equal to it.
        self._channels: dict[Any, int] = {}

    def channel_of(self, key: Any) -> int:
        """The consumer channel of ``key`` (its key group's subtask)."""
        maxp = self.max_parallelism
        return stable_hash(key) % maxp * self.n // maxp

    def _placed(self, key: Any) -> int:
        """``channel_of`` through the key cache: for the keys the compiled loop leaves to
        Python (str and int subclasses, Rows, frozensets, huge ints, ...)."""
        cache = self._channels
        try:
            channel = cache.get(key)
        except TypeError:  # unhashable
            return self.channel_of(key)
        if channel is None:
            channel = self.channel_of(key)
            if _small_key(key):
                if len(cache) > self.CACHE_SIZE:
                    cache.clear()
                cache[key] = channel
        return channel

    def split(self, values, timestamps):
        return [share[:3] for share in self.split_with_keys(values, timestamps)]

    def split_with_keys(self, values, timestamps):
        key_of = self.key_selector
        n = self.n
        if n == 1:
            return [(0, values, timestamps, [key_of(v) for v in values])]
        if _speedups is not None and type(values) is list:
            buckets, stamp_buckets, key_buckets = _speedups.split_by_key(
                values, timestamps, key_of, self._placed, n, self.max_parallelism
            )
            if stamp_buckets is None:
                stamp_buckets = [None] * n
            return [(c, b, stamp_buckets[c], key_buckets[c]) for c, b in enumerate(buckets) if b]
        cache = self._channels
        if len(cache) > self.CACHE_SIZE:
            cache.clear()
        lookup, place = cache.get, self.channel_of
        buckets: list[list] = [[] for _ in range(n)]
        key_buckets: list[list] = [[] for _ in range(n)]
        try:
            if timestamps is None:
                for value in values:
                    key = key_of(value)
                    channel = lookup(key)
                    if channel is None:
                        channel = place(key)
                        if _small_key(key):
                            cache[key] = channel
                    buckets[channel].append(value)
                    key_buckets[channel].append(key)
                return [(c, b, None, key_buckets[c]) for c, b in enumerate(buckets) if b]
            stamp_buckets: list[list] = [[] for _ in range(n)]
            for value, stamp in zip(values, timestamps, strict=True):
                key = key_of(value)
                channel = lookup(key)
                if channel is None:
                    channel = place(key)
                    if _small_key(key):
                        cache[key] = channel
                buckets[channel].append(value)
                key_buckets[channel].append(key)
                stamp_buckets[channel].append(stamp)
            return [(c, b, stamp_buckets[c], key_buckets[c]) for c, b in enumerate(buckets) if b]
        except TypeError:
            # An unhashable key (a list): no cache for this batch. Start it over, so that
            # calling the key selector twice for a record cannot happen half way.
            keys = [key_of(v) for v in values]
            channels = [place(key) for key in keys]
            shares = _split_by(channels, values, timestamps, n)
            key_shares = _split_by(channels, keys, None, n)
            return [
                (c, share, stamps, key_share)
                for (c, share, stamps), (_, key_share, _) in zip(shares, key_shares, strict=True)
            ]


_SCALARS = (int, float, bool, type(None))


def _small_key(key: Any) -> bool:
    """Whether a key is small enough to keep in a key cache: a scalar, a str or bytes of at
    most 256 items, or a short tuple of those (a big key would keep its memory alive)."""
    kind = type(key)
    if kind in _SCALARS:
        return True
    if kind is str or kind is bytes:
        return len(key) <= 256
    if kind is tuple:
        return len(key) <= 8 and all(_small_key(item) for item in key)
    return False


class RebalancePartitioner(Partitioner):
    """Round-robin over all consumers, starting at a random one per producer."""

    name = "rebalance"

    def setup(self, producer_index, producer_parallelism, n):
        self.n = n
        self.next = random.Random(producer_index).randrange(n) if n else 0

    def split(self, values, timestamps):
        n = self.n
        if n == 1:
            return [(0, values, timestamps)]
        start = self.next
        self.next = (start + len(values)) % n
        channels = [(start + i) % n for i in range(len(values))]
        return _split_by(channels, values, timestamps, n)


class RescalePartitioner(Partitioner):
    """Round-robin over the subset of consumers local to this producer (Flink's rescale)."""

    name = "rescale"
    pointwise = True

    def setup(self, producer_index, producer_parallelism, n):
        self.n = n
        if producer_parallelism >= n:
            self.targets = [producer_index * n // producer_parallelism]
        else:
            lo = producer_index * n // producer_parallelism
            hi = (producer_index + 1) * n // producer_parallelism
            self.targets = list(range(lo, hi))
        self.next = 0

    def split(self, values, timestamps):
        targets = self.targets
        if len(targets) == 1:
            return [(targets[0], values, timestamps)]
        start = self.next
        self.next = (start + len(values)) % len(targets)
        channels = [targets[(start + i) % len(targets)] for i in range(len(values))]
        return _split_by(channels, values, timestamps, self.n)


class ShufflePartitioner(Partitioner):
    """A uniformly random consumer per record."""

    name = "shuffle"

    def setup(self, producer_index, producer_parallelism, n):
        self.n = n
        self.random = random.Random()

    def split(self, values, timestamps):
        n = self.n
        if n == 1:
            return [(0, values, timestamps)]
        pick = self.random.randrange
        return _split_by([pick(n) for _ in values], values, timestamps, n)


class BroadcastPartitioner(Partitioner):
    name = "broadcast"
    is_broadcast = True

    def split(self, values, timestamps):
        return [(c, values, timestamps) for c in range(self.n)]


class GlobalPartitioner(Partitioner):
    """Everything to the first consumer."""

    name = "global"

    def split(self, values, timestamps):
        return [(0, values, timestamps)]


class CustomPartitioner(Partitioner):
    """``partition_custom``: the user's ``partition(key, num_partitions)`` picks the channel."""

    name = "custom"

    def __init__(self, partitioner: Any, key_selector: Callable[[Any], Any]) -> None:
        self.partition = getattr(partitioner, "partition", partitioner)
        self.key_selector = key_selector

    def split(self, values, timestamps):
        n, partition, key_of = self.n, self.partition, self.key_selector
        channels = []
        for value in values:
            channel = partition(key_of(value), n)
            if not isinstance(channel, int) or not 0 <= channel < n:
                raise ValueError(
                    f"custom partitioner returned {channel!r} for a stream of {n} partitions; "
                    f"it must return an int from 0 to {n - 1}"
                )
            channels.append(channel)
        return _split_by(channels, values, timestamps, n)
