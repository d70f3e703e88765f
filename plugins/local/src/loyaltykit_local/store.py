"""Storage: SQLAlchemy Core tables, transactions, and the append-only ledger.

The engine's SQL is portable (SQLAlchemy Core, no dialect-specific statements); only the
connection setup knows SQLite: WAL journal, a busy timeout, and ``BEGIN IMMEDIATE`` for write
transactions so two writers never both read a balance and then both spend it. On PostgreSQL the
same code takes row locks with ``SELECT ... FOR UPDATE`` (SQLite ignores that clause; its write
lock already serialises writers).

The schema is created and upgraded by :meth:`Store.migrate` — what ``loyaltykit-local migrate``
runs — never as a side effect of importing or starting the adapter (unless its ``create_schema``
setting says so). Migrating is serialised across processes (SQLite's write lock; a PostgreSQL
advisory lock), so any number of workers booting together on a new database all start.

On a SQLite file, writers of every process using the kit also queue on an ``flock`` of
``<database>-writer`` for the length of their transaction (see :meth:`Store.write`): SQLite's own
busy handler sleeps with a growing back-off, so a waiter would sleep on long after the lock is free.

Amounts are stored as integers: points are whole points, cashback is in the currency's minor
units. Ledger rows are only ever inserted; balances are sums over them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.expression import Executable, Insert
from sqlalchemy.types import TypeEngine

from loyaltykit import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: writers wait in SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

metadata = MetaData()

customers = Table(
    "lk_customers",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("membership_number", String(128), unique=True),
    Column("email", String(254), unique=True),
    Column("phone", String(32), unique=True),
    Column("card", String(64), unique=True),
    Column("external_id", String(128), unique=True),
    Column("display_name", String(256)),
    Column("role", String(64)),
    Column("tier", String(64)),  # an assigned tier: a floor under the tier earned by qualifying points
    Column("segments", JSON, nullable=False, default=list),
    Column("status", String(32), nullable=False, default="active"),
    Column("created_at", DateTime, nullable=False),
    # Up to when expired points have been written to the ledger (a cursor, not a balance).
    Column("expiry_recorded_until", DateTime),
    # What "first order" and "not previously granted" ask, kept on the row an export locks and reads
    # anyway (since version 2): whether an order of the customer's is recorded (lk_orders), and the
    # rules granted to the customer (lk_grants), as a sorted list.
    Column("ordered", Boolean, default=False),
    Column("granted_rules", JSON),
)

ledger = Table(
    "lk_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("balance", String(16), nullable=False),  # "points" | "cashback"
    Column("currency", String(3)),  # cashback only
    Column("entry", String(16), nullable=False),  # earn | burn | expire | reverse
    Column("amount", BigInteger, nullable=False),  # signed: points, or cashback minor units
    Column("order_ref", String(128)),
    Column("write_key", String(128)),
    Column("label", String(256)),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime),  # credited points only
    # One index serves every look-up by customer: balances (customer, balance[, currency]) and lots
    # expired in a window (customer, "points", expires_at range). Each index costs every earn row a write.
    Index("lk_ledger_account", "customer_id", "balance", "expires_at", "currency"),
    Index("lk_ledger_order", "order_ref"),
)

vouchers = Table(
    "lk_vouchers",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("definition", JSON, nullable=False),  # a program.VoucherDef
    Column("owner_id", String(128)),
    Column("offer_kind", String(32)),  # set for wallet offers
    Column("usage_limit", Integer),  # NULL: unlimited
    Column("uses", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Index("lk_vouchers_owner", "owner_id"),
)

redemptions = Table(
    "lk_redemptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False),
    Column("order_ref", String(128), nullable=False),
    Column("customer_id", String(128)),
    Column("write_key", String(128), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # redeemed | reinstated
    Column("created_at", DateTime, nullable=False),
    Index("lk_redemptions_order", "order_ref"),
    Index("lk_redemptions_code", "code"),
)

writes = Table(
    # One row per keyed write: the key's unique constraint is what makes a write exactly-once.
    "lk_writes",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("operation", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("order_ref", String(128)),
    Column("result", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

orders = Table(
    "lk_orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", String(128), nullable=False, unique=True),
    Column("write_key", String(128), nullable=False, unique=True),
    Column("customer_id", String(128)),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("points_earned", BigInteger, nullable=False, default=0),
    Column("cashback_earned_minor", BigInteger, nullable=False, default=0),
    Column("rules", JSON, nullable=False, default=list),
    Column("placed_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

grants = Table(
    # The order in which a rule first benefited a customer (the rules of every order are in
    # lk_orders.rules; the customer's row lists the rules granted).
    "lk_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("order_ref", String(128), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("customer_id", "rule_id", "order_ref", name="lk_grants_once"),
)

schema_versions = Table(
    # One row: the schema version this database has been migrated to.
    "lk_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("migrated_at", DateTime, nullable=False),
)


member_profiles = Table(
    # What enrolment adds to a customer: profile fields and consents (one row per enrolled member).
    "lk_member_profiles",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("first_name", String(128)),
    Column("last_name", String(128)),
    Column("language", String(16)),
    Column("birth_date", DateTime),
    Column("consents", JSON, nullable=False, default=list),
    Column("profile", JSON, nullable=False, default=dict),
    Column("enrolled_at", DateTime, nullable=False),
)

member_events = Table(
    # A member's history beside the ledger: tier changes and vouchers issued (append-only).
    "lk_member_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # tier_change | voucher
    Column("tier", String(64)),
    Column("code", String(64)),
    Column("rule_id", String(128)),
    Column("order_ref", String(128)),
    Column("label", String(256)),
    Column("created_at", DateTime, nullable=False),
    Index("lk_member_events_customer", "customer_id", "created_at"),
)

rule_costs = Table(
    # What each rule gave away on each exported order (discounts, in minor units): the report's cost.
    "lk_rule_costs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_ref", String(128), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("discount_minor", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("lk_rule_costs_rule", "rule_id"),
)

TABLES = (customers, ledger, vouchers, redemptions, writes, orders, grants, member_profiles, member_events,
          rule_costs)



def _version_2(connection: Connection) -> None:
    """Version 2: fewer index writes per exported order.

    * the ledger's two indexes by customer, (customer, balance, currency) and (customer, expires_at),
      become ``lk_ledger_account``;
    * whether a customer ordered before and the rules granted to it move onto the customer's row
      (filled from lk_orders and lk_grants), so ``lk_orders_customer`` goes.
    """
    connection.execute(text("DROP INDEX IF EXISTS lk_ledger_customer"))
    connection.execute(text("DROP INDEX IF EXISTS lk_ledger_expiry"))
    next(index for index in ledger.indexes if index.name == "lk_ledger_account").create(connection, checkfirst=True)
    for column in (customers.c.ordered, customers.c.granted_rules):
        ddl = CreateColumn(column).compile(dialect=connection.dialect)
        connection.execute(text(f"ALTER TABLE {customers.name} ADD COLUMN {ddl}"))
    connection.execute(update(customers).values(
        ordered=select(orders.c.id).where(orders.c.customer_id == customers.c.id).exists()))
    granted: dict[str, set[str]] = {}
    for customer_id, rule_id in connection.execute(select(grants.c.customer_id, grants.c.rule_id).distinct()):
        granted.setdefault(customer_id, set()).add(rule_id)
    if granted:
        connection.execute(update(customers).where(customers.c.id == bindparam("who"))
                           .values(granted_rules=bindparam("rules")),
                           [{"who": who, "rules": sorted(rules)} for who, rules in granted.items()])
    connection.execute(text("DROP INDEX IF EXISTS lk_orders_customer"))


#: The steps from one schema version to the next: ``_STEPS[n]`` takes a database from n - 1 to n
#: (version 1 is the tables as first released, created whole).
_STEPS: dict[int, Callable[[Connection], None]] = {2: _version_2}

#: The schema version this release writes. Raise it with each migration step added to ``_STEPS``.
SCHEMA_VERSION = 2
MIGRATE_COMMAND = "loyaltykit-local migrate"


def to_db(moment: datetime | None) -> datetime | None:
    """Stored as naive UTC: portable across SQLite (no zones) and PostgreSQL."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


