"""The outbox on PostgreSQL: many workers on many hosts, and the shop's own transaction.

Needs the ``postgres`` extra (``pip install 'loyaltykit[postgres]'``: SQLAlchemy and psycopg 3).

Workers claim with ``SELECT ... FOR UPDATE SKIP LOCKED``: concurrent claims never wait on each
other nor take the same row, and a claimed row carries a lease (owner token + expiry) so a crashed
worker's orders are claimed again once it runs out. Every settling write is fenced by the token.

The table (``loyaltykit_outbox``) may live in the shop's own database: :func:`enqueue` inserts an
order through the shop's SQLAlchemy connection, inside the shop's transaction, and
:func:`insert_sql` gives the statement for any DB-API cursor (Django). The order is then exported
if and only if the shop's transaction commits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError, InvalidRequestError
from ..models import Order
from .store import (
    DEAD,
    DONE,
    DROPPED,
    PENDING,
    REJECTED,
    Claimed,
    OutboxEntry,
    OutboxStore,
    Settlement,
    group_of,
    payload_digest,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, CursorResult
    from sqlalchemy.orm import Session

try:
    from sqlalchemy import bindparam, create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigError(
        "the PostgreSQL outbox needs SQLAlchemy and psycopg: pip install 'loyaltykit[postgres]'"
    ) from exc

TABLE = "loyaltykit_outbox"

_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        seq           BIGSERIAL NOT NULL UNIQUE,
        ref           TEXT PRIMARY KEY,
        group_key     TEXT NOT NULL,
        payload       TEXT NOT NULL,
        state         TEXT NOT NULL DEFAULT 'pending',
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_attempt  DOUBLE PRECISION NOT NULL,
        lease_owner   TEXT,
        lease_until   DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_status   TEXT,
        last_reason   TEXT,
        created_at    DOUBLE PRECISION NOT NULL,
        updated_at    DOUBLE PRECISION NOT NULL
    )""",
    # tables created before payload digests get the column; their rows are validated in full
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS digest TEXT",
    # the claim index: due pending rows in due order (then insertion order); the claim reads it
    # in that order and stops at its LIMIT, so its cost does not grow with the backlog
    f"CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (state, next_attempt, seq)",
    # the in-order check: the oldest pending row of a customer / order reference
    f"CREATE INDEX IF NOT EXISTS {TABLE}_group ON {TABLE} (group_key, seq) WHERE state = 'pending'",
    # listings of one state oldest first (the oldest pending order's age on every metrics scrape)
    f"CREATE INDEX IF NOT EXISTS {TABLE}_state ON {TABLE} (state, seq)",
)
_INSERT = (f"INSERT INTO {TABLE} (ref, group_key, payload, digest, state, next_attempt, created_at, updated_at)"
           " VALUES (:ref, :group_key, :payload, :digest, 'pending', :now, :now, :now) ON CONFLICT (ref) DO NOTHING")
# Due rows in the claim index's order, up to the LIMIT (no sort of the backlog); only the oldest
# pending row of each group; rows another worker is claiming right now are skipped, not waited for.
_PICK = (f"SELECT o.ref FROM {TABLE} AS o"
         " WHERE o.state = 'pending' AND o.next_attempt <= :now AND o.lease_until <= :now"
         f" AND NOT EXISTS (SELECT 1 FROM {TABLE} AS p"
         "   WHERE p.group_key = o.group_key AND p.state = 'pending' AND p.seq < o.seq)"
         " ORDER BY o.next_attempt, o.seq LIMIT :limit FOR UPDATE SKIP LOCKED")
_CLAIM = (f"WITH picked AS ({_PICK})"
          f" UPDATE {TABLE} AS t SET lease_owner = :token, lease_until = :until, updated_at = :now"
          " FROM picked WHERE t.ref = picked.ref"
          " RETURNING t.seq, t.ref, t.payload, t.attempts, t.digest")
_COLUMNS = "ref, state, attempts, last_status, last_reason, next_attempt, created_at, lease_until"


