"""Pure mapping between kit models and the CRM.COM Gen A Web API (no I/O).

Section numbers (§) are those of the public wire reference for CRM.COM (``crmcom.md``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from loyaltykit.errors import MalformedResponseError
from loyaltykit.models import Balance, BalanceKind, Customer, Line, Product
from loyaltykit.money import Money, quantize

from .backend import Preview, Purchase, PurchaseLine, SpendRequest
from .kit import ErrorTable, field, number
from .settings import CrmcomSettings

ENGINE = "crmcom"


# -- envelope (§2.1) -----------------------------------------------------------------------------


def unwrap(body: Any, table: ErrorTable, ok_code: str, *, operation: str | None = None) -> Any:
    """``data`` of a ``{"status": {"code", "message", "description"}, "data"}`` envelope; any
    code other than ``ok_code`` is classified through the error table."""
    status = field(body, "status", ENGINE)
    if not isinstance(status, dict):
        raise MalformedResponseError("status is not an object", engine=ENGINE)
    code = status.get("code")
    if not isinstance(code, str):
        raise MalformedResponseError("status.code is missing", engine=ENGINE)
    if code != ok_code:
        message = " ".join(str(status.get(k)) for k in ("message", "description") if status.get(k))
        raise table.error(code, message, operation=operation)
    return body.get("data")


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
    if not isinstance(token, dict):
        raise MalformedResponseError("access token data is not an object", engine=ENGINE)
    code = token.get("authentication_code")
    if not isinstance(code, str) or not code:
        raise MalformedResponseError("data.authentication_code is missing", engine=ENGINE)
    state = token.get("life_cycle_state")
    if state != "EFFECTIVE":
        return None
    balances = ()
    if balance is not None:
        balances = (Balance(kind=BalanceKind.CASHBACK, name="wallet", money=Money.of(balance, currency)),)
    return Customer(id=code, membership_number=token.get("number"), status=state, balances=balances)


def balance_from(data: Any) -> Decimal:
    """``wallets/get_balance`` data: ``id``, ``balance`` (§2.7)."""
    value = number(field(data, "balance", ENGINE), "data.balance", ENGINE)
    assert value is not None
    return value


# -- purchases (§2.4, §2.5) ----------------------------------------------------------------------


def line_amounts(line: Line, currency: str) -> dict[str, Decimal]:
    """net, VAT and total of a line. The kit's unit price is gross; a ``vat_rate`` attribute
    (percent) splits the VAT out, else the VAT is 0."""
    total = quantize(line.unit_price.amount * line.quantity, currency)
    rate = line.attributes.get("vat_rate")
    vat = Decimal(0)
    if rate:
        vat = quantize(total - total / (1 + Decimal(rate) / 100), currency)
    return {"net_amount": total - vat, "vat_amount": vat, "total_amount": total}


def purchase_lines(lines: tuple[Line, ...], currency: str) -> list[dict[str, Any]]:
    """The product lines: product_identifier.code, quantity, net/vat/total (§2.5)."""
    return [
        {"product_identifier": {"code": line.sku}, "quantity": line.quantity, **line_amounts(line, currency)}
        for line in lines
    ]


def purchase_body(s: CrmcomSettings, customer_id: str, lines: tuple[Line, ...], reference: str,
                  when: datetime | None = None) -> dict[str, Any]:
    """``customer_events/purchases/create`` (and ``preview``) request (§2.5)."""
    body: dict[str, Any] = {
        "accounts_receivable_identifier": account(customer_id),
        "performed_on": performed_on(when),
        "reference_number": reference,
        "external_system_reference_number": reference,
        s.products_key: purchase_lines(lines, s.currency),
    }
    if s.external_system:
        body["external_system"] = s.external_system
    if s.performed_by_unit_id:
        body["performed_by_unit_identifier"] = {"id": s.performed_by_unit_id}
    if s.performed_by_tap_code:
        body["performed_by_tap_identifier"] = {"code": s.performed_by_tap_code}
    return body


def preview_from(data: Any) -> Preview:
    """``purchase_customer_event_preview_complete`` (§2.4)."""
    def amount(name: str, optional: bool = False) -> Decimal | None:
        return number(data.get(name), f"data.{name}", ENGINE, optional=optional) if isinstance(data, dict) else None

    if not isinstance(data, dict):
        raise MalformedResponseError("preview data is not an object", engine=ENGINE)
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
    if not isinstance(data, dict):
        raise MalformedResponseError("purchase data is not an object", engine=ENGINE)
    ident = field(data, "id", ENGINE)
    lines = []
    for index, item in enumerate(data.get("products_set") or ()):
        path = f"data.products_set.{index}"
        product = item.get("product") if isinstance(item, dict) else None
        if not isinstance(item, dict):
            raise MalformedResponseError(f"{path} is not an object", engine=ENGINE)
        intended = item.get("intended_product_value") or item.get("intended_product")
        if isinstance(intended, dict):  # the later revision's ``intended_product`` object
            intended = intended.get("code") or intended.get("value")
        total = number(item.get("total_amount"), f"{path}.total_amount", ENGINE)
        assert total is not None
        lines.append(PurchaseLine(
            product_code=product.get("code") if isinstance(product, dict) else None,
            intended_product=str(intended) if intended else None,
            total=total,
        ))
    return Purchase(
        id=str(ident),
        number=data.get("number"),
        reference=data.get("reference_number") or data.get("external_system_reference_number"),
        state=data.get("life_cycle_state"),
        awarded=number(data.get("total_awarded_amount"), "data.total_awarded_amount", ENGINE, optional=True)
        or Decimal(0),
        spent=number(data.get("total_spend_amount"), "data.total_spend_amount", ENGINE, optional=True)
        or Decimal(0),
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
    raise MalformedResponseError(f"{what} list data is not an array", engine=ENGINE)


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
    if not isinstance(data, dict):
        raise MalformedResponseError("spend request data is not an object", engine=ENGINE)
    amount = number(field(data, "spend_amount", ENGINE), "data.spend_amount", ENGINE)
    assert amount is not None
    return SpendRequest(
        id=str(field(data, "id", ENGINE)),
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
