"""Storage: transactions, the engine's named statements, and the append-only ledger's database.

On a SQLite file (a ``sqlite:///path`` URL) the engine runs on the ``sqlite3`` driver alone: the
statements its operations run are named (:class:`Prepared`), written out as SQLAlchemy compiles
them for SQLite in :mod:`.sqlite_statements`, and their values converted as SQLAlchemy's column
types convert them (datetimes as SQLAlchemy's DATETIME text, JSON, booleans as 0/1), so a shop's
process never imports SQLAlchemy. On PostgreSQL (and other SQLite URLs: in memory, with options)
the same statements are built from the Core tables of :mod:`.tables` and run through SQLAlchemy.
Migrations, reports and administration use SQLAlchemy on every database (:meth:`Store.sqlalchemy_write`,
:meth:`Store.sqlalchemy_read`), and import it when they run.

Write transactions on SQLite use ``BEGIN IMMEDIATE``, so two writers never both read a balance and
then both spend it; on PostgreSQL the same code takes row locks with ``SELECT ... FOR UPDATE``.
Writers of every process using the kit also queue on an ``flock`` of ``<database>-writer`` for the
length of their transaction (see :meth:`Store.write`): SQLite's own busy handler sleeps with a
growing back-off, so a waiter would sleep on long after the lock is free.

The schema is created and upgraded by :meth:`Store.migrate` — what ``loyaltykit-local migrate``
runs — never as a side effect of importing or starting the adapter (unless its ``create_schema``
setting says so). Migrating is serialised across processes (SQLite's write lock; a PostgreSQL
advisory lock), so any number of workers booting together on a new database all start.

Database failures are :class:`DatabaseError` (:class:`IntegrityError`, :class:`OperationalError`)
on both paths, the driver's own exception in ``orig``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, overload

from loyaltykit import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as SAConnection, Engine
    from sqlalchemy.sql.expression import Executable

    #: a transaction's connection: the driver's on a SQLite file, SQLAlchemy's otherwise
    Connection: TypeAlias = sqlite3.Connection | SAConnection

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: writers wait in SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

#: The schema version this release writes (the steps are in :mod:`.tables`).
SCHEMA_VERSION = 2
MIGRATE_COMMAND = "loyaltykit-local migrate"


# ==================================================================================================
# Errors
# ==================================================================================================


class DatabaseError(Exception):
    """The database failed a statement or a transaction; ``orig`` is the driver's exception. Its text
    names the driver's error, never the statement's parameters."""

    def __init__(self, orig: BaseException, *, connection_invalidated: bool = False) -> None:
        super().__init__(f"({type(orig).__module__}.{type(orig).__name__}) {orig}")
        self.orig = orig
        self.connection_invalidated = connection_invalidated


class IntegrityError(DatabaseError):
    """A constraint refused the write (a unique key recorded before: the exactly-once guard)."""


class OperationalError(DatabaseError):
    """The database could not run it: locked past the busy timeout, unreachable, a table missing."""


def database_error(exc: BaseException) -> DatabaseError | None:
    """``exc`` as a :class:`DatabaseError` (the sqlite3 driver's or SQLAlchemy's), None when it is another error."""
    if isinstance(exc, DatabaseError):
        return exc
    if isinstance(exc, sqlite3.Error):
        kind = (IntegrityError if isinstance(exc, sqlite3.IntegrityError)
                else OperationalError if isinstance(exc, sqlite3.OperationalError) else DatabaseError)
        return kind(exc)
    sa = sys.modules.get("sqlalchemy.exc")  # loaded when anything could raise its errors
    if sa is not None and isinstance(exc, sa.SQLAlchemyError):
        kind = (IntegrityError if isinstance(exc, sa.IntegrityError)
                else OperationalError if isinstance(exc, sa.OperationalError) else DatabaseError)
        return kind(getattr(exc, "orig", None) or exc,
                    connection_invalidated=bool(getattr(exc, "connection_invalidated", False)))
    return None


@contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        error = database_error(exc)
        if error is None or error is exc:
            raise
        raise error from exc


# ==================================================================================================
# Values as SQLAlchemy's SQLite types store and read them
# ==================================================================================================


def to_db(moment: datetime | None) -> datetime | None:
    """Stored as naive UTC: portable across SQLite (no zones) and PostgreSQL."""
    if moment is None:
        return None
    if moment.tzinfo is not None and moment.tzinfo is not UTC:  # (the engine's own clock is in UTC already)
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


@overload
def from_db(moment: datetime) -> datetime: ...
@overload
def from_db(moment: datetime | None) -> datetime | None: ...


def from_db(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None


#: SQLAlchemy's SQLite DATETIME storage format
_DATETIME_FORMAT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


#: texts of the naive datetimes bound lately: a write binds the same moment to several rows (an
#: order, its ledger rows); equal naive datetimes have the same text (aware ones are not kept: equal
#: instants in two zones are stored with different texts)
_DATETIME_TEXTS: dict[datetime, str] = {}
#: JSON texts of lists of strings bound lately (the rules of an order, a customer's segments)
_JSON_TEXTS: dict[tuple[str, ...], str] = {}
_TEXTS_KEPT = 256


def _datetime_text(value: Any) -> str | None:
    """As SQLAlchemy's SQLite DATETIME binds a value; a naive datetime through ``isoformat``, the
    same text in half the time."""
    if value is None:
        return None
    if type(value) is datetime and value.tzinfo is None:
        text = _DATETIME_TEXTS.get(value)
        if text is None:
            if len(_DATETIME_TEXTS) >= _TEXTS_KEPT:
                _DATETIME_TEXTS.clear()
            text = _DATETIME_TEXTS[value] = value.isoformat(" ", "microseconds")
        return text
    if isinstance(value, datetime):
        return _DATETIME_FORMAT % (value.year, value.month, value.day, value.hour, value.minute, value.second,
                                   value.microsecond)
    if isinstance(value, date):
        return _DATETIME_FORMAT % (value.year, value.month, value.day, 0, 0, 0, 0)
    raise TypeError("SQLite DateTime type only accepts Python datetime and date objects as input.")


def _text_datetime(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _json_text(value: Any) -> str:
    # None is JSON null, as SQLAlchemy's JSON type (none_as_null=False) stores it
    if type(value) is list and all(type(item) is str for item in value):
        # only lists of plain strings are kept: equal keys of other items may have different texts (1, 1.0, True)
        key = tuple(value)
        text = _JSON_TEXTS.get(key)
        if text is None:
            if len(_JSON_TEXTS) >= _TEXTS_KEPT:
                _JSON_TEXTS.clear()
            text = _JSON_TEXTS[key] = json.dumps(value)
        return text
    return json.dumps(value)


def _text_json(value: Any) -> Any:
    return None if value is None else json.loads(value)


_BOOLEANS = frozenset((None, True, False))


def _boolean_int(value: Any) -> int | None:
    if value not in _BOOLEANS:
        if not isinstance(value, int):
            raise TypeError(f"Not a boolean value: {value!r}")
        raise ValueError(f"Value {value!r} is not None, True, or False")
    return None if value is None else int(value)


def _int_boolean(value: Any) -> bool | None:
    return None if value is None else bool(value)


#: how a parameter of each kind goes to the driver, and a selected column of each kind comes back
#: (the kinds :mod:`.statements` writes into :mod:`.sqlite_statements`)
_BIND: dict[str, Callable[[Any], Any]] = {"datetime": _datetime_text, "json": _json_text, "bool": _boolean_int}
_RESULT: dict[str, Callable[[Any], Any]] = {"datetime": _text_datetime, "json": _text_json, "bool": _int_boolean}


# ==================================================================================================
# Named statements
# ==================================================================================================


class Rows:
    """What a :class:`Prepared` statement returned: its rows (``row.column``), the id an INSERT of one
    row wrote, the rows an UPDATE changed."""

    __slots__ = ("inserted_id", "rowcount", "rows")

    def __init__(self, rows: list[Any], inserted_id: int | None = None, rowcount: int = -1) -> None:
        self.rows = rows
        self.inserted_id = inserted_id
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise AssertionError(f"expected one row, got {len(self.rows)}")
        return self.rows[0][0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]


class _OnSqlite(NamedTuple):
    sql: str
    values: Callable[[dict[str, Any]], list[Any]]  # a parameter dict to the statement's positional values
    row: Any  # the named tuple class of a result row (None: the statement returns no rows)
    results: list[tuple[int, Callable[[Any], Any]]]  # (column, conversion) where a column has one
    verb: str  # select | insert | update


def _binder(names: list[str], processes: list[Callable[[Any], Any] | None],
            defaults: dict[str, Any]) -> Callable[[dict[str, Any]], list[Any]]:
    """The statement's positional values from a parameter dict: each converted as its column's type
    says, a constant of the statement (a literal compared with, a LIMIT) unless given."""
    if not names:
        return lambda one: []
    pick = itemgetter(*names)
    single = len(names) == 1
    processed = [(index, process) for index, process in enumerate(processes) if process is not None]

    def values(one: dict[str, Any]) -> list[Any]:
        picked = pick({**defaults, **one} if defaults else one)
        out = [picked] if single else list(picked)
        for index, process in processed:
            out[index] = process(out[index])
        return out

    return values


#: the named tuple class of each list of selected columns: statements selecting the same columns
#: share one (creating a class costs ~50 us, paid by every process before its first write)
_ROW_CLASSES: dict[tuple[str, ...], Any] = {}


def _row_class(columns: tuple[str, ...]) -> Any:
    found = _ROW_CLASSES.get(columns)
    if found is None:
        found = _ROW_CLASSES[columns] = namedtuple("Row", columns, rename=True)
    return found


#: every Prepared statement alive, loaded by a SQLite store before its first write transaction
_PREPARED: weakref.WeakSet[Prepared] = weakref.WeakSet()


class Prepared:
    """A statement of the engine's operations, by its name in :mod:`.statements`.

    On a SQLite file's connection (the driver's) it runs the SQL SQLAlchemy compiles for it, written
    out in :mod:`.sqlite_statements`, on the driver, inside the connection's transaction, with each
    value converted as the column's SQLAlchemy type converts it: rows are stored and read exactly as
    ``Connection.execute`` would, without SQLAlchemy's execution machinery (several times what SQLite
    takes to run these small statements). On a SQLAlchemy connection it is built from the Core
    tables and run through SQLAlchemy as usual.
    """

    __slots__ = ("__weakref__", "_on_sqlite", "_statement", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._on_sqlite: _OnSqlite | None = None
        self._statement: Executable | None = None
        _PREPARED.add(self)

    def __repr__(self) -> str:
        return f"Prepared({self.name!r})"

    def statement(self) -> Executable:
        """The SQLAlchemy statement (built on first use: it imports SQLAlchemy)."""
        if self._statement is None:
            from .statements import BUILDERS

            self._statement = BUILDERS[self.name]()[0]
        return self._statement

    def on_sqlite(self) -> _OnSqlite:
        found = self._on_sqlite
        if found is None:
            from .sqlite_statements import STATEMENTS

            spec = STATEMENTS[self.name]
            binds = [_BIND[kind] if kind else None for kind in spec["binds"]]
            row = _row_class(tuple(str(key) for key in spec["columns"])) if spec["verb"] == "select" else None
            results = [(index, _RESULT[kind]) for index, kind in spec["results"]]
            found = self._on_sqlite = _OnSqlite(spec["sql"], _binder(list(spec["params"]), binds, spec["defaults"]),
                                                row, results, spec["verb"])
        return found

    def bind(self, params: dict[str, Any] | list[dict[str, Any]], *, driver: bool) -> Bound:
        """The statement with its parameters turned into the driver's values now, before the
        transaction that runs it (``driver``: the store runs on the sqlite3 driver; otherwise the
        parameters are taken when it runs)."""
        if not driver:
            return Bound(self, params, None)
        values = self.on_sqlite().values
        return Bound(self, params, [values(one) for one in params] if isinstance(params, list) else values(params))

    def run(self, conn: Connection, params: dict[str, Any] | list[dict[str, Any]]) -> Rows:
        if not isinstance(conn, sqlite3.Connection):
            return self._run_sqlalchemy(conn, params)
        sql, values, row, results, verb = self.on_sqlite()
        try:
            if isinstance(params, list):
                conn.executemany(sql, [values(one) for one in params])
                return Rows([])
            cursor = conn.execute(sql, values(params))
            if verb == "insert":
                return Rows([], cursor.lastrowid)
            if verb == "update":
                return Rows([], rowcount=cursor.rowcount)
            fetched = cursor.fetchall()
        except sqlite3.Error as exc:
            raise database_error(exc) from exc  # type: ignore[misc]
        if not results:
            return Rows([row._make(one) for one in fetched])
        rows = []
        for one in fetched:
            out = list(one)
            for index, process in results:
                out[index] = process(out[index])
            rows.append(row._make(out))
        return Rows(rows)

    def first_raw(self, conn: sqlite3.Connection, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """On the sqlite3 driver: the first row as the driver returns it, before any column is
        converted (equal raw rows convert to equal rows); :meth:`row_of` converts it."""
        sql, values, _row, _results, _verb = self.on_sqlite()
        try:
            found: tuple[Any, ...] | None = conn.execute(sql, values(params)).fetchone()
        except sqlite3.Error as exc:
            raise database_error(exc) from exc  # type: ignore[misc]
        return found

    def row_of(self, raw: tuple[Any, ...]) -> Any:
        """A row :meth:`first_raw` returned, as :meth:`run` returns it."""
        _sql, _values, row, results, _verb = self.on_sqlite()
        out = list(raw)
        for index, process in results:
            out[index] = process(out[index])
        return row._make(out)

    def _run_sqlalchemy(self, conn: SAConnection, params: dict[str, Any] | list[dict[str, Any]]) -> Rows:
        from sqlalchemy.sql.expression import Insert, Update

        statement = self.statement()
        with _database_errors():
            result = conn.execute(statement, params)
            if isinstance(statement, Insert):
                key = result.inserted_primary_key if isinstance(params, dict) else None
                return Rows([], key[0] if key and isinstance(key[0], int) else None)  # (not a code: a row id)
            if isinstance(statement, Update):
                return Rows([], rowcount=result.rowcount)
            return Rows(list(result))


class Bound:
    """A :class:`Prepared` INSERT and its parameters, bound by :meth:`Prepared.bind`."""

    __slots__ = ("params", "prepared", "values")

    def __init__(self, prepared: Prepared, params: dict[str, Any] | list[dict[str, Any]], values: Any) -> None:
        self.prepared = prepared
        self.params = params
        self.values = values

    def run(self, conn: Connection) -> Rows:
        """Run it (an INSERT: the id it wrote when one row)."""
        if self.values is None or not isinstance(conn, sqlite3.Connection):
            return self.prepared.run(conn, self.params)
        sql = self.prepared.on_sqlite().sql
        try:
            if isinstance(self.params, list):
                conn.executemany(sql, self.values)
                return Rows([])
            return Rows([], conn.execute(sql, self.values).lastrowid)
        except sqlite3.Error as exc:
            raise database_error(exc) from exc  # type: ignore[misc]


# ==================================================================================================
# Connections
# ==================================================================================================


def sqlite_file(url: str) -> str | None:
    """The database file of a plain SQLite file URL (``sqlite:///path``), which the engine opens on the
    driver itself; None for any other URL (another database, SQLite in memory or with options)."""
    scheme, found, rest = url.partition("://")
    if not found or scheme not in ("sqlite", "sqlite+pysqlite") or not rest.startswith("/"):
        return None
    path = rest[1:]
    if path in ("", ":memory:") or path.startswith("file:") or any(char in path for char in "?#%"):
        return None
    return path


def make_sql_engine(
    url: str,
    *,
    busy_timeout_ms: int = 30_000,
    synchronous: str = "NORMAL",
    pool_size: int = 10,
    echo: bool = False,
    creator: Callable[[], sqlite3.Connection] | None = None,
) -> Engine:
    """A SQLAlchemy engine; on SQLite its connections as the engine's own (WAL, the busy timeout,
    BEGIN issued by the store). ``creator``: connections of a SQLite file made by the store."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import StaticPool

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, echo=echo)

    memory = _is_memory(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if creator is not None:
        kwargs.update(creator=creator, pool_size=pool_size, max_overflow=pool_size * 2,
                      pool_timeout=busy_timeout_ms / 1000)
    else:
        if not memory and parsed.database:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        if memory:
            kwargs["poolclass"] = StaticPool  # one shared connection, else each one sees its own empty database
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2, pool_timeout=busy_timeout_ms / 1000)
    engine = create_engine(parsed, **kwargs)

    if creator is None:
        @event.listens_for(engine, "connect")
        def _setup(dbapi_connection: Any, _record: Any) -> None:
            _set_up(dbapi_connection, wal=not memory, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)

    @event.listens_for(engine, "begin")
    def _begin(connection: SAConnection) -> None:
        # IMMEDIATE takes the write lock at BEGIN: a writer that reads a balance keeps it until commit.
        mode = connection.get_execution_options().get("loyaltykit_begin", "DEFERRED")
        driver = connection.connection.driver_connection
        # On the driver: SQLAlchemy's statement machinery would cost more than SQLite's BEGIN.
        with _database_errors():
            driver.execute(f"BEGIN {mode}")  # type: ignore[union-attr]

    return engine


