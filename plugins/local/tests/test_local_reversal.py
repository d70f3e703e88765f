"""Cancel and refund: burned points and cashback come back, earned ones are clawed back in proportion."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from loyaltykit import (
    BalanceKind,
    CashbackSpend,
    ExportStatus,
    InvalidRequestError,
    Order,
    RefundLine,
    Reversal,
    VoucherRedemption,
)
from loyaltykit_local.testing import basket, eur, line

PROGRAM = """
[points]
per_currency_unit = 1
[cashback]
earn_percent = 10
[[vouchers]]
code = "ONCE"
kind = "fixed"
amount = 5
"""


@pytest.fixture
def checkout(make_shop):
    """A customer with 100 points and 20.00 cashback who paid 30 points and 10.00 cashback for an order."""
    shop = make_shop(PROGRAM)
    ann = shop.customer(points=100, cashback=eur(20))
    cart = basket(line("1", "A", "60"), line("2", "B", "20", 2), customer_id=ann, codes=("ONCE",), id="O-1")
    quote = shop.loyalty.evaluate(cart)
    receipts = [
        shop.loyalty.redeem_voucher(VoucherRedemption(code="ONCE", order_ref="O-1", customer_id=ann, basket=cart)).receipt,
        shop.loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref="O-1", amount=eur(10))).receipt,
        shop.loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref="O-1", kind=BalanceKind.POINTS,
                                                  points=Decimal(30))).receipt,
    ]
    order = Order.from_evaluation("O-1", cart, quote, receipts)
    return shop, ann, order


def _export(shop, order):
    assert shop.loyalty.export_orders([order]).results[0].status is ExportStatus.ACCEPTED


def test_cancel_before_export_voids_the_writes(checkout):
    shop, ann, order = checkout
    result = shop.loyalty.reverse(Reversal(order=order, kind="cancel", exported=False))
    assert result.points_returned == 30 and result.cashback_returned == eur(10)
    assert result.points_clawed_back == 0 and result.cashback_clawed_back == eur(0)
    assert result.vouchers_reinstated == ("ONCE",)
    assert shop.points(ann) == 100 and shop.cashback(ann) == eur(20)
    assert shop.engine.voucher_uses("ONCE") == 0


def test_cancel_after_export_also_takes_back_what_was_earned(checkout):
    shop, ann, order = checkout
    _export(shop, order)
    # earned: 95 points on 100 - 5, and 9.50 cashback
    assert shop.points(ann) == 70 + 95 and shop.cashback(ann) == eur("19.50")
    result = shop.loyalty.reverse(Reversal(order=order, kind="cancel"))
    assert (result.points_returned, result.points_clawed_back) == (30, 95)
    assert (result.cashback_returned, result.cashback_clawed_back) == (eur(10), eur("9.50"))
    assert shop.points(ann) == 100 and shop.cashback(ann) == eur(20)


def test_full_refund_after_export(checkout):
    shop, ann, order = checkout
    _export(shop, order)
    result = shop.loyalty.reverse(Reversal(order=order, kind="refund"))
    assert result.kind == "refund" and result.vouchers_reinstated == ("ONCE",)
    assert shop.points(ann) == 100 and shop.cashback(ann) == eur(20)


def test_partial_refund_in_proportion(checkout):
    shop, ann, order = checkout
    _export(shop, order)
    # line 2: one of two units at 20.00 → 20 / 100 of the order
    result = shop.loyalty.reverse(Reversal(order=order, kind="refund", lines=(RefundLine(line_id="2", quantity=1),),
                                           reference="RMA-1"))
    assert result.points_returned == 6 and result.points_clawed_back == 19
    assert result.cashback_returned == eur(2) and result.cashback_clawed_back == eur("1.90")
    assert result.vouchers_reinstated == ()
    assert shop.points(ann) == 70 + 95 + 6 - 19


def test_successive_partial_refunds_then_the_rest(checkout):
    shop, ann, order = checkout
    _export(shop, order)
    for reference, line_id, quantity in (("R1", "2", 1), ("R2", "2", 1), ("R3", "1", 1)):
        shop.loyalty.reverse(Reversal(order=order, kind="refund", lines=(RefundLine(line_id=line_id, quantity=quantity),),
                                      reference=reference))
    # everything came back across three refunds: the customer is where they started
    assert shop.points(ann) == 100 and shop.cashback(ann) == eur(20)
    # nothing is left to refund: the engine's own record of the three refunds says so
    with pytest.raises(InvalidRequestError) as info:
        shop.loyalty.reverse(Reversal(order=order, kind="refund", reference="R4"))
    assert info.value.field == "reversal.lines"
    assert shop.points(ann) == 100 and shop.cashback(ann) == eur(20)


def test_a_line_is_never_refunded_twice_under_two_references(checkout):
    shop, ann, order = checkout
    _export(shop, order)
    first = shop.loyalty.reverse(Reversal(order=order, kind="refund", lines=(RefundLine(line_id="1", quantity=1),),
                                          reference="RMA-1"))
    assert first.refund.goods == eur(57)  # 60.00 less its 3.00 share of the 5.00 voucher
    points, cashback = shop.points(ann), shop.cashback(ann)
    # the shop forgot the first refund; the engine did not
    with pytest.raises(InvalidRequestError) as info:
        shop.loyalty.reverse(Reversal(order=order, kind="refund", lines=(RefundLine(line_id="1", quantity=1),),
                                      reference="RMA-2"))
    assert info.value.field == "reversal.lines.0.quantity"
    assert (shop.points(ann), shop.cashback(ann)) == (points, cashback)
    # the rest of the order still comes back, and the two refunds add up to what was paid
    rest = shop.loyalty.reverse(Reversal(order=order, kind="refund", reference="RMA-3"))
    assert first.refund.total + rest.refund.total == order.total
    assert first.refund.to_cashback + rest.refund.to_cashback == eur(10)
    assert first.refund.points + rest.refund.points == 30
    assert shop.points(ann) == 100 and shop.cashback(ann) == eur(20)


def test_reversal_is_exactly_once_per_key(checkout):
    shop, ann, order = checkout
    _export(shop, order)
    reversal = Reversal(order=order, kind="refund", lines=(RefundLine(line_id="2", quantity=1),), reference="RMA-1")
    first = shop.loyalty.reverse(reversal)
    points = shop.points(ann)
    again = shop.loyalty.reverse(reversal)
    assert again.receipts[0].replayed and not first.receipts[0].replayed
    assert again.points_clawed_back == first.points_clawed_back and shop.points(ann) == points


def test_claw_back_never_drives_a_balance_negative(make_shop):
    shop = make_shop(PROGRAM)
    ann = shop.customer()
    cart = basket(line("1", "A", "100"), customer_id=ann)
    order = Order.from_evaluation("O-1", cart, shop.loyalty.evaluate(cart))
    _export(shop, order)
    shop.loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref="O-2", kind=BalanceKind.POINTS, points=Decimal(80)))
    result = shop.loyalty.reverse(Reversal(order=order, kind="refund"))
    assert result.points_clawed_back == 20  # 100 earned, 80 already spent elsewhere
    assert shop.points(ann) == 0


def test_guest_order_and_unknown_order(make_shop):
    shop = make_shop(PROGRAM)
    cart = basket(line("1", "A", "10"))
    order = Order.from_evaluation("G-1", cart, shop.loyalty.evaluate(cart))
    _export(shop, order)
    assert shop.loyalty.reverse(Reversal(order=order, kind="cancel")).points_clawed_back == 0
    never = Order.from_evaluation("NEVER", cart, None)
    result = shop.loyalty.reverse(Reversal(order=never, kind="refund"))
    assert result.points_returned == 0 and result.vouchers_reinstated == ()


ORDER_DISCOUNT = """
[points]
per_currency_unit = 1
[cashback]
earn_percent = 5
[[rules]]
id = "ten-off"
label = "10 % off"
[rules.then]
action = "percent_off_order"
percent = 10
"""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prices=st.lists(st.integers(1, 5000), min_size=1, max_size=4),
       quantities=st.lists(st.integers(1, 3), min_size=4, max_size=4),
       cashback=st.integers(0, 100), steps=st.lists(st.integers(0, 3), min_size=1, max_size=6))
def test_refunds_in_any_steps_give_back_exactly_what_was_paid(make_shop, prices, quantities, cashback, steps):
    """Whatever the basket and however the order comes back (one unit of a line per refund), the refunds add
    up to the order's total, the card and the wallet get back exactly what they paid, and the customer ends
    where they started: nothing earned is left, nothing spent is lost."""
    shop = make_shop(ORDER_DISCOUNT, name=f"steps-{uuid.uuid4().hex}")
    ann = shop.customer(cashback=eur(100))
    cart = basket(*(line(str(i), f"SKU-{i}", f"{p / 100:.2f}", q) for i, (p, q) in enumerate(zip(prices, quantities, strict=False))),
                  customer_id=ann, id=f"cart-{uuid.uuid4().hex[:8]}")
    quote = shop.loyalty.evaluate(cart)
    paid = min(eur(cashback), quote.total)
    receipts = []
    if paid.amount > 0:
        receipts.append(shop.loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref="O-1", amount=paid,
                                                                  amount_due=quote.total)).receipt)
    order = Order.from_evaluation("O-1", cart, quote, receipts)
    assert sum((a.net for a in order.allocations), eur(0)) == order.total
    _export(shop, order)
    left = {line.id: int(line.quantity) for line in order.lines}
    results = []
    for index, step in enumerate([*steps, *range(len(order.lines))] * 4):
        line_id = str(step % len(order.lines))
        if not left[line_id]:
            continue
        results.append(shop.loyalty.reverse(Reversal(order=order, kind="refund", reference=f"R-{index}",
                                                     lines=(RefundLine(line_id=line_id, quantity=1),))).refund)
        left[line_id] -= 1
    rest = [line_id for line_id, n in left.items() if n]
    if rest:
        results.append(shop.loyalty.reverse(Reversal(order=order, kind="refund", reference="R-rest")).refund)
    assert sum((r.total for r in results), eur(0)) == order.total
    assert sum((r.to_card for r in results), eur(0)) == order.amount_due
    assert sum((r.to_cashback for r in results), eur(0)) == order.balance_paid
    assert all(r.to_card.amount >= 0 and r.to_cashback.amount >= 0 for r in results)
    assert shop.points(ann) == 0 and shop.cashback(ann) == eur(100)


def test_cancel_order_waits_for_an_export_in_flight_then_takes_back_what_it_earned(checkout, tmp_path):
    from loyaltykit import OrderInFlightError
    from loyaltykit.outbox import DONE, Outbox

    shop, ann, order = checkout
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.add(order)
    claimed = outbox.claim()  # a worker holds it and is exporting it right now
    with pytest.raises(OrderInFlightError) as info:
        shop.loyalty.cancel_order(order, outbox=outbox)
    assert info.value.retryable and shop.points(ann) == 70 and shop.cashback(ann) == eur(10)
    outbox.record(shop.loyalty.export_orders(claimed))
    assert outbox.entry(order.ref).state == DONE
    result = shop.loyalty.cancel_order(order, outbox=outbox)
    assert result.points_clawed_back == 95 and result.vouchers_reinstated == ("ONCE",)
    assert shop.points(ann) == 100 and shop.cashback(ann) == eur(20)
    outbox.close()
