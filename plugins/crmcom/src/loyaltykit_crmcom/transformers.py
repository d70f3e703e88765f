"""Pure mapping between kit models and the CRM.COM Gen A Web API (no I/O).

Section numbers (§) are those of the public wire reference for CRM.COM (``crmcom.md``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from loyaltykit import wire
from loyaltykit.engine_errors import ErrorTable
from loyaltykit.errors import AuthFailedError, LoyaltyError, MalformedResponseError
from loyaltykit.models import Balance, BalanceKind, Customer, Line, Product
from loyaltykit.money import Money, quantize

from .backend import Preview, Purchase, PurchaseLine, SpendRequest
from .settings import CrmcomSettings

ENGINE = "crmcom"


# -- errors (§2.1) -------------------------------------------------------------------------------

#: Message phrases (whole words, first match wins) -> kit error code. The error envelope is
#: UNCONFIRMED (§2.1): CRM.COM documents no error codes or texts, only that ``status.code`` is not
#: "OK". These are the texts the fake answers with; the ``error_patterns`` setting adds codes and
#: phrases. A reused reference means the engine already holds a write with our reference: its
#: outcome is found by looking it up, so it is ``outcome_unknown``, which the reconcile looks up.
DOCUMENTED_PHRASES: dict[str, str] = {
    "invalid token": "auth_failed",
    "token has expired": "auth_failed",
    "token expired": "auth_failed",
    "token is invalid": "auth_failed",
    "not authenticated": "auth_failed",
    "already exists": "outcome_unknown",
    "duplicate": "outcome_unknown",
    "access token not found": "customer_not_found",
    "accounts receivable not found": "customer_not_found",
    "rewards participant not found": "customer_not_found",
    "customer not found": "customer_not_found",
    "insufficient": "insufficient_balance",
    "not enough": "insufficient_balance",
    "exceeds the wallet balance": "insufficient_balance",
    "spending is not allowed": "insufficient_balance",
    "mandatory": "invalid_request",
    "required": "invalid_request",
    "must be": "invalid_request",
    "invalid": "invalid_request",
}


def error_table(extra: Mapping[str, str] | None = None) -> ErrorTable:
    """The core classifier with the documented phrases; the ``error_patterns`` setting's entries
    count as ``status.code`` values (exact) and as message phrases (whole words) alike."""
    return ErrorTable(ENGINE, phrases=DOCUMENTED_PHRASES).extended(codes=extra, phrases=extra)


# -- envelope (§2.1) -----------------------------------------------------------------------------


def unwrap(body: Any, table: ErrorTable, ok_code: str, *, operation: str | None = None, status: int = 200) -> Any:
    """``data`` of a ``{"status": {"code", "message", "description"}, "data"}`` envelope; any
    code other than ``ok_code`` is classified through the error table."""
    envelope = wire.mapping(body, "body", engine=ENGINE)
    state = wire.mapping(wire.at(envelope, "status", engine=ENGINE), "status", engine=ENGINE)
    code = wire.text(state.get("code"), "status.code", engine=ENGINE)
    if code != ok_code:
        message = " ".join(str(state.get(k)) for k in ("message", "description") if state.get(k))
        raise table.classify(status, code, message or None, operation=operation)
    return envelope.get("data")


def answer(response: httpx.Response, table: ErrorTable, ok_code: str, *, operation: str | None = None) -> Any:
    """``data`` of an answer; a body without the status envelope is malformed (a 401/403 without
    one is an authentication failure)."""
    if response.status_code in table.auth_statuses and not _has_envelope(response):
        raise table.classify(response.status_code, None, None, operation=operation)
    body = wire.json_body(response, engine=ENGINE)
    if not isinstance(body, dict) or "status" not in body:
        raise MalformedResponseError(f"body: HTTP {response.status_code} without the status envelope",
                                     engine=ENGINE, field="body.status")
    return unwrap(body, table, ok_code, operation=operation, status=response.status_code)


def _has_envelope(response: httpx.Response) -> bool:
    try:
        body = wire.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and isinstance(body.get("status"), dict)


def token_refused(response: httpx.Response, table: ErrorTable, ok_code: str) -> bool:
    """Whether an answer refuses the session token (§2.2): the error envelope classified as an
    authentication failure (an unknown or expired token answers HTTP 200 with it)."""
    try:
        answer(response, table, ok_code)
    except AuthFailedError:
        return True
    except LoyaltyError:
        return False
    return False


def token_from(response: httpx.Response, table: ErrorTable, ok_code: str) -> str:
    """``data.token`` of a login (§2.2); any refusal is an authentication failure."""
    try:
        data = answer(response, table, ok_code, operation="token")
        return wire.text(wire.mapping(data, "data", engine=ENGINE).get("token"), "data.token", engine=ENGINE)
    except AuthFailedError:
        raise
    except LoyaltyError as exc:
        raise AuthFailedError(f"the token call failed: {exc.message}", engine=ENGINE,
                              engine_code=exc.engine_code) from None


def performed_on(when: datetime | None = None) -> str:
    """Dates travel as ``YYYY-MM-DDTHH:MM:SS`` (§2.1; the request format is assumed the same)."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def reference_for(prefix: str, key: str) -> str:
    """A deterministic external reference for a kit idempotency key (short, no customer data)."""
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:28].upper()