def _set_up(driver: sqlite3.Connection, *, wal: bool, synchronous: str, busy_timeout_ms: int) -> None:
    # Take transaction control from the sqlite3 module: the store issues BEGIN itself.
    driver.isolation_level = None
    if wal:
        driver.execute("PRAGMA journal_mode=WAL")
    driver.execute(f"PRAGMA synchronous={synchronous}")
    driver.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


def _is_memory(url: str) -> bool:
    scheme, _, rest = url.partition("://")
    return scheme.split("+")[0] == "sqlite" and (rest in ("", "/", "/:memory:") or "mode=memory" in rest)


#: SQLite's default: WAL pages that trigger a checkpoint at commit
_AUTOCHECKPOINT = 1000
#: write transactions of one writer between its own checkpoints (about 10 pages each)
_CHECKPOINT_EVERY = 100
#: WAL frames past which a writer checkpoints with the gate closed, so that the WAL starts over
_WAL_FRAMES_MAX = 4 * _AUTOCHECKPOINT
#: how long that writer keeps the gate closed waiting for another connection's checkpoint to end (s)
_GATED_CHECKPOINT_WAIT = 0.1


class _Writer:
    """A connection kept for write transactions (SQLite file databases), with its own descriptor of
    the writers' gate file (``flock`` locks of distinct descriptors exclude each other, threads too)."""

    __slots__ = ("commits", "driver", "gate", "wal_frames")

    def __init__(self, driver: sqlite3.Connection, gate: int | None) -> None:
        self.driver = driver
        self.gate = gate
        self.commits = 0
        self.wal_frames = 0  # the WAL's length at this writer's last checkpoint
        if gate is not None:
            # SQLite checkpoints inside the COMMIT that fills the WAL, which would hold the gate over
            # its disk syncs: this writer checkpoints after it has opened the gate instead.
            driver.execute("PRAGMA wal_autocheckpoint=0")

    def committed(self) -> None:
        """After the gate is open again: copy the WAL back into the database now and then (PASSIVE:
        it never waits for, nor blocks, other writers).

        A checkpoint that other writers append to while it runs never catches up, and SQLite starts
        the WAL over only once all of it is copied: with writers in several processes the WAL would
        grow for as long as they keep writing. Once it is past ``_WAL_FRAMES_MAX``, the next
        checkpoint runs with the gate closed (taken only if free, never waited for), so it completes
        and the next transaction starts the WAL from its beginning."""
        self.commits += 1
        gate = self.gate
        if gate is None:
            return
        if self.wal_frames > _WAL_FRAMES_MAX:
            try:
                fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a writer is in: after the next commit
            try:
                # another writer's checkpoint (outside the gate) may be running: it ends soon, as
                # nothing is appended to the WAL while the gate is closed
                deadline = time.monotonic() + _GATED_CHECKPOINT_WAIT
                while (copied := self._checkpoint()) is None and time.monotonic() < deadline:
                    time.sleep(0.001)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
            if copied is not None:  # else after the next commit
                self.wal_frames = 0  # one such checkpoint per period at most (an old reader may hold it back)
        elif self.commits % _CHECKPOINT_EVERY == 0:
            frames = self._checkpoint()
            if frames is not None:
                self.wal_frames = frames

    def _checkpoint(self) -> int | None:
        """Frames in the WAL as the checkpoint found it; None when it could not run (busy)."""
        try:
            busy, frames, _copied = self.driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return None
        return None if busy and frames < 0 else int(frames)

    def close(self) -> None:
        try:
            self.driver.close()
        finally:
            if self.gate is not None:
                os.close(self.gate)
                self.gate = None




