"""A durable outbox for order export: nothing placed is ever lost, and export resumes after a crash.

The shop adds an order in the same breath as it places it; workers flush the outbox. An order
leaves the outbox only when the engine has recorded it (``done``), refused it for good
(``rejected``, kept with the reason), failed ``max_attempts`` times (``dead``, with the last
error; also an order whose stored payload no longer loads, ``last_status`` ``unloadable``), or when
the shop dropped it before export (``dropped``, with the reason).

* **Leases, not trust.** A claim leases orders under a token for at least twice the facade's write
  deadline, renewed while the export runs. If the worker dies, the lease runs out and another
  worker claims the orders; a worker whose lease ran out cannot overwrite the new owner's outcome.
  Re-exporting is safe because export is idempotent per order.
* **One bad order never blocks the others.** When a batch fails with an error a retry would not
  cure, the orders are exported one by one; each failure backs off on its own and is dead-lettered
  after ``max_attempts``.
* **In order.** Orders of one customer (of one order reference, for guests) are claimed one at a
  time, oldest first: a later order waits until the earlier one has left the outbox.

Stores: SQLite (the default, a file; several processes on one host) and PostgreSQL (many workers on
many hosts; ``pip install 'loyaltykit[postgres]'``), chosen by URL — ``outbox_url`` in the settings
(``LOYALTYKIT_OUTBOX_URL``), or the first argument of :class:`Outbox`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import wire
from ..errors import ConfigError, InvalidRequestError, LoyaltyError
from ..models import ExportReport, ExportStatus, Order, OrderExportResult, order_from_dump
from ..scrub import get_logger
from .store import (
    DEAD,
    DONE,
    DROPPED,
    PENDING,
    REJECTED,
    STATES,
    Claimed,
    OutboxEntry,
    OutboxStore,
    Settlement,
    group_of,
    payload_digest,
)

if TYPE_CHECKING:
    from ..facade import AsyncLoyalty, Loyalty
    from ..settings import LoyaltySettings

__all__ = [
    "DEAD",
    "DEFAULT_URL",
    "DONE",
    "DROPPED",
    "PENDING",
    "REJECTED",
    "STATES",
    "UNLOADABLE",
    "DrainSummary",
    "Outbox",
    "OutboxEntry",
    "OutboxStore",
    "open_store",
]

DEFAULT_URL = "sqlite:///.loyaltykit/outbox.sqlite3"
#: ``last_status`` of an order dead-lettered because its stored payload no longer loads
UNLOADABLE = "unloadable"
log = get_logger("loyaltykit.outbox")


def open_store(url: str | Path = DEFAULT_URL, *, create_schema: bool = True) -> OutboxStore:
    """The store a URL names: ``sqlite:///path`` or a plain file path; ``postgresql://...``.

    A SQLite URL takes one option, ``?synchronous=full`` (the default: a committed order survives a
    power cut) or ``?synchronous=normal`` (faster commits; survives a crash of the process, not of
    the machine).
    """
    text = str(url)
    if text.startswith(("postgresql:", "postgresql+", "postgres:")):
        from .postgres import PostgresOutboxStore

        return PostgresOutboxStore(text, create_schema=create_schema)
    if text.startswith("sqlite:"):
        text, _, query = text.partition("?")
        path = text.removeprefix("sqlite:").removeprefix("//").removeprefix("/")
        if not path or path == ":memory:":
            raise ConfigError("the outbox needs a file: an in-memory database would lose every order")
        return _sqlite(path, create_schema, query)
    if "://" in text:
        raise ConfigError("outbox_url must be sqlite:///<path> or postgresql://...")
    return _sqlite(text, create_schema, "")


def _sqlite(path: str, create_schema: bool, query: str) -> OutboxStore:
    from urllib.parse import parse_qsl

    from .sqlite import SQLiteOutboxStore

    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {"synchronous"})
    if unknown:
        raise ConfigError(f"outbox_url: unknown SQLite option {unknown[0]!r} (known: synchronous)")
    return SQLiteOutboxStore(path, create_schema=create_schema, synchronous=options.get("synchronous", "full"))


@dataclass
class DrainSummary:
    """What a drain did: orders per outcome, and how many batches it took."""

    exported: int = 0
    rejected: int = 0
    retrying: int = 0
    dead: int = 0
    lost: int = 0  # outcomes not written: the lease had passed to another worker
    batches: int = 0

    def add(self, other: DrainSummary) -> None:
        for name in ("exported", "rejected", "retrying", "dead", "lost", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def orders(self) -> int:
        return self.exported + self.rejected + self.retrying + self.dead + self.lost

    def as_dict(self) -> dict[str, int]:
        return {"exported": self.exported, "rejected": self.rejected, "retrying": self.retrying,
                "dead": self.dead, "lost": self.lost, "batches": self.batches}


@dataclass
class _Claim:
    token: str
    lease: float
    orders: list[Order]
    attempts: dict[str, int] = field(default_factory=dict)


class Outbox:
    """Durable queue of orders to export. Thread-safe; any number of processes may share one store."""

    def __init__(
        self,
        url: str | Path = DEFAULT_URL,
        *,
        lease_seconds: float = 120.0,
        backoff_base: float = 2.0,
        backoff_max: float = 3600.0,
        max_attempts: int = 10,
        clock: Callable[[], float] = time.time,
        create_schema: bool = True,
        store: OutboxStore | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise InvalidRequestError("lease_seconds must be positive", field="lease_seconds")
        if max_attempts < 1:
            raise InvalidRequestError("max_attempts must be at least 1", field="max_attempts")
        self.store = store if store is not None else open_store(url, create_schema=create_schema)
        self.lease_seconds = lease_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self.clock = clock
        self.worker = uuid.uuid4().hex
        self._held: dict[str, tuple[str, int]] = {}  # ref -> (claim token, attempts before) for record()
        self._held_lock = threading.Lock()
        self._renewals = _Renewals(self._renew)

    @classmethod
    def from_settings(cls, settings: LoyaltySettings | None = None, **options: Any) -> Outbox:
        """The outbox at ``outbox_url`` (``LOYALTYKIT_OUTBOX_URL``; default a SQLite file)."""
        if settings is None:
            from ..settings import LoyaltySettings

            settings = LoyaltySettings()
        return cls(settings.outbox_url.get_secret_value(), **options)

    def __repr__(self) -> str:
        return f"Outbox({self.store.display!r})"

    def close(self) -> None:
        self._renewals.close()
        self.store.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def migrate(self) -> None:
        """Create or upgrade the outbox table (what ``loyaltykit outbox migrate`` runs)."""
        self.store.migrate()

    # -- producing ------------------------------------------------------------------------------
    def add(self, order: Order, *, supersede: bool = False) -> bool:
        """Queue an order. False when that ref is already queued or settled.

        With ``supersede=True`` a pending order that no worker holds gets the new payload (a changed
        basket before export); False when it was already exported, is in flight, or is settled.
        """
        if not isinstance(order, Order):
            raise InvalidRequestError("outbox takes Order instances", field="order")
        payload = order.model_dump_json()
        return self.store.insert(order.ref, group_of(order), payload, self.clock(), supersede=supersede,
                                 digest=payload_digest(payload))

    def drop(self, ref: str, *, reason: str) -> bool:
        """Cancel a pending order before export, keeping the reason. False if exported, in flight or unknown."""
        if not isinstance(ref, str) or not ref:
            raise InvalidRequestError("ref must be a non-empty string", field="ref")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidRequestError("a drop needs a reason", field="reason")
        return self.store.drop(ref, reason, self.clock())

    def retry(self, refs: Sequence[str] | None = None, *, states: Sequence[str] = (DEAD,)) -> int:
        """Queue dead (or, with ``states``, rejected/dropped) orders again, due now; returns how many."""
        unknown = [s for s in states if s not in (DEAD, REJECTED, DROPPED)]
        if unknown or not states:
            raise InvalidRequestError("retry takes the states dead, rejected or dropped", field="states")
        return self.store.retry(None if refs is None else list(refs), list(states), self.clock())

    # -- consuming ------------------------------------------------------------------------------
    def claim(self, limit: int = 100) -> list[Order]:
        """Lease up to ``limit`` due orders for this outbox (settle them with :meth:`record`)."""
        claim = self._claim(limit, self.lease_seconds)
        return claim.orders

    def release(self, orders: list[Order]) -> None:
        """Give leased orders back untouched."""
        with self._held_lock:
            held = [(o.ref, self._held.pop(o.ref, (None, 0))[0]) for o in orders]
        by_token: dict[str, list[str]] = {}
        for ref, token in held:
            if token is not None:
                by_token.setdefault(token, []).append(ref)
        for token, refs in by_token.items():
            self.store.release(token, refs)

    def record(self, report: ExportReport) -> None:
        """Store the engine's verdict for each order of the report that this outbox still leases.

        A worker whose lease ran out (and whose orders another worker claimed since) does not write
        over that worker's outcome: its verdict is dropped and the owner's export settles the order.
        """
        with self._held_lock:
            held = {r.order_ref: self._held.pop(r.order_ref) for r in report.results if r.order_ref in self._held}
        by_token: dict[str, _Claim] = {}
        for ref, (token, attempts) in held.items():
            by_token.setdefault(token, _Claim(token, 0, [])).attempts[ref] = attempts
        for claim in by_token.values():
            results = {r.order_ref: r for r in report.results if r.order_ref in claim.attempts}
            self._settle(claim, results)

    def flush(self, loyalty: Loyalty, batch: int = 100) -> ExportReport | None:
        """Export due orders once through a sync facade; ``None`` when nothing was due."""
        return self._flush(loyalty, batch)[0]

    async def aflush(self, loyalty: AsyncLoyalty, batch: int = 100) -> ExportReport | None:
        """Export due orders once through an async facade; the database work runs off the event loop."""
        return (await self._aflush(loyalty, batch))[0]

    def drain(self, loyalty: Loyalty, *, batch: int = 100, stop: threading.Event | None = None,
              progress: Callable[[int], None] | None = None) -> DrainSummary:
        """Flush until nothing is due (or ``stop`` is set); ``progress`` gets the size of each batch."""
        summary = DrainSummary()
        while stop is None or not stop.is_set():
            report, tally = self._flush(loyalty, batch)
            if report is None:
                break
            summary.add(tally)
            if progress is not None:
                progress(tally.orders)
        return summary

    async def adrain(self, loyalty: AsyncLoyalty, *, batch: int = 100, stop: asyncio.Event | None = None,
                     progress: Callable[[int], None] | None = None) -> DrainSummary:
        summary = DrainSummary()
        while stop is None or not stop.is_set():
            report, tally = await self._aflush(loyalty, batch)
            if report is None:
                break
            summary.add(tally)
            if progress is not None:
                progress(tally.orders)
        return summary

    def run_forever(self, loyalty: Loyalty, *, interval: float = 1.0, batch: int = 100,
                    stop: threading.Event | None = None, handle_signals: bool = True) -> DrainSummary:
        """A worker process's loop: drain, sleep ``interval``, again, until SIGTERM/SIGINT or ``stop``.

        On a signal the batch in hand is exported and recorded before the loop returns: nothing is
        left leased. Signals are handled only from the main thread (elsewhere, pass ``stop``).
        """
        stop = stop or threading.Event()
        restore = _stop_on_signals(stop) if handle_signals else {}
        summary = DrainSummary()
        try:
            while not stop.is_set():
                try:
                    summary.add(self.drain(loyalty, batch=batch, stop=stop))
                except Exception:  # a store outage must not end the worker: log, wait, try again
                    log.exception("outbox drain failed; retrying in %.1f s", interval)
                stop.wait(interval)
        finally:
            for signum, handler in restore.items():
                signal.signal(signum, handler)
        return summary

    async def arun_forever(self, loyalty: AsyncLoyalty, *, interval: float = 1.0, batch: int = 100,
                           stop: asyncio.Event | None = None, handle_signals: bool = True) -> DrainSummary:
        """:meth:`run_forever` on an event loop (signal handlers through the loop)."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(signum, stop.set)
                    installed.append(signum)
                except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
                    pass
        summary = DrainSummary()
        try:
            while not stop.is_set():
                try:
                    summary.add(await self.adrain(loyalty, batch=batch, stop=stop))
                except Exception:
                    log.exception("outbox drain failed; retrying in %.1f s", interval)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
        return summary

    # -- inspection -----------------------------------------------------------------------------
    def entry(self, ref: str) -> OutboxEntry | None:
        found = self.store.entries(None, 1, self.clock(), ref=ref)
        return found[0] if found else None

    def in_flight(self, ref: str) -> bool:
        """Whether a worker holds a live lease on the order (its export may be under way)."""
        entry = self.entry(ref)
        return entry is not None and entry.state == PENDING and entry.leased

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest order still waiting for export was queued (None: none waits)."""
        oldest = self.store.entries(PENDING, 1, self.clock())
        return None if not oldest else max(0.0, self.clock() - oldest[0].created_at)

    def entries(self, state: str | None = None, *, limit: int = 100) -> list[OutboxEntry]:
        """Entries oldest first, of one state (``pending``, ``dead``, ...) or all."""
        if state is not None and state not in STATES:
            raise InvalidRequestError(f"state must be one of {', '.join(STATES)}", field="state")
        return self.store.entries(state, limit, self.clock())

    def counts(self) -> dict[str, int]:
        """Orders per state."""
        counts = self.store.counts(self.clock())
        return {state: counts[state] for state in STATES}

    def status(self) -> dict[str, int]:
        """Orders per state, plus ``due`` (pending, due, unheld) and ``leased`` (being exported)."""
        return self.store.counts(self.clock())

    # -- async variants of the producing and inspection calls -----------------------------------
    async def aadd(self, order: Order, *, supersede: bool = False) -> bool:
        return await asyncio.to_thread(self.add, order, supersede=supersede)

    async def adrop(self, ref: str, *, reason: str) -> bool:
        return await asyncio.to_thread(self.drop, ref, reason=reason)

    async def aretry(self, refs: Sequence[str] | None = None, *, states: Sequence[str] = (DEAD,)) -> int:
        return await asyncio.to_thread(self.retry, refs, states=states)

    async def acounts(self) -> dict[str, int]:
        return await asyncio.to_thread(self.counts)

    async def aentries(self, state: str | None = None, *, limit: int = 100) -> list[OutboxEntry]:
        return await asyncio.to_thread(self.entries, state, limit=limit)

    # -- internals ------------------------------------------------------------------------------
    def _lease_for(self, loyalty: Loyalty | AsyncLoyalty) -> float:
        # Never shorter than two write deadlines: an export in flight keeps its lease even if the
        # renewal below is late.
        settings = getattr(loyalty, "settings", None)
        deadline = getattr(settings, "write_deadline", 0.0) or 0.0
        return max(self.lease_seconds, 2 * float(deadline))

    def _claim(self, limit: int, lease: float) -> _Claim:
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequestError("batch must be 1-500 orders", field="batch")
        token = f"{self.worker}:{uuid.uuid4().hex[:12]}"
        now = self.clock()
        rows: list[Claimed] = self.store.claim(limit, now, now + lease, token)
        claim = _Claim(token, lease, [])
        unloadable: list[Settlement] = []
        for row in rows:
            try:
                order = _stored_order(row.payload, row.digest)
            except (ValueError, TypeError) as exc:
                # A row that no longer loads (edited by hand, or written by an incompatible release)
                # would fail its whole batch on every claim: dead-letter it, keep the others going.
                unloadable.append(Settlement(row.ref, DEAD, row.attempts + 1, now, UNLOADABLE, _load_error(exc)))
                continue
            claim.orders.append(order)
            claim.attempts[row.ref] = row.attempts
        if unloadable:
            self.store.settle(token, unloadable, now)
            log.error("outbox: %d stored order(s) do not load; dead-lettered with the reason", len(unloadable))
        with self._held_lock:
            for ref, attempts in claim.attempts.items():
                self._held[ref] = (token, attempts)
        return claim

    @contextmanager
    def _renewing(self, claim: _Claim) -> Iterator[None]:
        """Renew the claim's lease every third of its length while the export runs."""
        with self._renewals.holding(claim.token, claim.lease):
            yield

    def _renew(self, token: str, lease: float) -> None:
        try:
            self.store.renew(token, self.clock() + lease)
        except Exception:
            log.warning("outbox lease renewal failed; the lease still runs %.0f s", lease)

    def _flush(self, loyalty: Loyalty, batch: int) -> tuple[ExportReport | None, DrainSummary]:
        claim = self._claim(batch, self._lease_for(loyalty))
        if not claim.orders:
            return None, DrainSummary()
        try:
            with self._renewing(claim):
                report = _export_isolating(loyalty.export_orders, claim.orders, _engine_name(loyalty))
        except BaseException:
            self._release_claim(claim)
            raise
        return report, self._settle(claim, {r.order_ref: r for r in report.results})

    async def _aflush(self, loyalty: AsyncLoyalty, batch: int) -> tuple[ExportReport | None, DrainSummary]:
        claim = await asyncio.to_thread(self._claim, batch, self._lease_for(loyalty))
        if not claim.orders:
            return None, DrainSummary()
        try:
            with self._renewing(claim):
                report = await _aexport_isolating(loyalty.export_orders, claim.orders, _engine_name(loyalty))
        except BaseException:
            self._release_claim(claim)
            raise
        tally = await asyncio.to_thread(self._settle, claim, {r.order_ref: r for r in report.results})
        return report, tally

    def _release_claim(self, claim: _Claim) -> None:
        with self._held_lock:
            for order in claim.orders:
                self._held.pop(order.ref, None)
        self.store.release(claim.token, [o.ref for o in claim.orders])

    def _settle(self, claim: _Claim, results: dict[str, OrderExportResult]) -> DrainSummary:
        now = self.clock()
        settlements = []
        for ref, before in claim.attempts.items():
            result = results.get(ref)
            attempts = before + 1
            status = result.status.value if result else ExportStatus.RETRY_LATER.value
            reason = result.reason if result else "no result for this order in the engine's report"
            if result is not None and result.status in (ExportStatus.ACCEPTED, ExportStatus.DUPLICATE):
                state, next_attempt = DONE, now
            elif result is not None and result.status is ExportStatus.REJECTED:
                state, next_attempt = REJECTED, now
            elif attempts >= self.max_attempts:
                state, next_attempt = DEAD, now
            else:
                state, next_attempt = PENDING, now + min(self.backoff_max, self.backoff_base ** min(attempts, 32))
            settlements.append(Settlement(ref, state, attempts, next_attempt, status, reason))
        with self._held_lock:
            for ref in claim.attempts:
                self._held.pop(ref, None)
        written = self.store.settle(claim.token, settlements, now)
        tally = DrainSummary(batches=1)
        for s in settlements:
            if s.ref not in written:
                tally.lost += 1
            elif s.state == DONE:
                tally.exported += 1
            elif s.state == REJECTED:
                tally.rejected += 1
            elif s.state == DEAD:
                tally.dead += 1
            else:
                tally.retrying += 1
        if tally.lost:
            log.warning("outbox: %d outcome(s) not written: their lease had passed to another worker", tally.lost)
        return tally


