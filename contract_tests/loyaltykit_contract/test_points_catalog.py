"""The points catalog paid in points: the quote names points-priced lines (sent at 0.00) and their
cost; one points spend names and pays them; such a line earns nothing; an order whose points lines
are not paid is refused before anything is sent; a refund gives the returned units' points back.

A harness whose adapter declares ``points_catalog`` offers ``define_points_product(sku, points)``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyaltykit.capabilities import Capability
from loyaltykit.errors import InsufficientBalanceError, InvalidRequestError
from loyaltykit.models import (
    Basket,
    CashbackSpend,
    Evaluation,
    ExportStatus,
    Order,
    RefundLine,
    Reversal,
    ReversalKind,
    SpendResult,
)
from loyaltykit.testing import SeededCustomer

from .requirements import requires
from .support import export_until_done
from .target import ContractTarget, HarnessProtocolError

SKU = "SKU-CLUB-MUG"
PRICE = Decimal(250)


def _catalog(lk: ContractTarget) -> None:
    define = getattr(lk.harness, "define_points_product", None)
    if define is None:
        raise HarnessProtocolError(f"{lk.engine} declares points_catalog; its harness needs define_points_product")
    lk.seed("define a points-catalog product", define, SKU, PRICE, capability=Capability.POINTS_CATALOG)


def _quote(lk: ContractTarget, customer_id: str) -> tuple[Basket, Evaluation]:
    """A basket of one money line (20.00) and two points-catalog units (500 points), and its quote."""
    basket = lk.basket(("SKU-A", "20.00", 1), (SKU, "0.00", 2), customer_id=customer_id)
    quote = lk.call("evaluate", basket)
    assert isinstance(quote, Evaluation) and not quote.degraded, f"evaluate degraded: {quote!r}"
    return basket, quote


def _paid_order(lk: ContractTarget, points: int = 1000) -> tuple[SeededCustomer, Order]:
    customer = lk.customer(points=Decimal(points), capability=Capability.SPEND_POINTS)
    basket, quote = _quote(lk, customer.id)
    ref = lk.ref()
    result = lk.call("spend_cashback", CashbackSpend.for_points_lines(quote, customer_id=customer.id, order_ref=ref))
    assert isinstance(result, SpendResult), f"expected a SpendResult, got {result!r}"
    return customer, Order.from_evaluation(ref, basket, quote, receipts=[result.receipt])


@requires(Capability.POINTS_CATALOG)
def test_the_quote_names_points_priced_lines_and_counts_them_in_points_only(loyaltykit_target: ContractTarget) -> None:
    """The quote lists the points-priced line and its cost; the money total leaves it out."""
    lk = loyaltykit_target
    _catalog(lk)
    customer = lk.customer(points=Decimal(1000), capability=Capability.SPEND_POINTS)
    _, quote = _quote(lk, customer.id)
    assert [(p.line_id, p.points) for p in quote.points_lines] == [("l2", 2 * PRICE)]
    assert quote.points_due == 2 * PRICE
    assert quote.total == lk.money("20.00")
    sold = lk.call("evaluate", lk.basket((SKU, "12.00", 1), customer_id=customer.id))
    assert sold.points_lines == (), "a catalog product sold for money is not a points-priced line"


@requires(Capability.POINTS_CATALOG, Capability.EXPORT_ORDERS)
def test_a_points_spend_pays_the_lines_and_the_paid_order_is_accepted(loyaltykit_target: ContractTarget) -> None:
    """The spend takes exactly the lines' points; the order is accepted; the points line earns nothing."""
    lk = loyaltykit_target
    _catalog(lk)
    lk.seed("define a points-per-unit earn rule", lk.harness.define_earn_rule, Decimal(1))
    customer, order = _paid_order(lk)
    assert lk.points(customer.id) == 1000 - 2 * PRICE
    assert (order.amount_due, order.points_due) == (lk.money("20.00"), 2 * PRICE)
    report = export_until_done(lk, [order])
    result = report.results[0]
    assert result.status is ExportStatus.ACCEPTED, f"{result.status}: {result.reason}"
    if result.points_earned is not None:  # 1 point per unit of money: the mugs at 0.00 earn nothing
        assert result.points_earned == 20, f"earned {result.points_earned}, the money line alone earns 20"


