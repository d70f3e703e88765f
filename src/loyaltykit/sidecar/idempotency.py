"""Stored answers to keyed writes (SQLAlchemy Core: SQLite WAL on one host, PostgreSQL for many).

They live beside the outbox, at the kit's ``outbox_url`` (:meth:`IdempotencyStore.from_settings`), so
one store holds both and a deployment has one database to run and back up.

One row per (client, Idempotency-Key). The first request inserts it ``running`` with a lease; the
primary key makes that insert the single winner across threads, worker processes and hosts. Then:

* ``done``: the answer (status and body) is stored and replayed for the same key and request;
* ``unknown``: the engine's outcome could not be established (timeout after sending, or the worker
  died mid-call: its lease ran out). The next request with the same key and body reconciles: it goes
  through the adapter with the same engine idempotency key, which the adapter either maps to the
  engine's own idempotency or answers by looking the effect up first. Never a blind re-send.

A request whose call failed before anything could be applied (engine unavailable, rate limited)
removes its row, so the same key may simply be retried.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

    from ..settings import LoyaltySettings

metadata = sa.MetaData()

records = sa.Table(
    "sidecar_idempotency",
    metadata,
    sa.Column("client", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("lease_until", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

RUNNING = "running"
DONE = "done"
UNKNOWN = "unknown"


def fingerprint(operation: str, payload: Any) -> str:
    """SHA-256 of the operation and the validated request (canonical JSON: key order and spacing do
    not matter, a changed value does)."""
    canonical = json.dumps([operation, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Decision(StrEnum):
    EXECUTE = "execute"  # first request: run the call
    RECONCILE = "reconcile"  # earlier outcome unknown: run through the adapter's keyed path
    REPLAY = "replay"  # stored answer
    MISMATCH = "mismatch"  # same key, another request
    IN_FLIGHT = "in_flight"  # the first call is still running


@dataclass(frozen=True)
class Begin:
    decision: Decision
    status_code: int | None = None
    body: str | None = None
    retry_after: float = 0.0


def sqlalchemy_url(url: str) -> str:
    """An ``outbox_url`` as SQLAlchemy reads it: a plain path is a SQLite file; PostgreSQL goes
    through psycopg (3), the driver the outbox's PostgreSQL store uses."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.partition("://")[2]
    if "://" not in url and not url.startswith("sqlite:"):
        return f"sqlite:///{url}"
    return url


class IdempotencyStore:
    @classmethod
    def from_settings(cls, settings: LoyaltySettings | None = None, **options: Any) -> IdempotencyStore:
        """The store at the kit's ``outbox_url``: the same database as the outbox."""
        if settings is None:
            from ..settings import LoyaltySettings

            settings = LoyaltySettings()
        return cls(settings.outbox_url.get_secret_value(), **options)

    def __init__(self, url: str, *, retention_seconds: float = 86400.0, clock: Callable[[], float] = time.time) -> None:
        self.retention_seconds = retention_seconds
        self.clock = clock
        url = sqlalchemy_url(url)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        self.engine = sa.create_engine(url, pool_pre_ping=True, **kwargs)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.DatabaseError:
            # Several workers starting at once: another one created the table between check and create.
            metadata.create_all(self.engine, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.select(1))

    def begin(self, client: str, key: str, operation: str, fp: str, lease_seconds: float) -> Begin:
        now = self.clock()
        row = {
            "client": client, "key": key, "operation": operation, "fingerprint": fp, "state": RUNNING,
            "lease_until": now + lease_seconds, "created_at": now, "expires_at": now + self.retention_seconds,
        }
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(records.insert().values(**row))
                return Begin(Decision.EXECUTE)
            except IntegrityError:
                pass
            with self.engine.begin() as conn:
                found = conn.execute(
                    sa.select(records).where(records.c.client == client, records.c.key == key)
                ).mappings().first()
                if found is None:
                    continue  # released or purged meanwhile: try the insert again
                if found["expires_at"] <= now:
                    conn.execute(records.delete().where(
                        records.c.client == client, records.c.key == key, records.c.expires_at <= now))
                    continue
                if found["fingerprint"] != fp or found["operation"] != operation:
                    return Begin(Decision.MISMATCH)
                if found["state"] == DONE:
                    return Begin(Decision.REPLAY, found["status_code"], found["body"])
                if found["state"] == RUNNING and found["lease_until"] > now:
                    return Begin(Decision.IN_FLIGHT, retry_after=found["lease_until"] - now)
                # Outcome unknown, or a dead worker's lease ran out: take it over, one winner.
                taken = conn.execute(
                    records.update()
                    .where(records.c.client == client, records.c.key == key, records.c.state == found["state"],
                           records.c.lease_until == found["lease_until"])
                    .values(state=RUNNING, lease_until=now + lease_seconds)
                ).rowcount
                if taken == 1:
                    return Begin(Decision.RECONCILE)
                return Begin(Decision.IN_FLIGHT, retry_after=1.0)
        return Begin(Decision.IN_FLIGHT, retry_after=1.0)

    def finish(self, client: str, key: str, status_code: int, body: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                records.update().where(records.c.client == client, records.c.key == key)
                .values(state=DONE, status_code=status_code, body=body, lease_until=0)
            )

    def mark_unknown(self, client: str, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                records.update().where(records.c.client == client, records.c.key == key)
                .values(state=UNKNOWN, lease_until=0)
            )

    def release(self, client: str, key: str) -> None:
        """Forget a key whose call applied nothing, so the same key may be sent again."""
        with self.engine.begin() as conn:
            conn.execute(records.delete().where(records.c.client == client, records.c.key == key))

    def purge(self) -> int:
        with self.engine.begin() as conn:
            return conn.execute(records.delete().where(records.c.expires_at <= self.clock())).rowcount

    def state(self, client: str, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(records.c.state).where(records.c.client == client, records.c.key == key)
            ).scalar_one_or_none()


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
