"""PostgreSQL change data capture: ``PostgresCDCSource``, the changes of chosen tables as
``Row``s with a ``RowKind`` (+I, -U, +U, -D), after an initial snapshot of the tables.

The builder's names are Flink CDC's ``PostgresSource.builder()`` in snake case. On its first
start the source creates a publication for the tables and a logical replication slot
(``pgoutput``) with an exported snapshot, reads the tables in that snapshot as +I rows, then
follows the slot's changes from exactly where the snapshot ends. The position (the end of the
last transaction read, and how many rows of the next were emitted) is part of each
checkpoint, so a restore resumes exactly there; the slot's confirmed position is advanced to a
checkpoint's position only when that checkpoint completes, so the server keeps what a restore
may need and no more.

Updates carry the old row (-U) and deletes all columns (-D) only for tables with
``REPLICA IDENTITY FULL``; otherwise the old row holds only the key columns (others None).
The slot is read by one subtask (subtask 0); the server needs ``wal_level = logical``.
Needs ``psycopg`` 3 (``pip install 'strom[postgres]'``).

Example::

    source = (
        PostgresCDCSource.builder()
        .hostname("localhost").port(5432).database("shop").username("postgres")
        .table_list(["public.orders"])
        .slot_name("strom_orders")
        .build()
    )
    changes = env.from_source(source, WatermarkStrategy.no_watermarks(), "orders-cdc")
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

from strom.common.types import Row, RowKind
from strom.datastream.connectors.base import Source, SourceReader, check_subtask
from strom.datastream.functions import MapFunction

__all__ = ["PostgresCDCSource", "PostgresCDCSourceBuilder"]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the PostgreSQL CDC source needs psycopg 3: pip install 'strom[postgres]'"
        ) from error
    return psycopg


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


#: how long a reader that found no new changes waits before decoding the slot again
_IDLE_PEEK_S = 0.05

#: the newest snapshot position of each running CDC reader in this process, for the chained
#: checkpoint listener that advances the slot (readers are not told of completed checkpoints)
_SNAPSHOTS: dict[tuple[str, int], Any] = {}
_SNAPSHOTS_LOCK = threading.Lock()


class PostgresCDCSource(Source):
    """Changes of PostgreSQL tables from a logical replication slot; unbounded."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @staticmethod
    def builder() -> PostgresCDCSourceBuilder:
        return PostgresCDCSourceBuilder()

    @property
    def slot(self) -> str:
        return self.options["slot_name"]

    def conninfo(self, **extra: Any) -> dict[str, Any]:
        info = {
            "host": self.options["hostname"],
            "port": self.options["port"],
            "dbname": self.options["database"],
            "user": self.options["username"],
        }
        if self.options.get("password"):
            info["password"] = self.options["password"]
        info.update(extra)
        return info

    def connect(self, autocommit: bool = True, **extra: Any) -> Any:
        return _psycopg().connect(autocommit=autocommit, **self.conninfo(**extra))

    def is_bounded(self) -> bool:
        return False

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        check_subtask(subtask_index, parallelism)
        return PostgresCDCReader(self, active=subtask_index == 0)

    def restore_reader(
        self,
        positions: dict[int, object],
        old_parallelism: int,
        subtask_index: int,
        parallelism: int,
    ) -> SourceReader:
        """After a restore at any parallelism, subtask 0 goes on from subtask 0's position."""
        check_subtask(subtask_index, parallelism)
        reader = PostgresCDCReader(self, active=subtask_index == 0)
        if subtask_index == 0 and positions.get(0) is not None:
            reader.restore_position(positions[0])
        return reader

    def attach_to_stream(self, stream: Any) -> Any:
        """Called by ``env.from_source``: chains the operator that advances the slot when a
        checkpoint completes (readers are not told of completed checkpoints)."""
        return stream.map(SlotAdvancer(self), output_type=stream.get_type())

    def __repr__(self) -> str:
        return f"PostgresCDCSource({self.options['table_list']}, slot {self.slot!r})"


