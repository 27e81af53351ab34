"""``JdbcSink`` with PyFlink's names (``pyflink.datastream.connectors.jdbc``), for PostgreSQL.

``JdbcSink.sink(sql, type_info, connection_options, execution_options)`` runs ``sql`` (any DML:
insert, update, upsert with ``ON CONFLICT``) once per record, the record's fields being the
statement's ``?`` parameters in order; batches are committed before each checkpoint completes,
so after a failure rows may be written again but none is lost (use an upsert for an idempotent
result). ``JdbcSink.exactly_once_sink(...)`` writes each checkpoint's rows in one transaction
that is prepared (``PREPARE TRANSACTION``) at the checkpoint barrier and committed
(``COMMIT PREPARED``) when the checkpoint completes; on restore, the prepared transactions of
the checkpoint restored from are committed and those of a failed attempt after it are rolled
back. It needs ``max_prepared_transactions`` > 0 on the server.

Needs ``psycopg`` 3 (``pip install 'strom[postgres]'``); URLs are PostgreSQL's
(``jdbc:postgresql://host:port/db`` or ``postgresql://...``).

Example::

    ds.add_sink(
        JdbcSink.sink(
            "INSERT INTO counts (word, n) VALUES (?, ?) "
            "ON CONFLICT (word) DO UPDATE SET n = EXCLUDED.n",
            Types.ROW([Types.STRING(), Types.LONG()]),
            JdbcConnectionOptions.JdbcConnectionOptionsBuilder()
            .with_url("jdbc:postgresql://localhost:5432/postgres")
            .with_user_name("postgres")
            .build(),
            JdbcExecutionOptions.builder().with_batch_size(500).with_max_retries(3).build(),
        )
    )
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from strom.datastream.connectors.base import Sink, SinkWriter, check_subtask

__all__ = [
    "JdbcConnectionOptions",
    "JdbcExactlyOnceOptions",
    "JdbcExecutionOptions",
    "JdbcSink",
]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the JDBC sink needs psycopg 3 for PostgreSQL: pip install 'strom[postgres]'"
        ) from error
    return psycopg


class JdbcConnectionOptions:
    """Where and as whom to connect."""

    def __init__(
        self,
        url: str,
        driver_name: str | None = None,
        user_name: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url
        self.driver_name = driver_name
        self.user_name = user_name
        self.password = password

    def get_db_url(self) -> str:
        return self.url

    def get_driver_name(self) -> str | None:
        return self.driver_name

    def get_user_name(self) -> str | None:
        return self.user_name

    def get_password(self) -> str | None:
        return self.password

    def connect(self, autocommit: bool) -> Any:
        """A psycopg connection to the server."""
        url = self.url[5:] if self.url.startswith("jdbc:") else self.url
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"JDBC URL {self.url!r}: Strom's JDBC connector speaks to PostgreSQL only "
                "(jdbc:postgresql://host:port/database)"
            )
        kwargs: dict[str, Any] = {}
        if self.user_name:
            kwargs["user"] = self.user_name
        if self.password:
            kwargs["password"] = self.password
        return _psycopg().connect(url, autocommit=autocommit, **kwargs)

    class JdbcConnectionOptionsBuilder:
        """Builder for ``JdbcConnectionOptions``."""

        def __init__(self) -> None:
            self._url: str | None = None
            self._driver_name: str | None = None
            self._user_name: str | None = None
            self._password: str | None = None

        def with_url(self, url: str) -> JdbcConnectionOptions.JdbcConnectionOptionsBuilder:
            self._url = url
            return self

        def with_driver_name(
            self, driver_name: str
        ) -> JdbcConnectionOptions.JdbcConnectionOptionsBuilder:
            """Accepted for PyFlink compatibility; PostgreSQL is reached through psycopg."""
            self._driver_name = driver_name
            return self

        def with_user_name(
            self, user_name: str
        ) -> JdbcConnectionOptions.JdbcConnectionOptionsBuilder:
            self._user_name = user_name
            return self

        def with_password(
            self, password: str
        ) -> JdbcConnectionOptions.JdbcConnectionOptionsBuilder:
            self._password = password
            return self

        def build(self) -> JdbcConnectionOptions:
            if not self._url:
                raise ValueError("JdbcConnectionOptions needs a URL: call with_url(...)")
            return JdbcConnectionOptions(
                self._url, self._driver_name, self._user_name, self._password
            )


class JdbcExecutionOptions:
    """How rows are batched: at most ``batch_size`` rows or ``batch_interval_ms`` between
    flushes (checked as rows arrive, and always at a checkpoint), and how often a failed batch
    is tried again (at-least-once sink only)."""

    def __init__(self, batch_size: int = 5000, batch_interval_ms: int = 0, max_retries: int = 3):
        if batch_size < 1 or batch_interval_ms < 0 or max_retries < 0:
            raise ValueError(
                f"JdbcExecutionOptions: batch_size ({batch_size}) must be >= 1, "
                f"batch_interval_ms ({batch_interval_ms}) and max_retries ({max_retries}) >= 0"
            )
        self.batch_size = batch_size
        self.batch_interval_ms = batch_interval_ms
        self.max_retries = max_retries

    def get_batch_interval_ms(self) -> int:
        return self.batch_interval_ms

    def get_batch_size(self) -> int:
        return self.batch_size

    def get_max_retries(self) -> int:
        return self.max_retries

    @staticmethod
    def defaults() -> JdbcExecutionOptions:
        return JdbcExecutionOptions()

    @staticmethod
    def builder() -> JdbcExecutionOptions.Builder:
        return JdbcExecutionOptions.Builder()

    class Builder:
        """Builder for ``JdbcExecutionOptions``."""

        def __init__(self) -> None:
            self._options = {"batch_size": 5000, "batch_interval_ms": 0, "max_retries": 3}

        def with_batch_size(self, size: int) -> JdbcExecutionOptions.Builder:
            self._options["batch_size"] = int(size)
            return self

        def with_batch_interval_ms(self, interval_ms: int) -> JdbcExecutionOptions.Builder:
            self._options["batch_interval_ms"] = int(interval_ms)
            return self

        def with_max_retries(self, max_retries: int) -> JdbcExecutionOptions.Builder:
            self._options["max_retries"] = int(max_retries)
            return self

        def build(self) -> JdbcExecutionOptions:
            return JdbcExecutionOptions(**self._options)


class JdbcExactlyOnceOptions:
    """Options of ``JdbcSink.exactly_once_sink``: the prefix of its prepared transactions'
    ids, which must differ between exactly-once sinks on one server (by default a hash of the
    statement)."""

    def __init__(self, transaction_id_prefix: str | None = None) -> None:
        if transaction_id_prefix is not None and ":" in transaction_id_prefix:
            raise ValueError("a transaction id prefix must not contain ':'")
        self.transaction_id_prefix = transaction_id_prefix

    @staticmethod
    def defaults() -> JdbcExactlyOnceOptions:
        return JdbcExactlyOnceOptions()

    @staticmethod
    def builder() -> JdbcExactlyOnceOptions.Builder:
        return JdbcExactlyOnceOptions.Builder()

    class Builder:
        """Builder for ``JdbcExactlyOnceOptions``."""

        def __init__(self) -> None:
            self._prefix: str | None = None

        def with_transaction_id_prefix(self, prefix: str) -> JdbcExactlyOnceOptions.Builder:
            self._prefix = prefix
            return self

        def build(self) -> JdbcExactlyOnceOptions:
            return JdbcExactlyOnceOptions(self._prefix)


def to_psycopg_sql(sql: str) -> str:
    """JDBC's ``?`` placeholders as psycopg's ``%s`` (outside quotes; ``%`` escaped)."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
            out.append("%%" if char == "%" else char)
        elif char in ("'", '"'):
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append("%%" if char == "%" else char)
    return "".join(out)