# -- customers (§2.3, §2.7) ----------------------------------------------------------------------


def account(customer_id: str) -> dict[str, Any]:
    """``accounts_receivable_identifier`` by the access token's authentication code (§2.3)."""
    return {"access_token_identifier": {"authentication_code": customer_id}}


def customer_from(token: Any, balance: Decimal | None, currency: str) -> Customer | None:
    """A Customer from ``access_tokens/show`` data; ``None`` unless the token is EFFECTIVE."""
    token = wire.mapping(token, "data", engine=ENGINE)
    code = wire.text(token.get("authentication_code"), "data.authentication_code", engine=ENGINE)
    state = token.get("life_cycle_state")
    if state != "EFFECTIVE":
        return None
    balances: tuple[Balance, ...] = ()
    if balance is not None:
        balances = (Balance(kind=BalanceKind.CASHBACK, name="wallet", money=Money.of(balance, currency)),)
    return Customer(id=code, membership_number=token.get("number"), status=state, balances=balances)


def balance_from(data: Any) -> Decimal:
    """``wallets/get_balance`` data: ``id``, ``balance`` (§2.7)."""
    return wire.number(wire.mapping(data, "data", engine=ENGINE).get("balance"), "data.balance", engine=ENGINE)


# -- purchases (§2.4, §2.5) ----------------------------------------------------------------------


def line_amounts(line: Line, currency: str, paid: Decimal | None = None) -> dict[str, Decimal]:
    """net, VAT and total of a line. ``total_amount`` is what the line really cost: ``paid`` (the
    core's allocation net of the order's discounts) when given, else unit price x quantity. Gen A's
    line has no discount field (§2.5: net, VAT, total only), so discounts travel as lower amounts.
    The kit's prices are gross; a ``vat_rate`` attribute (percent) splits the VAT out, else VAT 0."""
    total = quantize(paid if paid is not None else line.unit_price.amount * line.quantity, currency)
    rate = line.attributes.get("vat_rate")
    vat = Decimal(0)
    if rate:
        vat = quantize(total - total / (1 + Decimal(rate) / 100), currency)
    return {"net_amount": total - vat, "vat_amount": vat, "total_amount": total}


def purchase_lines(lines: tuple[Line, ...], currency: str,
                   paid: Mapping[str, Decimal] | None = None) -> list[dict[str, Any]]:
    """The product lines: product_identifier.code, quantity, net/vat/total (§2.5); ``paid`` maps a
    line id to what it cost after discounts."""
    return [
        {"product_identifier": {"code": line.sku}, "quantity": line.quantity,
         **line_amounts(line, currency, (paid or {}).get(line.id))}
        for line in lines
    ]


