"""Pure mapping between kit models and SessionM JSON. No I/O here.

Three envelopes, three ways to say "error" (see the reference, section 2):

* Core: ``{"status": "ok", ...}`` or ``{"status": "error", "errors": {"code": ...}}``, often HTTP 200;
* Connect: ``{"status": "ok", "payload": ...}``; anything else is an error, ``errors: {"error": text}``;
  per-item failures of batch calls sit in the payload (``error_status`` != 0);
* POS: ``{"status": "OK", "payload": ...}``; anything else is an error with ``errors``.

JSON numbers are parsed as ``Decimal`` and written from ``Decimal`` (the core's runner encodes
bodies with :func:`loyaltykit.wire.dumps`, which writes a Decimal's own digits).
"""

from __future__ import annotations

import functools
import itertools
import operator
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from loyaltykit import (
    Balance,
    BalanceKind,
    Basket,
    CodeResult,
    CodeStatus,
    Customer,
    Discount,
    DiscountTarget,
    Money,
    Offer,
    OfferKind,
    Order,
    Receipt,
    RedemptionResult,
    RedemptionStatus,
    SpendResult,
    wire,
)
from loyaltykit.engine_errors import ErrorTable
from loyaltykit.errors import (
    ERROR_CODES,
    LoyaltyError,
    MalformedResponseError,
)
from loyaltykit.members import StatementEntry, StatementEntryKind
from loyaltykit.models import line_columns, line_ids

if TYPE_CHECKING:
    from .settings import SessionMSettings

ENGINE = "sessionm"
CORE_OK = "ok"
CONNECT_OK = "ok"
POS_OK = "OK"

#: Namespace of the engine-side ids derived from kit idempotency keys (request_id, idempotency_id).
ID_NAMESPACE = uuid.UUID("5e551011-0000-4000-8000-6c6f79616c74")

CORE_USER_QUERY = {"user[user_profile]": "true", "show_identifiers": "true", "expand_incentives": "true"}


# ---------------------------------------------------------------------------------------------
# JSON, numbers and ids
# ---------------------------------------------------------------------------------------------


def loads(content: bytes) -> Any:
    """Parse a body, numbers as Decimal (the core's reader); not JSON is a malformed answer."""
    return wire.json_body(content, engine=ENGINE)


def derived_id(key: str, purpose: str) -> str:
    """A stable UUID for an engine idempotency field, from the kit key: the same key replays."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{purpose}:{key}"))


def timestamp(when: datetime | None = None) -> str:
    """UTC to the millisecond (truncated), ``2024-05-01T12:00:00.123Z``."""
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is not UTC:  # another zone, or naive (local time)
        when = when.astimezone(UTC)
    return when.isoformat(timespec="milliseconds")[:-6] + "Z"  # isoformat: 3x quicker than strftime


def decimal(value: Any, what: str) -> Decimal:
    """A SessionM number, read with the core's reader (``what`` is its path in the answer)."""
    return wire.number(value, what, engine=ENGINE)


# ---------------------------------------------------------------------------------------------
# Error classification
# ---------------------------------------------------------------------------------------------


#: Engine error code -> kit error code, matched exactly (case-insensitive), never as a substring.
#: Core codes are documented (reference 2.1, [D-ERR]); the Connect and POS ones are not
#: (UNCONFIRMED), hence a setting. Core ``not_available`` is a refusal ("not available"), not an
#: outage: it is left to the generic engine error, as is any code not listed here.
DEFAULT_ERROR_CODES: dict[str, str] = {
    # Core, documented
    "user_not_found": "customer_not_found",
    "requires_registered_user": "customer_not_found",
    "invalid_api_key": "auth_failed",
    "invalid_auth_token": "auth_failed",
    "access_denied": "auth_failed",
    "https_only": "config_error",
    "missing_data": "invalid_request",
    "validation": "invalid_request",
    "argument_error": "invalid_request",
    "internal_server_error": "engine_unavailable",
    # POS / Connect, UNCONFIRMED
    "pending_processing": "outcome_unknown",
    "offer_not_found": "voucher_not_found",
    "user_offer_not_found": "voucher_not_found",
    "offer_expired": "voucher_expired",
    "offer_not_active": "voucher_invalid",
    "offer_already_redeemed": "voucher_already_redeemed",
    "offer_locked": "voucher_already_redeemed",
    "offer_not_applicable": "voucher_conditions_not_met",
    "insufficient_points": "insufficient_balance",
    "insufficient_balance": "insufficient_balance",
}


