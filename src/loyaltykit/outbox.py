"""A durable outbox for order export: nothing placed is ever lost, and export resumes after a crash.

The shop adds an order in the same breath as it places it; a worker (or the request itself) flushes
the outbox. An order leaves the outbox only when the engine has recorded it (``accepted`` or
``duplicate``) or refused it for good (``rejected``, kept with the reason for a person to look at).
``retry_later`` orders wait with exponential back-off.

Crash safety comes from leases, not from trusting the worker: :meth:`Outbox.claim` leases orders
for ``lease_seconds``; if the worker dies before recording the outcome, the lease runs out and the
orders are claimed again. Re-exporting is safe because export is idempotent per order (the engine
sees each order once). The default store is SQLite (WAL) from the standard library; for many
workers on many hosts, put the same table in PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, InvalidRequestError
from .models import ExportReport, ExportStatus, Order

if TYPE_CHECKING:
    from .facade import AsyncLoyalty, Loyalty

PENDING = "pending"
DONE = "done"
REJECTED = "rejected"

_SCHEMA = """
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
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt);
"""


@dataclass(frozen=True)
class OutboxEntry:
    ref: str
    state: str
    attempts: int
    last_status: str | None
    last_reason: str | None


class Outbox:
    """Durable queue of orders to export. Thread-safe; several processes may share one file."""

    def __init__(
        self,
        path: str | Path = ".loyaltykit/outbox.sqlite3",
        *,
        lease_seconds: float = 120.0,
        backoff_base: float = 2.0,
        backoff_max: float = 3600.0,
        clock=time.time,
    ) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.clock = clock
        self.worker = uuid.uuid4().hex
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"outbox store {self.path} cannot be opened: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two workers cannot claim the same rows.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- producing ------------------------------------------------------------------------------
    def add(self, order: Order) -> bool:
        """Queue an order. Returns False when an order with that ref is already queued or done."""
        if not isinstance(order, Order):
            raise InvalidRequestError("outbox takes Order instances", field="order")
        now = self.clock()
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO outbox (ref, payload, state, next_attempt, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (order.ref, order.model_dump_json(), PENDING, now, now, now),
            )
            return cursor.rowcount == 1

    # -- consuming ------------------------------------------------------------------------------
    def claim(self, limit: int = 100) -> list[Order]:
        """Lease up to ``limit`` due orders for this worker."""
        now = self.clock()
        with self._write() as db:
            rows = db.execute(
                "SELECT ref, payload FROM outbox WHERE state = ? AND next_attempt <= ? AND lease_until <= ?"
                " ORDER BY created_at LIMIT ?",
                (PENDING, now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE outbox SET lease_owner = ?, lease_until = ?, updated_at = ? WHERE ref = ?",
                [(self.worker, now + self.lease_seconds, now, ref) for ref, _ in rows],
            )
        return [Order.model_validate_json(payload) for _, payload in rows]

    def release(self, orders: list[Order]) -> None:
        """Give leased orders back untouched (the export call itself failed)."""
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE ref = ? AND lease_owner = ?",
                [(order.ref, self.worker) for order in orders],
            )

    def record(self, report: ExportReport) -> None:
        """Store the engine's verdict for each order of a report that this worker still leases.

        A worker whose lease ran out (and whose orders another worker claimed since) must not write
        over that worker's outcome; its verdict is dropped, and the owner's export, idempotent per
        order, settles the order.
        """
        now = self.clock()
        with self._write() as db:
            for result in report.results:
                row = db.execute(
                    "SELECT attempts FROM outbox WHERE ref = ? AND lease_owner = ?", (result.order_ref, self.worker)
                ).fetchone()
                if row is None:
                    continue
                attempts = row[0] + 1
                if result.status in (ExportStatus.ACCEPTED, ExportStatus.DUPLICATE):
                    state, next_attempt = DONE, now
                elif result.status is ExportStatus.REJECTED:
                    state, next_attempt = REJECTED, now
                else:
                    delay = min(self.backoff_max, self.backoff_base ** min(attempts, 32))
                    state, next_attempt = PENDING, now + delay
                db.execute(
                    "UPDATE outbox SET state = ?, attempts = ?, next_attempt = ?, lease_owner = NULL,"
                    " lease_until = 0, last_status = ?, last_reason = ?, updated_at = ? WHERE ref = ?",
                    (state, attempts, next_attempt, result.status.value, result.reason, now, result.order_ref),
                )

    def flush(self, loyalty: Loyalty, batch: int = 100) -> ExportReport | None:
        """Export due orders once through a sync facade; ``None`` when nothing was due."""
        orders = self.claim(batch)
        if not orders:
            return None
        try:
            report = loyalty.export_orders(orders)
        except BaseException:
            self.release(orders)
            raise
        self.record(report)
        return report

    async def aflush(self, loyalty: AsyncLoyalty, batch: int = 100) -> ExportReport | None:
        """Export due orders once through an async facade; ``None`` when nothing was due."""
        orders = self.claim(batch)
        if not orders:
            return None
        try:
            report = await loyalty.export_orders(orders)
        except BaseException:
            self.release(orders)
            raise
        self.record(report)
        return report

    # -- inspection -----------------------------------------------------------------------------
    def entry(self, ref: str) -> OutboxEntry | None:
        row = self._db.execute(
            "SELECT ref, state, attempts, last_status, last_reason FROM outbox WHERE ref = ?", (ref,)
        ).fetchone()
        return OutboxEntry(*row) if row else None

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        return {PENDING: 0, DONE: 0, REJECTED: 0, **dict(rows)}

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest order still waiting for export was queued (None: none waits)."""
        oldest = self._db.execute("SELECT MIN(created_at) FROM outbox WHERE state = ?", (PENDING,)).fetchone()[0]
        return None if oldest is None else max(0.0, self.clock() - oldest)