@requires(Capability.POINTS_CATALOG)
@pytest.mark.parametrize("change", ["uncovered", "money_line"])
def test_a_spend_that_does_not_match_the_points_lines_is_refused_unsent(loyaltykit_target: ContractTarget, change: str) -> None:
    """A spend that leaves a points line out, or names a money line, is refused with no engine call."""
    lk = loyaltykit_target
    _catalog(lk)
    customer = lk.customer(points=Decimal(1000), capability=Capability.SPEND_POINTS)
    _, quote = _quote(lk, customer.id)
    spend = CashbackSpend.for_points_lines(quote, customer_id=customer.id, order_ref=lk.ref()).model_dump()
    spend["line_ids"] = () if change == "uncovered" else ("l2", "l1")
    before = lk.request_count()
    with pytest.raises(InvalidRequestError) as refused:
        lk.call("spend_cashback", spend)
    assert refused.value.field in ("spend.line_ids", "spend.line_ids.1")
    after = lk.request_count()
    assert before is None or after == before, "a refused spend reached the engine"
    assert lk.points(customer.id) == 1000


@requires(Capability.POINTS_CATALOG)
def test_too_few_points_for_the_lines_is_insufficient_balance(loyaltykit_target: ContractTarget) -> None:
    """A member without the points is refused by the engine, and keeps what they have."""
    lk = loyaltykit_target
    _catalog(lk)
    customer = lk.customer(points=Decimal(100), capability=Capability.SPEND_POINTS)
    _, quote = _quote(lk, customer.id)
    with pytest.raises(InsufficientBalanceError):
        lk.call("spend_cashback", CashbackSpend.for_points_lines(quote, customer_id=customer.id, order_ref=lk.ref()))
    assert lk.points(customer.id) == 100


@requires(Capability.POINTS_CATALOG, Capability.EXPORT_ORDERS)
def test_an_order_whose_points_lines_are_not_paid_is_refused_unsent(loyaltykit_target: ContractTarget) -> None:
    """Exporting an order whose points lines no spend paid is refused, naming the field; nothing is sent."""
    lk = loyaltykit_target
    _catalog(lk)
    customer = lk.customer(points=Decimal(1000), capability=Capability.SPEND_POINTS)
    basket, quote = _quote(lk, customer.id)
    with pytest.raises(InvalidRequestError) as refused:
        Order.from_evaluation(lk.ref(), basket, quote)
    assert refused.value.field == "receipts"
    unpaid = Order.from_evaluation(lk.ref(), basket, quote.model_copy(update={"points_lines": ()})).model_dump()
    unpaid["points_lines"] = [p.model_dump() for p in quote.points_lines]
    before = lk.request_count()
    with pytest.raises(InvalidRequestError) as again:
        lk.call("export_orders", [unpaid])
    assert again.value.field == "orders.0.receipts"
    assert before is None or lk.request_count() == before
    assert unpaid["ref"] not in lk.harness.orders_received()


@requires(Capability.POINTS_CATALOG, Capability.EXPORT_ORDERS, Capability.PARTIAL_REFUND)
def test_refunds_give_the_points_lines_points_back(loyaltykit_target: ContractTarget) -> None:
    """Returning one of two points units gives half the points back; refunding the rest, the others."""
    lk = loyaltykit_target
    _catalog(lk)
    customer, order = _paid_order(lk)
    assert export_until_done(lk, [order]).results[0].status is ExportStatus.ACCEPTED
    held = lk.points(customer.id)
    partial = lk.call("reverse", Reversal(order=order, kind=ReversalKind.REFUND, reference="r-1",
                                          lines=(RefundLine(line_id="l2", quantity=Decimal(1)),)))
    assert partial.refund.line_points == PRICE and partial.refund.total == lk.money(0)
    assert partial.points_returned == PRICE, f"engine gave back {partial.points_returned} points"
    assert lk.points(customer.id) == held + PRICE
    rest = lk.call("reverse", Reversal(order=order, kind=ReversalKind.REFUND, reference="r-2",
                                       already_refunded=(RefundLine(line_id="l2", quantity=Decimal(1)),)))
    assert rest.refund.line_points == PRICE and rest.refund.to_card == lk.money("20.00")
    assert rest.points_returned == PRICE, f"engine gave back {rest.points_returned} points"
    # what the money line earned is taken back apart, never netted with the points given back
    assert lk.points(customer.id) == held + 2 * PRICE - partial.points_clawed_back - rest.points_clawed_back