def _error_code(errors: Any) -> tuple[str | None, str | None]:
    """(code, message) from an ``errors`` member, whatever its documented or observed shape."""
    if isinstance(errors, Mapping):
        code = errors.get("code") or errors.get("error_code") or errors.get("error")
        message = errors.get("message") or errors.get("error")
        return (str(code) if code is not None else None, str(message) if message is not None else None)
    if isinstance(errors, list) and errors:
        return _error_code(errors[0])
    if isinstance(errors, str):
        return errors, errors
    return None, None


@functools.lru_cache(maxsize=16)
def _table(codes: frozenset[tuple[str, str]]) -> ErrorTable:
    # Connect reports free text where Core and POS report codes: the entries serve as exact
    # codes and as whole-word message phrases, never as substrings.
    entries = dict(codes)
    return ErrorTable(ENGINE, codes=entries, phrases=entries)


def error_table(codes: Mapping[str, str]) -> ErrorTable:
    """The core classifier's table for SessionM (the ``error_codes`` setting, defaults included)."""
    return _table(frozenset(codes.items()))


def kit_error(
    family: str,
    code: str | None,
    message: str | None,
    codes: Mapping[str, str],
    http_status: int = 200,
) -> LoyaltyError:
    """The kit error for a SessionM refusal (``family`` is Core, Connect or POS, for the log)."""
    return error_table(codes).classify(http_status, code, message, operation=None)


def _body(status_code: int, content: bytes, family: str, codes: Mapping[str, str]) -> dict[str, Any]:
    if status_code in (401, 403) and not content.strip():
        raise kit_error(family, None, None, codes, status_code)
    try:
        body = loads(content)
    except MalformedResponseError:
        if status_code >= 400:
            raise kit_error(family, None, None, codes, status_code) from None
        raise
    if not isinstance(body, dict):
        raise MalformedResponseError(f"SessionM {family} answered with a non-object body", engine=ENGINE)
    return body


def core_result(status_code: int, content: bytes, codes: Mapping[str, str]) -> dict[str, Any]:
    """The Core body when ``status`` is ``ok``; the kit error otherwise (HTTP 200 included).

    A bare HTTP 404 (no error envelope) is "not found by ID" per the Core status table ([D-ERR]).
    """
    if status_code == 404:
        try:
            code, message = _error_code(loads(content).get("errors")) if content.strip() else (None, None)
        except (MalformedResponseError, AttributeError):
            code, message = None, None
        if code is None:
            raise ERROR_CODES["customer_not_found"](
                "SessionM Core has no such record (HTTP 404)", engine=ENGINE, engine_code="404", engine_message=message
            )
    body = _body(status_code, content, "Core", codes)
    if status_code < 300 and body.get("status") == CORE_OK:
        return body
    code, message = _error_code(body.get("errors"))
    raise kit_error("Core", code, message, codes, status_code)


def _payload(family: str, ok: str, status_code: int, content: bytes, codes: Mapping[str, str]) -> dict[str, Any]:
    # Connect and POS share the envelope {status, payload, errors}; only the success marker differs.
    body = _body(status_code, content, family, codes)
    if status_code < 300 and body.get("status") == ok:
        payload = body.get("payload")
        return payload if isinstance(payload, dict) else {}
    code, message = _error_code(body.get("errors"))
    raise kit_error(family, code, message, codes, status_code)


def connect_payload(status_code: int, content: bytes, codes: Mapping[str, str]) -> dict[str, Any]:
    """The Connect ``payload`` when ``status`` is ``ok``; the kit error otherwise."""
    return _payload("Connect", CONNECT_OK, status_code, content, codes)


def pos_payload(status_code: int, content: bytes, codes: Mapping[str, str]) -> dict[str, Any]:
    """The POS ``payload`` (``{}`` when there is none) when ``status`` is ``OK``; else the kit error."""
    return _payload("POS", POS_OK, status_code, content, codes)


def user_from_enrolment(enrolment: Any, settings: SessionMSettings) -> dict[str, Any]:
    """Core create-customer body (reference § 3.1): standard attributes under ``user``, custom
    profile fields under ``user.user_profile``; ``opted_in`` as the string the client apps send."""
    user: dict[str, Any] = {"external_id": enrolment.external_id,
                            "external_id_type": settings.enrol_external_id_type}
    for key, value in (("email", enrolment.email), ("first_name", enrolment.first_name),
                       ("last_name", enrolment.last_name)):
        if value is not None:
            user[key] = value
    if enrolment.birth_date is not None:
        user["dob"] = enrolment.birth_date.isoformat()
    if enrolment.phone is not None:
        user["phone_numbers"] = [{"phone_number": enrolment.phone.lstrip("+"), "phone_type": "mobile",
                                  "preference_flags": ["primary"]}]
    consent = next((c for c in enrolment.consents if c.purpose == settings.enrol_opt_in_consent), None)
    if consent is not None:
        user["opted_in"] = "true" if consent.granted else "false"
    if enrolment.profile:
        user["user_profile"] = dict(enrolment.profile)
    return {"user": user}


