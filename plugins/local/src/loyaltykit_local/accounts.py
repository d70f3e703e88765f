"""What every operation of the embedded engine stands on: the engine's state (store, program,
clock), the customer's facts and balances read inside a transaction, appends to the ledger, and
keyed writes.

Exactly-once writes: every keyed write (redeem, spend, reverse) first looks its key up in
``lk_writes``; a known key returns the stored result with ``replayed=True``. The key is the table's
primary key, so two racing writers cannot both record it (the loser retries and replays).

The roles built on it: :mod:`.admin` (program, seeding, reading back), :mod:`.checkout` (the
checkout operations) and :mod:`.members`; :mod:`.service` composes them into ``LocalEngine``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import IntegrityError

from loyaltykit import (
    Balance,
    BalanceKind,
    CurrencyMismatchError,
    Customer,
    CustomerNotFoundError,
    IdentifierKind,
    InvalidRequestError,
    Money,
)
from loyaltykit.money import exponent

from . import rules
from .ledger import PointsEntry, expired_unrecorded
from .program import Program, VoucherDef
from .rules import CompiledProgram, CustomerFacts, VoucherFacts
from .store import Prepared, Store, customers, from_db, grants, ledger, orders, redemptions, to_db, vouchers, writes

if TYPE_CHECKING:
    from typing import TypeAlias

    from sqlalchemy.engine import Row

    #: a result row of any shape (SQLAlchemy types rows by their columns), or the named tuple a
    #: Prepared statement returns on SQLite: both read as ``row.column``
    AnyRow: TypeAlias = Row[*tuple[Any, ...]] | Any

ENGINE = rules.ENGINE
R = TypeVar("R", bound=BaseModel)

_IDENTIFIER_COLUMN = {
    IdentifierKind.EMAIL: customers.c.email,
    IdentifierKind.PHONE: customers.c.phone,
    IdentifierKind.CARD: customers.c.card,
    IdentifierKind.MEMBERSHIP: customers.c.membership_number,
    IdentifierKind.EXTERNAL_ID: customers.c.external_id,
}
POINTS, CASHBACK = "points", "cashback"

# Statements on the checkout path are built once: SQLAlchemy then reuses their cache keys and
# compiled forms, which is most of the per-statement cost.
_CUSTOMER_ROW = select(customers).where(customers.c.id == bindparam("customer_id"))
_CUSTOMER = Prepared(_CUSTOMER_ROW)
_CUSTOMER_LOCKED = Prepared(_CUSTOMER_ROW.with_for_update())
_SUM_POINTS = Prepared(select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS))
_SUM_CASHBACK = Prepared(select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == CASHBACK,
    ledger.c.currency == bindparam("currency")))
_QUALIFYING = select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS,
    (ledger.c.entry == "earn") | and_(ledger.c.entry == "reverse", ledger.c.amount < 0))
_DUE_ANY = select(ledger.c.id).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS,
    ledger.c.expires_at.is_not(None), ledger.c.expires_at <= bindparam("now"))
_DUE_SINCE = Prepared(_DUE_ANY.where(ledger.c.expires_at > bindparam("cursor")).limit(1))
_DUE = Prepared(_DUE_ANY.limit(1))
# What an export reads of the customer's row (its history included), locked, with whether any lot
# expired since its last recorded expiry (the _DUE/_DUE_SINCE look-up as a column): one statement.
_CUSTOMER_LOCKED_DUE = Prepared(select(
    customers.c.id, customers.c.role, customers.c.tier, customers.c.segments, customers.c.ordered,
    customers.c.granted_rules,
    select(ledger.c.id).where(
        ledger.c.customer_id == customers.c.id, ledger.c.balance == POINTS,
        ledger.c.expires_at.is_not(None), ledger.c.expires_at <= bindparam("now"),
        or_(customers.c.expiry_recorded_until.is_(None), ledger.c.expires_at > customers.c.expiry_recorded_until),
    ).exists().label("expiry_due"),
).where(customers.c.id == bindparam("customer_id")).with_for_update())
# What an export records of the customer's history on its row (see store.customers): on a first
# order or a first grant only, so through SQLAlchemy as usual.
_SET_HISTORY = (update(customers).where(customers.c.id == bindparam("customer_id"))
                .values(ordered=bindparam("ordered"), granted_rules=bindparam("granted_rules")))
_QUALIFYING_ALL = Prepared(_QUALIFYING)
_POINTS_ROWS = (select(ledger.c.amount, ledger.c.expires_at)
                .where(ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS)
                .order_by(ledger.c.id))
_SET_CURSOR = (update(customers).where(customers.c.id == bindparam("customer_id"))
               .values(expiry_recorded_until=bindparam("cursor")))
_ORDER_SEEN = select(orders.c.id, orders.c.points_earned).where(
    (orders.c.ref == bindparam("ref")) | (orders.c.write_key == bindparam("key")))
_INSERT_LEDGER = Prepared.insert(ledger)
_INSERT_ORDER = Prepared.insert(orders)
_INSERT_GRANT = Prepared.insert(grants)
_WRITE_SEEN = select(writes).where(writes.c.key == bindparam("key"))
_INSERT_WRITE = insert(writes)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _minor(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(exponent(currency)))


def _major(units: int, currency: str) -> Decimal:
    return Decimal(units).scaleb(-exponent(currency))


def _whole_points(value: Decimal, field: str) -> int:
    if value != value.to_integral_value():
        raise InvalidRequestError(f"{field}: the local engine counts whole points", field=field, engine=ENGINE)
    return int(value)


def _span(total: int, before: Decimal, after: Decimal) -> int:
    """Whole units of ``total`` between two cumulative shares, each rounded half up, so that the
    spans of successive refunds add up to ``total`` exactly."""
    def upto(share: Decimal) -> int:
        return int((Decimal(total) * share).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return upto(after) - upto(before)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:32]


def _replayed(result: R) -> R:
    if hasattr(result, "receipt"):
        return result.model_copy(update={"receipt": result.receipt.model_copy(update={"replayed": True})})
    if hasattr(result, "receipts"):
        return result.model_copy(update={"receipts": tuple(r.model_copy(update={"replayed": True}) for r in result.receipts)})
    return result


class Accounts:
    """The engine's state and the reads and ledger writes shared by its roles (inside a transaction)."""

    _compiled: CompiledProgram

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self.calls: Counter[str] = Counter()  # operations served, by route name (for test harnesses)
        # customer id -> (program, facts) as the customer's last export left them (see Checkout._plan_export)
        self._export_facts: dict[str, tuple[CompiledProgram, CustomerFacts]] = {}
        self._lock = threading.Lock()

    # -- program -------------------------------------------------------------------------------
    @property
    def program(self) -> Program:
        return self._compiled.program

    @property
    def compiled(self) -> CompiledProgram:
        return self._compiled

    def now(self) -> datetime:
        return self.clock()

    def _check_currency(self, currency: str, operation: str) -> None:
        if currency not in self.program.accepted_currencies:
            raise CurrencyMismatchError(
                f"the program does not accept {currency} (it accepts {', '.join(sorted(self.program.accepted_currencies))})",
                engine=ENGINE, operation=operation, field="currency",
            )

    # ==========================================================================================
    # Ledger and customer facts (inside a transaction)
    # ==========================================================================================

    @staticmethod
    def _entry(customer_id: str, balance: str, currency: str | None, entry: str, amount: int, at: datetime, *,
               order_ref: str | None = None, write_key: str | None = None, label: str | None = None,
               expires_at: datetime | None = None) -> dict[str, Any]:
        return {"customer_id": customer_id, "balance": balance, "currency": currency, "entry": entry,
                "amount": amount, "order_ref": order_ref, "write_key": write_key, "label": label,
                "created_at": to_db(at), "expires_at": to_db(expires_at)}

    def _append(self, conn: Connection, customer_id: str, balance: str, currency: str | None, entry: str,
                amount: int, at: datetime, **details: Any) -> int:
        inserted = _INSERT_LEDGER.run(conn, self._entry(customer_id, balance, currency, entry, amount, at, **details))
        if inserted.inserted_id is None:
            raise AssertionError("an INSERT reports the id it wrote")
        return inserted.inserted_id

    def _lock_customer(self, conn: Connection, customer_id: str) -> AnyRow:
        row = _CUSTOMER_LOCKED.run(conn, {"customer_id": customer_id}).first()
        if row is None:
            raise CustomerNotFoundError("no such customer", engine=ENGINE)
        return row

    def _require_customer(self, conn: Connection, customer_id: str) -> AnyRow:
        row = _CUSTOMER.run(conn, {"customer_id": customer_id}).first()
        if row is None:
            raise CustomerNotFoundError("no such customer", engine=ENGINE)
        return row

    def _sum(self, conn: Connection, customer_id: str, balance: str, currency: str | None) -> int:
        if balance == POINTS:
            return int(_SUM_POINTS.run(conn, {"customer_id": customer_id}).scalar_one())
        return int(_SUM_CASHBACK.run(conn, {"customer_id": customer_id, "currency": currency}).scalar_one())

    def _cashback_units(self, conn: Connection, customer_id: str, currency: str) -> int:
        return self._sum(conn, customer_id, CASHBACK, currency)

    def _expiry_due(self, conn: Connection, customer_id: str, now: datetime, row: AnyRow | None = None) -> bool:
        """Whether any lot has expired since the last recorded expiry (one indexed look-up)."""
        if row is None:
            row = self._require_customer(conn, customer_id)
        cursor = row.expiry_recorded_until
        params = {"customer_id": customer_id, "now": to_db(now), "cursor": cursor}
        return (_DUE if cursor is None else _DUE_SINCE).run(conn, params).first() is not None

    def _expired_points(self, conn: Connection, customer_id: str, now: datetime) -> int:
        rows = conn.execute(_POINTS_ROWS, {"customer_id": customer_id}).all()
        return expired_unrecorded((PointsEntry(r.amount, from_db(r.expires_at)) for r in rows), now)

    def _pending_expiry(self, conn: Connection, customer_id: str, now: datetime, row: AnyRow | None = None) -> int:
        if not self._expiry_due(conn, customer_id, now, row):
            return 0  # the common case: skip the walk over the customer's entries
        return self._expired_points(conn, customer_id, now)

    def _record_expiry(self, conn: Connection, customer_id: str, now: datetime, row: AnyRow | None = None,
                       due: bool | None = None) -> int:
        """Write what expired by ``now`` to the ledger (inside a write transaction); ``due``: whether
        anything expired, when already read (_CUSTOMER_LOCKED_DUE)."""
        if not (self._expiry_due(conn, customer_id, now, row) if due is None else due):
            return 0
        expired = self._expired_points(conn, customer_id, now)
        if expired:
            self._append(conn, customer_id, POINTS, None, "expire", -expired, now, label="points expired")
        conn.execute(_SET_CURSOR, {"customer_id": customer_id, "cursor": to_db(now)})
        return expired

    def _points_available(self, conn: Connection, customer_id: str, now: datetime, row: AnyRow | None = None) -> int:
        return max(0, self._sum(conn, customer_id, POINTS, None) - self._pending_expiry(conn, customer_id, now, row))

    def _qualifying_points(self, conn: Connection, customer_id: str) -> int:
        # Net points earned (earn entries less claw-backs); spending and expiry do not lower a tier.
        days = self.program.points.qualifying_days
        if days is None:
            return int(_QUALIFYING_ALL.run(conn, {"customer_id": customer_id}).scalar_one())
        since = to_db(self.now() - timedelta(days=days))  # the qualifying period: a rolling window
        return int(conn.execute(_QUALIFYING.where(ledger.c.created_at >= since), {"customer_id": customer_id}).scalar_one())

    def _tier(self, conn: Connection, row: AnyRow) -> str | None:
        assigned: str | None = row.tier
        tiers = self.program.tiers_by_threshold()
        if not tiers:
            return assigned
        qualifying = self._qualifying_points(conn, row.id)
        earned = None
        for tier in tiers:
            if qualifying >= tier.threshold:
                earned = tier
        rank = {tier.name: index for index, tier in enumerate(tiers)}
        if assigned is not None and (earned is None or rank.get(assigned, -1) > rank[earned.name]):
            return assigned  # an assigned tier is a floor
        return earned.name if earned else assigned

    def _facts(self, conn: Connection, customer_id: str, currency: str, now: datetime, *, row: AnyRow | None = None,
               balances: bool = True) -> CustomerFacts:
        """What rules may know of the customer; ``balances=False`` skips what only a quote shows."""
        if row is None:
            row = self._require_customer(conn, customer_id)
        return CustomerFacts(
            id=row.id,
            tier=self._tier(conn, row),
            role=row.role,
            segments=frozenset(row.segments or ()),
            ordered_before=bool(row.ordered),
            granted_rules=frozenset(row.granted_rules or ()),
            points=self._points_available(conn, customer_id, now, row) if balances else 0,
            cashback=_major(self._cashback_units(conn, customer_id, currency), currency) if balances else Decimal(0),
        )

    def _voucher_facts(self, conn: Connection, codes: Sequence[str], order_ref: str | None) -> dict[str, VoucherFacts]:
        if not codes:
            return {}
        rows = conn.execute(select(vouchers).where(vouchers.c.code.in_(list(codes)))).all()
        held: set[str] = set()
        if order_ref is not None:
            held = set(conn.execute(select(redemptions.c.code).where(
                redemptions.c.order_ref == order_ref, redemptions.c.status == "redeemed",
                redemptions.c.code.in_(list(codes)))).scalars())
        return {
            row.code: VoucherFacts(VoucherDef.model_validate(row.definition), row.uses, row.offer_kind, row.code in held)
            for row in rows
        }

    def _wallet(self, conn: Connection, customer_id: str) -> list[VoucherFacts]:
        rows = conn.execute(select(vouchers).where(
            vouchers.c.owner_id == customer_id, vouchers.c.offer_kind.is_not(None),
            (vouchers.c.usage_limit.is_(None)) | (vouchers.c.uses < vouchers.c.usage_limit),
        ).order_by(vouchers.c.created_at, vouchers.c.code)).all()
        now = self.now()
        found = []
        for row in rows:
            definition = VoucherDef.model_validate(row.definition)
            if definition.valid_until is not None and definition.valid_until <= now:
                continue
            found.append(VoucherFacts(definition, row.uses, row.offer_kind))
        return found

    def _customer_model(self, conn: Connection, row: AnyRow) -> Customer:
        now = self.now()
        points = self._points_available(conn, row.id, now)
        balances = [Balance(kind=BalanceKind.POINTS, name=self.program.points.name, points=Decimal(points))]
        currencies = set(conn.execute(select(ledger.c.currency).where(
            ledger.c.customer_id == row.id, ledger.c.balance == CASHBACK).distinct()).scalars())
        # One cashback balance: the program's currency (others are rare; see balances()).
        currency = self.program.currency if self.program.currency in currencies or not currencies else sorted(currencies)[0]
        balances.append(Balance(kind=BalanceKind.CASHBACK, name="cashback",
                                money=Money(amount=_major(self._cashback_units(conn, row.id, currency), currency),
                                            currency=currency)))
        return Customer(
            id=row.id,
            membership_number=row.membership_number,
            tier=self._tier(conn, row),
            status=row.status,
            segments=tuple(row.segments or ()),
            balances=tuple(balances),
            email=row.email,
            display_name=row.display_name,
            raw={"role": row.role} if row.role else {},
        )

    # ==========================================================================================
    # Keyed writes
    # ==========================================================================================

    def _keyed(self, operation: str, key: str, fingerprint: str, order_ref: str | None,
               model: type[R], work: Callable[[Connection, datetime], R]) -> R:
        for _attempt in range(3):
            try:
                with self.store.write() as conn:
                    earlier = conn.execute(_WRITE_SEEN, {"key": key}).first()
                    if earlier is not None:
                        if earlier.operation != operation or earlier.fingerprint != fingerprint:
                            raise InvalidRequestError(
                                "idempotency key already used for a different request",
                                field="idempotency_key", engine=ENGINE, operation=operation)
                        return _replayed(model.model_validate(earlier.result))
                    now = self.now()
                    result = work(conn, now)
                    conn.execute(_INSERT_WRITE, {
                        "key": key, "operation": operation, "fingerprint": fingerprint, "order_ref": order_ref,
                        "result": result.model_dump(mode="json"), "created_at": to_db(now)})
                    return result
            except IntegrityError:
                continue  # another writer recorded the same key first (PostgreSQL): read it back
        raise InvalidRequestError("idempotency key could not be recorded", field="idempotency_key", engine=ENGINE)


def _inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise AssertionError("an INSERT returns its primary key")
    return int(key[0])
