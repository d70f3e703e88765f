"""The default outbox store: one SQLite file (WAL) from the standard library.

Several processes on one host may share the file. ``BEGIN IMMEDIATE`` takes the write lock at the
start of every writing transaction, so two workers can never claim the same rows; the busy timeout
makes the others wait for it instead of failing.

Durability: ``synchronous="full"`` (the default) syncs the log at every commit that must not be
lost: a queued order (``add``), a drop, a retry. A worker's progress writes (claim, lease renewal,
release, the outcome of an export) are committed without a sync of their own: if a power cut takes
one of them, the order is pending again and is exported again, which export's idempotency per
order makes harmless (the engine answers ``duplicate``) -- the same as a worker dying just before
it recorded the outcome. The log is append-only, so the next synced commit makes every earlier one
durable too. ``"normal"`` (``sqlite:///path?synchronous=normal``) syncs only at checkpoints: commits
are cheaper still and survive the process being killed, but the last queued orders before a power
cut or an OS crash may be lost (SQLite's documented WAL behaviour).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .store import DEAD, DONE, DROPPED, PENDING, REJECTED, Claimed, OutboxEntry, OutboxStore, Settlement

_TABLE = """
CREATE TABLE IF NOT EXISTS outbox (
    ref           TEXT PRIMARY KEY,
    payload       TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  REAL NOT NULL,
    lease_owner   TEXT,
    lease_until   REAL NOT NULL DEFAULT 0,
    last_status   TEXT,
    last_reason   TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
)
"""
# The claim walks due pending rows in (state, next_attempt) order -- the index order, rowid
# (insertion order) breaking ties -- and stops at its LIMIT: its cost does not grow with the
# backlog. The ordering check looks up the oldest pending row of a group. Listings of one state,
# oldest first (the oldest pending order's age on every metrics scrape), read (state, rowid).
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt)",
    "CREATE INDEX IF NOT EXISTS outbox_group ON outbox (group_key, state)",
    "CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state)",
)
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}
_COLUMNS = "ref, state, attempts, last_status, last_reason, next_attempt, created_at, lease_until"


class SQLiteOutboxStore(OutboxStore):
    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0, create_schema: bool = True,
                 synchronous: str = "full") -> None:
        if synchronous not in _SYNCHRONOUS:
            raise ConfigError("outbox_url: synchronous must be full (the default) or normal")
        self.path = Path(path)
        self.synchronous = synchronous
        self.display = f"sqlite:///{self.path}" + ("" if synchronous == "full" else f"?synchronous={synchronous}")
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, check_same_thread=False, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[synchronous]}")
            self._level = synchronous
            if create_schema:
                self.migrate()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"outbox store {self.path} cannot be opened: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One writing transaction; ``durable=False`` for a worker's progress (no sync of its own)."""
        with self._lock:
            level = self.synchronous if durable else "normal"
            if level != self._level:
                self._db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[level]}")
                self._level = level
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def migrate(self) -> None:
        with self._write() as db:
            db.execute(_TABLE)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            if "group_key" not in columns:  # files written before delivery in order per customer
                db.execute("ALTER TABLE outbox ADD COLUMN group_key TEXT")
                db.execute("UPDATE outbox SET group_key = ref WHERE group_key IS NULL")
            if "digest" not in columns:  # files written before payload digests: their rows are validated in full
                db.execute("ALTER TABLE outbox ADD COLUMN digest TEXT")
            for statement in _INDEXES:
                db.execute(statement)

    def insert(self, ref: str, group: str, payload: str, now: float, *, supersede: bool,
               digest: str | None = None) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO outbox (ref, group_key, payload, digest, state, next_attempt, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (ref, group, payload, digest, PENDING, now, now, now),
            )
            if cursor.rowcount == 1:
                return True
            if not supersede:
                return False
            cursor = db.execute(
                "UPDATE outbox SET payload = ?, digest = ?, group_key = ?, next_attempt = ?, updated_at = ?"
                " WHERE ref = ? AND state = ? AND (lease_owner IS NULL OR lease_until <= ?)",
                (payload, digest, group, now, now, ref, PENDING, now),
            )
            return cursor.rowcount == 1

    def claim(self, limit: int, now: float, until: float, token: str) -> list[Claimed]:
        with self._write(durable=False) as db:
            rows = db.execute(
                "SELECT o.ref, o.payload, o.attempts, o.digest FROM outbox AS o"
                " WHERE o.state = ? AND o.next_attempt <= ? AND o.lease_until <= ?"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS p"
                "   WHERE p.group_key = o.group_key AND p.state = ? AND p.rowid < o.rowid)"
                " ORDER BY o.next_attempt, o.rowid LIMIT ?",
                (PENDING, now, now, PENDING, limit),
            ).fetchall()
            db.executemany(
                "UPDATE outbox SET lease_owner = ?, lease_until = ?, updated_at = ? WHERE ref = ?",
                [(token, until, now, row[0]) for row in rows],
            )
        return list(map(Claimed._make, rows))

    def renew(self, token: str, until: float) -> int:
        with self._write(durable=False) as db:
            return db.execute("UPDATE outbox SET lease_until = ? WHERE lease_owner = ? AND state = ?",
                              (until, token, PENDING)).rowcount

    def release(self, token: str, refs: Sequence[str]) -> None:
        with self._write(durable=False) as db:
            db.executemany(
                "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE ref = ? AND lease_owner = ?",
                [(ref, token) for ref in refs],
            )

    def settle(self, token: str, settlements: Sequence[Settlement], now: float) -> set[str]:
        written: set[str] = set()
        with self._write(durable=False) as db:
            for s in settlements:
                if db.execute(
                    "UPDATE outbox SET state = ?, attempts = ?, next_attempt = ?, lease_owner = NULL, lease_until = 0,"
                    " last_status = ?, last_reason = ?, updated_at = ? WHERE ref = ? AND lease_owner = ?",
                    (s.state, s.attempts, s.next_attempt, s.last_status, s.last_reason, now, s.ref, token),
                ).rowcount:
                    written.add(s.ref)
        return written

    def drop(self, ref: str, reason: str, now: float) -> bool:
        with self._write() as db:
            return db.execute(
                "UPDATE outbox SET state = ?, last_reason = ?, lease_owner = NULL, lease_until = 0, updated_at = ?"
                " WHERE ref = ? AND state = ? AND (lease_owner IS NULL OR lease_until <= ?)",
                (DROPPED, reason, now, ref, PENDING, now),
            ).rowcount == 1

    def retry(self, refs: Sequence[str] | None, states: Sequence[str], now: float) -> int:
        marks = ", ".join("?" for _ in states)
        sql = (f"UPDATE outbox SET state = ?, attempts = 0, next_attempt = ?, lease_owner = NULL, lease_until = 0,"
               f" updated_at = ? WHERE state IN ({marks})")
        with self._write() as db:
            if refs is None:
                return db.execute(sql, (PENDING, now, now, *states)).rowcount
            return sum(db.execute(sql + " AND ref = ?", (PENDING, now, now, *states, ref)).rowcount for ref in refs)

    def entries(self, state: str | None, limit: int, now: float, ref: str | None = None) -> list[OutboxEntry]:
        where, params = [], []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if ref is not None:
            where.append("ref = ?")
            params.append(ref)
        sql = f"SELECT {_COLUMNS} FROM outbox" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY rowid LIMIT ?", (*params, limit)).fetchall()
        return [_entry(row, now) for row in rows]

    def counts(self, now: float) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
            due, leased = self._db.execute(
                "SELECT COALESCE(SUM(next_attempt <= ? AND lease_until <= ?), 0), COALESCE(SUM(lease_until > ?), 0)"
                " FROM outbox WHERE state = ?", (now, now, now, PENDING)).fetchone()
        return {PENDING: 0, DONE: 0, REJECTED: 0, DEAD: 0, DROPPED: 0, **dict(rows), "due": due, "leased": leased}


def _entry(row: Sequence[Any], now: float) -> OutboxEntry:
    ref, state, attempts, last_status, last_reason, next_attempt, created_at, lease_until = row
    return OutboxEntry(ref, state, attempts, last_status, last_reason, next_attempt, created_at,
                       leased=state == PENDING and lease_until > now)
