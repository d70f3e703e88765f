"""The points catalog paid in points, in the core: quote, spend, order, allocation and refunds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from loyaltykit import (
    Basket,
    CashbackSpend,
    Discount,
    EngineAdapter,
    Evaluation,
    InvalidRequestError,
    Line,
    Loyalty,
    LoyaltySettings,
    Money,
    Order,
    PointsLine,
    Receipt,
    RefundLine,
    Reversal,
)
from loyaltykit.capabilities import Capabilities
from loyaltykit.facade import coerce
from loyaltykit.flows import in_process as lazy_flow


def eur(amount) -> Money:
    return Money.of(amount, "EUR")


def _basket(*lines: tuple[str, str, int]) -> Basket:
    return Basket(id="b-1", currency="EUR", customer_id="c-1", shipping=eur("4.00"),
                  lines=[Line(id=i, sku=f"SKU-{i}", quantity=q, unit_price=eur(p)) for i, p, q in lines])


def _quote(basket: Basket, points: dict[str, int], *discounts: Discount) -> Evaluation:
    return Evaluation(
        engine="test", basket_id=basket.id, currency="EUR", subtotal=basket.subtotal, shipping=basket.shipping,
        discounts=discounts,
        points_lines=tuple(PointsLine(line_id=i, quantity=basket.line(i).quantity, points=p) for i, p in points.items()),
    )


def _receipt(spend: CashbackSpend) -> Receipt:
    # what the facade records for a points spend: its points, its money value and the lines it pays
    return Receipt(operation="spend_cashback", engine="test", idempotency_key=spend.key, points=spend.points,
                   amount=spend.value, line_ids=spend.line_ids)


BASKET = _basket(("1", "10.00", 2), ("2", "0.00", 3), ("3", "0.00", 1))
QUOTE = _quote(BASKET, {"2": 750, "3": 100}, Discount(target="order", amount=eur("5.00")))


def test_the_quote_names_the_points_lines_and_counts_them_in_points_only():
    assert QUOTE.points_due == Decimal(850)
    assert QUOTE.total == eur("19.00")  # 20.00 goods - 5.00 + 4.00 shipping: the points lines add 0.00


def test_a_points_spend_pays_exactly_the_quoted_lines():
    spend = CashbackSpend.for_points_lines(QUOTE, customer_id="c-1", order_ref="o-1")
    assert (spend.points, spend.line_ids, spend.value) == (Decimal(850), ("2", "3"), eur(0))
    # apart from a points payment on the same order: both can be made, each once
    assert spend.key != CashbackSpend(customer_id="c-1", order_ref="o-1", kind="points", points=10).key


@pytest.mark.parametrize(("change", "field"), [
    ({"line_ids": ("2",)}, "spend.line_ids"),  # does not cover line 3
    ({"line_ids": ("2", "3", "1")}, "spend.line_ids.2"),  # line 1 is sold for money
    ({"line_ids": ("2", "2", "3")}, "spend.line_ids"),
    ({"points": "849"}, "spend.points"),
    ({"points": "900"}, "spend.points"),
    ({"points_lines": ()}, "spend.points_lines"),
    ({"points_value": {"amount": "1.00", "currency": "EUR"}}, "spend.points_value"),
    ({"kind": "cashback", "points": None, "amount": {"amount": "1.00", "currency": "EUR"},
      "points_value": None}, "spend.line_ids"),
])
def test_a_spend_that_does_not_match_the_points_lines_is_refused_naming_the_field(change, field):
    data = CashbackSpend.for_points_lines(QUOTE, customer_id="c-1", order_ref="o-1").model_dump(mode="json")
    data.update(change)
    with pytest.raises(InvalidRequestError) as refused:
        coerce(CashbackSpend, data, "spend")
    assert refused.value.field == field


def test_a_spend_with_its_basket_checks_the_points_lines_are_sent_at_zero():
    priced = _basket(("1", "10.00", 2), ("2", "3.00", 1))
    quote = _quote(priced, {"2": 100})
    with pytest.raises(InvalidRequestError) as refused:
        coerce(CashbackSpend, {"customer_id": "c-1", "order_ref": "o-1", "kind": "points", "points": 100,
                               "line_ids": ["2"], "points_lines": [p.model_dump() for p in quote.points_lines],
                               "basket": priced.model_dump()}, "spend")
    assert refused.value.field == "spend.points_lines.0.line_id"


def test_for_points_lines_refuses_a_quote_without_points_lines():
    with pytest.raises(InvalidRequestError) as refused:
        CashbackSpend.for_points_lines(_quote(BASKET, {}), customer_id="c-1", order_ref="o-1")
    assert refused.value.field == "evaluation.points_lines"


def test_an_order_whose_points_lines_are_not_paid_is_refused():
    with pytest.raises(InvalidRequestError) as refused:
        Order.from_evaluation("o-1", BASKET, QUOTE)
    assert refused.value.field == "receipts" and refused.value.details == {"points_due": "850"}
    short = _receipt(CashbackSpend.for_points_lines(QUOTE, customer_id="c-1", order_ref="o-1")).model_copy(
        update={"line_ids": ("2",)})
    with pytest.raises(InvalidRequestError):
        Order.from_evaluation("o-1", BASKET, QUOTE, receipts=[short])
    # an order sent by hand (to export or to the outbox) is checked the same way
    data = Order.from_evaluation("o-1", BASKET, QUOTE, receipts=[
        _receipt(CashbackSpend.for_points_lines(QUOTE, customer_id="c-1", order_ref="o-1"))]).model_dump(mode="json")
    data["receipts"] = []
    with pytest.raises(InvalidRequestError) as again:
        coerce(Order, data, "orders.0")
    assert again.value.field == "orders.0.receipts"


def test_a_paid_order_costs_money_for_money_lines_only_and_allocates_nothing_to_points_lines():
    spend = CashbackSpend.for_points_lines(QUOTE, customer_id="c-1", order_ref="o-1")
    order = Order.from_evaluation("o-1", BASKET, QUOTE, receipts=[_receipt(spend)])
    assert order.points_lines == QUOTE.points_lines
    assert (order.total, order.amount_due, order.balance_paid) == (eur("19.00"), eur("19.00"), eur(0))
    by_line = {a.line_id: a for a in order.allocations}
    assert (by_line["1"].net, by_line["1"].order_discount, by_line["1"].points) == (eur("15.00"), eur("5.00"), 0)
    assert (by_line["2"].net, by_line["2"].order_discount, by_line["2"].points) == (eur(0), eur(0), 750)


def test_refunds_give_the_points_of_the_returned_units_back_and_the_last_one_the_rest():
    spend = CashbackSpend.for_points_lines(QUOTE, customer_id="c-1", order_ref="o-1")
    order = Order.from_evaluation("o-1", BASKET, QUOTE, receipts=[_receipt(spend)])
    first = Reversal(order=order, kind="refund", lines=(RefundLine(line_id="2", quantity=1),), reference="r-1")
    assert (first.breakdown.line_points, first.breakdown.points, first.breakdown.total) == (250, 250, eur(0))
    assert [(r.line_id, r.points) for r in first.breakdown.lines] == [("2", 250)]
    rest = Reversal(order=order, kind="refund", already_refunded=(RefundLine(line_id="2", quantity=1),),
                    reference="r-2")
    assert rest.breakdown.line_points == 600 and rest.breakdown.to_card == eur("19.00")
    cancel = Reversal(order=order, kind="cancel").breakdown
    assert (cancel.points, cancel.line_points, cancel.points_value, cancel.to_card) == (850, 850, eur(0), eur("19.00"))


def test_odd_points_prorate_down_and_the_last_unit_takes_the_remainder():
    basket = _basket(("1", "0.00", 3))
    quote = _quote(basket, {"1": 100})
    order = Order.from_evaluation("o-1", basket, quote, receipts=[
        _receipt(CashbackSpend.for_points_lines(quote, customer_id="c-1", order_ref="o-1"))])
    returned: list[Decimal] = []
    done: list[RefundLine] = []
    for index in range(3):
        reversal = Reversal(order=order, kind="refund", lines=(RefundLine(line_id="1", quantity=1),),
                            already_refunded=tuple(done), reference=f"r-{index}")
        returned.append(reversal.breakdown.line_points)
        done.append(RefundLine(line_id="1", quantity=1))
    assert returned == [33, 33, 34]


def test_a_points_line_in_the_quote_must_be_a_basket_line_sent_at_zero():
    with pytest.raises(InvalidRequestError) as refused:
        coerce(Order, {"ref": "o-1", "currency": "EUR", "lines": [
            {"id": "1", "sku": "A", "quantity": 1, "unit_price": {"amount": "5.00", "currency": "EUR"}}],
            "points_lines": [{"line_id": "1", "points": 10}]}, "order")
    assert refused.value.field == "order.points_lines.0.line_id"


def test_points_catalog_is_declared_only_with_evaluate_and_points_spending():
    assert Capabilities(points_catalog=True).validate_consistency() == [
        "points_catalog requires evaluate and spending points"]
    assert Capabilities(points_catalog=True, evaluate=True, spend=frozenset({"points"})).validate_consistency() == []


LINES = st.lists(
    st.tuples(st.booleans(), st.integers(1, 5000), st.integers(1, 4), st.integers(1, 2000)),
    min_size=1, max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(LINES, st.integers(0, 3000), st.integers(0, 600), st.integers(0, 1000), st.data())
def test_money_and_points_stay_consistent_and_a_full_refund_returns_exactly_what_was_paid(
        lines, discount_cents, shipping_cents, paid_points, data):
    basket = Basket(id="b-1", currency="EUR", customer_id="c-1", shipping=Money.from_minor_units(shipping_cents, "EUR"),
                    lines=[Line(id=str(i), sku=f"S{i}", quantity=q,
                                unit_price=eur(0) if in_points else Money.from_minor_units(cents, "EUR"))
                           for i, (in_points, cents, q, _) in enumerate(lines)])
    points = {str(i): p * q for i, (in_points, _, q, p) in enumerate(lines) if in_points}
    money_goods = sum(cents * q for in_points, cents, q, _ in lines if not in_points)
    discount = Money.from_minor_units(min(discount_cents, money_goods), "EUR")
    quote = _quote(basket, points, *([Discount(target="order", amount=discount)] if discount.amount else []))
    # money: the points lines count 0.00; points: exactly the lines' cost
    assert quote.total == Money.from_minor_units(money_goods + shipping_cents, "EUR") - discount
    assert quote.points_due == sum(points.values())
    receipts = []
    if points:
        receipts.append(_receipt(CashbackSpend.for_points_lines(quote, customer_id="c-1", order_ref="o-1")))
    pay_points = data.draw(st.integers(0, quote.total.minor_units())) if paid_points else 0
    if pay_points:  # part of the money paid with points, as a separate spend
        payment = CashbackSpend(customer_id="c-1", order_ref="o-1", kind="points", points=paid_points,
                                points_value=Money.from_minor_units(pay_points, "EUR"), amount_due=quote.total)
        receipts.append(_receipt(payment))
    order = Order.from_evaluation("o-1", basket, quote, receipts=receipts)
    assert order.total == quote.total
    assert order.amount_due == quote.total - Money.from_minor_units(pay_points, "EUR")
    assert sum((a.points for a in order.allocations), Decimal(0)) == quote.points_due
    assert all(a.net.is_zero() for a in order.allocations if a.points)
    refund = Reversal(order=order, kind="refund").breakdown
    assert refund.total == order.total
    assert refund.to_card == order.amount_due and refund.points_value == order.balance_paid
    assert refund.line_points == quote.points_due
    assert refund.points == quote.points_due + (paid_points if pay_points else 0)
    # the same order given back line by line, one unit at a time, sums to the same
    done: list[RefundLine] = []
    card, line_points = eur(0), Decimal(0)
    for line in basket.lines:
        for index in range(int(line.quantity)):
            step = Reversal(order=order, kind="refund", lines=(RefundLine(line_id=line.id, quantity=1),),
                            already_refunded=tuple(done), reference=f"r-{line.id}-{index}").breakdown
            card, line_points = card + step.to_card, line_points + step.line_points
            done.append(RefundLine(line_id=line.id, quantity=1))
    assert card == order.amount_due and line_points == quote.points_due


class _PricedInMoney(EngineAdapter):
    """An in-process engine whose quote calls a line sold for money points-priced: a broken answer."""

    name = "inproc"
    in_process = True
    capabilities = Capabilities(evaluate=True, spend=frozenset({"points"}), points_catalog=True)

    @lazy_flow
    def evaluate_basket(self, basket, ctx):
        return _quote(basket, {"1": 100})

    @lazy_flow
    def spend_cashback(self, spend, ctx):
        raise AssertionError("this test spends nothing")


def test_a_quote_pricing_a_money_line_in_points_is_not_trusted_and_fails_open():
    loyalty = Loyalty(LoyaltySettings(engine="inproc"), adapter=_PricedInMoney(), load_entry_points=False)
    garbled = loyalty.evaluate(BASKET)  # fails open: full price, nothing applied, and why
    assert garbled.degraded and garbled.points_lines == () and "points_lines.0.line_id" in garbled.degraded_reason
    assert loyalty.evaluate(_basket(("1", "0.00", 1))).points_due == 100