def is_not_found(exc: LoyaltyError) -> bool:
    return exc.code == "customer_not_found"


# ---------------------------------------------------------------------------------------------
# Customers and points
# ---------------------------------------------------------------------------------------------


def select_point_account(details: Iterable[Mapping[str, Any]], settings: SessionMSettings) -> Mapping[str, Any] | None:
    """The point account to read and spend: by id, else by grouping label, else the only one."""
    accounts = [d for d in details if isinstance(d, Mapping)]
    if settings.point_account_id:
        return next((a for a in accounts if str(a.get("point_account_id")) == settings.point_account_id), None)
    if settings.point_account_label:
        found = next((a for a in accounts if a.get("grouping_label") == settings.point_account_label), None)
        if found is not None:
            return found
    return accounts[0] if len(accounts) == 1 else None


def points_from_balances(payload: Mapping[str, Any], settings: SessionMSettings) -> tuple[Decimal, str | None]:
    """(available points, point_account_id) from an ``all_balances`` payload or the same shape
    under ``tier_details.point_account_balances``."""
    account = select_point_account(payload.get("details") or (), settings)
    if account is not None:
        return decimal(account.get("available_balance"), "available_balance"), str(account.get("point_account_id"))
    summary = payload.get("summary") or {}
    if "total_points" in summary and not settings.point_account_id:
        return decimal(summary["total_points"], "total_points"), None
    raise MalformedResponseError("SessionM reported no point account matching the settings", engine=ENGINE)


def customer_from_user(user: object, settings: SessionMSettings) -> Customer:
    """A kit Customer from a Core ``user`` object (also the POS look-up's user)."""
    if not isinstance(user, Mapping) or not user.get("id"):
        raise MalformedResponseError("SessionM user has no id", engine=ENGINE)
    tier = user.get("tier")
    tier_details = user.get("tier_details") or {}
    if not tier:
        levels = tier_details.get("tier_levels") or []
        if levels and isinstance(levels[0], Mapping):
            tier = (levels[0].get("tier_overview") or {}).get("name")
    balances: tuple[Balance, ...] = ()
    account_balances = tier_details.get("point_account_balances")
    points: Decimal | None = None
    if isinstance(account_balances, Mapping):
        try:
            points, _ = points_from_balances(account_balances, settings)
        except MalformedResponseError:
            points = None
    if points is None and user.get("available_points") is not None:
        points = decimal(user["available_points"], "available_points")
    if points is not None:
        balances = (Balance(kind=BalanceKind.POINTS, name="points", points=max(points, Decimal(0))),)
    names = [str(user[k]) for k in ("first_name", "last_name") if user.get(k)]
    profile = user.get("user_profile")
    segments = (profile.get(settings.segments_profile_field) if isinstance(profile, Mapping) else None) or ()
    if isinstance(segments, str):
        segments = [part for part in segments.split(",") if part]
    return Customer(
        id=str(user["id"]),
        membership_number=str(user["external_id"]) if user.get("external_id") else None,
        tier=str(tier) if tier else None,
        status=str(user["account_status"]) if user.get("account_status") else None,
        balances=balances,
        email=str(user["email"]) if user.get("email") else None,
        display_name=" ".join(names) or None,
        segments=tuple(str(seg) for seg in segments),
    )


# ---------------------------------------------------------------------------------------------
# POS envelope and transactions
# ---------------------------------------------------------------------------------------------


def pos_envelope(
    settings: SessionMSettings, request_id: str, payload: Mapping[str, Any], store_id: str | None = None
) -> dict[str, Any]:
    """The POS request envelope; ``store_id`` is the order's or basket's store, else the setting's."""
    return {
        "store_id": store_id or settings.store_id,
        "client_id": settings.pos_client_id,
        "request_id": request_id,
        "culture": settings.culture,
        "request_payload": dict(payload),
    }