def purchase_body(s: CrmcomSettings, customer_id: str, lines: tuple[Line, ...], reference: str,
                  when: datetime | None = None, *, paid: Mapping[str, Decimal] | None = None,
                  external_reference: str | None = None) -> dict[str, Any]:
    """``customer_events/purchases/create`` (and ``preview``) request (§2.5). The external reference
    is the order ref, or the spend's reference when the spend travels with the purchase."""
    body: dict[str, Any] = {
        "accounts_receivable_identifier": account(customer_id),
        "performed_on": performed_on(when),
        "reference_number": reference,
        "external_system_reference_number": external_reference or reference,
        s.products_key: purchase_lines(lines, s.currency, paid),
    }
    if s.external_system:
        body["external_system"] = s.external_system
    if s.performed_by_unit_id:
        body["performed_by_unit_identifier"] = {"id": s.performed_by_unit_id}
    if s.performed_by_tap_code:
        body["performed_by_tap_identifier"] = {"code": s.performed_by_tap_code}
    return body


def set_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Put ``value`` at a dotted path (``spend_request.amount``) of ``body``."""
    *parents, last = path.split(".")
    node = body
    for name in parents:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise ValueError(f"{path}: {name} is not an object in the body")
    node[last] = value
    return body


def purchase_spend_body(s: CrmcomSettings, customer_id: str, lines: tuple[Line, ...], reference: str,
                        amount: Decimal, spend_reference: str, when: datetime | None = None) -> dict[str, Any]:
    """A purchase that carries its spend (§2.6): ``purchases/create_spend`` (R9-R16, atomic) or, from
    R17, ``purchases/create`` itself. Both bodies are the purchase's plus the spend amount at the
    path the mode's setting names (UNCONFIRMED); the spend's reference is the purchase's external
    reference, so a look-up by the order ref tells whose spend the purchase carries."""
    body = purchase_body(s, customer_id, lines, reference, when, external_reference=spend_reference)
    path = s.create_spend_amount_path if s.spend_mode == "create_spend" else s.inside_create_spend_path
    return set_path(body, path, amount)


def preview_from(data: Any) -> Preview:
    """``purchase_customer_event_preview_complete`` (§2.4)."""
    data = wire.mapping(data, "data", engine=ENGINE)

    def amount(name: str, optional: bool = False) -> Decimal | None:
        return wire.number(data.get(name), f"data.{name}", engine=ENGINE, optional=optional)

    zero = Decimal(0)
    return Preview(
        award=amount("total_award_amount", True) or zero,
        instant_spend=amount("total_instant_spend_amount", True) or zero,
        automatic_spend=amount("total_automatic_spend_amount", True) or zero,
        additional_spend=amount("total_additional_spend_amount", True) or zero,
        minimum_spend=amount("minimum_spend_amount_per_transaction", True),
        maximum_spend=amount("maximum_spend_amount_per_transaction", True),
        wallet_balance=amount("wallet_balance", True),
        reduction_method=data.get("reduction_method"),
        allow_spending=data.get("allow_spending") is not False,
        participant_id=data.get("rewards_participant_id"),
        raw={k: v for k, v in data.items() if k not in ("rewards_participant_name",)},
    )


def purchase_from(data: Any) -> Purchase:
    """A purchase customer event (MOCK body of §2.5): id, number, totals, ``products_set``; a line
    booked on the default product carries ``intended_product_value`` (R14)."""
    data = wire.mapping(data, "data", engine=ENGINE)
    ident = wire.text(data.get("id"), "data.id", engine=ENGINE)
    lines = []
    for index, found in enumerate(wire.items(data.get("products_set"), "data.products_set", engine=ENGINE,
                                             optional=True)):
        path = f"data.products_set[{index}]"
        item = wire.mapping(found, path, engine=ENGINE)
        product = item.get("product")
        intended = item.get("intended_product_value") or item.get("intended_product")
        if isinstance(intended, dict):  # the later revision's ``intended_product`` object
            intended = intended.get("code") or intended.get("value")
        total = wire.number(item.get("total_amount"), f"{path}.total_amount", engine=ENGINE)
        lines.append(PurchaseLine(
            product_code=product.get("code") if isinstance(product, dict) else None,
            intended_product=str(intended) if intended else None,
            total=total,
        ))
    return Purchase(
        id=ident,
        number=data.get("number"),
        reference=data.get("reference_number") or data.get("external_system_reference_number"),
        external_reference=data.get("external_system_reference_number"),
        state=data.get("life_cycle_state"),
        awarded=wire.number(data.get("total_awarded_amount"), "data.total_awarded_amount", engine=ENGINE,
                            optional=True) or Decimal(0),
        spent=wire.number(data.get("total_spend_amount"), "data.total_spend_amount", engine=ENGINE,
                          optional=True) or Decimal(0),
        lines=tuple(lines),
    )


def list_items(data: Any, what: str) -> list[Any]:
    """A list method's data: a JSON array (or an object with one ``*_set`` array)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        sets = [v for k, v in data.items() if k.endswith("_set") and isinstance(v, list)]
        if len(sets) == 1:
            return sets[0]
    if data is None:
        return []
    raise MalformedResponseError(f"data: {what} list data is not an array", engine=ENGINE, field="data")


