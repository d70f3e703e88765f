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
from .store import IntegrityError, Prepared, Store, from_db, to_db

if TYPE_CHECKING:
    from typing import TypeAlias

    from sqlalchemy.engine import Row

    from .store import Connection

    #: a result row of any shape (SQLAlchemy types rows by their columns), or the named tuple a
    #: Prepared statement returns on SQLite: both read as ``row.column``
    AnyRow: TypeAlias = Row[*tuple[Any, ...]] | Any

ENGINE = rules.ENGINE
R = TypeVar("R", bound=BaseModel)

#: the customers' column of each kind of identifier, and the statement that finds a customer by it
IDENTIFIER_COLUMN = {
    IdentifierKind.EMAIL: "email",
    IdentifierKind.PHONE: "phone",
    IdentifierKind.CARD: "card",
    IdentifierKind.MEMBERSHIP: "membership_number",
    IdentifierKind.EXTERNAL_ID: "external_id",
}
CUSTOMER_BY = {
    IdentifierKind.EMAIL: Prepared("customer_by_email"),
    IdentifierKind.PHONE: Prepared("customer_by_phone"),
    IdentifierKind.CARD: Prepared("customer_by_card"),
    IdentifierKind.MEMBERSHIP: Prepared("customer_by_membership"),
    IdentifierKind.EXTERNAL_ID: Prepared("customer_by_external_id"),
}
POINTS, CASHBACK = "points", "cashback"

# The statements of the engine's operations, by name (see .statements).
_CUSTOMER = Prepared("customer")
_CUSTOMER_LOCKED = Prepared("customer_locked")
CUSTOMER_EXISTS = Prepared("customer_exists")
_SUM_POINTS = Prepared("points_sum")
_SUM_CASHBACK = Prepared("cashback_sum")
_QUALIFYING_ALL = Prepared("qualifying_points")
_QUALIFYING_SINCE = Prepared("qualifying_points_since")
_DUE_SINCE = Prepared("expiry_due_since")
_DUE = Prepared("expiry_due")
_CUSTOMER_LOCKED_DUE = Prepared("customer_for_export")
# What an export records of the customer's history on its row (see tables.customers): on a first
# order or a first grant only.
_SET_HISTORY = Prepared("customer_history_update")
_POINTS_ROWS = Prepared("points_lots")
_SET_CURSOR = Prepared("customer_expiry_cursor_update")
_CASHBACK_CURRENCIES = Prepared("cashback_currencies")
_ORDER_SEEN = Prepared("order_seen")
_INSERT_LEDGER = Prepared("ledger_insert")
_INSERT_ORDER = Prepared("order_insert")
_INSERT_GRANT = Prepared("grant_insert")
_WRITE_SEEN = Prepared("write_seen")
_INSERT_WRITE = Prepared("write_insert")
_VOUCHER = Prepared("voucher")
_VOUCHER_HELD = Prepared("voucher_held")
_WALLET = Prepared("wallet")


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
        # customer id -> (program, facts, row) as the customer's last export left them (see
        # Checkout._plan_export); row: the customer's row as the driver read it, when that export left
        # it unchanged (an export reading the same row again has the same facts)
        self._export_facts: dict[str, tuple[CompiledProgram, CustomerFacts, tuple[Any, ...] | None]] = {}
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
        rows = _POINTS_ROWS.run(conn, {"customer_id": customer_id})
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
        _SET_CURSOR.run(conn, {"customer_id": customer_id, "cursor": to_db(now)})
        return expired

    def _points_available(self, conn: Connection, customer_id: str, now: datetime, row: AnyRow | None = None) -> int:
        return max(0, self._sum(conn, customer_id, POINTS, None) - self._pending_expiry(conn, customer_id, now, row))

    def _qualifying_points(self, conn: Connection, customer_id: str) -> int:
        # Net points earned (earn entries less claw-backs); spending and expiry do not lower a tier.
        days = self.program.points.qualifying_days
        if days is None:
            return int(_QUALIFYING_ALL.run(conn, {"customer_id": customer_id}).scalar_one())
        since = to_db(self.now() - timedelta(days=days))  # the qualifying period: a rolling window
        return int(_QUALIFYING_SINCE.run(conn, {"customer_id": customer_id, "since": since}).scalar_one())

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
        # one look-up per code (a basket carries a few): fixed statements rather than an IN list of any length
        rows = [row for code in dict.fromkeys(codes) if (row := _VOUCHER.run(conn, {"code": code}).first()) is not None]
        held: set[str] = set()
        if order_ref is not None:
            held = {row.code for row in rows
                    if _VOUCHER_HELD.run(conn, {"order_ref": order_ref, "code": row.code}).first() is not None}
        return {
            row.code: VoucherFacts(VoucherDef.model_validate(row.definition), row.uses, row.offer_kind, row.code in held)
            for row in rows
        }

    def _wallet(self, conn: Connection, customer_id: str) -> list[VoucherFacts]:
        rows = _WALLET.run(conn, {"customer_id": customer_id})
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
        currencies = set(_CASHBACK_CURRENCIES.run(conn, {"customer_id": row.id}).scalars())
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
                    earlier = _WRITE_SEEN.run(conn, {"key": key}).first()
                    if earlier is not None:
                        if earlier.operation != operation or earlier.fingerprint != fingerprint:
                            raise InvalidRequestError(
                                "idempotency key already used for a different request",
                                field="idempotency_key", engine=ENGINE, operation=operation)
                        return _replayed(model.model_validate(earlier.result))
                    now = self.now()
                    result = work(conn, now)
                    _INSERT_WRITE.run(conn, {
                        "key": key, "operation": operation, "fingerprint": fingerprint, "order_ref": order_ref,
                        "result": result.model_dump(mode="json"), "created_at": to_db(now)})
                    return result
            except IntegrityError:
                continue  # another writer recorded the same key first (PostgreSQL): read it back
        raise InvalidRequestError("idempotency key could not be recorded", field="idempotency_key", engine=ENGINE)