@overload
def from_db(moment: datetime) -> datetime: ...
@overload
def from_db(moment: datetime | None) -> datetime | None: ...


def from_db(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None


class _Compiled(NamedTuple):
    sql: str
    values: Callable[[dict[str, Any]], list[Any]]  # a parameter dict to the statement's positional values
    row: Any  # the named tuple class of a result row
    results: list[tuple[int, Callable[[Any], Any]]]  # (column, result processor) where a column has one


#: SQLite's DATETIME storage format (SQLAlchemy's default for the dialect)
_SQLITE_DATETIME_FORMAT = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


def _bind_processor(impl: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processor; SQLite's DATETIME one writes a naive datetime as
    ``datetime.isoformat`` does, the same text in half the time (ten of them per export)."""
    process = impl.bind_processor(dialect)
    if process is None or getattr(impl, "_storage_format", None) != _SQLITE_DATETIME_FORMAT:
        return process
    from sqlalchemy.dialects.sqlite import DATETIME

    if not isinstance(impl, DATETIME):
        return process

    def text(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return process(value)

    return text


def _binder(names: list[str], processes: list[Callable[[Any], Any] | None],
            defaults: dict[str, Any]) -> Callable[[dict[str, Any]], list[Any]]:
    """The statement's positional values from a parameter dict: each through its column's bind
    processor, a constant of the statement (a literal compared with, a LIMIT) unless given."""
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


class Rows:
    """The plain tuples a :class:`Prepared` statement returned, and the id an INSERT wrote."""

    __slots__ = ("inserted_id", "rows")

    def __init__(self, rows: list[Any], inserted_id: int | None = None) -> None:
        self.rows = rows
        self.inserted_id = inserted_id

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise AssertionError(f"expected one row, got {len(self.rows)}")
        return self.rows[0][0]


#: every Prepared statement alive, compiled by a SQLite store before its first write transaction
_PREPARED: weakref.WeakSet[Prepared] = weakref.WeakSet()


class Prepared:
    """A Core statement on the checkout's hot path, compiled once per dialect.

    On SQLite it runs on the driver's cursor, inside the connection's transaction: SQLAlchemy's
    execution machinery (cache look-up, parameter and result set-up, events) costs several times
    what SQLite takes to run these small statements. Parameters go through the columns' own bind
    processors, so rows are stored exactly as ``Connection.execute`` stores them. Only for
    rows of a SELECT go through the columns' result processors into named tuples (``row.id``).
    Other dialects run the statement through SQLAlchemy as usual.
    """

    def __init__(self, statement: Executable, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.columns = list(columns) if columns is not None else None
        self._sql: dict[str, _Compiled] = {}
        _PREPARED.add(self)

    @classmethod
    def insert(cls, table: Table) -> Prepared:
        """An INSERT of every column but the generated primary key."""
        return cls(table.insert(), [column.key for column in table.columns if not column.primary_key])

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._sql.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.columns)  # type: ignore[attr-defined]
            names, processes, defaults = [], [], {}
            for name in compiled.positiontup or ():
                bind = compiled.binds[name]
                names.append(name)
                processes.append(_bind_processor(bind.type.dialect_impl(dialect), dialect))
                if not bind.required:
                    defaults[name] = bind.value
            columns = list(getattr(self.statement, "selected_columns", ()))
            row = namedtuple("Row", [column.key for column in columns], rename=True)  # type: ignore[misc]
            results = [(index, process) for index, column in enumerate(columns)
                       if (process := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None]
            found = self._sql[dialect.name] = _Compiled(str(compiled), _binder(names, processes, defaults), row, results)
        return found

    def bind(self, dialect: Dialect, params: dict[str, Any] | list[dict[str, Any]]) -> Bound:
        """The statement with its parameters turned into the driver's values now, before the
        transaction that runs it (on SQLite; other dialects take the parameters when it runs)."""
        if dialect.name != "sqlite":
            return Bound(self, params, None)
        values = self._compiled(dialect).values
        return Bound(self, params, [values(one) for one in params] if isinstance(params, list) else values(params))

    def run(self, conn: Connection, params: dict[str, Any] | list[dict[str, Any]]) -> Rows:
        dialect = conn.dialect
        if dialect.name != "sqlite":
            result = conn.execute(self.statement, params)
            if isinstance(self.statement, Insert):
                key = result.inserted_primary_key if isinstance(params, dict) else None
                return Rows([], int(key[0]) if key else None)
            return Rows(list(result))
        sql, values, row, results = self._compiled(dialect)
        driver = conn.connection.driver_connection
        try:
            if isinstance(params, list):
                driver.executemany(sql, [values(one) for one in params])  # type: ignore[union-attr]
                return Rows([])
            cursor = driver.execute(sql, values(params))  # type: ignore[union-attr]
            if isinstance(self.statement, Insert):
                return Rows([], cursor.lastrowid)
            fetched = cursor.fetchall()
            if not results:
                return Rows([row._make(one) for one in fetched])
            rows = []
            for one in fetched:
                out = list(one)
                for index, process in results:
                    out[index] = process(out[index])
                rows.append(row._make(out))
            return Rows(rows)
        except dialect.loaded_dbapi.Error as exc:
            # the same exception classes as Connection.execute raises (IntegrityError, OperationalError)
            raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


class Bound:
    """A :class:`Prepared` INSERT and its parameters, bound by :meth:`Prepared.bind`."""

    __slots__ = ("params", "prepared", "values")

    def __init__(self, prepared: Prepared, params: dict[str, Any] | list[dict[str, Any]], values: list[Any] | None) -> None:
        self.prepared = prepared
        self.params = params
        self.values = values

    def run(self, conn: Connection) -> Rows:
        """Run it (an INSERT: the id it wrote when one row)."""
        dialect = conn.dialect
        if self.values is None or dialect.name != "sqlite":
            return self.prepared.run(conn, self.params)
        sql = self.prepared._compiled(dialect).sql
        driver = conn.connection.driver_connection
        try:
            if isinstance(self.params, list):
                driver.executemany(sql, self.values)  # type: ignore[union-attr]
                return Rows([])
            return Rows([], driver.execute(sql, self.values).lastrowid)  # type: ignore[union-attr]
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and (url.database in (None, "", ":memory:") or "mode=memory" in str(url))


def make_sql_engine(
    url: str,
    *,
    busy_timeout_ms: int = 30_000,
    synchronous: str = "NORMAL",
    pool_size: int = 10,
    echo: bool = False,
) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, echo=echo)

    memory = _is_memory(parsed)
    if not memory and parsed.database:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}, "echo": echo}
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, else each one sees its own empty database
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2, pool_timeout=busy_timeout_ms / 1000)
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _setup(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module: we issue BEGIN ourselves (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN: a writer that reads a balance keeps it until commit.
        mode = connection.get_execution_options().get("loyaltykit_begin", "DEFERRED")
        driver = connection.connection.driver_connection
        if driver.in_transaction:  # type: ignore[union-attr]
            return  # inside a write Store.write began on the driver itself (see Store.write)
        # On the driver: SQLAlchemy's statement machinery would cost more than SQLite's BEGIN.
        try:
            driver.execute(f"BEGIN {mode}")  # type: ignore[union-attr]
        except sqlite3.Error as exc:  # busy past the timeout: the OperationalError callers expect
            raise DBAPIError.instance(f"BEGIN {mode}", None, exc, sqlite3.Error, dialect=connection.dialect) from exc

    return engine


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

    __slots__ = ("commits", "connection", "driver", "gate", "wal_frames")

    def __init__(self, connection: Connection, driver: sqlite3.Connection, gate: int | None) -> None:
        self.connection = connection
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
            if self.gate is not None:
                self.driver.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")  # back to the pool as it came
            self.connection.close()
        finally:
            if self.gate is not None:
                os.close(self.gate)
                self.gate = None


class Store:
    """A SQL engine plus the two kinds of transaction the loyalty engine uses."""

    def __init__(self, url: str, *, create: bool = True, **engine_options: Any) -> None:
        """``create``: migrate the schema now (tests, the demo, a one-process app); else it is only checked
        when :meth:`check_schema` is called."""
        self.url = make_url(url)
        self.engine = make_sql_engine(url, **engine_options)
        self.dialect = self.engine.dialect.name
        # An in-memory SQLite database is one connection: serialise its users.
        self._serial = threading.RLock() if _is_memory(self.url) else None
        # SQLite file databases: connections kept checked out between write transactions, which
        # run BEGIN and COMMIT on the driver (see write()).
        self._writers: list[_Writer] | None = [] if self.dialect == "sqlite" and self._serial is None else None
        # ... and writers, threads and processes alike, queue on an flock of a file beside the database
        # for the few statements of their transaction: the next one wakes when the gate opens, where
        # SQLite's busy handler would sleep 1, 2, 5, 10 ... ms between tries.
        self._gate_path = (f"{self.url.database}-writer" if self._writers is not None and fcntl is not None
                           and not self.url.query.get("uri") else None)
        self._writers_lock = threading.Lock()
        self._writers_pid = os.getpid()
        self._forked_away: list[_Writer] = []
        self._writers_kept = max(1, min(int(engine_options.get("pool_size", 10)), 4))
        self._busy_timeout = int(engine_options.get("busy_timeout_ms", 30_000)) / 1000
        if create:
            self.migrate()

    def schema_version(self) -> int | None:
        """The version this database is migrated to; None when it has no loyaltykit schema."""
        with self._serialised(), self.engine.connect() as connection:
            return self._version_in(connection)

    @staticmethod
    def _version_in(connection: Connection) -> int | None:
        if not inspect(connection).has_table(schema_versions.name):
            return None
        return connection.execute(select(schema_versions.c.version).where(schema_versions.c.id == 1)).scalar()

    def check_schema(self) -> None:
        """Refuse to start on a database that is not migrated to this release's schema."""
        try:
            version = self.schema_version()
        except (OperationalError, ProgrammingError) as exc:
            raise ConfigError(f"the embedded engine's database cannot be read: {type(exc.orig).__name__}") from exc
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
        with self._serialised(), self.engine.connect() as connection:
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
                            _STEPS[version](connection)
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

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on any exception."""
        if self._writers is None:
            with self._serialised(), self.engine.connect() as connection:
                connection.execution_options(loyaltykit_begin="IMMEDIATE")
                with connection.begin():
                    yield connection
            return
        # SQLite: a connection kept from the last write, BEGIN IMMEDIATE and COMMIT on the driver.
        # Checking a connection out of the pool and SQLAlchemy's transaction bookkeeping cost several
        # times what SQLite takes to begin and commit. Statements run through SQLAlchemy inside the
        # block still work: its autobegin finds the driver's transaction open (see _begin) and
        # commits or rolls back nothing of its own.
        writer = self._take_writer()
        driver = writer.driver
        healthy = False
        try:
            if writer.gate is not None:
                self._enter_gate(writer.gate)
            try:
                driver.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:  # busy past the timeout: the OperationalError callers expect
                raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error, dialect=self.engine.dialect) from exc
            try:
                yield writer.connection
            except BaseException:
                driver.rollback()
                raise
            try:
                driver.execute("COMMIT")
            except sqlite3.Error as exc:
                driver.rollback()
                raise DBAPIError.instance("COMMIT", None, exc, sqlite3.Error, dialect=self.engine.dialect) from exc
            healthy = True
        finally:
            if writer.gate is not None:
                fcntl.flock(writer.gate, fcntl.LOCK_UN)
            if healthy:
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
                    raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error,
                                              dialect=self.engine.dialect) from exc
                pause = min(pause * 2, 0.001)

    @contextmanager
    def savepoint(self, connection: Connection) -> Iterator[None]:
        """A part of a write transaction that fails alone: on an exception, what it wrote is undone
        and the exception goes on; the rest of the transaction stands."""
        if self._writers is None:
            with connection.begin_nested():
                yield
            return
        driver: sqlite3.Connection = connection.connection.driver_connection  # type: ignore[assignment]
        driver.execute("SAVEPOINT lk_part")
        try:
            yield
        except BaseException:
            driver.execute("ROLLBACK TO lk_part")
            driver.execute("RELEASE lk_part")
            raise
        driver.execute("RELEASE lk_part")

    def _take_writer(self) -> _Writer:
        with self._writers_lock:
            if self._writers_pid != os.getpid():
                # a forked child: the parent's connections and gate descriptors are the parent's (one
                # SQLite connection in two processes corrupts; a shared descriptor shares its flock).
                # Kept referenced, never used or closed here.
                self._forked_away.extend(self._writers or ())
                self._writers = []
                self._writers_pid = os.getpid()
            if self._writers:
                return self._writers.pop()
        connection = self.engine.connect()
        connection.execution_options(loyaltykit_begin="IMMEDIATE")
        driver: sqlite3.Connection = connection.connection.driver_connection  # type: ignore[assignment]
        self._warm(driver)
        gate = None
        if self._gate_path is not None:
            try:
                gate = os.open(self._gate_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError:
                gate = None  # a read-only directory: writers wait in SQLite's busy handler instead
        return _Writer(connection, driver, gate)

    def _warm(self, driver: sqlite3.Connection) -> None:
        """What a process would otherwise do inside its first write transaction, while every other
        writer waits at the gate: compile the prepared statements (a few ms of SQLAlchemy) and read
        the schema into the new connection."""
        dialect = self.engine.dialect
        for prepared in list(_PREPARED):
            prepared._compiled(dialect)
        with suppress(sqlite3.Error):  # busy or unreadable: the transaction will say so itself
            driver.execute("SELECT 1 FROM sqlite_master WHERE 0").fetchall()

    def _give_writer(self, writer: _Writer, *, healthy: bool) -> None:
        connection = writer.connection
        if connection.in_transaction():  # SQLAlchemy autobegan inside: end its bookkeeping (the driver's is done)
            try:
                connection.rollback()
            except DBAPIError:
                healthy = False
        if healthy and not connection.invalidated and self._writers is not None:
            with self._writers_lock:
                if len(self._writers) < self._writers_kept:
                    self._writers.append(writer)
                    return
        writer.close()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot for several queries."""
        with self._serialised(), self.engine.connect() as connection:
            transaction = connection.begin()
            try:
                yield connection
            finally:
                transaction.rollback()  # a read has nothing to commit

    def reset(self) -> None:
        """Drop and recreate every table (tests and the demo)."""
        with self._serialised():
            metadata.drop_all(self.engine)
        self.migrate()

    def dispose(self) -> None:
        if self._writers is not None:
            with self._writers_lock:
                kept, self._writers[:] = list(self._writers), []
            for writer in kept:
                writer.close()
        self.engine.dispose()
