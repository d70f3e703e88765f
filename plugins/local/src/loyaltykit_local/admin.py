"""The admin API of the embedded engine: the program, seeding customers, balances, vouchers and
offers, and reading back what happened (not checkout hooks).

Setting the program (at every start), crediting, offers and balances run the engine's named
statements; seeding customers and reading back go through SQLAlchemy, imported when they run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from loyaltykit import (
    CustomerIdentifier,
    CustomerNotFoundError,
    IdentifierKind,
    InvalidRequestError,
    Money,
)

from .accounts import (
    CASHBACK,
    CUSTOMER_EXISTS,
    ENGINE,
    IDENTIFIER_COLUMN,
    POINTS,
    Accounts,
    _major,
)
from .ledger import HistoryEntry, expiry_for
from .members import INSERT_VOUCHER, review_tiers
from .program import OfferTemplate, Program, VoucherDef
from .rules import CompiledProgram
from .store import IntegrityError, Prepared, from_db, to_db

_VOUCHER_CODE = Prepared("voucher_code")
_UPDATE_VOUCHER = Prepared("voucher_update")


class Admin(Accounts):
    """Program management, seeding and read-back."""

    def set_program(self, program: Program) -> None:
        """Swap the program (rules are compiled once here); the program's vouchers are upserted."""
        compiled = CompiledProgram.build(program)
        with self._lock:
            self._compiled = compiled
        for voucher in program.vouchers:
            self.issue_voucher(voucher, replace=True)

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
            values[IDENTIFIER_COLUMN[identifier.kind]] = identifier.value
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
        from sqlalchemy import insert

        from .tables import customers

        with self.store.sqlalchemy_write() as conn:
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
            exists = _VOUCHER_CODE.run(conn, {"code": voucher.code}).first()
            if exists is None:
                INSERT_VOUCHER.run(conn, {"code": voucher.code, "uses": 0, "created_at": to_db(now), **row})
            elif replace:
                _UPDATE_VOUCHER.run(conn, {"voucher_code": voucher.code, **row})
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
            if CUSTOMER_EXISTS.run(conn, {"customer_id": customer_id}).first() is None:
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
        from sqlalchemy import select

        from .tables import ledger

        now = self.now()
        with self.store.sqlalchemy_read() as conn:
            self._require_customer(conn, customer_id)
            rows = conn.execute(select(ledger).where(ledger.c.customer_id == customer_id).order_by(ledger.c.id)).all()
            pending = self._pending_expiry(conn, customer_id, now)
        entries = [HistoryEntry(from_db(r.created_at), r.balance, r.entry, r.amount, r.currency, r.order_ref, r.label)
                   for r in rows]
        if pending:
            entries.append(HistoryEntry(now, POINTS, "expire", -pending, None, None, "points expired"))
        return entries

    def voucher_uses(self, code: str) -> int:
        from sqlalchemy import select

        from .tables import vouchers

        with self.store.sqlalchemy_read() as conn:
            return conn.execute(select(vouchers.c.uses).where(vouchers.c.code == code)).scalar_one_or_none() or 0

    def orders_received(self) -> list[str]:
        from sqlalchemy import select

        from .tables import orders

        with self.store.sqlalchemy_read() as conn:
            return list(conn.execute(select(orders.c.ref).order_by(orders.c.id)).scalars())

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, for "this changed nothing" checks."""
        from sqlalchemy import select

        from .tables import TABLES

        with self.store.sqlalchemy_read() as conn:
            return {
                table.name: sorted(tuple(str(v) for v in row) for row in conn.execute(select(table)).all())
                for table in TABLES
            }

    def expire_points(self) -> int:
        """Write due expiries for every customer (a nightly job may call this; writes do it anyway)."""
        from sqlalchemy import select

        from .tables import customers

        now = self.now()
        with self.store.sqlalchemy_read() as conn:
            ids = list(conn.execute(select(customers.c.id)).scalars())
        expired = 0
        for customer_id in ids:
            with self.store.write() as conn:
                row = self._lock_customer(conn, customer_id)
                expired += self._record_expiry(conn, customer_id, now, row)
        review_tiers(self)  # tiers lost when points leave the qualifying period
        return expired