def list_body(filter_name: str, value: str, page_size: int) -> dict[str, Any]:
    """A list request by one filter; results come oldest first, at most 50 (§2.1)."""
    return {filter_name: value, "number_of_results": page_size}


# -- spends (§2.6) -------------------------------------------------------------------------------


def spend_body(s: CrmcomSettings, customer_id: str, purchase: Purchase, amount: Decimal, reference: str,
               when: datetime | None = None) -> dict[str, Any]:
    """``customer_events/spend_requests/create`` against the purchase it settles."""
    body: dict[str, Any] = {
        "accounts_receivable_identifier": account(customer_id),
        "performed_on": performed_on(when),
        "purchase_customer_request_identifier": {"id": purchase.id},
        "spend_amount": amount,
        "external_system_reference_number": reference,
    }
    if s.external_system:
        body["external_system"] = s.external_system
    if s.performed_by_unit_id:
        body["performed_by_unit_identifier"] = {"id": s.performed_by_unit_id}
    return body


def spend_from(data: Any) -> SpendRequest:
    """The spend request object: id, number, life_cycle_state, spend_amount (§2.6)."""
    data = wire.mapping(data, "data", engine=ENGINE)
    amount = wire.number(data.get("spend_amount"), "data.spend_amount", engine=ENGINE)
    return SpendRequest(
        id=wire.text(data.get("id"), "data.id", engine=ENGINE),
        number=data.get("number"),
        amount=amount,
        state=data.get("life_cycle_state"),
        reference=data.get("external_system_reference_number"),
    )


def cancel_body(field_name: str, ident: str) -> dict[str, Any]:
    return {field_name: {"id": ident}}


# -- products (§2.9) -----------------------------------------------------------------------------


def product_body(s: CrmcomSettings, product: Product) -> dict[str, Any]:
    """One product of ``products/synchronise``: code (mandatory), alternative code, description,
    type / brand / family identifier objects."""
    body: dict[str, Any] = {"code": product.sku, "alternative_code": product.sku,
                            "description": product.name or product.sku}
    if s.product_type_code:
        body["type_identifier"] = {"code": s.product_type_code}
    if product.brand:
        body["brand_identifier"] = {"code": product.brand}
    if product.category:
        body["family_identifier"] = {"code": product.category}
    return body


def sync_body(s: CrmcomSettings, products: list[Product]) -> dict[str, Any]:
    return {s.products_sync_key: [product_body(s, p) for p in products]}
