"""The engine's operations: each one a transaction around the pure rules in :mod:`.engine`.

``LocalEngine`` is what the adapter calls for the six checkout operations, and also the admin API
a shop (or the demo, or the test harness) uses to seed customers, issue vouchers and offers,
credit balances and read a customer's history.

Exactly-once writes: every keyed write (redeem, spend, reverse) first looks its key up in
``lk_writes``; a known key returns the stored result with ``replayed=True``. The key is the table's
primary key, so two racing writers cannot both record it (the loser retries and replays).
Exports are keyed by order reference and order key in ``lk_orders`` the same way.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import and_, bindparam, func, insert, literal_column, select, union_all, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import IntegrityError, OperationalError

from loyaltykit import (
    Balance,
    BalanceKind,
    Basket,
    CashbackSpend,
    CurrencyMismatchError,
    Customer,
    CustomerIdentifier,
    CustomerNotFoundError,
    Evaluation,
    ExportReport,
    ExportStatus,
    IdentifierKind,
    InsufficientBalanceError,
    InvalidRequestError,
    LoyaltyError,
    Money,
    Order,
    OrderExportResult,
    ProductPrice,
    ProductQuery,
    Receipt,
    RedemptionResult,
    RedemptionStatus,
    RefundLine,
    Reversal,
    ReversalResult,
    SpendResult,
    UsageLimitReachedError,
    VoucherAlreadyRedeemedError,
    VoucherConditionsNotMetError,
    VoucherNotFoundError,
    VoucherRedemption,
)
from loyaltykit.money import exponent

from . import engine as rules
from .engine import BasketView, CompiledProgram, CustomerFacts, VoucherFacts
from .ledger import HistoryEntry, PointsEntry, capped_clawback, expired_unrecorded, expiry_for
from .program import OfferTemplate, Program, VoucherDef, amount_in
from .store import Store, customers, from_db, grants, ledger, orders, redemptions, to_db, vouchers, writes

if TYPE_CHECKING:
    from typing import TypeAlias

    from sqlalchemy.engine import Row

    #: a result row of any shape (SQLAlchemy types rows by their columns)
    AnyRow: TypeAlias = Row[*tuple[Any, ...]]

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
_CUSTOMER = select(customers).where(customers.c.id == bindparam("customer_id"))
_CUSTOMER_LOCKED = _CUSTOMER.with_for_update()
_SUM_POINTS = select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS)
_SUM_CASHBACK = select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == CASHBACK,
    ledger.c.currency == bindparam("currency"))
_QUALIFYING = select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS,
    (ledger.c.entry == "earn") | and_(ledger.c.entry == "reverse", ledger.c.amount < 0))
_DUE = select(ledger.c.id).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS,
    ledger.c.expires_at.is_not(None), ledger.c.expires_at <= bindparam("now"))
_DUE_SINCE = _DUE.where(ledger.c.expires_at > bindparam("cursor")).limit(1)
_DUE = _DUE.limit(1)
_POINTS_ROWS = (select(ledger.c.amount, ledger.c.expires_at)
                .where(ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS)
                .order_by(ledger.c.id))
_SET_CURSOR = (update(customers).where(customers.c.id == bindparam("customer_id"))
               .values(expiry_recorded_until=bindparam("cursor")))
# The customer's history in one round trip: a row (NULL, order count), then one row per rule granted.
_HISTORY = union_all(
    select(literal_column("NULL").label("rule_id"), func.count().label("orders"))
    .select_from(orders).where(orders.c.customer_id == bindparam("customer_id")),
    select(grants.c.rule_id, literal_column("0")).where(grants.c.customer_id == bindparam("customer_id"))
    .group_by(grants.c.rule_id),
)
_ORDER_SEEN = select(orders.c.id, orders.c.points_earned).where(
    (orders.c.ref == bindparam("ref")) | (orders.c.write_key == bindparam("key")))
_INSERT_LEDGER = insert(ledger)
_INSERT_ORDER = insert(orders)
_INSERT_GRANT = insert(grants)
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


class LocalEngine:
    """The embedded engine: a store, a program, and a clock."""

    def __init__(self, store: Store, program: Program | None = None, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self.calls: Counter[str] = Counter()  # operations served, by route name (for test harnesses)
        self._lock = threading.Lock()
        self.set_program(program or Program())

    # -- program -------------------------------------------------------------------------------
    @property
    def program(self) -> Program:
        return self._compiled.program

    def set_program(self, program: Program) -> None:
        """Swap the program (rules are compiled once here); the program's vouchers are upserted."""
        compiled = CompiledProgram.build(program)
        with self._lock:
            self._compiled = compiled
        for voucher in program.vouchers:
            self.issue_voucher(voucher, replace=True)

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
    # Admin API: seeding and reading back (not a checkout hook)
    # ==========================================================================================

    def create_customer(
        self,
        *,
        id: str | None = None,
        identifiers: dict[str, str] | None = None,
        display_name: str | None = None,
        role: str | None = None,
        tier: str | None = None,
        segments: Iterable[str] = (),
        points: int = 0,
        cashback: Money | None = None,
    ) -> str:
        """Enrol a member; returns the id checkout calls use as ``customer_id``."""
        customer_id = id or f"M{uuid.uuid4().hex[:12].upper()}"
        values: dict[str, Any] = {}
        for kind, value in (identifiers or {}).items():
            identifier = CustomerIdentifier(kind=IdentifierKind(kind), value=value)  # normalised as at lookup
            values[_IDENTIFIER_COLUMN[identifier.kind].name] = identifier.value
        now = self.now()
        try:
            self._enrol(customer_id, values, display_name, role, tier, segments, points, cashback, now)
        except IntegrityError as exc:
            # The driver's message quotes the duplicate value (an e-mail, a phone): name the field only.
            text = str(exc.orig)
            field = next((name for name in ("email", "phone", "card", "membership_number", "external_id")
                          if name in text), "id")
            raise InvalidRequestError(f"a member with this {field} already exists", field=field,
                                      engine=ENGINE, operation="create_customer") from None
        return customer_id

    def _enrol(self, customer_id: str, values: dict[str, Any], display_name: str | None, role: str | None,
               tier: str | None, segments: Iterable[str], points: int, cashback: Money | None, now: datetime) -> None:
        with self.store.write() as conn:
            conn.execute(insert(customers).values(
                id=customer_id, display_name=display_name, role=role, tier=tier, segments=sorted(set(segments)),
                status="active", created_at=to_db(now), **values,
            ))
            if points:
                self._append(conn, customer_id, POINTS, None, "earn", int(points), now, label="opening balance",
                             expires_at=expiry_for(self.program.points, now))
            if cashback is not None and not cashback.is_zero():
                self._append(conn, customer_id, CASHBACK, cashback.currency, "earn", cashback.minor_units(), now,
                             label="opening balance")

    def credit(self, customer_id: str, *, points: int = 0, cashback: Money | None = None, label: str = "credit",
               expires_at: datetime | None = None) -> None:
        """Credit points and/or cashback outside an order (goodwill, migration, a campaign)."""
        now = self.now()
        with self.store.write() as conn:
            self._lock_customer(conn, customer_id)
            if points:
                self._append(conn, customer_id, POINTS, None, "earn", int(points), now, label=label,
                             expires_at=expires_at if expires_at is not None else expiry_for(self.program.points, now))
            if cashback is not None and not cashback.is_zero():
                self._append(conn, customer_id, CASHBACK, cashback.currency, "earn", cashback.minor_units(), now, label=label)

    def issue_voucher(self, voucher: VoucherDef, *, offer_kind: str | None = None, replace: bool = False) -> str:
        """Store a voucher, promo code or wallet offer. ``replace`` keeps the usage count."""
        now = self.now()
        row = {
            "definition": voucher.model_dump(mode="json"),
            "owner_id": voucher.owner,
            "offer_kind": offer_kind,
            "usage_limit": voucher.usage_limit,
        }
        with self.store.write() as conn:
            exists = conn.execute(select(vouchers.c.code).where(vouchers.c.code == voucher.code)).first()
            if exists is None:
                conn.execute(insert(vouchers).values(code=voucher.code, uses=0, created_at=to_db(now), **row))
            elif replace:
                conn.execute(update(vouchers).where(vouchers.c.code == voucher.code).values(**row))
            else:
                raise InvalidRequestError(f"voucher code {voucher.code} exists already", field="code", engine=ENGINE)
        return voucher.code

    def issue_offer(self, customer_id: str, template: OfferTemplate | str, *, code: str | None = None) -> str:
        """Put an offer into one customer's wallet; returns its code (also its offer id)."""
        if isinstance(template, str):
            template = self.program.offer_template(template)
        now = self.now()
        code = code or f"{template.id}-{uuid.uuid4().hex[:8].upper()}"
        kind = {"percent_off_check": "percent", "fixed_off_check": "fixed", "fixed_off_item": "item"}[template.kind]
        voucher = VoucherDef(
            code=code, kind=kind, percent=template.percent, amount=template.amount, sku=template.sku,
            label=template.label or template.id, owner=customer_id, usage_limit=1,
            valid_until=now + timedelta(days=template.valid_days) if template.valid_days else None,
        )
        with self.store.read() as conn:
            if conn.execute(select(customers.c.id).where(customers.c.id == customer_id)).first() is None:
                raise CustomerNotFoundError("no such customer", engine=ENGINE, operation="issue_offer")
        return self.issue_voucher(voucher, offer_kind=template.kind)

    def balances(self, customer_id: str, currency: str | None = None) -> tuple[int, Money]:
        """Spendable points and cashback (in ``currency``, default the program's) right now."""
        currency = currency or self.program.currency
        with self.store.read() as conn:
            self._require_customer(conn, customer_id)
            return self._points_available(conn, customer_id, self.now()), Money(
                amount=_major(self._cashback_units(conn, customer_id, currency), currency), currency=currency)

    def history(self, customer_id: str) -> list[HistoryEntry]:
        """The customer's statement: every ledger entry, oldest first (expiries due now included)."""
        now = self.now()
        with self.store.read() as conn:
            self._require_customer(conn, customer_id)
            rows = conn.execute(select(ledger).where(ledger.c.customer_id == customer_id).order_by(ledger.c.id)).all()
            pending = self._pending_expiry(conn, customer_id, now)
        entries = [HistoryEntry(from_db(r.created_at), r.balance, r.entry, r.amount, r.currency, r.order_ref, r.label)
                   for r in rows]
        if pending:
            entries.append(HistoryEntry(now, POINTS, "expire", -pending, None, None, "points expired"))
        return entries

    def voucher_uses(self, code: str) -> int:
        with self.store.read() as conn:
            return conn.execute(select(vouchers.c.uses).where(vouchers.c.code == code)).scalar_one_or_none() or 0

    def orders_received(self) -> list[str]:
        with self.store.read() as conn:
            return list(conn.execute(select(orders.c.ref).order_by(orders.c.id)).scalars())

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, for "this changed nothing" checks."""
        from .store import TABLES

        with self.store.read() as conn:
            return {
                table.name: sorted(tuple(str(v) for v in row) for row in conn.execute(select(table)).all())
                for table in TABLES
            }

    def expire_points(self) -> int:
        """Write due expiries for every customer (a nightly job may call this; writes do it anyway)."""
        now = self.now()
        with self.store.read() as conn:
            ids = list(conn.execute(select(customers.c.id)).scalars())
        expired = 0
        for customer_id in ids:
            with self.store.write() as conn:
                row = self._lock_customer(conn, customer_id)
                expired += self._record_expiry(conn, customer_id, now, row)
        from .members import review_tiers

        review_tiers(self)  # tiers lost when points leave the qualifying period
        return expired

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
        result = conn.execute(_INSERT_LEDGER, self._entry(customer_id, balance, currency, entry, amount, at, **details))
        return _inserted_id(result)

    def _lock_customer(self, conn: Connection, customer_id: str) -> AnyRow:
        row = conn.execute(_CUSTOMER_LOCKED, {"customer_id": customer_id}).first()
        if row is None:
            raise CustomerNotFoundError("no such customer", engine=ENGINE)
        return row

    def _require_customer(self, conn: Connection, customer_id: str) -> AnyRow:
        row = conn.execute(_CUSTOMER, {"customer_id": customer_id}).first()
        if row is None:
            raise CustomerNotFoundError("no such customer", engine=ENGINE)
        return row

    def _sum(self, conn: Connection, customer_id: str, balance: str, currency: str | None) -> int:
        if balance == POINTS:
            return int(conn.execute(_SUM_POINTS, {"customer_id": customer_id}).scalar_one())
        return int(conn.execute(_SUM_CASHBACK, {"customer_id": customer_id, "currency": currency}).scalar_one())

    def _cashback_units(self, conn: Connection, customer_id: str, currency: str) -> int:
        return self._sum(conn, customer_id, CASHBACK, currency)

    def _expiry_due(self, conn: Connection, customer_id: str, now: datetime, row: AnyRow | None = None) -> bool:
        """Whether any lot has expired since the last recorded expiry (one indexed look-up)."""
        if row is None:
            row = self._require_customer(conn, customer_id)
        cursor = row.expiry_recorded_until
        params = {"customer_id": customer_id, "now": to_db(now), "cursor": cursor}
        return conn.execute(_DUE if cursor is None else _DUE_SINCE, params).first() is not None

    def _expired_points(self, conn: Connection, customer_id: str, now: datetime) -> int:
        rows = conn.execute(_POINTS_ROWS, {"customer_id": customer_id}).all()
        return expired_unrecorded((PointsEntry(r.amount, from_db(r.expires_at)) for r in rows), now)

    def _pending_expiry(self, conn: Connection, customer_id: str, now: datetime, row: AnyRow | None = None) -> int:
        if not self._expiry_due(conn, customer_id, now, row):
            return 0  # the common case: skip the walk over the customer's entries
        return self._expired_points(conn, customer_id, now)

    def _record_expiry(self, conn: Connection, customer_id: str, now: datetime, row: AnyRow | None = None) -> int:
        """Write what expired by ``now`` to the ledger (inside a write transaction)."""
        if not self._expiry_due(conn, customer_id, now, row):
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
            return int(conn.execute(_QUALIFYING, {"customer_id": customer_id}).scalar_one())
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
        orders_count, granted = 0, set()
        if self.compiled.needs_history:
            for rule_id, count in conn.execute(_HISTORY, {"customer_id": customer_id}):
                if rule_id is None:
                    orders_count = int(count)
                else:
                    granted.add(rule_id)
        return CustomerFacts(
            id=row.id,
            tier=self._tier(conn, row),
            role=row.role,
            segments=frozenset(row.segments or ()),
            orders_count=orders_count,
            granted_rules=frozenset(granted),
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

    # ==========================================================================================
    # The six operations (plus product pricing)
    # ==========================================================================================

    def identify(self, identifier: CustomerIdentifier) -> Customer | None:
        self.calls["identify"] += 1
        column = _IDENTIFIER_COLUMN[identifier.kind]
        with self.store.read() as conn:
            row = conn.execute(select(customers).where(column == identifier.value)).first()
            if row is None:
                return None
            return self._customer_model(conn, row)

    def evaluate(self, basket: Basket) -> Evaluation:
        self.calls["evaluate"] += 1
        self._check_currency(basket.currency, "evaluate_basket")
        now = self.now()
        compiled = self.compiled
        view = BasketView.of_basket(basket)
        with self.store.read() as conn:
            facts = self._facts(conn, basket.customer_id, basket.currency, now) if basket.customer_id else None
            found = self._voucher_facts(conn, basket.coupon_codes, basket.id)
            wallet = self._wallet(conn, basket.customer_id) if basket.customer_id else []
        result = rules.quote(compiled, view, facts, found, now)
        evaluation = rules.to_evaluation(compiled, view, facts, result, wallet, now)
        from .catalog import effect, points_priced_lines

        priced = points_priced_lines(compiled, view)
        if priced:
            evaluation = evaluation.model_copy(update={"unmapped": (*evaluation.unmapped, effect(priced))})
        return evaluation

    def price_products(self, query: ProductQuery) -> list[ProductPrice]:
        self.calls["evaluate"] += 1
        self._check_currency(query.currency, "price_products")
        now = self.now()
        compiled = self.compiled
        facts = None
        if query.customer_id:
            with self.store.read() as conn:
                facts = self._facts(conn, query.customer_id, query.currency, now)
        return [rules.price_product(compiled, line, query.currency, facts, query.channel, now) for line in query.products]

    def redeem(self, redemption: VoucherRedemption, key: str) -> RedemptionResult:
        self.calls["redeem"] += 1
        basket = redemption.basket
        customer_id = redemption.customer_id or (basket.customer_id if basket else None)
        if basket is not None:
            self._check_currency(basket.currency, "redeem_voucher")
        fingerprint = _fingerprint("redeem", redemption.code, redemption.order_ref, customer_id)

        def work(conn: Connection, now: datetime) -> RedemptionResult:
            if customer_id is not None:
                self._require_customer(conn, customer_id)
            row = conn.execute(select(vouchers).where(vouchers.c.code == redemption.code).with_for_update()).first()
            if row is None:
                raise VoucherNotFoundError(f"no voucher or promo code {redemption.code}", engine=ENGINE)
            voucher = VoucherFacts(VoucherDef.model_validate(row.definition), row.uses, row.offer_kind)
            view = BasketView.of_basket(basket) if basket is not None else None
            definition = voucher.definition
            if view is None and definition.min_basket is not None:
                raise VoucherConditionsNotMetError(
                    f"voucher {definition.code} has a minimum basket: send the basket with the redemption", engine=ENGINE)
            problem = rules.voucher_problem(voucher, customer_id, view, now, self.program.currency)
            if problem is not None:
                raise problem.with_context(engine=ENGINE, operation="redeem_voucher")
            # The conditional UPDATE is the guard: of many racing redemptions, only as many as the
            # limit allows find a row to update.
            claimed = conn.execute(
                update(vouchers)
                .where(vouchers.c.code == redemption.code)
                .where((vouchers.c.usage_limit.is_(None)) | (vouchers.c.uses < vouchers.c.usage_limit))
                .values(uses=vouchers.c.uses + 1)
            ).rowcount
            if claimed != 1:
                if definition.usage_limit == 1:
                    raise VoucherAlreadyRedeemedError(f"voucher {definition.code} has already been redeemed", engine=ENGINE)
                raise UsageLimitReachedError(f"voucher {definition.code} reached its limit of uses", engine=ENGINE)
            ref = _inserted_id(conn.execute(insert(redemptions).values(
                code=redemption.code, order_ref=redemption.order_ref, customer_id=customer_id, write_key=key,
                status="redeemed", created_at=to_db(now))))
            discount = self._redemption_discount(conn, definition, view, customer_id, now)
            return RedemptionResult(
                code=redemption.code, status=RedemptionStatus.REDEEMED, discount=discount,
                label=definition.label,
                receipt=Receipt(operation="redeem_voucher", engine=ENGINE, idempotency_key=key,
                                engine_ref=f"RDM-{ref}", code=redemption.code, amount=discount),
            )

        return self._keyed("redeem_voucher", key, fingerprint, redemption.order_ref, RedemptionResult, work)

    def _redemption_discount(self, conn: Connection, definition: VoucherDef, view: BasketView | None,
                             customer_id: str | None, now: datetime) -> Money | None:
        if view is None:
            amount = amount_in(definition.amount, self.program.currency, self.program.currency)
            if definition.kind == "fixed" and amount is not None:
                return Money(amount=amount, currency=self.program.currency)
            return None
        # The same figure the evaluation shows: rules first, then this code on what they left.
        facts = self._facts(conn, customer_id, view.currency, now) if customer_id else None
        just_this = BasketView(view.id, view.currency, view.lines, customer_id, view.shipping, view.channel,
                               (definition.code,))
        result = rules.quote(self.compiled, just_this, facts, {definition.code: VoucherFacts(definition, held=True)}, now)
        return Money(amount=result.discount_for(definition.code), currency=view.currency)

    def spend(self, spend: CashbackSpend, key: str) -> SpendResult:
        self.calls["spend"] += 1
        if spend.kind is BalanceKind.CASHBACK:
            if spend.amount is None:
                raise AssertionError("spend.amount is set here")
            self._check_currency(spend.amount.currency, "spend_cashback")
            wanted = spend.amount.minor_units()
            currency: str | None = spend.amount.currency
            self._check_spend_policy(spend.amount)
        else:
            if spend.points is None:
                raise AssertionError("spend.points is set here")
            wanted = _whole_points(spend.points, "points")
            currency = None
        value = self._spend_value(spend)
        fingerprint = _fingerprint("spend", spend.customer_id, spend.order_ref, spend.kind.value, wanted, currency)

        def work(conn: Connection, now: datetime) -> SpendResult:
            row = self._lock_customer(conn, spend.customer_id)
            self._record_expiry(conn, spend.customer_id, now, row)
            balance = POINTS if spend.kind is BalanceKind.POINTS else CASHBACK
            available = self._sum(conn, spend.customer_id, balance, currency)
            if wanted > available:
                shown = (f"{available} points" if currency is None else str(Money(amount=_major(available, currency), currency=currency)))
                raise InsufficientBalanceError(
                    f"the {balance} balance ({shown}) does not cover the spend", engine=ENGINE, operation="spend_cashback")
            entry = self._append(conn, spend.customer_id, balance, currency, "burn", -wanted, now,
                                 order_ref=spend.order_ref, write_key=key, label=f"paid order {spend.order_ref}")
            left = available - wanted
            if currency is None:
                remaining = Balance(kind=BalanceKind.POINTS, name=self.program.points.name, points=Decimal(left))
            else:
                remaining = Balance(kind=BalanceKind.CASHBACK, name="cashback",
                                    money=Money(amount=_major(left, currency), currency=currency))
            return SpendResult(
                kind=spend.kind, amount=spend.amount, points=spend.points, value=value, remaining=remaining,
                receipt=Receipt(operation="spend_cashback", engine=ENGINE, idempotency_key=key,
                                engine_ref=f"SPD-{entry}", amount=value, points=spend.points),
            )

        return self._keyed("spend_cashback", key, fingerprint, spend.order_ref, SpendResult, work)

    def _spend_value(self, spend: CashbackSpend) -> Money | None:
        """The money the spend pays: its cashback amount, or its points at the program's rate. A points
        value the shop states must match the program's rate when the program has one."""
        if spend.kind is BalanceKind.CASHBACK:
            return spend.amount
        if spend.points is None:
            raise AssertionError("spend.points is set here")
        currency = (spend.points_value or spend.amount_due or Money.zero(self.program.currency)).currency
        priced = rules.points_value(self.program, spend.points, currency)
        if priced is None:
            return spend.points_value
        if spend.points_value is not None and spend.points_value != priced:
            raise InvalidRequestError(f"points_value: the program values these points at {priced}",
                                      field="points_value", engine=ENGINE, operation="spend_cashback")
        if spend.amount_due is not None and priced > spend.amount_due:
            raise InvalidRequestError(f"points: worth {priced}, more than the amount due ({spend.amount_due})",
                                      field="points", engine=ENGINE, operation="spend_cashback")
        return priced

    def _check_spend_policy(self, amount: Money) -> None:
        policy = self.program.cashback
        low = amount_in(policy.spend_min, amount.currency, self.program.currency)
        high = amount_in(policy.spend_max, amount.currency, self.program.currency)
        if low is not None and amount.amount < low:
            raise InvalidRequestError(f"amount: the program's smallest cashback payment is {low} {amount.currency}",
                                      field="amount", engine=ENGINE, operation="spend_cashback")
        if high is not None and amount.amount > high:
            raise InvalidRequestError(f"amount: the program's largest cashback payment is {high} {amount.currency}",
                                      field="amount", engine=ENGINE, operation="spend_cashback")

    # -- export ----------------------------------------------------------------------------------
    def export(self, batch: list[Order]) -> ExportReport:
        self.calls["export"] += 1
        results = []
        for order in batch:
            try:
                results.append(self._export_one(order))
            except LoyaltyError as exc:
                status = ExportStatus.RETRY_LATER if exc.retryable else ExportStatus.REJECTED
                results.append(OrderExportResult(order_ref=order.ref, status=status, reason=exc.message, error_code=exc.code))
            except OperationalError:
                # the database was locked or unreachable past the busy timeout: nothing was written
                results.append(OrderExportResult(order_ref=order.ref, status=ExportStatus.RETRY_LATER,
                                                 reason="database busy", error_code="engine_unavailable"))
        return ExportReport(engine=ENGINE, results=tuple(results))

    def _export_one(self, order: Order) -> OrderExportResult:
        key = order.key
        for attempt in range(3):
            try:
                with self.store.write() as conn:
                    # The unique ref and key make a second record impossible; looking first is only
                    # needed after an insert lost that race (or for an engine with many writers).
                    return self._export_in(conn, order, key, look_first=attempt > 0 or self.store.dialect != "sqlite")
            except IntegrityError:
                continue  # a concurrent export of the same order won: report it as a duplicate
        raise InvalidRequestError("order could not be recorded", engine=ENGINE)

    def _export_in(self, conn: Connection, order: Order, key: str, look_first: bool = True) -> OrderExportResult:
        earlier = conn.execute(_ORDER_SEEN, {"ref": order.ref, "key": key}).first() if look_first else None
        if earlier is not None:
            return OrderExportResult(order_ref=order.ref, status=ExportStatus.DUPLICATE, engine_ref=f"ORD-{earlier.id}",
                                     points_earned=Decimal(earlier.points_earned))
        if order.currency not in self.program.accepted_currencies:
            return OrderExportResult(order_ref=order.ref, status=ExportStatus.REJECTED, error_code="currency_mismatch",
                                     reason=f"the program does not accept {order.currency}")
        now = self.now()
        customer_id = order.customer_id
        facts = None
        if customer_id is not None:
            row = conn.execute(_CUSTOMER_LOCKED, {"customer_id": customer_id}).first()
            if row is None:
                return OrderExportResult(order_ref=order.ref, status=ExportStatus.REJECTED,
                                         error_code="customer_not_found", reason="no such customer")
            self._record_expiry(conn, customer_id, now, row)
            facts = self._facts(conn, customer_id, order.currency, now, row=row, balances=False)
        view = BasketView.of_order(order)
        from .catalog import unpaid_reason

        unpaid = unpaid_reason(self.compiled, conn, view, customer_id)
        if unpaid is not None:
            return OrderExportResult(order_ref=order.ref, status=ExportStatus.REJECTED,
                                     error_code="insufficient_balance", reason=unpaid)
        found = self._voucher_facts(conn, order.voucher_codes, order.ref)
        # Codes the shop applied without redeeming them first are redeemed now, if still usable.
        for code, voucher in list(found.items()):
            if voucher.held or rules.voucher_problem(voucher, customer_id, view, order.placed_at, self.program.currency):
                continue
            claimed = conn.execute(
                update(vouchers).where(vouchers.c.code == code)
                .where((vouchers.c.usage_limit.is_(None)) | (vouchers.c.uses < vouchers.c.usage_limit))
                .values(uses=vouchers.c.uses + 1)).rowcount
            if claimed == 1:
                conn.execute(insert(redemptions).values(code=code, order_ref=order.ref, customer_id=customer_id,
                                                        write_key=f"{key}:{code}", status="redeemed", created_at=to_db(now)))
                found[code] = VoucherFacts(voucher.definition, voucher.uses + 1, voucher.offer_kind, held=True)
        result = rules.quote(self.compiled, view, facts, found, order.placed_at)
        points = result.total_points if facts else 0
        cashback = result.cashback_earned if facts else Decimal(0)
        if order.total is None:
            raise AssertionError("order.total is set once the order is validated")
        order_id = _inserted_id(conn.execute(_INSERT_ORDER, {
            "ref": order.ref, "write_key": key, "customer_id": customer_id, "currency": order.currency,
            "total_minor": order.total.minor_units(), "points_earned": points,
            "cashback_earned_minor": _minor(cashback, order.currency), "rules": result.applied_rules,
            "placed_at": to_db(order.placed_at), "created_at": to_db(now),
        }))
        from .members import record_rule_costs

        record_rule_costs(conn, order.ref, order.currency, result.discounts, now)
        if customer_id is not None:
            if result.applied_rules:
                conn.execute(_INSERT_GRANT, [
                    {"customer_id": customer_id, "rule_id": rule_id, "order_ref": order.ref, "created_at": to_db(now)}
                    for rule_id in result.applied_rules
                ])
            expires = expiry_for(self.program.points, now)
            details: dict[str, Any] = {"order_ref": order.ref, "write_key": key, "expires_at": expires}
            entries = []
            if result.points_earned:
                entries.append(self._entry(customer_id, POINTS, None, "earn", result.points_earned, now,
                                           label=f"order {order.ref}", **details))
            entries.extend(self._entry(customer_id, POINTS, None, "earn", bonus, now, label=label, **details)
                           for label, bonus in result.bonus)
            if cashback > 0:
                entries.append(self._entry(customer_id, CASHBACK, order.currency, "earn", _minor(cashback, order.currency),
                                           now, order_ref=order.ref, write_key=key, label=f"cashback on order {order.ref}"))
            if entries:
                conn.execute(_INSERT_LEDGER, entries)  # one executemany for the order's earn rows
            from .members import after_export

            after_export(self, conn, customer_id, facts.tier if facts else None, result.issued, order.ref, now)
        return OrderExportResult(order_ref=order.ref, status=ExportStatus.ACCEPTED, engine_ref=f"ORD-{order_id}",
                                 points_earned=Decimal(points))

    # -- reverse ---------------------------------------------------------------------------------
    def _refunded_before(self, conn: Connection, order_ref: str) -> tuple[RefundLine, ...]:
        """The quantities earlier reversals of the order returned, from their recorded results:
        this engine's own record, whatever references or ``already_refunded`` the shop sends."""
        rows = conn.execute(select(writes.c.result).where(
            writes.c.operation == "reverse", writes.c.order_ref == order_ref)).all()
        total: defaultdict[str, Decimal] = defaultdict(Decimal)
        for row in rows:
            refund = (row.result or {}).get("refund") or {}
            for line in refund.get("lines") or ():
                total[line["line_id"]] += Decimal(str(line["quantity"]))
        return tuple(RefundLine(line_id=line_id, quantity=quantity) for line_id, quantity in total.items())

    def reverse(self, reversal: Reversal, key: str) -> ReversalResult:
        self.calls["reverse"] += 1
        order = reversal.order
        lines = [(r.line_id, str(r.quantity)) for r in reversal.lines or ()]
        fingerprint = _fingerprint("reverse", order.ref, reversal.kind.value, reversal.reference, lines)

        def work(conn: Connection, now: datetime) -> ReversalResult:
            try:
                effective = Reversal(order=order, kind=reversal.kind, lines=reversal.lines,
                                     already_refunded=self._refunded_before(conn, order.ref),
                                     reference=reversal.reference, exported=reversal.exported,
                                     reason=reversal.reason, idempotency_key=reversal.idempotency_key)
            except InvalidRequestError as exc:
                raise InvalidRequestError(f"reversal.{exc.message}", field=f"reversal.{exc.field}",
                                          engine=ENGINE, operation="reverse") from None
            breakdown = effective.breakdown
            complete = breakdown.share_after == 1
            rows = conn.execute(select(ledger).where(ledger.c.order_ref == order.ref).order_by(ledger.c.id)).all()
            stored = conn.execute(select(orders).where(orders.c.ref == order.ref)).first()
            customer_id = (stored.customer_id if stored is not None else None) or order.customer_id
            if customer_id is None and rows:
                customer_id = rows[0].customer_id
            moved: dict[tuple[str, str | None, str], int] = {}
            if customer_id is not None and conn.execute(select(customers.c.id).where(customers.c.id == customer_id)).first():
                row = self._lock_customer(conn, customer_id)
                self._record_expiry(conn, customer_id, now, row)
                moved = self._reverse_ledger(conn, customer_id, effective, rows, complete, key, now)
            reinstated: list[str] = []
            if complete:
                reinstated = self._reinstate_vouchers(conn, order.ref)
            currency = order.currency
            # One receipt, no figure on it: returned and clawed-back amounts flow in opposite
            # directions and are reported apart below, never summed.
            receipt = Receipt(operation="reverse", engine=ENGINE, idempotency_key=key,
                              engine_ref=f"REV-{_fingerprint(key)[:12].upper()}")
            return ReversalResult(
                order_ref=order.ref, kind=reversal.kind,
                points_returned=Decimal(moved.get((POINTS, None, "return"), 0)),
                points_clawed_back=Decimal(moved.get((POINTS, None, "claw"), 0)),
                cashback_returned=Money(amount=_major(moved.get((CASHBACK, currency, "return"), 0), currency),
                                        currency=currency),
                cashback_clawed_back=Money(amount=_major(moved.get((CASHBACK, currency, "claw"), 0), currency),
                                           currency=currency),
                vouchers_reinstated=tuple(reinstated), refund=breakdown, receipts=(receipt,),
            )

        return self._keyed("reverse", key, fingerprint, order.ref, ReversalResult, work)

    def _reverse_ledger(self, conn: Connection, customer_id: str, reversal: Reversal, rows: Sequence[AnyRow],
                        complete: bool,
                        key: str, now: datetime) -> dict[tuple[str, str | None, str], int]:
        """Give back what the order burned, as the core's breakdown says (``to_cashback``, ``points``),
        and take back what it earned in proportion to the net paid returned (``share_before`` ->
        ``share_after``). Never more than the order moved, whatever earlier reversals did."""
        order = reversal.order
        breakdown = reversal.breakdown
        burned: Counter[tuple[str, str | None]] = Counter()
        earned: Counter[tuple[str, str | None]] = Counter()
        returned: Counter[tuple[str, str | None]] = Counter()
        clawed: Counter[tuple[str, str | None]] = Counter()
        for row in rows:
            if row.customer_id != customer_id:
                continue
            account = (row.balance, row.currency)
            if row.entry == "burn":
                burned[account] += -row.amount
            elif row.entry == "earn":
                earned[account] += row.amount
            elif row.entry == "reverse" and row.amount > 0:
                returned[account] += row.amount
            elif row.entry == "reverse" and row.amount < 0:
                clawed[account] += -row.amount
        spends = [r for r in order.receipts if r.operation == "spend_cashback"]
        moved: dict[tuple[str, str | None, str], int] = {}
        label = f"{reversal.kind.value} {order.ref} ({reversal.reference})"
        # Give back what was burned first, so a claw-back can be taken from it.
        for account, total in burned.items():
            left = total - returned[account]
            balance, currency = account
            if complete:
                share = left
            elif balance == POINTS and any(r.points is not None for r in spends):
                share = int(breakdown.points)
            elif balance == CASHBACK and currency == order.currency and any(r.points is None for r in spends):
                share = breakdown.to_cashback.minor_units()
            else:  # the order does not carry its spend receipts: follow the net paid returned
                share = _span(total, breakdown.share_before, breakdown.share_after)
            share = min(left, share)
            if share > 0:
                expires = expiry_for(self.program.points, now) if balance == POINTS else None
                self._append(conn, customer_id, balance, currency, "reverse", share, now, order_ref=order.ref,
                             write_key=key, label=label, expires_at=expires)
                moved[(*account, "return")] = share
        for account, total in earned.items():
            left = total - clawed[account]
            share = left if complete else min(left, _span(total, breakdown.share_before, breakdown.share_after))
            balance, currency = account
            available = (self._points_available(conn, customer_id, now) if balance == POINTS
                         else self._sum(conn, customer_id, CASHBACK, currency))
            share = capped_clawback(share, available)
            if share > 0:
                self._append(conn, customer_id, balance, currency, "reverse", -share, now, order_ref=order.ref,
                             write_key=key, label=label)
                moved[(*account, "claw")] = share
        return moved

    def _reinstate_vouchers(self, conn: Connection, order_ref: str) -> list[str]:
        rows = conn.execute(select(redemptions).where(
            redemptions.c.order_ref == order_ref, redemptions.c.status == "redeemed").order_by(redemptions.c.id)).all()
        for row in rows:
            conn.execute(update(redemptions).where(redemptions.c.id == row.id).values(status="reinstated"))
            conn.execute(update(vouchers).where(vouchers.c.code == row.code, vouchers.c.uses > 0)
                         .values(uses=vouchers.c.uses - 1))
        return [row.code for row in rows]


def _inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise AssertionError("an INSERT returns its primary key")
    return int(key[0])
