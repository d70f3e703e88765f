"""Pure mapping between kit models and MAXXING bodies (``wire.py``), and answer classification.

No I/O, no state. The flows in ``adapter.py`` call these; what the engine's bodies look like is in
``wire.py``, which operation path is used is in the settings.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from loyaltykit import Money, wire as kitwire
from loyaltykit.engine_errors import ErrorTable
from loyaltykit.errors import EngineError, InvalidRequestError
from loyaltykit.models import (
    Balance,
    BalanceKind,
    Basket,
    CashbackSpend,
    CodeResult,
    CodeStatus,
    Customer,
    Discount,
    DiscountTarget,
    Earn,
    Evaluation,
    ExportStatus,
    Line,
    Message,
    Order,
    OrderExportResult,
    ProductPrice,
    ProductQuery,
    Receipt,
    RedemptionResult,
    RedemptionStatus,
    Reversal,
    ReversalKind,
    ReversalResult,
    SpendResult,
    UnmappedEffect,
    VoucherRedemption,
)

from . import wire
from .settings import MaxxingSettings

M = TypeVar("M", bound=BaseModel)

ENGINE = "maxxing"

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

#: Engine error code -> kit error code. UNCONFIRMED for MAXXING: no error code is public; these
#: are the codes the fake answers with (see the README). The ``error_codes`` setting extends or
#: overrides them, the ``error_patterns`` setting adds message phrases for codes the table lacks.
DOCUMENTED_ERROR_CODES: dict[str, str] = {
    "CUSTOMER_NOT_FOUND": "customer_not_found",
    "CARD_NOT_FOUND": "customer_not_found",
    "VOUCHER_NOT_FOUND": "voucher_not_found",
    "VOUCHER_EXPIRED": "voucher_expired",
    "VOUCHER_NOT_YET_VALID": "voucher_expired",
    "VOUCHER_ALREADY_BURNT": "voucher_already_redeemed",
    "VOUCHER_NOT_OWNED": "voucher_not_owned",
    "VOUCHER_USAGE_LIMIT_REACHED": "usage_limit_reached",
    "VOUCHER_CONDITIONS_NOT_MET": "voucher_conditions_not_met",
    "INSUFFICIENT_BALANCE": "insufficient_balance",
    "AMOUNT_EXCEEDS_DUE": "invalid_request",
    "CURRENCY_MISMATCH": "currency_mismatch",
    "INVALID_REQUEST": "invalid_request",
    "MISSING_FIELD": "invalid_request",
    "TRANSACTION_NOT_FOUND": "engine_error",
    "ACCESS_DENIED": "auth_failed",
    "SERVICE_UNAVAILABLE": "engine_unavailable",
}


@functools.lru_cache(maxsize=16)
def _table(codes: frozenset[tuple[str, str]], phrases: tuple[tuple[str, str], ...]) -> ErrorTable:
    return ErrorTable(ENGINE, codes=DOCUMENTED_ERROR_CODES).extended(codes=dict(codes), phrases=dict(phrases))


def error_table(s: MaxxingSettings) -> ErrorTable:
    """The core classifier: the documented codes, extended by the ``error_codes`` and
    ``error_patterns`` settings."""
    return _table(frozenset(s.error_codes.items()), tuple(s.error_patterns.items()))


# ---------------------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------------------


def answer(response: httpx.Response, model: type[M], s: MaxxingSettings) -> M:
    """Classify an answer (error envelope on any status, then HTTP status) and type it."""
    body = kitwire.json_body(response, engine=ENGINE)
    table = error_table(s)
    if isinstance(body, dict) and body.get(wire.ERROR_CODE_KEY):
        error = kitwire.model(body, wire.ErrorAnswer, "body", engine=ENGINE)
        raise table.classify(response.status_code, error.error_code, error.error_message)
    if response.status_code >= 400:
        if response.status_code in (400, 422):
            raise InvalidRequestError(f"engine answered HTTP {response.status_code}", engine=ENGINE,
                                      engine_code=str(response.status_code))
        raise table.classify(response.status_code, None, None)
    return kitwire.model(kitwire.mapping(body, "body", engine=ENGINE), model, "body", engine=ENGINE)


def transaction_key(s: MaxxingSettings, kit_key: str) -> str:
    """The engine transaction key of a kit write: deterministic, so it can be looked up again."""
    return f"{s.transaction_key_prefix}{kit_key}"


def _channel(s: MaxxingSettings, channel: str | None) -> str:
    return channel or s.default_channel


def _store(s: MaxxingSettings, store_id: str | None) -> str:
    return store_id or s.store_number


def _lines(lines: tuple[Line, ...]) -> list[wire.WireLine]:
    return [wire.WireLine(line_id=line.id, item_code=line.sku, quantity=line.quantity,
                          unit_price=line.unit_price.amount, category=line.category) for line in lines]


# ---------------------------------------------------------------------------------------------
# Customers and balances
# ---------------------------------------------------------------------------------------------


def card_lookup(s: MaxxingSettings, card: str) -> dict[str, Any]:
    return wire.CardLookupRequest(store_chain=s.store_chain, card_key=card).body()


def customer_search(s: MaxxingSettings, email: str) -> dict[str, Any]:
    return wire.CustomerSearchRequest(store_chain=s.store_chain, email=email).body()


def balances_request(s: MaxxingSettings, cust_id: str) -> dict[str, Any]:
    return wire.BalancesRequest(store_chain=s.store_chain, cust_id=cust_id).body()


def kit_balances(entries: list[wire.BalanceEntry], currency: str) -> tuple[Balance, ...]:
    out: list[Balance] = []
    for entry in entries:
        kind = entry.type.upper()
        if kind == wire.CASHBACK:
            out.append(Balance(kind=BalanceKind.CASHBACK, name="cashback",
                               money=Money.of(max(entry.amount, Decimal(0)), entry.currency or currency)))
        elif kind == wire.POINTS:
            out.append(Balance(kind=BalanceKind.POINTS, name="points", points=max(entry.amount, Decimal(0))))
    return tuple(out)


def customer(record: wire.CustomerRecord, balances: tuple[Balance, ...] = ()) -> Customer:
    return Customer(id=record.cust_id, membership_number=record.card_key, email=record.email,
                    balances=balances, raw={"account_key": record.account_key} if record.account_key else {})


def single_customer(search: wire.CustomerSearchAnswer, email: str) -> wire.CustomerRecord | None:
    """The one customer with this e-mail; several are ambiguous (a shop must not pick one)."""
    matches = [c for c in search.customers if c.email is None or c.email.lower() == email]
    if not matches:
        return None
    if len({c.cust_id for c in matches}) > 1:
        raise EngineError("several customers share this e-mail address", engine=ENGINE,
                          engine_code="AMBIGUOUS_EMAIL")
    return matches[0]


# ---------------------------------------------------------------------------------------------
# Evaluation and product prices
# ---------------------------------------------------------------------------------------------


def compute_request(s: MaxxingSettings, basket: Basket) -> dict[str, Any]:
    return wire.ComputeRequest(
        store_chain=s.store_chain, store=_store(s, basket.store_id), channel=_channel(s, basket.channel),
        transaction_key=basket.id, cust_id=basket.customer_id, currency=basket.currency,
        lines=_lines(basket.lines), shipping=basket.shipping.amount if basket.shipping else None,
        codes=list(basket.coupon_codes),
    ).body()


_TARGETS = {"ORDER": DiscountTarget.ORDER, "LINE": DiscountTarget.LINE, "SHIPPING": DiscountTarget.SHIPPING}
_MESSAGE_KINDS = {"INFO": "info", "PROMOTION": "promotion", "WARNING": "warning"}


def evaluation(basket: Basket, result: wire.ComputeAnswer, s: MaxxingSettings) -> Evaluation:
    currency = basket.currency
    line_ids = {line.id for line in basket.lines}
    discounts: list[Discount] = []
    unmapped: list[UnmappedEffect] = []
    for item in result.discounts:
        target = _TARGETS.get(item.level.upper())
        bad_line = target is DiscountTarget.LINE and item.line_id not in line_ids
        if target is None or bad_line or item.amount < 0:
            unmapped.append(UnmappedEffect(type=f"discount:{item.level}", raw=item.model_dump(mode="json")))
            continue
        discounts.append(Discount(
            target=target, amount=Money.of(item.amount, currency),
            line_id=item.line_id if target is DiscountTarget.LINE else None,
            percent=item.percent, engine_id=item.promo_id, label=item.label, code=item.code,
        ))
    codes = []
    seen = set()
    for answered in result.codes:
        accepted = answered.status.upper() == "ACCEPTED"
        reason = None
        if not accepted:
            reason = error_table(s).kit_code(200, answered.reason_code, None) or "voucher_invalid"
        codes.append(CodeResult(code=answered.code, status=CodeStatus.ACCEPTED if accepted else CodeStatus.REJECTED,
                                reason=reason, message=answered.message))
        seen.add(answered.code)
    for code in basket.coupon_codes:  # a code the engine did not mention was not applied
        if code not in seen:
            codes.append(CodeResult(code=code, status=CodeStatus.REJECTED, reason="voucher_not_found",
                                    message="the engine did not report this code"))
    earn = []
    for reward in result.rewards:
        kind = reward.type.upper()
        if kind == wire.CASHBACK:
            earn.append(Earn(kind=BalanceKind.CASHBACK, money=Money.of(reward.amount, currency), label=reward.label))
        elif kind == wire.POINTS:
            earn.append(Earn(kind=BalanceKind.POINTS, points=reward.amount, label=reward.label))
        else:
            unmapped.append(UnmappedEffect(type=f"reward:{reward.type}", raw=reward.model_dump(mode="json")))
    messages = tuple(Message(text=m.text, kind=_MESSAGE_KINDS.get((m.type or "INFO").upper(), "info"))
                     for m in result.messages)
    return Evaluation(
        engine=ENGINE, basket_id=basket.id, currency=currency, customer_id=basket.customer_id,
        subtotal=basket.subtotal, discounts=tuple(discounts), earn=tuple(earn),
        spendable=kit_balances(result.balances, currency), codes=tuple(codes), messages=messages,
        unmapped=tuple(unmapped),
    )


def price_request(s: MaxxingSettings, query: ProductQuery) -> dict[str, Any]:
    return wire.PriceProductsRequest(
        store_chain=s.store_chain, store=s.store_number, channel=_channel(s, query.channel),
        cust_id=query.customer_id, currency=query.currency,
        products=[wire.WireProduct(item_code=p.sku, unit_price=p.unit_price.amount, category=p.category)
                  for p in query.products],
    ).body()


def product_prices(query: ProductQuery, result: wire.PriceProductsAnswer) -> list[ProductPrice]:
    """One price per queried product, in order; a product the engine left out keeps its price."""
    by_code = {p.item_code: p for p in result.products}
    prices = []
    for product in query.products:
        found = by_code.get(product.sku)
        price = product.unit_price
        discounted = price
        labels: tuple[str, ...] = ()
        points = Decimal(0)
        if found is not None:
            # Never above the list price, never below zero, whatever the engine says.
            discounted = Money.of(min(max(found.discounted_price, Decimal(0)), price.amount), query.currency)
            labels = tuple(found.labels)
            points = found.points or Decimal(0)
        prices.append(ProductPrice(sku=product.sku, price=price, discounted_price=discounted,
                                   points_to_earn=points, labels=labels))
    return prices


# ---------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------


def get_transaction(s: MaxxingSettings, key: str) -> dict[str, Any]:
    return wire.GetTransactionRequest(store_chain=s.store_chain, transaction_key=key).body()


def burn_voucher_request(s: MaxxingSettings, redemption: VoucherRedemption, key: str) -> dict[str, Any]:
    basket = redemption.basket
    return wire.BurnVoucherRequest(
        store_chain=s.store_chain, store=_store(s, basket.store_id if basket else None),
        channel=_channel(s, basket.channel if basket else None), transaction_key=key,
        order_number=redemption.order_ref, cust_id=redemption.customer_id, code=redemption.code,
        currency=basket.currency if basket else s.currency, lines=_lines(basket.lines) if basket else [],
    ).body()


def redemption_result(record: wire.TransactionRecord, redemption: VoucherRedemption, kit_key: str,
                      replayed: bool, currency: str) -> RedemptionResult:
    amount = Money.of(record.amount, currency) if record.amount is not None else None
    return RedemptionResult(
        code=redemption.code, status=RedemptionStatus.REDEEMED, discount=amount, label=record.label,
        receipt=Receipt(operation="redeem_voucher", engine=ENGINE, idempotency_key=kit_key,
                        engine_ref=record.transaction_key, code=redemption.code, amount=amount, replayed=replayed),
    )


def burn_cashback_request(s: MaxxingSettings, spend: CashbackSpend, key: str,
                          amount_due: Money | None = None) -> dict[str, Any]:
    if spend.amount is None:
        raise AssertionError("spend.amount is set here")
    return wire.BurnCashbackRequest(
        store_chain=s.store_chain, store=s.store_number, channel=s.default_channel, transaction_key=key,
        order_number=spend.order_ref, cust_id=spend.customer_id, amount=spend.amount.amount,
        amount_due=amount_due.amount if amount_due is not None else None, currency=spend.amount.currency,
    ).body()


def spend_result(record: wire.TransactionRecord, spend: CashbackSpend, kit_key: str, replayed: bool) -> SpendResult:
    if spend.amount is None:
        raise AssertionError("spend.amount is set here")
    currency = spend.amount.currency
    taken = Money.of(record.amount, currency) if record.amount is not None else spend.amount
    remaining = None
    if record.balance is not None and not replayed:  # a replayed record's balance is from back then
        remaining = Balance(kind=BalanceKind.CASHBACK, name="cashback", money=Money.of(record.balance, currency))
    return SpendResult(
        kind=BalanceKind.CASHBACK, amount=taken, remaining=remaining,
        receipt=Receipt(operation="spend_cashback", engine=ENGINE, idempotency_key=kit_key,
                        engine_ref=record.transaction_key, amount=taken, replayed=replayed),
    )


def confirm_request(s: MaxxingSettings, order: Order, key: str) -> dict[str, Any]:
    if order.total is None:
        raise AssertionError("order.total is set once the order is validated")
    tenders = [
        wire.WireTender(type=wire.CASHBACK, amount=r.amount.amount, transaction_key=r.engine_ref)
        for r in order.receipts
        if r.engine == ENGINE and r.operation == "spend_cashback" and r.amount is not None
    ]
    return wire.ConfirmRequest(
        store_chain=s.store_chain, store=_store(s, order.store_id), channel=_channel(s, order.channel),
        transaction_key=key, order_number=order.ref, cust_id=order.customer_id, currency=order.currency,
        date=order.placed_at.isoformat(), lines=_lines(order.lines),
        shipping=order.shipping.amount if order.shipping else None,
        discount_total=order.discount_total.amount if order.discount_total else None,
        total=order.total.amount, codes=list(order.voucher_codes), tenders=tenders,
    ).body()


def export_result(order: Order, record: wire.TransactionRecord, replayed: bool) -> OrderExportResult:
    points = sum((r.amount for r in record.rewards if r.type.upper() == wire.POINTS), Decimal(0))
    return OrderExportResult(
        order_ref=order.ref, status=ExportStatus.DUPLICATE if replayed else ExportStatus.ACCEPTED,
        engine_ref=record.transaction_key, points_earned=points or None,
    )


def cancel_request(s: MaxxingSettings, reversal: Reversal, key: str, original: str) -> dict[str, Any]:
    order = reversal.order
    return wire.CancelRequest(
        store_chain=s.store_chain, store=_store(s, order.store_id), channel=_channel(s, order.channel),
        transaction_key=key, original_transaction_key=original, reason=reversal.reason,
    ).body()


def refund_request(s: MaxxingSettings, reversal: Reversal, key: str, original: str) -> dict[str, Any]:
    order = reversal.order
    wanted = {r.line_id: r.quantity for r in reversal.lines} if reversal.lines else {
        line.id: line.quantity for line in order.lines}
    amount = sum((line.unit_price.amount * wanted[line.id] for line in order.lines if line.id in wanted), Decimal(0))
    return wire.RefundRequest(
        store_chain=s.store_chain, store=_store(s, order.store_id), channel=_channel(s, order.channel),
        transaction_key=key, original_transaction_key=original,
        lines=[wire.WireRefundLine(line_id=k, quantity=v) for k, v in wanted.items()], amount=amount,
    ).body()


def reversal_result(reversal: Reversal, records: list[tuple[wire.TransactionRecord, bool]],
                    kit_key: str) -> ReversalResult:
    """Sum what each reversing transaction gave back (burns) and took back (earned rewards)."""
    currency = reversal.order.currency
    points_back = points_clawed = Decimal(0)
    cash_back = cash_clawed = Decimal(0)
    reinstated: list[str] = []
    receipts = []
    for record, replayed in records:
        for item in record.returned:
            if item.type.upper() == wire.POINTS:
                points_back += item.amount
            elif item.type.upper() == wire.CASHBACK:
                cash_back += item.amount
        for item in record.clawed_back:
            if item.type.upper() == wire.POINTS:
                points_clawed += item.amount
            elif item.type.upper() == wire.CASHBACK:
                cash_clawed += item.amount
        reinstated.extend(record.reinstated_codes)
        receipts.append(Receipt(operation="reverse", engine=ENGINE, idempotency_key=kit_key,
                                engine_ref=record.transaction_key, replayed=replayed))
    return ReversalResult(
        order_ref=reversal.order.ref,
        kind=reversal.kind if isinstance(reversal.kind, ReversalKind) else ReversalKind(reversal.kind),
        points_returned=points_back, points_clawed_back=points_clawed,
        cashback_returned=Money.of(cash_back, currency) if cash_back else None,
        cashback_clawed_back=Money.of(cash_clawed, currency) if cash_clawed else None,
        vouchers_reinstated=tuple(dict.fromkeys(reinstated)), receipts=tuple(receipts),
    )