def engine_url(url: str) -> URL:
    """A SQLAlchemy URL on the psycopg 3 driver (``postgres://`` and ``postgresql://`` both accepted)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError("the PostgreSQL outbox needs a postgresql:// URL")
    return parsed.set(drivername="postgresql+psycopg")


def _order_params(order: Order, now: float | None) -> dict[str, Any]:
    if not isinstance(order, Order):
        raise InvalidRequestError("outbox takes Order instances", field="order")
    payload = order.model_dump_json()
    return {"ref": order.ref, "group_key": group_of(order), "payload": payload, "digest": payload_digest(payload),
            "now": time.time() if now is None else now}


def enqueue(connection: Connection | Session, order: Order, *, now: float | None = None) -> bool:
    """Queue ``order`` through the shop's own SQLAlchemy ``Connection`` or ``Session``, in its transaction.

    Nothing is committed here: the order is queued if and only if the caller's transaction commits.
    Returns False when the order ref is already queued.
    """
    # a Session's execute is typed as a plain Result; an INSERT returns a CursorResult either way
    result = cast("CursorResult[Any]", connection.execute(text(_INSERT), _order_params(order, now)))
    return result.rowcount == 1


def insert_sql(order: Order, *, now: float | None = None) -> tuple[str, dict[str, Any]]:
    """The statement and parameters (``%(name)s`` style) that queue ``order`` from any DB-API cursor.

    For Django: ``with transaction.atomic(): ...; connection.cursor().execute(*insert_sql(order))``.
    """
    params = _order_params(order, now)
    sql = (f"INSERT INTO {TABLE} (ref, group_key, payload, digest, state, next_attempt, created_at, updated_at)"
           " VALUES (%(ref)s, %(group_key)s, %(payload)s, %(digest)s, 'pending', %(now)s, %(now)s, %(now)s)"
           " ON CONFLICT (ref) DO NOTHING")
    return sql, params


def _progress(conn: Connection) -> None:
    """A worker's progress (claim, renewal, release, outcome) commits without waiting for the WAL
    flush: a server crash may take the last of them, and the order is then pending again and
    exported again, which export's idempotency per order makes harmless. Queued orders, drops and
    retries keep the server's own setting (synchronous by default). Consistency is never at stake."""
    conn.execute(text("SET LOCAL synchronous_commit TO OFF"))


