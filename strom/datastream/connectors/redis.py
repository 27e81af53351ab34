"""Redis Streams: ``RedisStreamSource`` and ``RedisStreamSink``, exactly once.

The source reads entries of one or more streams with ``XREAD``; each subtask reads whole
streams (stream ``j`` of the list goes to subtask ``j % parallelism``), or, with fewer streams
than subtasks, a share of one stream's entries. Its position is the last entry id read of each
of its streams, so a restart resumes right after it. The sink appends
entries with ``XADD``; with ``DeliveryGuarantee.EXACTLY_ONCE`` a checkpoint's entries are held
back and appended when the checkpoint completes, in one ``MULTI``/``EXEC`` together with a
per-subtask marker of the last committed checkpoint, so that committing again after a restart
appends nothing twice.

Needs the ``redis`` client (``pip install 'strom[redis]'``).

Example::

    source = (
        RedisStreamSource.builder()
        .set_host("localhost")
        .set_port(6379)
        .set_streams(["lines"])
        .set_starting_position(RedisStartingPosition.earliest())
        .set_deserializer(lambda entry: entry.fields["line"])
        .build()
    )
    lines = env.from_source(source, WatermarkStrategy.no_watermarks(), "lines")
    sink = (
        RedisStreamSink.builder()
        .set_host("localhost")
        .set_stream("counts")
        .set_serializer(lambda pair: {"word": pair[0], "count": pair[1]})
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .build()
    )
    counts.sink_to(sink)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from strom.common.watermark_strategy import TimestampAssigner
from strom.datastream.connectors.base import (
    FINISHED_POSITION,
    DeliveryGuarantee,
    Sink,
    SinkWriter,
    Source,
    SourceReader,
    check_subtask,
)

__all__ = [
    "EntryIdTimestampAssigner",
    "FieldTimestampAssigner",
    "RedisStartingPosition",
    "RedisStreamEntry",
    "RedisStreamSink",
    "RedisStreamSource",
]


def _client(host: str, port: int, db: int, password: str | None) -> Any:
    try:
        import redis
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the Redis connector needs the redis client: pip install 'strom[redis]'"
        ) from error
    return redis.Redis(host=host, port=port, db=db, password=password, decode_responses=True)


def _parse_id(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class RedisStreamEntry(NamedTuple):
    """One stream entry: the stream's name, the entry id (``<ms>-<seq>``) and its fields."""

    stream: str
    id: str
    fields: dict[str, str]

    @property
    def timestamp(self) -> int:
        """The time in the entry id: when Redis appended it, in epoch milliseconds."""
        return _parse_id(self.id)[0]


class EntryIdTimestampAssigner(TimestampAssigner):
    """Event time from the entry id (for records that are ``RedisStreamEntry``, the
    source's default), e.g.
    ``WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
    EntryIdTimestampAssigner())``."""

    def extract_timestamp(self, value: Any, record_timestamp: int | None) -> int:
        return _parse_id(value.id)[0]


class FieldTimestampAssigner(TimestampAssigner):
    """Event time (epoch milliseconds) from a field of a ``RedisStreamEntry``."""

    def __init__(self, field: str) -> None:
        self.field = field

    def extract_timestamp(self, value: Any, record_timestamp: int | None) -> int:
        return int(value.fields[self.field])


class RedisStartingPosition:
    """Where a stream is read from when no checkpoint says otherwise."""

    def __init__(self, kind: str, entry_id: str | None = None) -> None:
        self.kind = kind
        self.entry_id = entry_id

    @staticmethod
    def earliest() -> RedisStartingPosition:
        """From the stream's first entry."""
        return RedisStartingPosition("earliest")

    @staticmethod
    def latest() -> RedisStartingPosition:
        """Only entries appended after the job started reading."""
        return RedisStartingPosition("latest")

    @staticmethod
    def from_id(entry_id: str) -> RedisStartingPosition:
        """The entries after ``entry_id`` (exclusive, as ``XREAD``)."""
        _parse_id(entry_id)
        return RedisStartingPosition("id", entry_id)

    def __repr__(self) -> str:
        return f"RedisStartingPosition({self.kind!r}, {self.entry_id!r})"


def _last_id(client: Any, stream: str) -> str:
    """The id of the stream's last entry ("0-0" for a missing or empty stream)."""
    newest = client.xrevrange(stream, count=1)
    return newest[0][0] if newest else "0-0"