class Store:
    """The engine's database: its two kinds of transaction, and SQLAlchemy's for migrations and administration."""

    def __init__(self, url: str, *, create: bool = True, **engine_options: Any) -> None:
        """``create``: migrate the schema now (tests, the demo, a one-process app); else it is only checked
        when :meth:`check_schema` is called."""
        self.url = url
        self._options = engine_options
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._busy_timeout_ms = int(engine_options.get("busy_timeout_ms", 30_000))
        self._busy_timeout = self._busy_timeout_ms / 1000
        self._synchronous = str(engine_options.get("synchronous", "NORMAL"))
        #: the SQLite file the engine opens on the driver itself (None: every statement through SQLAlchemy)
        self.path = sqlite_file(url)
        self.on_driver = self.path is not None
        if self.path is not None or url.partition("://")[0].split("+")[0] == "sqlite":
            self.dialect = "sqlite"
        else:
            self.dialect = self.engine.dialect.name
        # An in-memory SQLite database is one connection: serialise its users.
        self._serial = threading.RLock() if _is_memory(url) else None
        # SQLite files: connections kept between transactions (BEGIN and COMMIT on the driver)
        self._writers: list[_Writer] | None = [] if self.on_driver else None
        self._readers: list[sqlite3.Connection] = []
        # ... and writers, threads and processes alike, queue on an flock of a file beside the database
        # for the few statements of their transaction: the next one wakes when the gate opens, where
        # SQLite's busy handler would sleep 1, 2, 5, 10 ... ms between tries.
        self._gate_path = f"{self.path}-writer" if self.path is not None and fcntl is not None else None
        self._writers_lock = threading.Lock()
        self._writers_pid = os.getpid()
        self._forked_away: list[Any] = []
        self._writers_kept = max(1, min(int(engine_options.get("pool_size", 10)), 4))
        self._readers_kept = max(1, int(engine_options.get("pool_size", 10)))
        if self.path is not None:
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        if create:
            self.migrate()

    # -- SQLAlchemy (migrations, administration, other databases) -------------------------------------
    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (made on first use: it imports SQLAlchemy). On a SQLite file its
        connections are made as the store makes its own."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    options = {key: value for key, value in self._options.items()
                               if key in ("busy_timeout_ms", "synchronous", "pool_size", "echo")}
                    self._engine = make_sql_engine(self.url, **options,
                                                   creator=self._connect if self.path is not None else None)
        return self._engine

    def _connect(self) -> sqlite3.Connection:
        """A connection to the SQLite file, set up as every connection of the engine is."""
        if self.path is None:
            raise AssertionError("only a SQLite file store connects on the driver")
        try:
            driver = sqlite3.connect(self.path, timeout=self._busy_timeout, check_same_thread=False,
                                     isolation_level=None)
            _set_up(driver, wal=True, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms)
        except sqlite3.Error as exc:
            raise database_error(exc) from exc  # type: ignore[misc]
        return driver

    @contextmanager
    def sqlalchemy_write(self) -> Iterator[SAConnection]:
        """A SQLAlchemy write transaction (administration): commits on success, rolls back on any
        exception; on a SQLite file it queues on the writers' gate as :meth:`write` does."""
        gate = None
        if self._gate_path is not None:
            with suppress(OSError):  # a read-only directory: wait in SQLite's busy handler instead
                gate = os.open(self._gate_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            if gate is not None:
                self._enter_gate(gate)
            with _database_errors(), self._serialised(), self.engine.connect() as connection:
                connection.execution_options(loyaltykit_begin="IMMEDIATE")
                with connection.begin():
                    yield connection
        finally:
            if gate is not None:
                os.close(gate)  # and its lock with it

    @contextmanager
    def sqlalchemy_read(self) -> Iterator[SAConnection]:
        """A SQLAlchemy read-only transaction (reports, administration): one consistent snapshot."""
        with _database_errors(), self._serialised(), self.engine.connect() as connection:
            transaction = connection.begin()
            try:
                yield connection
            finally:
                transaction.rollback()  # a read has nothing to commit

    # -- schema -------------------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        """The version this database is migrated to; None when it has no loyaltykit schema."""
        if self.path is None:
            with self._serialised(), self.engine.connect() as connection:
                return self._version_in(connection)
        driver = self._take_reader()
        healthy = False
        try:
            if driver.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lk_schema'").fetchone() is None:
                version = None
            else:
                version = _SCHEMA_VERSION.run(driver, {}).first()
                version = version[0] if version is not None else None
            healthy = True
            return version
        finally:
            self._give_reader(driver, healthy=healthy)

    @staticmethod
    def _version_in(connection: SAConnection) -> int | None:
        from sqlalchemy import inspect, select

        from .tables import schema_versions

        if not inspect(connection).has_table(schema_versions.name):
            return None
        return connection.execute(select(schema_versions.c.version).where(schema_versions.c.id == 1)).scalar()

    def check_schema(self) -> None:
        """Refuse to start on a database that is not migrated to this release's schema."""
        try:
            version = self.schema_version()
        except Exception as exc:
            sa = sys.modules.get("sqlalchemy.exc")
            if isinstance(exc, (sqlite3.OperationalError, sqlite3.ProgrammingError)):
                orig: BaseException = exc
            elif sa is not None and isinstance(exc, (sa.OperationalError, sa.ProgrammingError)):
                orig = exc.orig
            else:
                raise
            raise ConfigError(f"the embedded engine's database cannot be read: {type(orig).__name__}") from exc
        if version is None:
            raise ConfigError(f"the embedded engine's database has no schema yet: run `{MIGRATE_COMMAND}` "
                              "(or set create_schema = true)")
        if version < SCHEMA_VERSION:
            raise ConfigError(f"the embedded engine's database is at schema version {version}, this release "
                              f"needs {SCHEMA_VERSION}: run `{MIGRATE_COMMAND}`")
        if version > SCHEMA_VERSION:
            raise ConfigError(f"the embedded engine's database is at schema version {version}, newer than this "
                              f"release ({SCHEMA_VERSION}): upgrade loyaltykit-local")

    def migrate(self) -> int:
        """Create or upgrade the schema to :data:`SCHEMA_VERSION`; returns the version it started from (0: none).

        One migrator at a time: on SQLite the write lock is taken first (``BEGIN IMMEDIATE``), on
        PostgreSQL a transaction-scoped advisory lock; the others wait, then find nothing to do.
        """
        from sqlalchemy import text

        from .tables import STEPS, metadata, schema_versions

        with _database_errors(), self._serialised(), self.engine.connect() as connection:
            connection.execution_options(loyaltykit_begin="IMMEDIATE")
            with connection.begin():
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('loyaltykit_local_schema'))"))
                before = self._version_in(connection) or 0
                if before > SCHEMA_VERSION:
                    raise ConfigError(f"the database is at schema version {before}, newer than this release")
                if before < SCHEMA_VERSION:
                    if before > 0:  # an older schema: each step since its version, in order
                        for version in range(before + 1, SCHEMA_VERSION + 1):
                            STEPS[version](connection)
                    metadata.create_all(connection)  # a new database whole; tables later versions added
                    now = datetime.now(UTC).replace(tzinfo=None)
                    if before == 0:
                        connection.execute(schema_versions.insert().values(id=1, version=SCHEMA_VERSION, migrated_at=now))
                    else:
                        connection.execute(schema_versions.update().where(schema_versions.c.id == 1)
                                           .values(version=SCHEMA_VERSION, migrated_at=now))
                return before

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        if self._serial is None:
            yield
        else:
            with self._serial:
                yield

    # -- the engine's transactions ------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on any exception. On a SQLite file the
        driver's connection (run :class:`Prepared` statements on it), else SQLAlchemy's."""
        if self._writers is None:
            with self.sqlalchemy_write() as connection:
                yield connection
            return
        # SQLite: a connection kept from the last write, BEGIN IMMEDIATE and COMMIT on the driver.
        writer = self._take_writer()
        driver = writer.driver
        committed = healthy = False
        try:
            if writer.gate is not None:
                self._enter_gate(writer.gate)
            try:
                driver.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:  # busy past the timeout: the OperationalError callers expect
                raise database_error(exc) from exc  # type: ignore[misc]
            try:
                yield driver
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    driver.rollback()
                # the caller's own error (a balance too low, a voucher used up) rolled back: the
                # connection is kept, a new one costs more than the transaction
                healthy = not isinstance(exc, sqlite3.Error | DatabaseError) and not driver.in_transaction
                if isinstance(exc, sqlite3.Error):
                    raise database_error(exc) from exc  # type: ignore[misc]
                raise
            try:
                driver.execute("COMMIT")
            except sqlite3.Error as exc:
                with suppress(sqlite3.Error):
                    driver.rollback()
                raise database_error(exc) from exc  # type: ignore[misc]
            committed = healthy = True
        finally:
            if writer.gate is not None:
                fcntl.flock(writer.gate, fcntl.LOCK_UN)
            if committed:
                writer.committed()
            self._give_writer(writer, healthy=healthy)

    def _enter_gate(self, gate: int) -> None:
        """Take the writers' gate, waiting at most the busy timeout, as SQLite's own lock would: a
        writer stuck inside its transaction makes the others fail with "database is locked", never
        hang. The wait polls in steps of at most 1 ms (SQLite's busy handler sleeps up to 100 ms)."""
        try:
            fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.00005
        while True:
            time.sleep(pause)
            try:
                fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    exc = sqlite3.OperationalError("database is locked")
                    raise OperationalError(exc) from exc
                pause = min(pause * 2, 0.001)

    @contextmanager
    def savepoint(self, connection: Connection) -> Iterator[None]:
        """A part of a write transaction that fails alone: on an exception, what it wrote is undone
        and the exception goes on; the rest of the transaction stands."""
        if not isinstance(connection, sqlite3.Connection):
            with _database_errors(), connection.begin_nested():
                yield
            return
        connection.execute("SAVEPOINT lk_part")
        try:
            yield
        except BaseException:
            connection.execute("ROLLBACK TO lk_part")
            connection.execute("RELEASE lk_part")
            raise
        connection.execute("RELEASE lk_part")

    def _forked(self) -> None:
        """In a forked child: the parent's connections and gate descriptors are the parent's (one
        SQLite connection in two processes corrupts; a shared descriptor shares its flock). Kept
        referenced, never used or closed here. Called with the writers' lock held."""
        if self._writers_pid != os.getpid():
            self._forked_away.extend(self._writers or ())
            self._forked_away.extend(self._readers)
            self._writers = []
            self._readers = []
            self._writers_pid = os.getpid()

    def _take_writer(self) -> _Writer:
        with self._writers_lock:
            self._forked()
            if self._writers:
                return self._writers.pop()
        driver = self._connect()
        self._warm(driver)
        gate = None
        if self._gate_path is not None:
            try:
                gate = os.open(self._gate_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError:
                gate = None  # a read-only directory: writers wait in SQLite's busy handler instead
        return _Writer(driver, gate)

    def _warm(self, driver: sqlite3.Connection) -> None:
        """What a process would otherwise do inside its first write transaction, while every other
        writer waits at the gate: load the prepared statements and read the schema into the new
        connection."""
        for prepared in list(_PREPARED):
            prepared.on_sqlite()
        with suppress(sqlite3.Error):  # busy or unreadable: the transaction will say so itself
            driver.execute("SELECT 1 FROM sqlite_master WHERE 0").fetchall()

    def _give_writer(self, writer: _Writer, *, healthy: bool) -> None:
        if healthy and self._writers is not None:
            with self._writers_lock:
                if len(self._writers) < self._writers_kept and self._writers_pid == os.getpid():
                    self._writers.append(writer)
                    return
        writer.close()

    def _take_reader(self) -> sqlite3.Connection:
        with self._writers_lock:
            self._forked()
            if self._readers:
                return self._readers.pop()
        return self._connect()

    def _give_reader(self, driver: sqlite3.Connection, *, healthy: bool) -> None:
        if healthy and not driver.in_transaction:
            with self._writers_lock:
                if len(self._readers) < self._readers_kept and self._writers_pid == os.getpid():
                    self._readers.append(driver)
                    return
        with suppress(sqlite3.Error):
            driver.close()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot for several queries. On a SQLite file the
        driver's connection, else SQLAlchemy's."""
        if self.path is None:
            with self.sqlalchemy_read() as connection:
                yield connection
            return
        driver = self._take_reader()
        failed = True  # the connection failed: closed, not kept
        try:
            try:
                driver.execute("BEGIN")
                failed = False
                yield driver
            except sqlite3.Error as exc:
                failed = True
                raise database_error(exc) from exc  # type: ignore[misc]
            except DatabaseError:
                failed = True
                raise
        finally:
            if driver.in_transaction:
                try:
                    driver.execute("ROLLBACK")  # a read has nothing to commit
                except sqlite3.Error:
                    failed = True
            # kept after the caller's own error too (a customer not found): a new connection costs
            # more than the read
            self._give_reader(driver, healthy=not failed)

    def reset(self) -> None:
        """Drop and recreate every table (tests and the demo)."""
        from .tables import metadata

        with self._serialised():
            metadata.drop_all(self.engine)
        self.migrate()

    def dispose(self) -> None:
        with self._writers_lock:
            writers, self._writers = list(self._writers or ()), ([] if self._writers is not None else None)
            readers, self._readers = list(self._readers), []
        for writer in writers:
            writer.close()
        for reader in readers:
            with suppress(sqlite3.Error):
                reader.close()
        if self._engine is not None:
            self._engine.dispose()


_SCHEMA_VERSION = Prepared("schema_version")
