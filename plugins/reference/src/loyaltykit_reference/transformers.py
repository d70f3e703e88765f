"""Pure mapping between kit models and the Reference engine's JSON (README § Wire format). No I/O.

Every value read from an answer goes through the core's :mod:`loyaltykit.wire` readers, so a
missing field or a bad number is a ``MalformedResponseError`` naming its path; every refusal goes
through the core's :class:`~loyaltykit.engine_errors.ErrorTable` with the documented codes below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from loyaltykit import (
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
    ExportReport,
    ExportStatus,
    Money,
    Order,
    OrderExportResult,
    Receipt,
    RedemptionResult,
    RedemptionStatus,
    Reversal,
    ReversalResult,
    SpendResult,
    VoucherRedemption,
    wire,
)
from loyaltykit.engine_errors import ErrorTable
from loyaltykit.errors import InvalidRequestError, MalformedResponseError

ENGINE = "reference"

#: README § Errors: the engine's documented error codes and what they mean in the kit.
DOCUMENTED_ERROR_CODES: dict[str, str] = {
    "member_not_found": "customer_not_found",
    "voucher_not_found": "voucher_not_found",
    "voucher_expired": "voucher_expired",
    "voucher_not_owned": "voucher_not_owned",
    "voucher_used": "voucher_already_redeemed",
    "usage_limit_reached": "usage_limit_reached",
    "basket_below_minimum": "voucher_conditions_not_met",
    "insufficient_balance": "insufficient_balance",
    "invalid_request": "invalid_request",
    "processing": "outcome_unknown",
    "unauthorized": "auth_failed",
}


def error_table(extra: Mapping[str, str] | None = None) -> ErrorTable:
    """The documented codes, extended by the ``error_codes`` setting."""
    return ErrorTable(ENGINE, codes=DOCUMENTED_ERROR_CODES).extended(codes=extra)


# -- envelope ------------------------------------------------------------------------------------


def checked(response: httpx.Response, table: ErrorTable, *, operation: str, trust_ok: bool = False) -> Mapping[str, Any]:
    """The body of a successful answer; the kit error for ``{"ok": false, "error": {...}}`` (sent
    with HTTP 200 or 4xx) and for a 4xx without an envelope. ``trust_ok`` ignores the envelope
    (only the deliberately broken test adapter sets it)."""
    if response.status_code in (401, 403) and not response.content.strip():
        raise table.classify(response.status_code, None, None, operation=operation)
    body = wire.mapping(wire.json_body(response, engine=ENGINE), "body", engine=ENGINE)
    failed = response.status_code >= 400 or (body.get("ok") is False and not trust_ok)
    if failed:
        found = body.get("error")
        error: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        code = wire.text(error.get("code"), "error.code", engine=ENGINE, optional=True)
        message = wire.text(error.get("message"), "error.message", engine=ENGINE, optional=True)
        raise table.classify(response.status_code, code, message, operation=operation)
    if body.get("ok") is not True and not trust_ok:
        raise MalformedResponseError("ok: missing", engine=ENGINE, field="ok")
    return body


def money(value: Any, path: str, currency: str) -> Money:
    return Money.of(wire.number(value, path, engine=ENGINE), currency)


# -- identify ------------------------------------------------------------------------------------


def customer_from_member(body: Mapping[str, Any], currency: str) -> Customer | None:
    member = wire.at(body, "member", None, engine=ENGINE)
    if member is None:
        return None
    return Customer(
        id=wire.text(wire.at(member, "id"), "member.id", engine=ENGINE),
        tier=wire.text(member.get("tier"), "member.tier", engine=ENGINE, optional=True),
        balances=(
            Balance(kind=BalanceKind.POINTS, points=wire.number(wire.at(member, "points"), "member.points", engine=ENGINE)),
            Balance(kind=BalanceKind.CASHBACK, money=money(wire.at(member, "cashback"), "member.cashback", currency)),
        ),
    )


# -- evaluate ------------------------------------------------------------------------------------


def lines(basket: Basket | Order) -> list[dict[str, Any]]:
    return [{"id": line.id, "sku": line.sku, "qty": line.quantity, "price": line.unit_price.amount}
            for line in basket.lines]


def evaluate_request(basket: Basket) -> dict[str, Any]:
    return {"customer_id": basket.customer_id, "codes": list(basket.coupon_codes), "lines": lines(basket)}


def evaluation(body: Mapping[str, Any], basket: Basket, table: ErrorTable) -> Evaluation:
    discounts = []
    for i, item in enumerate(wire.items(wire.at(body, "discounts"), "discounts", engine=ENGINE)):
        path = f"discounts[{i}]"
        line = wire.text(item.get("line"), f"{path}.line", engine=ENGINE, optional=True)
        discounts.append(Discount(
            target=DiscountTarget.LINE if line else DiscountTarget.ORDER, line_id=line,
            amount=money(item.get("amount"), f"{path}.amount", basket.currency),
            label=wire.text(item.get("label"), f"{path}.label", engine=ENGINE, optional=True),
            code=wire.text(item.get("code"), f"{path}.code", engine=ENGINE, optional=True),
        ))
    codes = []
    for i, item in enumerate(wire.items(wire.at(body, "codes"), "codes", engine=ENGINE)):
        error = wire.text(item.get("error"), f"codes[{i}].error", engine=ENGINE, optional=True)
        codes.append(CodeResult(
            code=wire.text(item.get("code"), f"codes[{i}].code", engine=ENGINE),
            status=CodeStatus.REJECTED if error else CodeStatus.ACCEPTED,
            # The reason is a kit error code: the same table that classifies refusals names it.
            reason=(table.kit_code(200, error, None) or "voucher_invalid") if error else None,
        ))
    points = wire.number_at(body, "earn_points", None, engine=ENGINE)
    return Evaluation(
        engine=ENGINE, basket_id=basket.id, currency=basket.currency, customer_id=basket.customer_id,
        subtotal=basket.subtotal, discounts=tuple(discounts), codes=tuple(codes),
        earn=(Earn(kind=BalanceKind.POINTS, points=points),) if points else (),
    )


# -- redeem --------------------------------------------------------------------------------------


def redemption_request(redemption: VoucherRedemption, key: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": redemption.code, "customer_id": redemption.customer_id,
                            "order_ref": redemption.order_ref}
    return {**body, "key": key} if key else body


def redemption_result(body: Mapping[str, Any], redemption: VoucherRedemption, currency: str) -> RedemptionResult:
    amount = money(wire.at(body, "amount"), "amount", currency)
    return RedemptionResult(
        code=redemption.code, status=RedemptionStatus.REDEEMED, discount=amount,
        receipt=Receipt(operation="redeem_voucher", engine=ENGINE, idempotency_key=redemption.key,
                        engine_ref=wire.text(wire.at(body, "id"), "id", engine=ENGINE), code=redemption.code,
                        amount=amount, replayed=body.get("replayed") is True),
    )


# -- spend (no engine-side idempotency: looked up by reference) ----------------------------------


def spend_reference(spend: CashbackSpend) -> str:
    """The engine's ``reference`` of a spend: its idempotency key (the look-up key too)."""
    return spend.key