class PostgresCDCSourceBuilder:
    """Builds a ``PostgresCDCSource``; ``database``, ``table_list`` and ``slot_name`` are
    required."""

    def __init__(self) -> None:
        self._options: dict[str, Any] = {
            "hostname": "localhost",
            "port": 5432,
            "database": None,
            "username": "postgres",
            "password": None,
            "table_list": [],
            "slot_name": None,
            "publication_name": None,
            "snapshot": True,
        }

    def hostname(self, hostname: str) -> PostgresCDCSourceBuilder:
        self._options["hostname"] = hostname
        return self

    def port(self, port: int) -> PostgresCDCSourceBuilder:
        self._options["port"] = int(port)
        return self

    def database(self, database: str) -> PostgresCDCSourceBuilder:
        self._options["database"] = database
        return self

    def username(self, username: str) -> PostgresCDCSourceBuilder:
        self._options["username"] = username
        return self

    def password(self, password: str) -> PostgresCDCSourceBuilder:
        self._options["password"] = password
        return self

    def table_list(self, tables: list[str]) -> PostgresCDCSourceBuilder:
        """Tables as ``schema.table`` (``public`` when no schema is given)."""
        self._options["table_list"] = [t if "." in t else f"public.{t}" for t in tables]
        return self

    def slot_name(self, slot_name: str) -> PostgresCDCSourceBuilder:
        self._options["slot_name"] = slot_name
        return self

    def publication_name(self, name: str) -> PostgresCDCSourceBuilder:
        """The publication of the tables (created when missing); ``<slot>_pub`` by default."""
        self._options["publication_name"] = name
        return self

    def skip_snapshot(self) -> PostgresCDCSourceBuilder:
        """Only changes made after the first start, no initial snapshot of the tables."""
        self._options["snapshot"] = False
        return self

    def build(self) -> PostgresCDCSource:
        options = dict(self._options)
        for required in ("database", "slot_name"):
            if not options[required]:
                raise ValueError(f"PostgresCDCSource needs {required}(...)")
        if not options["table_list"]:
            raise ValueError("PostgresCDCSource needs table_list([...])")
        if not options["publication_name"]:
            options["publication_name"] = f"{options['slot_name']}_pub"
        return PostgresCDCSource(options)