def _parameters(value: Any) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    if hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict)):
        return tuple(value)  # a Row
    return (value,)


class JdbcSink(Sink):
    """Writes records to a database with one DML statement per record; give it to
    ``ds.add_sink(...)`` (as in PyFlink) or ``ds.sink_to(...)``."""

    def __init__(
        self,
        sql: str,
        type_info: Any,
        connection_options: JdbcConnectionOptions,
        execution_options: JdbcExecutionOptions,
        exactly_once_options: JdbcExactlyOnceOptions | None = None,
    ) -> None:
        if not isinstance(connection_options, JdbcConnectionOptions):
            raise TypeError("JdbcSink needs JdbcConnectionOptions (use its builder)")
        self.sql = sql
        self.statement = to_psycopg_sql(sql)
        self.type_info = type_info
        self.connection_options = connection_options
        self.execution_options = execution_options
        self.exactly_once_options = exactly_once_options

    @staticmethod
    def sink(
        sql: str,
        type_info: Any,
        jdbc_connection_options: JdbcConnectionOptions,
        jdbc_execution_options: JdbcExecutionOptions | None = None,
    ) -> JdbcSink:
        """An at-least-once sink: batches are committed before each checkpoint completes."""
        options = jdbc_execution_options or JdbcExecutionOptions.defaults()
        return JdbcSink(sql, type_info, jdbc_connection_options, options)

    @staticmethod
    def exactly_once_sink(
        sql: str,
        type_info: Any,
        jdbc_connection_options: JdbcConnectionOptions,
        jdbc_execution_options: JdbcExecutionOptions | None = None,
        jdbc_exactly_once_options: JdbcExactlyOnceOptions | None = None,
    ) -> JdbcSink:
        """An exactly-once sink through PostgreSQL's two-phase commit: each checkpoint's rows
        become visible, all at once, when the checkpoint completes."""
        options = jdbc_execution_options or JdbcExecutionOptions.defaults()
        exactly_once = jdbc_exactly_once_options or JdbcExactlyOnceOptions.defaults()
        return JdbcSink(sql, type_info, jdbc_connection_options, options, exactly_once)

    @property
    def transaction_id_prefix(self) -> str:
        """The prefix of this sink's prepared transactions' ids (exactly-once)."""
        options = self.exactly_once_options
        if options is not None and options.transaction_id_prefix:
            return options.transaction_id_prefix
        return "strom-" + hashlib.sha1(self.sql.encode()).hexdigest()[:12]

    def create_writer(self, subtask_index: int, parallelism: int) -> SinkWriter:
        check_subtask(subtask_index, parallelism)
        if self.exactly_once_options is not None:
            return ExactlyOnceJdbcWriter(self, subtask_index, parallelism)
        return JdbcWriter(self)

    def __repr__(self) -> str:
        kind = "exactly once" if self.exactly_once_options is not None else "at least once"
        return f"JdbcSink({self.sql!r}, {kind})"