class _Renewals:
    """Renews the leases of the exports in progress, each every third of its length.

    One thread does it for every claim of an outbox: started by a claim, it waits ``linger`` seconds
    for the next one once none is held, and ends then, or when the outbox closes or is dropped. (A
    thread per batch cost a start and a join each time: ~0.15 ms of CPU and ~0.25 ms of waiting,
    more on a busy machine.) A renewal that runs after its claim ended changes nothing: settled or
    released rows no longer carry the claim's token.
    """

    linger = 1.0  # seconds; also how often the thread looks whether anything is still held

    def __init__(self, renew: Callable[[str, float], None]) -> None:
        # weak: a waiting thread must not keep a dropped outbox (and its connection) alive
        self._renew = weakref.WeakMethod(renew)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._changed = threading.Condition(threading.Lock())
        self._due: dict[str, tuple[float, float]] = {}  # token -> (next renewal, monotonic; lease)
        self._thread: threading.Thread | None = None
        self._wakes = 0.0  # when the thread's wait ends
        self._idle_until = 0.0  # with nothing held, the thread ends then
        self._closed = False

    @contextmanager
    def holding(self, token: str, lease: float) -> Iterator[None]:
        if self._pid != os.getpid():  # a forked child: the parent's thread is not here
            self._reset()
        due = time.monotonic() + lease / 3
        with self._changed:
            self._due[token] = (due, lease)
            if self._thread is None:
                self._wakes = 0.0  # it has not waited yet: it reads the claims first
                self._thread = threading.Thread(target=self._run, name="outbox-lease", daemon=True)
                self._thread.start()
            elif due < self._wakes:
                self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._due.pop(token, None)
                self._idle_until = time.monotonic() + self.linger

    def close(self) -> None:
        with self._changed:
            self._closed = True
            thread = self._thread
            self._changed.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                due = [(token, lease) for token, (at, lease) in self._due.items() if at <= now]
                if not due:
                    if self._due:
                        self._wakes = min(min(at for at, _ in self._due.values()), now + self.linger)
                    elif now < self._idle_until:
                        self._wakes = self._idle_until
                    else:
                        break
                    self._changed.wait(self._wakes - now)
                    continue
                for token, lease in due:
                    self._due[token] = (now + lease / 3, lease)
                renew = self._renew()
                if renew is None:  # the outbox is gone
                    break
                self._changed.release()  # the store's write may wait; claims come and go meanwhile
                try:
                    for token, lease in due:
                        renew(token, lease)
                finally:
                    del renew
                    self._changed.acquire()
            self._thread = None