def _line_tax(line: Any, settings: SessionMSettings) -> Decimal | None:
    if settings.line_tax_attribute is None:
        return None
    raw = line.attributes.get(settings.line_tax_attribute)
    if raw is None:
        return None
    try:
        return decimal(raw, settings.line_tax_attribute)
    except MalformedResponseError:
        raise ERROR_CODES["invalid_request"](
            f"line {line.id}: attribute {settings.line_tax_attribute} is not a number", engine=ENGINE,
            field=f"lines.{line.id}.attributes.{settings.line_tax_attribute}",
        ) from None


def _items(lines: Iterable[Any], settings: SessionMSettings, sign: int = 1) -> list[dict[str, Any]]:
    items = []
    tax_attribute = settings.line_tax_attribute  # read once, not per line (up to 500 of them)
    for line in lines:
        subtotal = line.subtotal.amount
        item: dict[str, Any] = {
            "line_id": line.id,
            "item_id": line.sku,
            "quantity": line.quantity if sign == 1 else line.quantity * sign,
            "unit_price": line.unit_price.amount,
            "subtotal": subtotal if sign == 1 else subtotal * sign,
        }
        if tax_attribute is not None and tax_attribute in line.attributes:  # most lines carry no tax
            tax = _line_tax(line, settings)
            if tax is not None:
                item["tax_included"] = tax * sign
        items.append(item)
    return items


_ITEM_FIELDS = ("line_id", "item_id", "quantity", "unit_price", "subtotal")  # the order of LineColumns
_ATTRIBUTES = operator.attrgetter("attributes")


#: Up to this many lines the items are plain dicts: cheaper than :class:`wire.Records`, whose set-up
#: (~8 us per body) pays off only from about five lines. The same bytes either way.
_DICT_ITEMS_UP_TO = 4


def _sale_items(lines: Sequence[Any], currency: str, settings: SessionMSettings) -> tuple[Any, dict[str, Any], Decimal]:
    """A sale's ``items``, its ``tax_total`` field (when every line said its tax) and its subtotal.

    Lines without a tax attribute (the common case) are read off :func:`line_columns`: no Money per
    line (an export batch would keep one on every line of every order), and from five lines on
    written to JSON text as they are read (:class:`wire.Records`), the same bytes as :func:`_items`.
    """
    columns = line_columns(lines, currency)
    tax_attribute = settings.line_tax_attribute
    if tax_attribute is not None and any(map(operator.contains, map(_ATTRIBUTES, lines), itertools.repeat(tax_attribute))):
        items = _items(lines, settings)
        return items, _tax_total(items), columns.subtotal()
    if len(lines) > _DICT_ITEMS_UP_TO:
        return wire.Records.of_columns(_ITEM_FIELDS, columns), {}, columns.subtotal()
    return [dict(zip(_ITEM_FIELDS, row, strict=True)) for row in zip(*columns, strict=True)], {}, columns.subtotal()