class JdbcWriter(SinkWriter):
    """At least once: rows are written in batches, each batch in its own transaction, and
    everything is written before a checkpoint is acknowledged."""

    def __init__(self, sink: JdbcSink) -> None:
        self.sink = sink
        self.connection: Any = None
        self.buffer: list[tuple] = []
        self.first_at = 0.0

    def write_batch(self, values: list) -> None:
        if not self.buffer:
            self.first_at = time.monotonic()
        self.buffer.extend(_parameters(v) for v in values)
        options = self.sink.execution_options
        interval = options.batch_interval_ms / 1000.0
        if len(self.buffer) >= options.batch_size or (
            interval > 0 and time.monotonic() - self.first_at >= interval
        ):
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows in one transaction, trying again after errors."""
        if not self.buffer:
            return
        retries = self.sink.execution_options.max_retries
        attempt = 0
        while True:
            try:
                if self.connection is None or self.connection.closed:
                    self.connection = self.sink.connection_options.connect(autocommit=False)
                with self.connection.cursor() as cursor:
                    cursor.executemany(self.sink.statement, self.buffer)
                self.connection.commit()
                self.buffer = []
                return
            except Exception:
                if self.connection is not None and not self.connection.closed:
                    try:
                        self.connection.rollback()
                    except Exception:
                        self.connection.close()
                if attempt >= retries:
                    raise
                attempt += 1
                time.sleep(min(1.0, 0.05 * 2**attempt))

    def prepare_commit(self, checkpoint_id: int) -> object:
        self.flush()
        return None

    def finish(self) -> None:
        self.flush()

    def abort(self) -> None:
        self.buffer = []

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def _parse_gid(gid: str, prefix: str) -> tuple[int, int] | None:
    """``(subtask, checkpoint)`` of one of this sink's transaction ids, else None."""
    parts = gid.split(":")
    if len(parts) != 4 or parts[0] != prefix:
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


