"""The checkout's money contract, the same on every engine: a spend never exceeds the amount due,
discounts are allocated to lines exactly, a refund says where its money goes, a cancelled order is
never exported, and a coded discount needs its redemption receipt."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import pytest

from loyaltykit.capabilities import Capability
from loyaltykit.errors import InvalidRequestError
from loyaltykit.models import (
    BalanceKind,
    Basket,
    CashbackSpend,
    Evaluation,
    ExportStatus,
    Order,
    RefundLine,
    Reversal,
    ReversalKind,
    ReversalResult,
    SpendResult,
)
from loyaltykit.money import total
from loyaltykit.outbox import DROPPED, Outbox
from loyaltykit.testing import RuleSpec

from .requirements import requires
from .support import balance, customer_with_balance, issue_voucher

KINDS = pytest.mark.parametrize(
    "kind",
    [
        pytest.param("cashback", marks=requires(Capability.SPEND_CASHBACK)),
        pytest.param("points", marks=requires(Capability.SPEND_POINTS)),
    ],
)

#: A spend of each kind worth ``value`` (points: 10 points per currency unit, a shop's own rate).
START = {"cashback": "20.00", "points": "200"}


def worth(lk, customer_id: str, kind: str, value: str, order: Order) -> CashbackSpend:
    """A spend paying ``order`` (its amount due, and its basket for engines that settle a spend
    against an itemised purchase)."""
    basket = Basket(id=order.ref, currency=order.currency, customer_id=order.customer_id, lines=order.lines)
    common = {"customer_id": customer_id, "order_ref": order.ref, "amount_due": order.amount_due, "basket": basket}
    if kind == "cashback":
        return CashbackSpend(amount=lk.money(value), **common)
    return CashbackSpend(kind=BalanceKind.POINTS, points=Decimal(value) * 10, points_value=lk.money(value), **common)


def spendable_kind(lk) -> str | None:
    for kind, capability in (("cashback", Capability.SPEND_CASHBACK), ("points", Capability.SPEND_POINTS)):
        if lk.supports(capability):
            return kind
    return None


@KINDS
def test_spend_is_capped_at_the_amount_due(loyaltykit_target, kind):
    """A spend worth more than the order's amount due is refused before the engine is called; a spend
    of exactly the amount due leaves nothing to pay by card, and its receipt carries its money value."""
    lk = loyaltykit_target
    customer = customer_with_balance(lk, kind, START[kind])
    order = lk.order(("SKU-A", "10.00", 1), customer_id=customer.id)
    calls = lk.request_count()
    too_much = worth(lk, customer.id, kind, "10.00", order).model_dump()
    too_much["amount" if kind == "cashback" else "points_value"] = {"amount": "15.00", "currency": lk.currency}
    with pytest.raises(InvalidRequestError) as info:
        lk.call("spend_cashback", too_much)
    assert info.value.field == ("spend.amount" if kind == "cashback" else "spend.points_value"), info.value
    assert lk.request_count() == calls, "a refused spend reached the engine"
    assert balance(lk, customer.id, kind) == Decimal(START[kind])
    paid = lk.call("spend_cashback", worth(lk, customer.id, kind, "10.00", order))
    assert isinstance(paid, SpendResult), paid
    assert paid.value == lk.money("10.00") and paid.receipt.amount == lk.money("10.00"), paid
    placed = order.model_copy(update={"receipts": (paid.receipt,)})
    placed = Order.model_validate(placed.model_dump())
    assert placed.balance_paid == lk.money("10.00") and placed.amount_due == lk.money(0)


@requires(Capability.EVALUATE)
def test_order_discount_is_allocated_to_lines_exactly(loyaltykit_target):
    """An engine's order-level discount is split over the lines in minor units: the shares sum to the
    discount, no line goes below zero, and the nets add up to the order's total."""
    lk = loyaltykit_target
    try:
        lk.harness.define_rule(RuleSpec(kind="order_fixed", amount=lk.money("10.00"), label="Ten off"))
    except NotImplementedError:
        lk.not_applicable(f"the {lk.harness.engine} harness cannot define an order discount")
    customer = lk.customer()
    basket = lk.basket(("SKU-A", "10.00", 1), ("SKU-B", "10.00", 1), ("SKU-C", "10.00", 1),
                       customer_id=customer.id)
    quote = lk.call("evaluate", basket)
    assert isinstance(quote, Evaluation) and not quote.degraded, quote
    assert quote.discount_total == lk.money("10.00"), quote.discounts
    ref = lk.ref()
    # an engine may quote a promotion as a wallet offer (a code): the order then carries its receipt
    receipts = [lk.call("redeem_voucher", {"code": d.code, "order_ref": ref, "customer_id": customer.id,
                                           "basket": basket}).receipt
                for d in quote.discounts if d.code is not None]
    order = Order.from_evaluation(ref, basket, quote, receipts)
    shares = [a.discount_total for a in order.allocations]
    assert total(shares, lk.currency) == quote.discount_total
    assert all(a.net.amount >= 0 and a.net <= a.subtotal for a in order.allocations)
    assert total([a.net for a in order.allocations], lk.currency) == order.total == quote.total
    assert max(s.minor_units() for s in shares) - min(s.minor_units() for s in shares) <= 1, shares