class RedisStreamSource(Source):
    """Entries of Redis streams, split among subtasks by stream; unbounded unless built with
    ``set_bounded()``, which reads up to the entries there when the job first starts.

    Records are ``RedisStreamEntry`` values, or whatever the deserializer makes of them.
    """

    def __init__(
        self,
        host: str,
        port: int,
        db: int,
        password: str | None,
        streams: list[str],
        starting_position: RedisStartingPosition,
        deserializer: Callable[[RedisStreamEntry], Any] | None,
        bounded: bool,
    ) -> None:
        self.host = host
        self.port = port
        self.db = db
        self.password = password
        self.streams = list(streams)
        self.starting_position = starting_position
        self.deserializer = deserializer
        self.bounded = bounded

    @staticmethod
    def builder() -> RedisStreamSourceBuilder:
        """A builder, as PyFlink's ``KafkaSource.builder()``."""
        return RedisStreamSourceBuilder()

    def is_bounded(self) -> bool:
        return self.bounded

    def assignment(self, subtask_index: int, parallelism: int) -> list[tuple[str, int, int]]:
        """What a subtask reads: ``(stream, share, shares)`` triples. With at least as many
        streams as subtasks, stream ``j`` goes whole to subtask ``j % parallelism``; with fewer,
        the subtasks on one stream split its entries into ``shares`` by entry id, each reading
        the stream and emitting the entries of its share."""
        count = len(self.streams)
        if count >= parallelism:
            return [
                (s, 0, 1) for j, s in enumerate(self.streams) if j % parallelism == subtask_index
            ]
        stream = subtask_index % count
        shares = len(range(stream, parallelism, count))
        return [(self.streams[stream], subtask_index // count, shares)]

    def create_reader(self, subtask_index: int, parallelism: int) -> RedisStreamReader:
        check_subtask(subtask_index, parallelism)
        return RedisStreamReader(
            self,
            {
                s: _fresh(share, shares)
                for s, share, shares in self.assignment(subtask_index, parallelism)
            },
        )

    def restore_reader(
        self,
        positions: dict[int, object],
        old_parallelism: int,
        subtask_index: int,
        parallelism: int,
    ) -> RedisStreamReader:
        """The reader of subtask ``subtask_index`` after a restore, also at another
        parallelism: each stream goes on from where its old readers were, and entries an old
        reader had emitted are not emitted again."""
        check_subtask(subtask_index, parallelism)
        old: dict[str, list[dict]] = {}
        for index in range(old_parallelism):
            position = positions.get(index)
            for stream, share, shares in self.assignment(index, old_parallelism):
                if position == FINISHED_POSITION:
                    state: dict = {**_fresh(share, shares), "finished": True}
                elif isinstance(position, dict) and stream in position:
                    state = dict(position[stream])
                else:  # not started before the checkpoint
                    state = _fresh(share, shares)
                old.setdefault(stream, []).append(state)
        mine = {}
        for stream, share, shares in self.assignment(subtask_index, parallelism):
            before = old.get(stream, [])
            if len(before) == 1 and (before[0]["share"], before[0]["shares"]) == (share, shares):
                mine[stream] = before[0]  # the same reader as before
            else:
                mine[stream] = _merged(before, share, shares)
        return RedisStreamReader(self, mine)

    def __repr__(self) -> str:
        return f"RedisStreamSource({self.host}:{self.port}, {self.streams})"


class RedisStreamSourceBuilder:
    """Builds a ``RedisStreamSource``; ``set_streams`` is required."""

    def __init__(self) -> None:
        self._host = "localhost"
        self._port = 6379
        self._db = 0
        self._password: str | None = None
        self._streams: list[str] = []
        self._starting = RedisStartingPosition.earliest()
        self._deserializer: Any = None
        self._bounded = False

    def set_host(self, host: str) -> RedisStreamSourceBuilder:
        self._host = host
        return self

    def set_port(self, port: int) -> RedisStreamSourceBuilder:
        self._port = int(port)
        return self

    def set_db(self, db: int) -> RedisStreamSourceBuilder:
        self._db = int(db)
        return self

    def set_password(self, password: str) -> RedisStreamSourceBuilder:
        self._password = password
        return self

    def set_streams(self, streams: list[str]) -> RedisStreamSourceBuilder:
        """The streams (keys) to read."""
        if isinstance(streams, str):
            streams = [streams]
        self._streams = list(streams)
        return self

    def set_starting_position(self, position: RedisStartingPosition) -> RedisStreamSourceBuilder:
        self._starting = position
        return self

    def set_deserializer(self, deserializer: Any) -> RedisStreamSourceBuilder:
        """A callable (or an object with ``deserialize``) from ``RedisStreamEntry`` to the
        record; the default keeps the entry."""
        self._deserializer = deserializer
        return self

    def set_bounded(self) -> RedisStreamSourceBuilder:
        """Read only the entries present when the job first starts, then end."""
        self._bounded = True
        return self

    def build(self) -> RedisStreamSource:
        if not self._streams:
            raise ValueError("RedisStreamSource needs streams: call set_streams([...])")
        if len(set(self._streams)) != len(self._streams):
            raise ValueError(f"RedisStreamSource: a stream is named twice in {self._streams}")
        deserializer = self._deserializer
        if deserializer is not None and not callable(deserializer):
            deserialize = getattr(deserializer, "deserialize", None)
            if not callable(deserialize):
                raise TypeError("set_deserializer() takes a callable or a DeserializationSchema")
        return RedisStreamSource(
            self._host,
            self._port,
            self._db,
            self._password,
            self._streams,
            self._starting,
            deserializer,
            self._bounded,
        )


def _fresh(share: int, shares: int) -> dict:
    """A stream reader's state before it starts: ``last`` is the last id read, ``end`` the
    last id of a bounded read, ``layers`` the ``(shares, {share: last id})`` of earlier
    layouts whose readers emitted entries up to those ids."""
    return {"last": None, "end": None, "share": share, "shares": shares, "layers": []}


def _merged(before: list[dict], share: int, shares: int) -> dict:
    """A stream reader's state for a new layout, from the states of the old readers."""
    state = _fresh(share, shares)
    if before and all(old.get("finished") for old in before):
        state["finished"] = True
        return state
    ends = [old["end"] for old in before if old["end"] is not None]
    state["end"] = max(ends, key=_parse_id) if ends else None
    lasts = [old["last"] for old in before]
    if before and all(last is not None for last in lasts):
        state["last"] = min(lasts, key=_parse_id)  # the earliest old reader's position
    emitted = {}
    for old in before:
        state["layers"].extend(old["layers"])
        last = old["end"] if old.get("finished") else old["last"]
        if last is not None:
            emitted[old["share"]] = last
    if emitted:
        state["layers"].append((before[0]["shares"], emitted))
    return state


def _share_of(entry_id: tuple[int, int], shares: int) -> int:
    return (entry_id[0] + entry_id[1]) % shares


def _emitted_before(entry_id: tuple[int, int], layers: list) -> bool:
    for shares, lasts in layers:
        last = lasts.get(_share_of(entry_id, shares))
        if last is not None and entry_id <= _parse_id(last):
            return True
    return False


class RedisStreamReader(SourceReader):
    """Reads streams with ``XREAD``. Its position maps each stream to its state (see
    ``_fresh``); a stream not started yet is started from the source's starting position."""

    def __init__(self, source: RedisStreamSource, streams: dict[str, dict]) -> None:
        self.source = source
        self.streams: dict[str, dict] = {s: dict(state) for s, state in streams.items()}
        self.client: Any = None
        deserializer = source.deserializer
        if deserializer is not None and not callable(deserializer):
            deserializer = deserializer.deserialize
        self.deserialize = deserializer

    def _start(self) -> None:
        source = self.source
        self.client = _client(source.host, source.port, source.db, source.password)
        for stream, state in self.streams.items():
            if state.get("finished"):
                continue
            if state["last"] is None:
                starting = source.starting_position
                if starting.kind == "latest":
                    state["last"] = _last_id(self.client, stream)
                elif starting.kind == "id":
                    state["last"] = starting.entry_id
                else:
                    state["last"] = "0-0"
            if source.bounded and state["end"] is None:
                state["end"] = _last_id(self.client, stream)

    def read_batch(self, max_records: int) -> list | None:
        if self.client is None:
            self._start()
        active = {}
        for stream, state in self.streams.items():
            if state.get("finished"):
                continue
            end = state["end"]
            if end is not None and _parse_id(state["last"]) >= _parse_id(end):
                state["finished"] = True
                continue
            active[stream] = state["last"]
        if not active:
            return None if self.source.bounded else []
        reply = self.client.xread(active, count=max(1, max_records))
        values: list = []
        deserialize = self.deserialize
        for stream, entries in reply or ():
            state = self.streams[stream]
            limit = _parse_id(state["end"]) if state["end"] is not None else None
            share, shares, layers = state["share"], state["shares"], state["layers"]
            last = state["last"]
            for entry_id, fields in entries:
                parsed = _parse_id(entry_id)
                if limit is not None and parsed > limit:
                    state["finished"] = True
                    break
                last = entry_id
                if shares > 1 and _share_of(parsed, shares) != share:
                    continue
                if layers and _emitted_before(parsed, layers):
                    continue
                entry = RedisStreamEntry(stream, entry_id, fields)
                values.append(deserialize(entry) if deserialize is not None else entry)
            state["last"] = last
            if layers:  # layouts whose readers were all behind this one matter no more
                position = _parse_id(last)
                state["layers"] = [
                    (n, lasts)
                    for n, lasts in layers
                    if any(position < _parse_id(v) for v in lasts.values())
                ]
        return values

    def snapshot_position(self) -> dict[str, dict]:
        return {s: dict(state, layers=list(state["layers"])) for s, state in self.streams.items()}

    def restore_position(self, position: object) -> None:
        if not isinstance(position, dict):
            raise ValueError(f"not a Redis stream position: {position!r}")
        for stream in self.streams:
            if isinstance(position.get(stream), dict):
                self.streams[stream] = dict(position[stream])

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class RedisStreamSink(Sink):
    """Appends records to a Redis stream as entries, with the chosen ``DeliveryGuarantee``:

    - ``NONE`` and ``AT_LEAST_ONCE``: appended as they come, in pipelined batches, so
      everything is appended before a checkpoint completes and a restart repeats entries but
      never loses one.
    - ``EXACTLY_ONCE``: a checkpoint's entries are appended when it completes, atomically with
      a marker of the last committed checkpoint of the subtask (key
      ``strom:sink:<sink id>:<subtask>``), so each record is appended once. Entries appear
      one checkpoint interval later, and a checkpoint's entries are held in memory and in the
      checkpoint until then.
    """

    def __init__(
        self,
        host: str,
        port: int,
        db: int,
        password: str | None,
        stream: str | Callable[[Any], str],
        serializer: Callable[[Any], dict],
        guarantee: DeliveryGuarantee,
        sink_id: str,
        max_len: int | None,
        batch_size: int,
    ) -> None:
        self.host = host
        self.port = port
        self.db = db
        self.password = password
        self.stream = stream
        self.serializer = serializer
        self.guarantee = guarantee
        self.sink_id = sink_id
        self.max_len = max_len
        self.batch_size = batch_size

    @staticmethod
    def builder() -> RedisStreamSinkBuilder:
        """A builder, as PyFlink's ``KafkaSink.builder()``."""
        return RedisStreamSinkBuilder()

    def marker_key(self, subtask_index: int) -> str:
        """The key that holds the last checkpoint a subtask committed (``EXACTLY_ONCE``)."""
        return f"strom:sink:{self.sink_id}:{subtask_index}"

    def create_writer(self, subtask_index: int, parallelism: int) -> RedisStreamWriter:
        check_subtask(subtask_index, parallelism)
        return RedisStreamWriter(self, subtask_index)

    def __repr__(self) -> str:
        return f"RedisStreamSink({self.host}:{self.port}, {self.guarantee.name})"


def _default_serializer(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, RedisStreamEntry):
        return value.fields
    return {"value": str(value)}


class RedisStreamSinkBuilder:
    """Builds a ``RedisStreamSink``; ``set_stream`` is required."""

    def __init__(self) -> None:
        self._host = "localhost"
        self._port = 6379
        self._db = 0
        self._password: str | None = None
        self._stream: Any = None
        self._serializer: Any = _default_serializer
        self._guarantee = DeliveryGuarantee.AT_LEAST_ONCE
        self._sink_id: str | None = None
        self._max_len: int | None = None
        self._batch_size = 500

    def set_host(self, host: str) -> RedisStreamSinkBuilder:
        self._host = host
        return self

    def set_port(self, port: int) -> RedisStreamSinkBuilder:
        self._port = int(port)
        return self

    def set_db(self, db: int) -> RedisStreamSinkBuilder:
        self._db = int(db)
        return self

    def set_password(self, password: str) -> RedisStreamSinkBuilder:
        self._password = password
        return self

    def set_stream(self, stream: str | Callable[[Any], str]) -> RedisStreamSinkBuilder:
        """The stream to append to, or a function of the record that names it."""
        self._stream = stream
        return self

    def set_serializer(self, serializer: Callable[[Any], dict]) -> RedisStreamSinkBuilder:
        """From a record to the entry's fields (a dict); by default dicts are kept and other
        values become ``{"value": str(value)}``."""
        self._serializer = serializer
        return self

    def set_delivery_guarantee(self, guarantee: DeliveryGuarantee) -> RedisStreamSinkBuilder:
        self._guarantee = guarantee
        return self

    def set_sink_id(self, sink_id: str) -> RedisStreamSinkBuilder:
        """Names the commit markers (``EXACTLY_ONCE``); by default the stream's name. Two
        exactly-once sinks writing the same stream need different ids."""
        self._sink_id = sink_id
        return self

    def set_max_len(self, max_len: int) -> RedisStreamSinkBuilder:
        """Trim the stream to about ``max_len`` entries (``XADD MAXLEN ~``)."""
        self._max_len = int(max_len)
        return self

    def set_batch_size(self, batch_size: int) -> RedisStreamSinkBuilder:
        """At most this many entries per pipelined round trip (``NONE``, ``AT_LEAST_ONCE``)."""
        self._batch_size = max(1, int(batch_size))
        return self

    def build(self) -> RedisStreamSink:
        if self._stream is None:
            raise ValueError("RedisStreamSink needs a stream: call set_stream(name)")
        if not isinstance(self._guarantee, DeliveryGuarantee):
            raise TypeError("set_delivery_guarantee() takes a DeliveryGuarantee")
        sink_id = self._sink_id
        if sink_id is None:
            if not isinstance(self._stream, str):
                raise ValueError(
                    "a RedisStreamSink that picks its stream per record needs set_sink_id(...)"
                )
            sink_id = self._stream
        return RedisStreamSink(
            self._host,
            self._port,
            self._db,
            self._password,
            self._stream,
            self._serializer,
            self._guarantee,
            sink_id,
            self._max_len,
            self._batch_size,
        )


class RedisStreamWriter(SinkWriter):
    """One subtask's writer. Its committables (``EXACTLY_ONCE``) are
    ``(marker key, checkpoint id, [(stream, fields), ...])``."""

    def __init__(self, sink: RedisStreamSink, subtask_index: int) -> None:
        self.sink = sink
        self.subtask_index = subtask_index
        self.client = _client(sink.host, sink.port, sink.db, sink.password)
        self.buffer: list[tuple[str, dict]] = []
        stream = sink.stream
        self.stream_of = stream if callable(stream) else (lambda _value: stream)

    def write_batch(self, values: list) -> None:
        stream_of, serialize = self.stream_of, self.sink.serializer
        self.buffer.extend((stream_of(v), serialize(v)) for v in values)
        if self.sink.guarantee != DeliveryGuarantee.EXACTLY_ONCE:
            self._flush()  # the runtime hands over batches already: no entry waits here

    def _append(self, pipeline: Any, entries: list[tuple[str, dict]]) -> None:
        max_len = self.sink.max_len
        for stream, fields in entries:
            if max_len is None:
                pipeline.xadd(stream, fields)
            else:
                pipeline.xadd(stream, fields, maxlen=max_len, approximate=True)

    def _flush(self) -> None:
        size = self.sink.batch_size
        while self.buffer:
            pipeline = self.client.pipeline(transaction=False)
            self._append(pipeline, self.buffer[:size])
            pipeline.execute()
            del self.buffer[:size]

    def prepare_commit(self, checkpoint_id: int) -> object:
        if self.sink.guarantee == DeliveryGuarantee.EXACTLY_ONCE:
            entries, self.buffer = self.buffer, []
            return (self.sink.marker_key(self.subtask_index), checkpoint_id, entries)
        if self.sink.guarantee == DeliveryGuarantee.AT_LEAST_ONCE or checkpoint_id < 0:
            self._flush()
        return None

    def commit(self, committables: object) -> None:
        if committables is None:
            return
        marker, checkpoint_id, entries = committables  # type: ignore[misc]
        if checkpoint_id < 0:  # the end of a job without checkpoints: nothing to repeat
            pipeline = self.client.pipeline(transaction=True)
            self._append(pipeline, entries)
            pipeline.execute()
            return
        import redis

        while True:
            with self.client.pipeline(transaction=True) as pipeline:
                try:
                    pipeline.watch(marker)
                    done = pipeline.get(marker)
                    if done is not None and int(done) >= checkpoint_id:
                        return  # committed before a failure
                    pipeline.multi()
                    self._append(pipeline, entries)
                    pipeline.set(marker, checkpoint_id)
                    pipeline.execute()
                    return
                except redis.WatchError:  # another attempt touched the marker: look again
                    time.sleep(0.01)

    def finish(self) -> None:
        self.commit(self.prepare_commit(-1))

    def abort(self) -> None:
        self.buffer = []

    def close(self) -> None:
        self.client.close()