class _Message:
    """A cursor over one pgoutput message."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 1

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.data, self.at)[0]
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        end = self.data.index(b"\x00", self.at)
        value = self.data[self.at : end].decode()
        self.at = end + 1
        return value

    def tuple_data(self) -> list[bytes | None]:
        values: list[bytes | None] = []
        for _ in range(self.take("!h")):
            kind = self.data[self.at : self.at + 1]
            self.at += 1
            if kind == b"t":
                length = self.take("!i")
                values.append(self.data[self.at : self.at + length])
                self.at += length
            else:  # n: null; u: unchanged TOAST value, not sent
                values.append(None)
        return values


class PostgresCDCReader(SourceReader):
    """Reads the slot with ``pg_logical_slot_peek_binary_changes`` (the slot's confirmed
    position moves only when a checkpoint completes). Its position is
    ``("stream", end LSN of the last whole transaction read, rows read of the next)``."""

    def __init__(self, source: PostgresCDCSource, active: bool) -> None:
        self.source = source
        self.active = active
        self.position: tuple[str, int, int] | None = None
        self.connection: Any = None
        self.relations: dict[int, tuple[str, list[str], list[int], list[Any]]] = {}
        self.pending: list[tuple[int, list[Row]]] = []  # whole transactions not yet emitted
        self.token = (source.slot, 0)
        self.restored = False
        self.next_peek_at = 0.0

    # ------------------------------------------------------------ start

    def _start(self) -> list[Row]:
        self.connection = self.source.connect()
        if self.position is None:
            return self._snapshot()
        if self.restored:  # everything before a restored checkpoint is done with
            self.advance(self.position[1])
        return []

    def _snapshot(self) -> list[Row]:
        """Create the publication and the slot, and read the tables in the slot's exported
        snapshot: the stream goes on exactly where the snapshot ends."""
        psycopg = _psycopg()
        sql = psycopg.sql
        options = self.source.options
        tables = [sql.Identifier(*t.split(".", 1)) for t in options["table_list"]]
        publication = options["publication_name"]
        exists = self.connection.execute(
            "SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)
        ).fetchone()
        if not exists:
            self.connection.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                    sql.Identifier(publication), sql.SQL(", ").join(tables)
                )
            )
        # A slot without a checkpoint: made by an attempt that failed before its first
        # checkpoint (or an earlier job); start over with a fresh snapshot.
        slot = self.source.slot
        if self.connection.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone():
            self.connection.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        replication = self.source.connect(replication="database")
        try:
            result = replication.pgconn.exec_(
                f'CREATE_REPLICATION_SLOT "{slot}" LOGICAL pgoutput EXPORT_SNAPSHOT'.encode()
            )
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                raise RuntimeError(
                    f"creating replication slot {slot!r} failed: "
                    f"{result.error_message.decode(errors='replace')}"
                )
            start = parse_lsn(result.get_value(0, 1).decode())
            snapshot = result.get_value(0, 2).decode()
            rows: list[Row] = []
            if options["snapshot"]:
                with self.source.connect(autocommit=False) as reader:
                    reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    reader.execute(
                        sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot))
                    )
                    for table in tables:
                        cursor = reader.execute(sql.SQL("SELECT * FROM {}").format(table))
                        names = [column.name for column in cursor.description]
                        for values in cursor:
                            row = Row(*values)
                            row.set_field_names(names)
                            rows.append(row)
                    reader.rollback()
        finally:
            replication.close()
        self.position = ("stream", start, 0)
        return rows

    # ------------------------------------------------------------ reading

    def read_batch(self, max_records: int) -> list | None:
        if not self.active:
            return []
        if self.connection is None:
            rows = self._start()
            if rows:
                return rows  # the snapshot, in one step: no checkpoint falls inside it
        if not self.pending:
            now = time.monotonic()
            if now < self.next_peek_at:
                return []
            self._peek()
            if not self.pending:  # nothing new: ask the server again a little later
                self.next_peek_at = now + _IDLE_PEEK_S
        out: list[Row] = []
        while self.pending and len(out) < max_records:
            end, rows = self.pending[0]
            _, last, done = self.position  # type: ignore[misc]
            take = rows[done : done + max_records - len(out)]
            out.extend(take)
            if done + len(take) >= len(rows):
                self.pending.pop(0)
                self.position = ("stream", end, 0)
            else:
                self.position = ("stream", last, done + len(take))
        return out

    def _peek(self) -> None:
        options = self.source.options
        cursor = self.connection.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, "
            "'proto_version', '1', 'publication_names', %s)",
            (self.source.slot, options["publication_name"]),
        )
        after = self.position[1]  # type: ignore[index]
        transaction: list[Row] = []
        for (data,) in cursor:
            kind = bytes(data[:1])
            message = _Message(bytes(data))
            if kind == b"B":
                transaction = []
            elif kind == b"R":
                self._relation(message)
            elif kind in (b"I", b"U", b"D"):
                transaction.extend(self._change(kind, message))
            elif kind == b"C":
                message.take("!b")
                message.take("!q")
                end = message.take("!q")
                if end > after:
                    self.pending.append((end, transaction))
                transaction = []

    def _relation(self, message: _Message) -> None:
        psycopg = _psycopg()
        oid = message.take("!I")
        namespace, name = message.string(), message.string()
        message.take("!b")
        names, keys, loaders = [], [], []
        for _ in range(message.take("!h")):
            flags = message.take("!b")
            names.append(message.string())
            type_oid = message.take("!I")
            message.take("!i")
            keys.append(flags & 1)
            loader = psycopg.adapters.get_loader(type_oid, psycopg.pq.Format.TEXT)
            loaders.append(loader(type_oid, self.connection) if loader else None)
        self.relations[oid] = (f"{namespace}.{name}", names, keys, loaders)

    def _row(self, oid: int, values: list[bytes | None], kind: RowKind) -> Row:
        _, names, _, loaders = self.relations[oid]
        loaded = []
        for value, loader in zip(values, loaders, strict=False):
            if value is None:
                loaded.append(None)
            elif loader is None:
                loaded.append(value.decode())
            else:
                loaded.append(loader.load(value))
        row = Row(*loaded)
        row.set_field_names(names)
        row.set_row_kind(kind)
        return row

    def _change(self, kind: bytes, message: _Message) -> list[Row]:
        oid = message.take("!I")
        if oid not in self.relations:
            return []
        if kind == b"I":
            message.take("!c")
            return [self._row(oid, message.tuple_data(), RowKind.INSERT)]
        if kind == b"D":
            message.take("!c")
            return [self._row(oid, message.tuple_data(), RowKind.DELETE)]
        marker = message.take("!c")
        old = None
        if marker in (b"K", b"O"):
            old = message.tuple_data()
            message.take("!c")
        new = message.tuple_data()
        if old is None:  # the key did not change and the table has no full identity
            _, _, keys, _ = self.relations[oid]
            old = [v if key else None for v, key in zip(new, keys, strict=False)]
        return [
            self._row(oid, old, RowKind.UPDATE_BEFORE),
            self._row(oid, new, RowKind.UPDATE_AFTER),
        ]

    # ------------------------------------------------------------ positions

    def advance(self, lsn: int) -> None:
        """Confirm everything up to ``lsn`` to the slot (only ever forward)."""
        advance_slot(self.source, lsn, self.connection)

    def snapshot_position(self) -> object:
        with _SNAPSHOTS_LOCK:
            _SNAPSHOTS[self.token] = self.position
        return self.position

    def restore_position(self, position: object) -> None:
        if position is None:
            return
        if not (isinstance(position, tuple) and len(position) == 3 and position[0] == "stream"):
            raise ValueError(f"not a PostgreSQL CDC position: {position!r}")
        self.position = position  # type: ignore[assignment]
        self.restored = True

    def close(self) -> None:
        with _SNAPSHOTS_LOCK:
            _SNAPSHOTS.pop(self.token, None)
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def advance_slot(source: PostgresCDCSource, lsn: int, connection: Any = None) -> None:
    """Move the slot's confirmed position forward to ``lsn`` (no-op if it is there)."""
    own = connection is None
    connection = connection or source.connect()
    try:
        row = connection.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            (source.slot,),
        ).fetchone()
        if row is not None and row[0] is not None and parse_lsn(row[0]) < lsn:
            connection.execute(
                "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (source.slot, lsn_text(lsn))
            )
    finally:
        if own:
            connection.close()


class SlotAdvancer(MapFunction):
    """Chained right after the CDC source: passes records on, remembers the source's position
    at each checkpoint, and advances the slot to it when the checkpoint completes."""

    def __init__(self, source: PostgresCDCSource) -> None:
        self.source = source
        self.positions: dict[int, Any] = {}

    def open(self, runtime_context: Any) -> None:
        self.subtask = runtime_context.get_index_of_this_subtask()

    def map(self, value: Any) -> Any:
        return value

    def initialize_state(self, context: Any) -> None:
        self.positions = {}

    def snapshot_state(self, context: Any) -> None:
        if getattr(self, "subtask", 0) != 0:
            return
        with _SNAPSHOTS_LOCK:
            position = _SNAPSHOTS.get((self.source.slot, 0))
        if position is not None:
            self.positions[context.get_checkpoint_id()] = position

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        done = [c for c in self.positions if c <= checkpoint_id]
        if not done:
            return
        position = self.positions[max(done)]
        for c in done:
            del self.positions[c]
        try:
            advance_slot(self.source, position[1])
        except Exception:  # the next completed checkpoint advances it further
            pass