@requires(Capability.EXPORT_ORDERS, Capability.PARTIAL_REFUND)
def test_partial_refund_says_where_the_money_goes(loyaltykit_target):
    """Refunding the 40.00 line of a 100.00 order paid 10.00 from a balance gives back 40.00 of net
    paid: 36.00 to the card and 4.00 to the balance (pro rata), and the engine returns that much."""
    lk = loyaltykit_target
    kind = spendable_kind(lk)
    if kind is None:
        lk.not_applicable(f"{lk.harness.engine} spends neither cashback nor points")
    customer = customer_with_balance(lk, kind, START[kind])
    order = lk.order(("SKU-A", "60.00", 1), ("SKU-B", "40.00", 1), customer_id=customer.id)
    paid = lk.call("spend_cashback", worth(lk, customer.id, kind, "10.00", order))
    order = Order.model_validate({**order.model_dump(), "receipts": [paid.receipt.model_dump()]})
    assert order.amount_due == lk.money("90.00")
    assert lk.call("export_orders", [order]).status_of(order.ref) is ExportStatus.ACCEPTED
    after_export = balance(lk, customer.id, kind)
    result = lk.call("reverse", Reversal(order=order, kind=ReversalKind.REFUND, reference="rma-1",
                                         lines=(RefundLine(line_id="l2", quantity=Decimal(1)),)))
    assert isinstance(result, ReversalResult) and result.refund is not None, result
    refund = result.refund
    assert refund.goods == lk.money("40.00") and refund.shipping == lk.money(0)
    assert refund.to_card == lk.money("36.00")
    if kind == "cashback":
        assert refund.to_cashback == lk.money("4.00") and refund.points == 0
        assert result.cashback_returned in (None, lk.money("4.00")), result
    else:
        assert refund.points == 40 and refund.points_value == lk.money("4.00") and refund.to_cashback == lk.money(0)
        assert result.points_returned in (0, 40), result
    assert refund.to_card + refund.to_cashback + refund.points_value == refund.total
    given_back = balance(lk, customer.id, kind) - after_export
    clawed = result.cashback_clawed_back.amount if kind == "cashback" and result.cashback_clawed_back else (
        result.points_clawed_back if kind == "points" else 0)
    expected = Decimal("4.00") if kind == "cashback" else Decimal(40)
    assert given_back + clawed == expected, f"the engine gave back {given_back} (+{clawed} clawed), not {expected}"


@requires(Capability.CANCEL, Capability.EXPORT_ORDERS)
def test_cancel_before_export_exports_nothing(loyaltykit_target):
    """Payment declined: one call drops the queued order and cancels it. The outbox never hands it
    to a worker, the engine never records it, and what was spent on it goes back."""
    lk = loyaltykit_target
    kind = spendable_kind(lk)
    customer = customer_with_balance(lk, kind, START[kind]) if kind else lk.customer()
    order = lk.order(customer_id=customer.id)
    if kind is not None:
        paid = lk.call("spend_cashback", worth(lk, customer.id, kind, "5.00", order))
        order = Order.model_validate({**order.model_dump(), "receipts": [paid.receipt.model_dump()]})
        assert balance(lk, customer.id, kind) < Decimal(START[kind])
    with tempfile.TemporaryDirectory() as folder:
        outbox = Outbox(Path(folder) / "outbox.sqlite3")
        try:
            assert outbox.add(order)
            result = lk.call("cancel_order", order, outbox=outbox, reason="payment declined")
            assert isinstance(result, ReversalResult) and result.kind is ReversalKind.CANCEL, result
            assert outbox.entry(order.ref).state == DROPPED
            assert outbox.claim() == [], "a cancelled order was handed to the export worker"
            again = lk.call("cancel_order", order, outbox=outbox, reason="payment declined")  # keyed: once
            assert isinstance(again, ReversalResult)
        finally:
            outbox.close()
    assert order.ref not in lk.harness.orders_received(), "the engine recorded a cancelled order"
    if kind is not None:
        assert balance(lk, customer.id, kind) == Decimal(START[kind]), "the spent balance was not given back"
        assert result.refund.to_card == order.amount_due
        back = result.refund.to_cashback if kind == "cashback" else result.refund.points_value
        assert back == lk.money("5.00"), result.refund


@requires(Capability.EVALUATE, Capability.REDEEM_VOUCHER)
def test_coded_discount_needs_its_redemption_receipt(loyaltykit_target):
    """A quote's discount from a voucher code cannot reach a placed order unless the code was redeemed:
    the order is refused naming the discount (never the code), so the code is not given away."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    basket = lk.basket(customer_id=customer.id, codes=[code])
    quote = lk.call("evaluate", basket)
    assert isinstance(quote, Evaluation) and not quote.degraded, quote
    coded = [i for i, d in enumerate(quote.discounts) if d.code == code]
    assert coded, f"the quote shows no discount tagged with its code: {quote.discounts}"
    with pytest.raises(InvalidRequestError) as info:
        Order.from_evaluation(lk.ref(), basket, quote)
    assert info.value.field == f"evaluation.discounts.{coded[0]}.code" and code not in str(info.value)
    ref = lk.ref()
    redeemed = lk.call("redeem_voucher", {"code": code, "order_ref": ref, "customer_id": customer.id,
                                          "basket": basket})
    order = Order.from_evaluation(ref, basket, quote, [redeemed.receipt])
    assert order.discount_total == quote.discount_total and code in order.voucher_codes


__all__ = [
    "test_cancel_before_export_exports_nothing",
    "test_coded_discount_needs_its_redemption_receipt",
    "test_order_discount_is_allocated_to_lines_exactly",
    "test_partial_refund_says_where_the_money_goes",
    "test_spend_is_capped_at_the_amount_due",
]