def _stored_order(payload: str, digest: str | None = None) -> Order:
    """The order a row holds. A payload that still has the digest the kit wrote beside it is the
    kit's own dump of an order it validated: it is read back as such (``order_from_dump``, no
    validation run). Any other row (changed since it was written, queued without a digest or by
    another release) is validated once, with every check a new order gets.

    Numbers parse as Decimal: never float (the core's reader, whose decoder is built once:
    ``json.loads(..., parse_float=Decimal)`` builds one per call).
    """
    if digest is not None and digest == payload_digest(payload):
        order = order_from_dump(wire.loads(payload))
        if order is not None:
            return order
    return Order(**wire.loads(payload))


def _load_error(exc: BaseException) -> str:
    """Why a stored order does not load: the kit's errors name the field and never echo a value;
    anything else is named by its type only (its text may quote the payload)."""
    if isinstance(exc, LoyaltyError):
        return f"the stored order does not load: {exc.message}"[:500]
    return f"the stored order does not load ({type(exc).__name__})"


def _engine_name(loyalty: Loyalty | AsyncLoyalty) -> str:
    return str(getattr(loyalty, "engine", None) or "unknown")


def _cures_itself(exc: BaseException) -> bool:
    """An outage (the engine down, a timeout, an open circuit) hits every order alike: do not split."""
    return isinstance(exc, LoyaltyError) and exc.retryable


