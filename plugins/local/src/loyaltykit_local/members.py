"""Member operations of the embedded engine: enrolment, updates, statement, wallet, vouchers earned.

Everything here works on a :class:`~loyaltykit_local.service.LocalEngine`'s store in its own
transactions, beside the checkout operations:

* **enrol** is idempotent by external id: the ``external_id`` column is unique, so of two racing
  enrolments one inserts and the other reads the member back (``created=False``);
* **statement** pages over the ledger and the member events (tier changes, vouchers issued),
  newest first, with a keyset cursor ``(at, source, id)``: pages never overlap or skip;
* **vouchers earned**: a rule's ``issue_offer`` action puts an offer into the member's wallet when
  the order is exported (in the export's transaction, so once per order), and a tier reached by an
  order is recorded as a tier change.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from loyaltykit import (
    BalanceKind,
    ConfigError,
    Customer,
    CustomerNotFoundError,
    InvalidRequestError,
    Money,
    Offer,
    OfferKind,
)
from loyaltykit.members import (
    Enrolment,
    EnrolmentResult,
    IssuedVouchers,
    MemberUpdate,
    Statement,
    StatementEntry,
    StatementEntryKind,
    StatementQuery,
    VoucherIssue,
    Wallet,
    WalletQuery,
    decode_cursor,
    encode_cursor,
)

from .accounts import CUSTOMER_EXISTS, Accounts
from .program import OfferTemplate, VoucherDef, amount_in
from .rules import ENGINE
from .store import IntegrityError, Prepared, to_db

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Table
    from sqlalchemy.engine import Connection as SAConnection

    from .store import Connection

# What an export writes for the member (the other member operations run through SQLAlchemy).
_INSERT_EVENT = Prepared("member_event_insert")
INSERT_VOUCHER = Prepared("voucher_insert")
_INSERT_RULE_COSTS = Prepared("rule_cost_insert")
_EVENT_COLUMNS = ("tier", "code", "rule_id", "order_ref", "label")

_ENTRY_KIND = {
    "earn": StatementEntryKind.EARN,
    "burn": StatementEntryKind.SPEND,
    "expire": StatementEntryKind.EXPIRE,
    "reverse": StatementEntryKind.REVERSE,
}
_OFFER_KIND = {
    "percent_off_check": OfferKind.PERCENT_OFF_CHECK,
    "fixed_off_check": OfferKind.FIXED_OFF_CHECK,
    "fixed_off_item": OfferKind.FIXED_OFF_ITEM,
}
_VOUCHER_KIND = {"percent_off_check": "percent", "fixed_off_check": "fixed", "fixed_off_item": "item"}
# Sources of statement rows, ranked for the keyset order (ties on the same instant).
_LEDGER, _EVENTS = 1, 0


def _major(units: int, currency: str) -> Decimal:
    from loyaltykit.money import exponent

    return Decimal(units).scaleb(-exponent(currency))


# ---------------------------------------------------------------------------------------------
# Enrolment and updates
# ---------------------------------------------------------------------------------------------


def enrol(engine: Accounts, enrolment: Enrolment) -> EnrolmentResult:
    engine.calls["enrol"] += 1
    for _attempt in range(3):
        try:
            with engine.store.sqlalchemy_write() as conn:
                return _enrol_in(engine, conn, enrolment)
        except IntegrityError:
            continue  # a concurrent enrolment of the same external id won: read it back
    raise InvalidRequestError("the member could not be enrolled", field="enrolment", engine=ENGINE)


def _enrol_in(engine: Accounts, conn: SAConnection, enrolment: Enrolment) -> EnrolmentResult:
    from sqlalchemy import insert, select

    from .tables import customers, member_profiles

    known = conn.execute(select(customers).where(customers.c.external_id == enrolment.external_id)).first()
    if known is not None:
        return EnrolmentResult(customer=engine._customer_model(conn, known), created=False)
    columns = {"email": customers.c.email, "phone": customers.c.phone, "card": customers.c.card,
               "membership": customers.c.membership_number}
    for field, column in columns.items():
        value = getattr(enrolment, field)
        if value is not None and conn.execute(select(customers.c.id).where(column == value)).first() is not None:
            raise InvalidRequestError(f"enrolment.{field}: another member holds this {field}",
                                      field=f"enrolment.{field}", engine=ENGINE, operation="enrol_member")
    if enrolment.tier is not None:
        _check_tier(engine, enrolment.tier, "enrolment.tier")
    now = engine.now()
    customer_id = f"M{uuid.uuid4().hex[:12].upper()}"
    display = enrolment.display_name or " ".join(p for p in (enrolment.first_name, enrolment.last_name) if p) or None
    conn.execute(insert(customers).values(
        id=customer_id, membership_number=enrolment.membership, email=enrolment.email, phone=enrolment.phone,
        card=enrolment.card, external_id=enrolment.external_id, display_name=display, role=enrolment.role,
        tier=enrolment.tier, segments=sorted(enrolment.segments), status="active", created_at=to_db(now),
    ))
    conn.execute(insert(member_profiles).values(
        customer_id=customer_id, first_name=enrolment.first_name, last_name=enrolment.last_name,
        language=enrolment.language, birth_date=to_db(datetime(enrolment.birth_date.year, enrolment.birth_date.month, enrolment.birth_date.day,
                                     tzinfo=UTC) if enrolment.birth_date else None),
        consents=[c.model_dump(mode="json") for c in enrolment.consents], profile=dict(enrolment.profile),
        enrolled_at=to_db(enrolment.enrolled_at or now),
    ))
    if enrolment.tier is not None:
        _event(conn, customer_id, "tier_change", now, tier=enrolment.tier, label="tier at enrolment")
    row = engine._require_customer(conn, customer_id)
    return EnrolmentResult(customer=engine._customer_model(conn, row), created=True)


def _check_tier(engine: Accounts, tier: str, field: str) -> None:
    names = [t.name for t in engine.program.tiers]
    if names and tier not in names:
        raise InvalidRequestError(f"{field}: the program has no tier {tier!r} (it has {', '.join(names)})",
                                  field=field, engine=ENGINE)


def update_member(engine: Accounts, change: MemberUpdate) -> Customer:
    engine.calls["update_member"] += 1
    if change.tier is not None:
        _check_tier(engine, change.tier, "update.tier")
    from sqlalchemy import update

    from .tables import customers

    with engine.store.sqlalchemy_write() as conn:
        row = engine._lock_customer(conn, change.customer_id)
        now = engine.now()
        tier_before = engine._tier(conn, row)
        values: dict[str, Any] = {}
        if change.tier is not None and change.tier != row.tier:
            values["tier"] = change.tier
        if change.segments is not None and sorted(change.segments) != sorted(row.segments or ()):
            values["segments"] = sorted(change.segments)
        if change.role is not None and change.role != row.role:
            values["role"] = change.role
        if values:
            conn.execute(update(customers).where(customers.c.id == change.customer_id).values(**values))
        row = engine._require_customer(conn, change.customer_id)
        tier_after = engine._tier(conn, row)
        if tier_after != tier_before:
            _event(conn, change.customer_id, "tier_change", now, tier=tier_after,
                   label=change.reason or "tier assigned")
        return engine._customer_model(conn, row)


def _event(conn: Connection, customer_id: str, kind: str, at: datetime, **details: Any) -> None:
    row = {"customer_id": customer_id, "kind": kind, "created_at": to_db(at)}
    row.update((column, details.pop(column, None)) for column in _EVENT_COLUMNS)
    if details:
        raise TypeError(f"not a member event's column: {', '.join(details)}")
    _INSERT_EVENT.run(conn, row)


# ---------------------------------------------------------------------------------------------
# Vouchers earned (called inside the export's write transaction)
# ---------------------------------------------------------------------------------------------


def issue_offer_in(engine: Accounts, conn: Connection, customer_id: str, template_id: str, now: datetime, *,
                   rule_id: str | None = None, order_ref: str | None = None, code: str | None = None,
                   amount: Money | None = None, valid_until: datetime | None = None, note: str | None = None) -> str:
    """Put an offer from the program's template into the member's wallet, in ``conn``'s transaction
    (``code``, ``amount`` and ``valid_until`` override the template's for an issue from outside;
    ``note`` labels the statement entry)."""
    template: OfferTemplate = engine.program.offer_template(template_id)
    code = code or f"{template.id}-{uuid.uuid4().hex[:8].upper()}"
    if valid_until is None and template.valid_days:
        valid_until = now + timedelta(days=template.valid_days)
    voucher = VoucherDef(
        code=code, kind=_VOUCHER_KIND[template.kind], percent=template.percent,
        amount={amount.currency: amount.amount} if amount is not None else template.amount,
        sku=template.sku, label=template.label or template.id, owner=customer_id, usage_limit=1,
        valid_until=valid_until,
    )
    INSERT_VOUCHER.run(conn, {
        "code": code, "definition": voucher.model_dump(mode="json"), "owner_id": customer_id,
        "offer_kind": template.kind, "usage_limit": 1, "uses": 0, "created_at": to_db(now)})
    _event(conn, customer_id, "voucher", now, code=code, rule_id=rule_id, order_ref=order_ref,
           label=note or voucher.label)
    return code


def record_rule_costs(conn: Connection, order_ref: str, currency: str, discounts: list[Any], now: datetime) -> None:
    """The discounts each rule gave on an exported order (codes' discounts are not rules: left out)."""
    totals: dict[str, int] = {}
    for discount in discounts:
        if discount.engine_id and not discount.code:
            totals[discount.engine_id] = totals.get(discount.engine_id, 0) + discount.amount.minor_units()
    if totals:
        _INSERT_RULE_COSTS.run(conn, [
            {"order_ref": order_ref, "rule_id": rule_id, "currency": currency, "discount_minor": minor,
             "created_at": to_db(now)} for rule_id, minor in totals.items()])


def after_export(engine: Accounts, conn: Connection, customer_id: str, tier_before: str | None,
                 issued: list[tuple[str, str]], order_ref: str, now: datetime) -> None:
    """What an exported order does to the member beyond the ledger: offers earned, a tier reached."""
    for rule_id, template_id in issued:
        issue_offer_in(engine, conn, customer_id, template_id, now, rule_id=rule_id, order_ref=order_ref)
    if not engine.program.tiers:
        return  # the tier is the assigned one: an order cannot change it
    row = engine._require_customer(conn, customer_id)
    tier_after = engine._tier(conn, row)
    if tier_after != tier_before:
        _event(conn, customer_id, "tier_change", now, tier=tier_after, order_ref=order_ref, label="tier reached")


def _base_tier(engine: Accounts) -> str | None:
    tiers = engine.program.tiers_by_threshold()
    return tiers[0].name if tiers and tiers[0].threshold == 0 else None


def review_tiers(engine: Accounts) -> int:
    """Record the tier changes time made (points leaving the qualifying period): each member's tier
    now against the last one recorded. Returns how many changed."""
    if not engine.program.tiers:
        return 0
    from sqlalchemy import select

    from .tables import customers, member_events

    changed = 0
    with engine.store.sqlalchemy_read() as conn:
        ids = list(conn.execute(select(customers.c.id)).scalars())
    for customer_id in ids:
        with engine.store.sqlalchemy_write() as conn:
            row = engine._lock_customer(conn, customer_id)
            last = conn.execute(select(member_events.c.tier).where(
                member_events.c.customer_id == customer_id, member_events.c.kind == "tier_change")
                .order_by(member_events.c.id.desc()).limit(1)).scalar_one_or_none()
            previous = last if last is not None else (row.tier or _base_tier(engine))
            now_tier = engine._tier(conn, row)
            if now_tier != previous:
                _event(conn, customer_id, "tier_change", engine.now(), tier=now_tier,
                       label="qualifying period: tier reviewed")
                changed += 1
    return changed


# ---------------------------------------------------------------------------------------------
# Statement
# ---------------------------------------------------------------------------------------------


def _before(table: Table, source: int, position: tuple[datetime, int, int] | None) -> ColumnElement[bool]:
    """Rows of ``table`` that come after ``position`` in newest-first order."""
    from sqlalchemy import and_, false, or_, true

    if position is None:
        return true()
    at, src, row_id = position
    same_instant = (true() if source < src else table.c.id < row_id) if source <= src else false()
    return or_(table.c.created_at < to_db(at), and_(table.c.created_at == to_db(at), same_instant))


def statement(engine: Accounts, query: StatementQuery) -> Statement:
    engine.calls["statement"] += 1
    position = None
    if query.cursor is not None:
        try:
            raw = decode_cursor(query.cursor)
            position = (datetime.fromisoformat(raw["at"]), int(raw["src"]), int(raw["id"]))
            if raw.get("customer") != query.customer_id:
                raise ValueError("another member's cursor")
        except (ValueError, KeyError, TypeError):
            raise InvalidRequestError("query.cursor: not a cursor of this statement", field="query.cursor",
                                      engine=ENGINE, operation="member_statement") from None
    limit = query.page_size + 1
    rule_ids = {rule.label or rule.id: rule.id for rule in engine.program.rules}
    now = engine.now()
    from sqlalchemy import select

    from .tables import ledger, member_events

    with engine.store.sqlalchemy_read() as conn:
        engine._require_customer(conn, query.customer_id)
        window = []
        if query.since is not None:
            window.append(ledger.c.created_at >= to_db(query.since))
        if query.until is not None:
            window.append(ledger.c.created_at < to_db(query.until))
        ledger_rows = conn.execute(
            select(ledger).where(ledger.c.customer_id == query.customer_id, _before(ledger, _LEDGER, position), *window)
            .order_by(ledger.c.created_at.desc(), ledger.c.id.desc()).limit(limit)).all()
        event_window = [member_events.c.created_at >= to_db(query.since)] if query.since is not None else []
        if query.until is not None:
            event_window.append(member_events.c.created_at < to_db(query.until))
        event_rows = conn.execute(
            select(member_events).where(member_events.c.customer_id == query.customer_id,
                                        _before(member_events, _EVENTS, position), *event_window)
            .order_by(member_events.c.created_at.desc(), member_events.c.id.desc()).limit(limit)).all()
        pending = 0
        if position is None and (query.until is None or query.until > now):
            pending = engine._pending_expiry(conn, query.customer_id, now)
    rows: list[tuple[tuple[datetime, int, int], StatementEntry]] = []
    for r in ledger_rows:
        if r.balance == "cashback" and query.currency is not None and r.currency != query.currency:
            continue
        at = _at(r.created_at)
        rows.append(((at, _LEDGER, r.id), _ledger_entry(r, at, rule_ids)))
    for r in event_rows:
        at = _at(r.created_at)
        rows.append(((at, _EVENTS, r.id), _event_entry(r, at)))
    rows.sort(key=lambda item: item[0], reverse=True)
    page = rows[: query.page_size]
    more = len(rows) > query.page_size
    entries = [entry for _, entry in page]
    if pending:
        # Points whose date has passed but that no write has recorded yet: shown as expiring now.
        entries.insert(0, StatementEntry(id="expiry-pending", at=now, kind=StatementEntryKind.EXPIRE,
                                         balance=BalanceKind.POINTS, points=Decimal(-pending), label="points expired"))
        if len(entries) > query.page_size:
            more = True
            entries.pop()
            page = page[:-1]
    next_cursor = None
    if more and page:
        at, src, row_id = page[-1][0]
        next_cursor = encode_cursor({"at": at.isoformat(), "src": src, "id": row_id, "customer": query.customer_id})
    return Statement(customer_id=query.customer_id, entries=tuple(entries), next_cursor=next_cursor)


def _at(stored: datetime) -> datetime:
    return stored.replace(tzinfo=UTC)  # stored as naive UTC (see store.to_db)


def _ledger_entry(r: Any, at: datetime, rule_ids: dict[str, str]) -> StatementEntry:
    kind = _ENTRY_KIND.get(r.entry, StatementEntryKind.ADJUST)
    points = money = None
    if r.balance == "points":
        points = Decimal(r.amount)
    else:
        money = Money(amount=_major(r.amount, r.currency), currency=r.currency)
    return StatementEntry(
        id=f"L{r.id}", at=at, kind=kind,
        balance=BalanceKind.POINTS if r.balance == "points" else BalanceKind.CASHBACK,
        points=points, money=money, order_ref=r.order_ref, label=r.label,
        rule_id=rule_ids.get(r.label) if kind is StatementEntryKind.EARN else None,
    )


def _event_entry(r: Any, at: datetime) -> StatementEntry:
    kind = StatementEntryKind.TIER_CHANGE if r.kind == "tier_change" else StatementEntryKind.VOUCHER
    return StatementEntry(id=f"E{r.id}", at=at, kind=kind, tier=r.tier, code=r.code, rule_id=r.rule_id,
                          order_ref=r.order_ref, label=r.label)


# ---------------------------------------------------------------------------------------------
# Wallet
# ---------------------------------------------------------------------------------------------


def wallet(engine: Accounts, query: WalletQuery) -> Wallet:
    engine.calls["wallet"] += 1
    currency = query.currency or engine.program.currency
    base = engine.program.currency
    with engine.store.read() as conn:
        if CUSTOMER_EXISTS.run(conn, {"customer_id": query.customer_id}).first() is None:
            raise CustomerNotFoundError("no such customer", engine=ENGINE, operation="member_wallet")
        held = engine._wallet(conn, query.customer_id)
    offers = []
    for voucher in held:
        definition = voucher.definition
        amount = amount_in(definition.amount, currency, base)
        offers.append(Offer(
            id=definition.code, kind=_OFFER_KIND.get(voucher.offer_kind or "", OfferKind.OTHER),
            label=definition.label, percent=definition.percent,
            amount=Money(amount=amount, currency=currency) if amount is not None else None,
            sku=definition.sku, code=definition.code, expires_at=definition.valid_until, applicable=True,
        ))
    return Wallet(customer_id=query.customer_id, offers=tuple(offers))


# ---------------------------------------------------------------------------------------------
# Issuing a voucher or offer outside a checkout
# ---------------------------------------------------------------------------------------------


def issued_codes(template_id: str, key: str, quantity: int) -> list[str]:
    """One code per unit, derived from the idempotency key: codes are unique, so the key issues once."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16].upper()
    return [f"{template_id[:24]}-{digest}{unit:02d}" for unit in range(1, quantity + 1)]


def issue_vouchers(engine: Accounts, issue: VoucherIssue) -> IssuedVouchers:
    """The offers of a program template, issued to a member through the path of the rules'
    ``issue_offer`` action, once per idempotency key: of two racing issues one inserts the codes and
    the other (a unique-code conflict) reads them back."""
    engine.calls["issue"] += 1
    try:
        template = engine.program.offer_template(issue.definition_id)
    except ConfigError:
        raise InvalidRequestError("issue.definition_id: the program has no such offer", field="issue.definition_id",
                                  engine=ENGINE, operation="issue_voucher") from None
    if issue.face_value is not None and template.kind == "percent_off_check":
        raise InvalidRequestError("issue.face_value: a percent offer has no face value", field="issue.face_value",
                                  engine=ENGINE, operation="issue_voucher")
    codes = issued_codes(template.id, issue.key, issue.quantity)
    for _attempt in range(3):
        try:
            with engine.store.sqlalchemy_write() as conn:
                return _issue_in(engine, conn, issue, template, codes)
        except IntegrityError:
            continue  # a concurrent issue of the same key won: read it back
    raise InvalidRequestError("the vouchers could not be issued", field="issue", engine=ENGINE,
                              operation="issue_voucher")


def _issue_in(engine: Accounts, conn: SAConnection, issue: VoucherIssue, template: OfferTemplate,
              codes: list[str]) -> IssuedVouchers:
    from sqlalchemy import select

    from .tables import vouchers

    engine._require_customer(conn, issue.customer_id)
    created = False
    if not conn.execute(select(vouchers.c.code).where(vouchers.c.code.in_(codes))).first():
        now = engine.now()
        for code in codes:
            issue_offer_in(engine, conn, issue.customer_id, template.id, now, code=code, amount=issue.face_value,
                           valid_until=issue.expires_at, note=issue.reason)
        created = True
    rows = {r.code: r for r in conn.execute(select(vouchers).where(vouchers.c.code.in_(codes)))}
    if len(rows) != len(codes) or any(r.owner_id != issue.customer_id for r in rows.values()):
        raise InvalidRequestError("issue.idempotency_key: this key issued other vouchers before",
                                  field="issue.idempotency_key", engine=ENGINE, operation="issue_voucher")
    currency = issue.face_value.currency if issue.face_value is not None else engine.program.currency
    offers = []
    for code in codes:
        definition = VoucherDef.model_validate(rows[code].definition)
        amount = amount_in(definition.amount, currency, engine.program.currency)
        offers.append(Offer(
            id=definition.code, kind=_OFFER_KIND.get(rows[code].offer_kind or "", OfferKind.OTHER),
            label=definition.label, percent=definition.percent,
            amount=Money(amount=amount, currency=currency) if amount is not None else None,
            sku=definition.sku, code=definition.code, expires_at=definition.valid_until, applicable=True,
        ))
    return IssuedVouchers(customer_id=issue.customer_id, definition_id=issue.definition_id, vouchers=tuple(offers),
                          created=created)