class ExactlyOnceJdbcWriter(SinkWriter):
    """Exactly once: one transaction per checkpoint, prepared as
    ``<prefix>:<subtask>:<checkpoint>:<attempt>``. Committables are
    ``(transaction id or None, checkpoint id)``."""

    def __init__(self, sink: JdbcSink, subtask_index: int, parallelism: int) -> None:
        self.sink = sink
        self.subtask_index = subtask_index
        self.parallelism = parallelism
        self.prefix = sink.transaction_id_prefix
        self.attempt = uuid.uuid4().hex[:8]
        self.connection: Any = None
        self.control: Any = None  # autocommit: COMMIT/ROLLBACK PREPARED
        self.buffer: list[tuple] = []
        self.written = False  # rows in the open transaction
        self.restored_checkpoint = -1
        self.recovered = False
        #: prepared and not yet committed: while there are any, rows wait for the barrier, as
        #: an upsert may wait for a row lock that only their commit (on this thread) releases
        self.uncommitted: set[str] = set()

    def _control(self) -> Any:
        if self.control is None or self.control.closed:
            self.control = self.sink.connection_options.connect(autocommit=True)
        return self.control

    def _recover(self) -> None:
        """Roll back what a failed attempt prepared after the checkpoint restored from: the
        transactions of the old subtasks this one took over, for later checkpoints."""
        self.recovered = True
        control = self._control()
        with control.cursor() as cursor:
            cursor.execute(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
                "AND gid LIKE %s",
                (self.prefix + ":%",),
            )
            gids = [row[0] for row in cursor.fetchall()]
        for gid in gids:
            parsed = _parse_gid(gid, self.prefix)
            if parsed is None:
                continue
            subtask, checkpoint = parsed
            if subtask % self.parallelism == self.subtask_index and (
                checkpoint > self.restored_checkpoint
            ):
                self._finish_prepared("ROLLBACK PREPARED", gid)

    def _finish_prepared(self, command: str, gid: str) -> None:
        from psycopg import errors, sql

        try:
            self._control().execute(sql.SQL(command + " {}").format(sql.Literal(gid)))
        except errors.UndefinedObject:
            pass  # done before (a commit repeated after a restore)

    def write_batch(self, values: list) -> None:
        if not self.recovered:
            self._recover()
        self.buffer.extend(_parameters(v) for v in values)
        if len(self.buffer) >= self.sink.execution_options.batch_size and not self.uncommitted:
            self._execute()

    def _execute(self) -> None:
        if not self.buffer:
            return
        if self.connection is None:
            self.connection = self.sink.connection_options.connect(autocommit=False)
            # A row lock held by a prepared transaction whose commit notice was lost would
            # block forever: fail (and restore) instead.
            self.connection.execute("SET lock_timeout = '30s'")
            self.connection.commit()
        with self.connection.cursor() as cursor:
            cursor.executemany(self.sink.statement, self.buffer)
        self.buffer = []
        self.written = True

    def prepare_commit(self, checkpoint_id: int) -> object:
        if not self.recovered:
            self._recover()
        self._execute()
        if not self.written:
            return (None, checkpoint_id)
        self.written = False
        if checkpoint_id < 0:  # the end of a job without checkpoints: commit directly
            self.connection.commit()
            return None
        from psycopg import sql

        gid = f"{self.prefix}:{self.subtask_index}:{checkpoint_id}:{self.attempt}"
        self.connection.execute(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(gid)))
        self.uncommitted.add(gid)
        return (gid, checkpoint_id)

    def commit(self, committables: object) -> None:
        if committables is None:
            return
        gid, checkpoint_id = committables  # type: ignore[misc]
        if not self.recovered:  # called with the restored checkpoint's transactions
            self.restored_checkpoint = max(self.restored_checkpoint, checkpoint_id)
        if gid is not None:
            self._finish_prepared("COMMIT PREPARED", gid)
            self.uncommitted.discard(gid)

    def finish(self) -> None:
        self.commit(self.prepare_commit(-1))

    def abort(self) -> None:
        self.buffer = []
        if self.connection is not None and not self.connection.closed:
            try:
                self.connection.rollback()
            except Exception:
                pass

    def close(self) -> None:
        for connection in (self.connection, self.control):
            if connection is not None:
                connection.close()