def _failed(orders: Sequence[Order], exc: Exception, engine: str) -> ExportReport:
    if isinstance(exc, LoyaltyError):
        reason, code = f"{type(exc).__name__}: {exc}", exc.code  # kit errors are scrubbed at the source
    else:
        reason, code = f"{type(exc).__name__} (unexpected error; see the worker's log)", None
        log.error("outbox export raised %s", type(exc).__name__, exc_info=exc)
    results = tuple(OrderExportResult(order_ref=o.ref, status=ExportStatus.RETRY_LATER, reason=reason[:500],
                                      error_code=code) for o in orders)
    return ExportReport(engine=engine, results=results)


def _export_isolating(export: Callable[[list[Order]], ExportReport], orders: list[Order], engine: str) -> ExportReport:
    try:
        return export(orders)
    except Exception as exc:
        if len(orders) == 1 or _cures_itself(exc):
            return _failed(orders, exc, engine)
    # The batch was refused whole (one bad order): export one by one so the others go through.
    results: list[OrderExportResult] = []
    for order in orders:
        try:
            results.extend(export([order]).results)
        except Exception as exc:
            results.extend(_failed([order], exc, engine).results)
    return ExportReport(engine=engine, results=tuple(results))


async def _aexport_isolating(export: Callable[[list[Order]], Awaitable[ExportReport]], orders: list[Order],
                             engine: str) -> ExportReport:
    try:
        return await export(orders)
    except Exception as exc:
        if len(orders) == 1 or _cures_itself(exc):
            return _failed(orders, exc, engine)
    results: list[OrderExportResult] = []
    for order in orders:
        try:
            results.extend((await export([order])).results)
        except Exception as exc:
            results.extend(_failed([order], exc, engine).results)
    return ExportReport(engine=engine, results=tuple(results))


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    return previous