def _tax_total(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``tax_total`` when every line said its tax; nothing otherwise (the kit knows no tax to send)."""
    if items and all("tax_included" in i for i in items):
        return {"tax_total": sum((i["tax_included"] for i in items), Decimal(0))}
    return {}


def transaction_from_basket(basket: Basket, transaction_id: str, settings: SessionMSettings) -> dict[str, Any]:
    """An open (not closed) POS transaction for look-up and lock."""
    now = timestamp(basket.created_at)
    items, tax_total, subtotal = _sale_items(basket.lines, basket.currency, settings)  # the biggest part of the body
    return {
        "transaction_id": transaction_id,
        "pos_employee_id": settings.employee_id,
        "is_closed": False,
        "is_voided": False,
        "subtotal": subtotal,
        **tax_total,
        "open_time": now,
        "modified_time": now,
        "channel": basket.channel or settings.transaction_channel,
        "items": items,
        "payments": [],
        "discounts": [],
    }


def redemption_receipts(order: Order) -> list[Receipt]:
    return [
        r for r in order.receipts if r.engine == ENGINE and r.operation == "redeem_voucher" and r.code
    ]


#: Marks a receipt's engine_ref that holds the lock's Discount object verbatim (JSON).
DISCOUNT_REF_PREFIX = "sessionm-discount:"


def discount_ref(discount: Mapping[str, Any]) -> str:
    """The receipt reference of a lock: the Discount object as the POS returned it, so
    ``send_transaction`` can pass the same object back ([D-POS-LOCK]: "pass the returned Discount
    back in send_transaction.discounts"). The kit's Receipt has no field for engine data, so the
    object rides in ``engine_ref`` as compact JSON."""
    return DISCOUNT_REF_PREFIX + wire.dumps(dict(discount)).decode()


def discount_of(receipt: Receipt) -> dict[str, Any] | None:
    """The Discount object a redemption receipt carries, as received; None for older receipts."""
    ref = receipt.engine_ref or ""
    if not ref.startswith(DISCOUNT_REF_PREFIX):
        return None
    try:
        value = wire.loads(ref[len(DISCOUNT_REF_PREFIX):])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def user_offer_of(receipt: Receipt) -> str:
    """The user_offer_id unlock and reinstate need: the lock's reference_id (never a TTL code)."""
    discount = discount_of(receipt)
    if discount is not None and discount.get("reference_id"):
        return str(discount["reference_id"])
    return str(receipt.engine_ref or receipt.code)


def discount_from_receipt(receipt: Receipt, customer_id: str | None, settings: SessionMSettings) -> dict[str, Any]:
    """The Discount a lock returned, as ``send_transaction.discounts[]`` carries it back: the stored
    object intact; for a receipt without one, the fields the kit knows."""
    stored = discount_of(receipt)
    if stored is not None:
        return stored
    discount: dict[str, Any] = {
        "reference_id": receipt.engine_ref or receipt.code,
        "reference_id_type": "UserOfferId",
        "amount": receipt.amount.amount if receipt.amount else 0,
        "discounted_line_ids": [],
    }
    if customer_id:
        discount["user_id"] = customer_id
    return discount


def transaction_from_order(order: Order, settings: SessionMSettings, *, voided: bool = False) -> dict[str, Any]:
    """A closed POS transaction for ``send_transaction``; the customer rides on ``payments[]``."""
    when = timestamp(order.placed_at)
    if order.total is None:
        raise AssertionError("order.total is set once the order is validated")
    payment: dict[str, Any] = {
        "payment_id": f"{order.ref}-1",
        "amount": order.total.amount,
        "type": settings.payment_type,
        "payment_time": when,
    }
    if order.customer_id:
        payment["user_id"] = order.customer_id
        payment["user_id_type"] = settings.user_id_type
    items, tax_total, subtotal = _sale_items(order.lines, order.currency, settings)
    return {
        "transaction_id": order.ref,
        "pos_employee_id": settings.employee_id,
        "is_closed": True,
        "is_voided": voided,
        "subtotal": subtotal,
        **tax_total,
        "open_time": when,
        "modified_time": timestamp() if voided else when,
        "channel": order.channel or settings.transaction_channel,
        "items": items,
        "payments": [payment],
        "discounts": [discount_from_receipt(r, order.customer_id, settings) for r in redemption_receipts(order)],
        "custom_data": {},
    }


def return_transaction(order: Order, reversal: Any, settings: SessionMSettings, refund_total: Decimal) -> dict[str, Any]:
    """A return on ``send_transaction``: the refunded lines with negative quantities and amounts,
    ``from_transaction_id`` naming the order (client-code field; its meaning for returns and the
    whole return format are UNCONFIRMED, which is why refunds are an opt-in setting)."""
    when = timestamp()
    wanted = {r.line_id: r.quantity for r in reversal.lines} if reversal.lines else None
    lines = []
    for line in order.lines:
        if wanted is None:
            lines.append(line)
        elif line.id in wanted:
            lines.append(line.model_copy(update={"quantity": wanted[line.id]}))
    items = _items(lines, settings, sign=-1)
    payment: dict[str, Any] = {"payment_id": f"{order.ref}-{reversal.reference}", "amount": -refund_total,
                               "type": settings.payment_type, "payment_time": when}
    if order.customer_id:
        payment["user_id"] = order.customer_id
        payment["user_id_type"] = settings.user_id_type
    return {
        "transaction_id": f"{order.ref}:return:{reversal.reference}",
        "from_transaction_id": order.ref,
        "pos_employee_id": settings.employee_id,
        "is_closed": True,
        "is_voided": False,
        "subtotal": sum((i["subtotal"] for i in items), Decimal(0)),
        **_tax_total(items),
        "open_time": when,
        "modified_time": when,
        "channel": order.channel or settings.transaction_channel,
        "items": items,
        "payments": [payment],
        "discounts": [],
        "custom_data": {},
    }


# ---------------------------------------------------------------------------------------------
# Offers: wallet, eligible offers, lock
# ---------------------------------------------------------------------------------------------


def offer_kind(offer_type: Any, settings: SessionMSettings) -> OfferKind:
    """The kit kind; a percent-off-item offer has no kit kind of its own and maps to OTHER."""
    return {
        settings.offer_type_percent_check: OfferKind.PERCENT_OFF_CHECK,
        settings.offer_type_fixed_check: OfferKind.FIXED_OFF_CHECK,
        settings.offer_type_fixed_item: OfferKind.FIXED_OFF_ITEM,
    }.get(str(offer_type), OfferKind.OTHER)


def is_percent(offer_type: Any, settings: SessionMSettings) -> bool:
    return str(offer_type) in (settings.offer_type_percent_check, settings.offer_type_percent_item)


def is_per_item(offer_type: Any, settings: SessionMSettings) -> bool:
    return str(offer_type) in (settings.offer_type_fixed_item, settings.offer_type_percent_item)


def statement_entries(payload: Mapping[str, Any], settings: SessionMSettings) -> list[StatementEntry]:
    """Point audit rows (fetch_point_audit_logs, reference § 5.4) as statement entries: the signed
    ``modification`` in points; an expiry (``amount_expired``) as expire; the spend's
    ``transaction_id`` as the order reference."""
    rows = payload.get(settings.audit_logs_key)
    if not isinstance(rows, list):
        raise MalformedResponseError(f"SessionM audit answer has no {settings.audit_logs_key} list", engine=ENGINE)
    entries = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise MalformedResponseError("SessionM audit row is not an object", engine=ENGINE)
        at = _datetime(row.get("time_of_occurrence")) or _datetime(row.get("create_date"))
        ident = row.get("id")
        if at is None or not ident:
            raise MalformedResponseError("SessionM audit row without id or time", engine=ENGINE)
        expired = decimal(row.get("amount_expired") or 0, "amount_expired")
        change = decimal(row.get("modification") or 0, "modification")
        if expired:
            kind, change = StatementEntryKind.EXPIRE, -abs(expired)
        elif change > 0:
            kind = StatementEntryKind.EARN
        elif change < 0:
            kind = StatementEntryKind.SPEND
        else:
            kind = StatementEntryKind.ADJUST
        label = row.get("point_source_name") or row.get("modification_type") or row.get("account_name")
        entries.append(StatementEntry(
            id=str(ident), at=at, kind=kind, balance=BalanceKind.POINTS, points=change,
            order_ref=str(row["transaction_id"]) if row.get("transaction_id") else None,
            label=str(label) if label else None,
        ))
    return entries


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _offer_id(entry: Mapping[str, Any]) -> str | None:
    value = entry.get("user_offer_id") or entry.get("offer_id")
    return str(value) if value else None


def wallet_offers(
    payload: Mapping[str, Any], settings: SessionMSettings, eligible: Iterable[str] = ()
) -> tuple[Offer, ...]:
    """Kit offers from a ``get_user_offers`` payload (user offers in ISSUED state)."""
    eligible = set(eligible)
    offers = []
    for entry in payload.get("user_offers") or ():
        if not isinstance(entry, Mapping):
            continue
        ident = entry.get(settings.offer_id_key) or _offer_id(entry)
        ident = str(ident) if ident else None
        if ident is None:
            continue
        offer_type = entry.get("offer_type")
        kind = offer_kind(offer_type, settings)
        raw_amount = entry.get(settings.offer_amount_key)
        amount = percent = None
        if raw_amount is not None:
            number = decimal(raw_amount, settings.offer_amount_key)
            if is_percent(offer_type, settings):
                percent = number
            elif kind is not OfferKind.OTHER:
                amount = Money.of(number, settings.currency)
        label = next((entry[k] for k in settings.offer_label_keys if entry.get(k)), None)
        offers.append(
            Offer(
                id=ident,
                kind=kind,
                label=str(label) if label else None,
                percent=percent,
                amount=amount,
                sku=str(entry["sku"]) if entry.get("sku") else None,
                code=ident,
                expires_at=_datetime(entry.get(settings.offer_expiry_key)),
                applicable=ident in eligible if eligible else True,
            )
        )
    return tuple(offers)


def eligible_discounts(
    payload: Mapping[str, Any], basket: Basket, settings: SessionMSettings
) -> dict[str, Discount]:
    """user_offer_id -> Discount, from a POS look-up made with the basket as its transaction."""
    found: dict[str, Discount] = {}
    known_lines: set[str] | None = None  # read when an offer names lines
    for entry in payload.get(settings.lookup_offers_key) or ():
        if not isinstance(entry, Mapping) or not entry.get("user_offer_id"):
            continue
        raw = entry.get(settings.lookup_discount_key)
        if raw is None:
            continue
        amount = Money.of(decimal(raw, settings.lookup_discount_key), basket.currency)
        offer_type = entry.get("offer_type")
        named = entry.get("discounted_line_ids") or ()
        if named and known_lines is None:
            known_lines = line_ids(basket.lines)
        lines = [str(i) for i in named if known_lines is not None and str(i) in known_lines]
        code = str(entry["user_offer_id"])
        label = entry.get("name") or entry.get("title") or entry.get("display_name")
        percent = None
        if is_percent(offer_type, settings) and entry.get(settings.offer_amount_key) is not None:
            percent = decimal(entry[settings.offer_amount_key], settings.offer_amount_key)
        if is_per_item(offer_type, settings) and len(lines) == 1:
            target, line_id = DiscountTarget.LINE, lines[0]
        else:
            target, line_id = DiscountTarget.ORDER, None
        found[code] = Discount(
            target=target,
            amount=amount,
            line_id=line_id,
            percent=percent,
            engine_id=str(entry.get("offer_id") or code),
            label=str(label) if label else None,
            code=code,
        )
    return found


def code_results(
    codes: Iterable[str], eligible: Mapping[str, Discount], wallet_ids: Iterable[str], *, apply_all: bool
) -> tuple[tuple[Discount, ...], tuple[CodeResult, ...]]:
    """The quote's discounts (every eligible offer, or only those named by codes) and a result
    per code."""
    in_wallet = set(wallet_ids)
    codes = list(codes)
    chosen = list(eligible) if apply_all else [c for c in codes if c in eligible]
    discounts = [eligible[c] for c in dict.fromkeys(chosen)]
    results: list[CodeResult] = []
    for code in codes:
        if code in eligible:
            results.append(CodeResult(code=code, status=CodeStatus.ACCEPTED))
        elif code in in_wallet:
            results.append(
                CodeResult(
                    code=code,
                    status=CodeStatus.REJECTED,
                    reason="voucher_conditions_not_met",
                    message="the offer does not apply to this basket",
                )
            )
        else:
            results.append(
                CodeResult(
                    code=code,
                    status=CodeStatus.REJECTED,
                    reason="voucher_not_found",
                    message="no such offer in the customer's wallet",
                )
            )
    return tuple(discounts), tuple(results)


def redemption_from_discount(
    discount: Mapping[str, Any], code: str, key: str, settings: SessionMSettings, *, reserved: bool
) -> RedemptionResult:
    """A kit redemption from the Discount a POS ``lock`` (or ``redeem``) returned."""
    if "amount" not in discount:
        raise MalformedResponseError("SessionM returned a discount without an amount", engine=ENGINE)
    amount = Money.of(decimal(discount["amount"], "amount"), settings.currency)
    label = discount.get("display_name")
    return RedemptionResult(
        code=code,
        status=RedemptionStatus.RESERVED if reserved else RedemptionStatus.REDEEMED,
        discount=amount,
        label=str(label) if label else None,
        receipt=Receipt(
            operation="redeem_voucher",
            engine=ENGINE,
            idempotency_key=key,
            engine_ref=discount_ref(discount),
            code=code,
            amount=amount,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Points spend
# ---------------------------------------------------------------------------------------------


def spend_request(
    settings: SessionMSettings,
    *,
    user_id: str,
    points: Decimal,
    point_account_id: str | None,
    key: str,
    order_ref: str,
    idempotency_id: str,
    is_return: bool = False,
) -> dict[str, Any]:
    detail = {
        "amount": points,
        "point_account_ids": [point_account_id] if point_account_id else [],
        "reference_id": derived_id(key, "reference"),
        "reference_type": settings.spend_reference_type,
        "transaction_id": order_ref,
        "force_spend": settings.force_spend,
        "rank": 0,
        "is_return": is_return,
        "idempotency_id": idempotency_id,
        "id": "",
        "timestamp": "",
        "overdraft_id": "",
        "overdraft_timestamp": "",
        "point_source_id": "",
    }
    return {
        "culture": settings.culture,
        "retailer_id": settings.retailer_id,
        "user_id": user_id,
        "spend_details": [detail],
        "allow_partial_success": False,
        "disable_event_publishing": False,
        "parallel_mode": False,
    }


def spend_detail(payload: Mapping[str, Any], codes: Mapping[str, str]) -> Mapping[str, Any]:
    """The one spend detail of a ``spend_multiple`` payload; a per-item failure is an error."""
    details = payload.get("details") or []
    if not details or not isinstance(details[0], Mapping):
        raise MalformedResponseError("SessionM spend answer has no details", engine=ENGINE)
    detail = details[0]
    error_status = detail.get("error_status")
    if error_status not in (None, 0, "0"):
        # error_response is an object ({code, message, ...} in client code): read its fields.
        nested = detail.get("error_response")
        nested_code, nested_message = _error_code(nested) if isinstance(nested, Mapping | list) else (None, None)
        message = detail.get("message") or nested_message or (nested if isinstance(nested, str) else None)
        code = nested_code or (message if isinstance(message, str) and " " not in message else None)
        raise kit_error("Connect", code or f"error_status {error_status}", str(message) if message else None, codes)
    return detail


def spend_result(detail: Mapping[str, Any], requested: Decimal, key: str) -> SpendResult:
    spent = decimal(detail.get("amount_spent", requested), "amount_spent")
    remaining = None
    if detail.get("remaining_balance") is not None:
        left = decimal(detail["remaining_balance"], "remaining_balance")
        remaining = Balance(kind=BalanceKind.POINTS, name="points", points=max(left, Decimal(0)))
    ref = detail.get("tracking_id") or detail.get("idempotency_id")
    return SpendResult(
        kind=BalanceKind.POINTS,
        points=spent,
        remaining=remaining,
        receipt=Receipt(
            operation="spend_cashback",
            engine=ENGINE,
            idempotency_key=key,
            engine_ref=str(ref) if ref else None,
            points=spent,
        ),
    )


def deposit_request(
    settings: SessionMSettings, *, user_id: str, points: Decimal, point_account_id: str | None
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "point_source_id": settings.points_return_source_id,
        "amount": points,
        "rank": 0,
    }
    if point_account_id:
        detail["point_account_id"] = point_account_id
    return {
        "retailer_id": settings.retailer_id,
        "user_id": user_id,
        "deposit_details": [detail],
        "allow_partial_success": False,
        "disable_event_publishing": False,
        "culture": settings.culture,
    }


# ---------------------------------------------------------------------------------------------
# Member updates and issuing offers
# ---------------------------------------------------------------------------------------------


def user_update(update: Any, settings: SessionMSettings) -> dict[str, Any]:
    """Core update-customer body (reference § 3.4): the changed fields under ``user``; segments as
    the custom profile attribute ``settings.segments_profile_field`` (replacing the set)."""
    return {"user": {"user_profile": {settings.segments_profile_field: list(update.segments)}}}


def move_user(user_id: str, tier: str, settings: SessionMSettings) -> dict[str, Any]:
    """Incentives move_user body (reference § 5.4): the tier is the tier level id."""
    return {"tier_system_id": settings.tier_system_id, "tier_level_id": tier, "user_id": user_id,
            "process_intermediate_levels": True, "evaluate_qualifying_rules": False, "culture": settings.culture}


ISSUE_TAG = "loyaltykit_issue"


def issue_request(issue: Any) -> dict[str, Any]:
    """acquisition/issue body (reference § 4.3)."""
    return {"user_id": issue.customer_id, "offer_id": issue.definition_id, "quantity": issue.quantity,
            "issue_exact_version": False}


def issued_user_offer_ids(payload: Mapping[str, Any], codes: Mapping[str, str]) -> list[str]:
    """The user offers an issue created; a non-zero ``fail_reason`` (§ 2.2, 0 = ok presumably) is
    a refusal."""
    ids = []
    for item in payload.get("status_list") or ():
        if not isinstance(item, Mapping):
            continue
        reason = item.get("fail_reason") or 0
        if decimal(reason, "fail_reason") != 0:
            raise kit_error("Connect", f"fail_reason_{reason}", "the offer was not issued", codes)
        if item.get("user_offer_id"):
            ids.append(str(item["user_offer_id"]))
    return ids


def issue_tag(key: str) -> str:
    """The custom_data the adapter writes on each user offer it issued (a JSON string, § 4.4)."""
    return wire.dumps({ISSUE_TAG: key}).decode()


def tagged_with(entry: Mapping[str, Any], key: str, settings: SessionMSettings) -> bool:
    raw = entry.get(settings.wallet_custom_data_key)
    if isinstance(raw, str):
        try:
            raw = loads(raw.encode())
        except (ValueError, MalformedResponseError):
            return False
    return isinstance(raw, Mapping) and raw.get(ISSUE_TAG) == key