def spend_request(spend: CashbackSpend) -> dict[str, Any]:
    if spend.amount is None:  # the adapter declares cashback spends only, which carry an amount
        raise InvalidRequestError("spend.amount: a cashback spend needs an amount", field="spend.amount")
    return {"customer_id": spend.customer_id, "amount": spend.amount.amount, "reference": spend_reference(spend)}


def spend_found(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The recorded spend in a ``GET /spends?reference=`` answer, if any."""
    found = wire.items(wire.at(body, "spends"), "spends", engine=ENGINE)
    return wire.mapping(found[0], "spends[0]", engine=ENGINE) if found else None


def spend_result(record: Mapping[str, Any], spend: CashbackSpend, currency: str, *, replayed: bool) -> SpendResult:
    # Amounts as the engine recorded them, not as this call asked.
    taken = money(wire.at(record, "amount"), "amount", currency)
    left = record.get("remaining")
    return SpendResult(
        kind=BalanceKind.CASHBACK, amount=taken,
        remaining=Balance(kind=BalanceKind.CASHBACK, money=money(left, "remaining", currency)) if left is not None else None,
        receipt=Receipt(operation="spend_cashback", engine=ENGINE, idempotency_key=spend.key,
                        engine_ref=wire.text(wire.at(record, "id"), "id", engine=ENGINE), amount=taken,
                        replayed=replayed),
    )


# -- export --------------------------------------------------------------------------------------


def export_request(orders: Sequence[Order], *, with_keys: bool) -> dict[str, Any]:
    return {"orders": [{"ref": o.ref, "customer_id": o.customer_id, "total": _total(o).amount,
                        **({"key": o.key} if with_keys else {})} for o in orders]}


def _total(order: Order) -> Money:
    if order.total is None:
        raise AssertionError("order.total is set once the order is validated")
    return order.total


def export_report(body: Mapping[str, Any]) -> ExportReport:
    results = []
    for i, item in enumerate(wire.items(wire.at(body, "results"), "results", engine=ENGINE)):
        path = f"results[{i}]"
        status = wire.text(item.get("status"), f"{path}.status", engine=ENGINE)
        if status not in {s.value for s in ExportStatus}:
            raise MalformedResponseError(f"{path}.status: unknown status", engine=ENGINE, field=f"{path}.status")
        points = item.get("points")
        results.append(OrderExportResult(
            order_ref=wire.text(item.get("ref"), f"{path}.ref", engine=ENGINE),
            status=ExportStatus(status),
            reason=wire.text(item.get("reason"), f"{path}.reason", engine=ENGINE, optional=True),
            error_code="invalid_request" if status == "rejected" else None,
            points_earned=wire.number(points, f"{path}.points", engine=ENGINE) if points is not None else None,
        ))
    return ExportReport(engine=ENGINE, results=tuple(results))


# -- reverse -------------------------------------------------------------------------------------


def reversal_request(reversal: Reversal, key: str | None) -> dict[str, Any]:
    receipts = reversal.order.receipts
    body = {
        "ref": reversal.order.ref, "customer_id": reversal.order.customer_id,
        "spends": [r.engine_ref for r in receipts if r.operation == "spend_cashback" and r.engine == ENGINE],
        "vouchers": [r.code for r in receipts if r.operation == "redeem_voucher" and r.engine == ENGINE],
        "fraction": reversal.refunded_fraction(),
    }
    return {**body, "key": key} if key else body


def reversal_result(body: Mapping[str, Any], reversal: Reversal, currency: str) -> ReversalResult:
    reinstated = wire.items(body.get("reinstated"), "reinstated", engine=ENGINE, optional=True)
    returned = money(wire.at(body, "returned"), "returned", currency)
    return ReversalResult(
        order_ref=reversal.order.ref, kind=reversal.kind,
        points_clawed_back=wire.number(wire.at(body, "clawed"), "clawed", engine=ENGINE),
        vouchers_reinstated=tuple(str(code) for code in reinstated),
        cashback_returned=returned,
        receipts=(Receipt(operation="reverse", engine=ENGINE, idempotency_key=reversal.key,
                          replayed=body.get("replayed") is True),),
    )