class PostgresOutboxStore(OutboxStore):
    def __init__(self, url: str, *, pool_size: int = 5, create_schema: bool = True) -> None:
        parsed = engine_url(url)
        self.display = parsed.render_as_string(hide_password=True)
        try:
            self.engine = create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            if create_schema:
                self.migrate()
        except SQLAlchemyError as exc:
            raise ConfigError(f"outbox store {self.display} cannot be opened: {type(getattr(exc, 'orig', None) or exc).__name__}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        with self.engine.begin() as conn:
            # one migrator at a time: CREATE ... IF NOT EXISTS races with itself in the catalog
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": TABLE})
            for statement in _SCHEMA:
                conn.execute(text(statement))

    def insert(self, ref: str, group: str, payload: str, now: float, *, supersede: bool,
               digest: str | None = None) -> bool:
        params = {"ref": ref, "group_key": group, "payload": payload, "digest": digest, "now": now}
        with self.engine.begin() as conn:
            if conn.execute(text(_INSERT), params).rowcount == 1:
                return True
            if not supersede:
                return False
            return conn.execute(text(
                f"UPDATE {TABLE} SET payload = :payload, digest = :digest, group_key = :group_key, next_attempt = :now,"
                " updated_at = :now"
                " WHERE ref = :ref AND state = 'pending' AND (lease_owner IS NULL OR lease_until <= :now)"
            ), params).rowcount == 1

    def claim(self, limit: int, now: float, until: float, token: str) -> list[Claimed]:
        with self.engine.begin() as conn:
            _progress(conn)
            rows = conn.execute(text(_CLAIM), {"now": now, "limit": limit, "token": token, "until": until}).all()
        return [Claimed(ref, payload, attempts, digest) for _, ref, payload, attempts, digest in sorted(rows)]

    def renew(self, token: str, until: float) -> int:
        with self.engine.begin() as conn:
            _progress(conn)
            return conn.execute(text(
                f"UPDATE {TABLE} SET lease_until = :until WHERE lease_owner = :token AND state = 'pending'"
            ), {"until": until, "token": token}).rowcount

    def release(self, token: str, refs: Sequence[str]) -> None:
        if not refs:
            return
        with self.engine.begin() as conn:
            _progress(conn)
            conn.execute(text(
                f"UPDATE {TABLE} SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = :token AND ref IN :refs"
            ).bindparams(bindparam("refs", expanding=True)), {"token": token, "refs": list(refs)})

    def settle(self, token: str, settlements: Sequence[Settlement], now: float) -> set[str]:
        if not settlements:
            return set()
        # one statement for the whole batch: a round trip per order would cap a worker's throughput
        params: dict[str, Any] = {"token": token, "now": now}
        rows = []
        for i, s in enumerate(settlements):
            rows.append(f"(CAST(:r{i} AS TEXT), CAST(:s{i} AS TEXT), CAST(:a{i} AS INTEGER),"
                        f" CAST(:n{i} AS DOUBLE PRECISION), CAST(:ls{i} AS TEXT), CAST(:lr{i} AS TEXT))")
            params.update({f"r{i}": s.ref, f"s{i}": s.state, f"a{i}": s.attempts, f"n{i}": s.next_attempt,
                           f"ls{i}": s.last_status, f"lr{i}": s.last_reason})
        with self.engine.begin() as conn:
            _progress(conn)
            written = conn.execute(text(
                f"UPDATE {TABLE} AS t SET state = v.state, attempts = v.attempts, next_attempt = v.next_attempt,"
                " lease_owner = NULL, lease_until = 0, last_status = v.last_status, last_reason = v.last_reason,"
                " updated_at = :now"
                f" FROM (VALUES {', '.join(rows)}) AS v(ref, state, attempts, next_attempt, last_status, last_reason)"
                " WHERE t.ref = v.ref AND t.lease_owner = :token RETURNING t.ref"
            ), params).scalars().all()
        return set(written)

    def drop(self, ref: str, reason: str, now: float) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(text(
                f"UPDATE {TABLE} SET state = :dropped, last_reason = :reason, lease_owner = NULL, lease_until = 0,"
                " updated_at = :now WHERE ref = :ref AND state = 'pending'"
                " AND (lease_owner IS NULL OR lease_until <= :now)"
            ), {"dropped": DROPPED, "reason": reason, "now": now, "ref": ref}).rowcount == 1

    def retry(self, refs: Sequence[str] | None, states: Sequence[str], now: float) -> int:
        sql = (f"UPDATE {TABLE} SET state = 'pending', attempts = 0, next_attempt = :now, lease_owner = NULL,"
               " lease_until = 0, updated_at = :now WHERE state IN :states")
        params: dict[str, Any] = {"now": now, "states": list(states)}
        statement = text(sql + ("" if refs is None else " AND ref IN :refs")).bindparams(
            bindparam("states", expanding=True))
        if refs is not None:
            if not refs:
                return 0
            statement = statement.bindparams(bindparam("refs", expanding=True))
            params["refs"] = list(refs)
        with self.engine.begin() as conn:
            return conn.execute(statement, params).rowcount

    def entries(self, state: str | None, limit: int, now: float, ref: str | None = None) -> list[OutboxEntry]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if state is not None:
            where.append("state = :state")
            params["state"] = state
        if ref is not None:
            where.append("ref = :ref")
            params["ref"] = ref
        sql = f"SELECT {_COLUMNS} FROM {TABLE}" + (" WHERE " + " AND ".join(where) if where else "")
        with self.engine.connect() as conn:
            rows = conn.execute(text(sql + " ORDER BY seq LIMIT :limit"), params).all()
        return [OutboxEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], leased=r[1] == PENDING and r[7] > now)
                for r in rows]

    def counts(self, now: float) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT state, COUNT(*) FROM {TABLE} GROUP BY state")).all()
            due, leased = conn.execute(text(
                f"SELECT COUNT(*) FILTER (WHERE next_attempt <= :now AND lease_until <= :now),"
                f" COUNT(*) FILTER (WHERE lease_until > :now) FROM {TABLE} WHERE state = 'pending'"
            ), {"now": now}).one()
        return {PENDING: 0, DONE: 0, REJECTED: 0, DEAD: 0, DROPPED: 0, **{s: n for s, n in rows},
                "due": due, "leased": leased}
