"""The checkout's money, computed once in the core: figures, allocation, refunds, spends, limits."""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from loyaltykit import (
    Basket,
    CashbackSpend,
    CodeResult,
    Discount,
    Evaluation,
    FreeItem,
    InvalidRequestError,
    Line,
    LoyaltyError,
    Money,
    Order,
    Receipt,
    RefundLine,
    Reversal,
)
from loyaltykit.models import MAX_QUANTITY, LineAllocation
from loyaltykit.money import MAX_AMOUNT, MAX_PLACES, allocate, exponent, prorate, to_decimal
from loyaltykit.outbox import DROPPED, Outbox


def eur(amount) -> Money:
    return Money.of(amount, "EUR")


def _basket(*lines: tuple[str, str, str], shipping: str | None = None, codes: tuple[str, ...] = ()) -> Basket:
    return Basket(id="b-1", currency="EUR", customer_id="c-1", coupon_codes=codes,
                  shipping=eur(shipping) if shipping is not None else None,
                  lines=[Line(id=i, sku=f"SKU-{i}", quantity=q, unit_price=eur(p)) for i, p, q in lines])


def _quote(basket: Basket, *discounts: Discount, free_shipping: bool = False, **extra) -> Evaluation:
    return Evaluation(engine="test", basket_id=basket.id, currency="EUR", subtotal=basket.subtotal,
                      shipping=basket.shipping, discounts=discounts, free_shipping=free_shipping, **extra)


def _spent(amount: str | None = None, points: str | None = None, code: str | None = None) -> Receipt:
    return Receipt(operation="spend_cashback", engine="test", idempotency_key=f"k-{amount}-{points}",
                   amount=eur(amount) if amount else None, points=Decimal(points) if points else None)


def _redeemed(code: str) -> Receipt:
    return Receipt(operation="redeem_voucher", engine="test", idempotency_key=f"r-{code}", code=code)


# -- figures: one name, one meaning ---------------------------------------------------------------

def test_quote_and_order_name_the_same_figures_with_the_same_meaning():
    basket = _basket(("1", "30.00", "2"), ("2", "15.00", "1"), shipping="4.90", codes=("TEN",))
    quote = _quote(basket, Discount(target="order", amount=eur("10.00"), code="TEN"),
                   Discount(target="line", line_id="2", amount=eur("1.50")),
                   Discount(target="shipping", amount=eur("0.90")))
    assert quote.subtotal == eur("75.00") and quote.discount_total == eur("11.50")
    assert quote.shipping == eur("4.90") and quote.shipping_total == eur("4.00")
    assert quote.total == eur("67.50")  # 75.00 - 11.50 + 4.00: shipping included, as on the order
    order = Order.from_evaluation("o-1", basket, quote, [_redeemed("TEN"), _spent("20.00")])
    assert (order.subtotal, order.discount_total, order.shipping_total, order.total) == (
        quote.subtotal, quote.discount_total, quote.shipping_total, quote.total)
    assert order.balance_paid == eur("20.00") and order.amount_due == eur("47.50")


def test_free_shipping_and_free_items_reach_the_placed_order():
    basket = _basket(("1", "10.00", "1"), shipping="5.00")
    quote = _quote(basket, free_shipping=True, free_items=(FreeItem(sku="GIFT", label="a mug"),))
    order = Order.from_evaluation("o-1", basket, quote)
    assert order.shipping_total == eur(0) and order.total == eur("10.00")
    assert [item.sku for item in order.free_items] == ["GIFT"]


def test_order_level_discounts_are_allocated_to_lines_by_largest_remainder():
    basket = _basket(("a", "10.00", "1"), ("b", "10.00", "1"), ("c", "10.00", "1"))
    order = Order.from_evaluation("o-1", basket, _quote(basket, Discount(target="order", amount=eur("10.00"))))
    assert [a.order_discount for a in order.allocations] == [eur("3.34"), eur("3.33"), eur("3.33")]
    assert [a.net for a in order.allocations] == [eur("6.66"), eur("6.67"), eur("6.67")]
    assert order.allocation("b").discount_total == eur("3.33")


def test_line_discounts_stay_on_their_line_and_weigh_on_the_order_allocation():
    basket = _basket(("a", "40.00", "1"), ("b", "60.00", "1"))
    quote = _quote(basket, Discount(target="line", line_id="b", amount=eur("20.00")),
                   Discount(target="order", amount=eur("8.00")))
    order = Order.from_evaluation("o-1", basket, quote)
    a, b = order.allocations
    assert (a.line_discount, a.order_discount, a.net) == (eur(0), eur("4.00"), eur("36.00"))
    assert (b.line_discount, b.order_discount, b.net) == (eur("20.00"), eur("4.00"), eur("36.00"))


def test_a_hand_built_order_with_a_total_allocates_the_difference():
    order = Order(ref="o-1", currency="EUR", total=eur("90.00"),
                  lines=[Line(id="1", sku="A", quantity=1, unit_price=eur("100.00"))])
    assert order.discount_total == eur("10.00") and order.allocations[0].net == eur("90.00")
    with pytest.raises(InvalidRequestError) as info:
        Order(ref="o-1", currency="EUR", total=eur("101.00"),
              lines=[Line(id="1", sku="A", quantity=1, unit_price=eur("100.00"))])
    assert info.value.field == "total"


# -- coded discounts need their receipt ------------------------------------------------------------

def test_a_coded_discount_without_its_redemption_receipt_is_refused_without_naming_the_code():
    basket = _basket(("1", "50.00", "1"), codes=("SECRET-7731",))
    quote = _quote(basket, Discount(target="order", amount=eur("5.00"), code="SECRET-7731", label="5 off"),
                   codes=(CodeResult(code="SECRET-7731", status="accepted"),))
    with pytest.raises(InvalidRequestError) as info:
        Order.from_evaluation("o-1", basket, quote, [_spent("5.00")])
    assert info.value.field == "evaluation.discounts.0.code" and "SECRET-7731" not in str(info.value)
    assert info.value.details["code"] == "SECRET-7731"
    order = Order.from_evaluation("o-1", basket, quote, [_redeemed("SECRET-7731")])
    assert order.total == eur("45.00") and order.voucher_codes == ("SECRET-7731",)


def test_codes_the_quote_rejected_do_not_reach_the_order():
    basket = _basket(("1", "50.00", "1"), codes=("GOOD", "BAD"))
    quote = _quote(basket, codes=(CodeResult(code="GOOD", status="accepted"),
                                  CodeResult(code="BAD", status="rejected", reason="voucher_expired")))
    assert Order.from_evaluation("o-1", basket, quote).voucher_codes == ("GOOD",)


# -- spends carry the amount due -------------------------------------------------------------------

def test_a_spend_above_the_amount_due_is_refused_naming_the_field():
    with pytest.raises(InvalidRequestError) as info:
        CashbackSpend(customer_id="c", order_ref="o", amount=eur("30.00"), amount_due=eur("20.00"))
    assert info.value.field == "amount"
    with pytest.raises(InvalidRequestError) as info:
        CashbackSpend(customer_id="c", order_ref="o", kind="points", points=500, points_value=eur("25.00"),
                      amount_due=eur("20.00"))
    assert info.value.field == "points_value"
    with pytest.raises(InvalidRequestError) as info:  # a points spend against a due amount needs a value
        CashbackSpend(customer_id="c", order_ref="o", kind="points", points=500, amount_due=eur("20.00"))
    assert info.value.field == "points_value"
    ok = CashbackSpend(customer_id="c", order_ref="o", kind="points", points=400, points_value=eur("20.00"),
                       amount_due=eur("20.00"))
    assert ok.value == eur("20.00")


def test_an_order_paid_beyond_its_total_by_balances_is_refused():
    basket = _basket(("1", "20.00", "1"))
    with pytest.raises(InvalidRequestError) as info:
        Order.from_evaluation("o-1", basket, _quote(basket), [_spent("30.00")])
    assert info.value.field == "receipts"


# -- refunds on what was paid ----------------------------------------------------------------------

def _paid_order() -> Order:
    basket = _basket(("1", "60.00", "1"), ("2", "20.00", "2"), shipping="5.00", codes=("FIVE",))
    quote = _quote(basket, Discount(target="order", amount=eur("5.00"), code="FIVE"))
    points = Receipt(operation="spend_cashback", engine="test", idempotency_key="p", points=Decimal(300),
                     amount=eur("3.00"))
    return Order.from_evaluation("o-1", basket, quote, [_redeemed("FIVE"), _spent("10.00"), points])


def test_a_partial_refund_is_prorated_on_the_net_paid_with_a_breakdown():
    order = _paid_order()  # nets 57.00 and 38.00, shipping 5.00, total 100.00: 10 cashback, 3 points, 87 card
    breakdown = Reversal(order=order, kind="refund", lines=[RefundLine(line_id="2", quantity=1)],
                         reference="RMA-1").breakdown
    assert breakdown.goods == eur("19.00") and breakdown.shipping == eur(0)
    assert breakdown.to_cashback == eur("1.90") and breakdown.points_value == eur("0.57")
    assert breakdown.points == 57 and breakdown.to_card == eur("16.53")
    assert breakdown.to_card + breakdown.to_cashback + breakdown.points_value == breakdown.total
    assert breakdown.share_before == 0 and breakdown.share_after == Decimal("0.2")


def test_a_cancel_gives_everything_back_the_way_it_was_paid():
    order = _paid_order()
    breakdown = Reversal(order=order, kind="cancel").breakdown
    assert breakdown.total == order.total and breakdown.shipping == eur("5.00")
    assert (breakdown.to_card, breakdown.to_cashback, breakdown.points_value, breakdown.points) == (
        order.amount_due, eur("10.00"), eur("3.00"), 300)


def test_a_line_is_never_refunded_beyond_what_was_bought_across_references():
    order = _paid_order()
    with pytest.raises(InvalidRequestError) as info:
        Reversal(order=order, kind="refund", lines=[RefundLine(line_id="1", quantity=1)], reference="RMA-2",
                 already_refunded=[RefundLine(line_id="1", quantity=1)])
    assert info.value.field == "lines.0.quantity"


# -- property tests: allocation and proration --------------------------------------------------------

CURRENCIES = ["EUR", "JPY", "KWD"]


@st.composite
def amounts(draw, currency: str, low: int = 0, high: int = 10**9) -> Money:
    return Money.from_minor_units(draw(st.integers(low, high)), currency)


@settings(max_examples=300)
@given(data=st.data(), currency=st.sampled_from(CURRENCIES))
def test_allocation_sums_exactly_and_never_exceeds_a_weight(data, currency):
    weights = data.draw(st.lists(amounts(currency), min_size=1, max_size=40))
    whole = sum((w.minor_units() for w in weights), 0)
    amount = Money.from_minor_units(data.draw(st.integers(0, whole)) if whole else 0, currency)
    parts = allocate(amount, weights)
    assert sum(p.minor_units() for p in parts) == amount.minor_units()
    for part, weight in zip(parts, weights, strict=True):
        assert 0 <= part.minor_units() <= weight.minor_units()
    assert parts == allocate(amount, weights)  # deterministic


@st.composite
def paid_orders(draw) -> Order:
    currency = draw(st.sampled_from(CURRENCIES))
    count = draw(st.integers(1, 8))
    lines = [Line(id=f"l{i}", sku=f"S{i}", quantity=draw(st.integers(1, 5)),
                  unit_price=draw(amounts(currency, 0, 10**6))) for i in range(count)]
    basket = Basket(id="b", currency=currency, lines=lines,
                    shipping=draw(st.none() | amounts(currency, 0, 10**4)))
    goods = basket.subtotal.minor_units()
    discounts = []
    if goods:
        discounts.append(Discount(target="order", amount=Money.from_minor_units(draw(st.integers(0, goods)),
                                                                                  currency)))
    line = lines[0]
    discounts.append(Discount(target="line", line_id=line.id,
                              amount=Money.from_minor_units(draw(st.integers(0, line.subtotal.minor_units())),
                                                            currency)))
    quote = Evaluation(engine="t", basket_id="b", currency=currency, subtotal=basket.subtotal,
                       shipping=basket.shipping, discounts=discounts)
    total = quote.total.minor_units()
    cashback = draw(st.integers(0, total))
    points_value = draw(st.integers(0, total - cashback))
    receipts = []
    if cashback:
        receipts.append(Receipt(operation="spend_cashback", engine="t", idempotency_key="c",
                                amount=Money.from_minor_units(cashback, currency)))
    if points_value:
        receipts.append(Receipt(operation="spend_cashback", engine="t", idempotency_key="p",
                                amount=Money.from_minor_units(points_value, currency),
                                points=Decimal(draw(st.integers(1, 10**6)))))
    return Order.from_evaluation("o", basket, quote, receipts)


@settings(max_examples=200, deadline=None)
@given(order=paid_orders(), data=st.data())
def test_successive_refunds_sum_exactly_to_what_was_paid_and_are_never_negative(order, data):
    remaining = {line.id: int(line.quantity) for line in order.lines}
    done: list[RefundLine] = []
    sums = {"to_card": 0, "to_cashback": 0, "points_value": 0, "goods": 0, "shipping": 0}
    points = Decimal(0)
    while any(remaining.values()):
        pick = {line_id: data.draw(st.integers(0, left)) for line_id, left in remaining.items() if left}
        pick = {k: v for k, v in pick.items() if v} or {next(k for k, v in remaining.items() if v): 1}
        reversal = Reversal(order=order, kind="refund", reference=f"r{len(done)}", already_refunded=done,
                            lines=[RefundLine(line_id=k, quantity=v) for k, v in pick.items()])
        breakdown = reversal.breakdown
        for name in sums:
            value = getattr(breakdown, name)
            assert value.amount >= 0, name
            sums[name] += value.minor_units()
        assert breakdown.points >= 0
        points += breakdown.points
        assert breakdown.to_card + breakdown.to_cashback + breakdown.points_value == breakdown.total
        for line in breakdown.lines:  # a line never gives back more than its net paid
            assert line.amount <= order.allocation(line.line_id).net
        for k, v in pick.items():
            remaining[k] -= v
            done.append(RefundLine(line_id=k, quantity=v))
    assert sums["goods"] + sums["shipping"] == order.total.minor_units()
    assert sums["to_card"] == order.amount_due.minor_units()
    assert sums["to_cashback"] + sums["points_value"] == order.balance_paid.minor_units()
    assert points == order.points_spent


@given(amount=st.integers(-10**9, 10**9), cuts=st.lists(st.fractions(0, 1), max_size=6))
def test_prorate_shares_telescope_to_the_amount(amount, cuts):
    money = Money.from_minor_units(amount, "EUR")
    points = [Fraction(0), *sorted(cuts), Fraction(1)]
    shares = [prorate(money, a, b) for a, b in itertools.pairwise(points)]
    assert sum(s.minor_units() for s in shares) == amount


# -- input limits and the one exception root --------------------------------------------------------

@pytest.mark.parametrize("quantity", ["1E-20000", "0.000000001", "1E+40", "123456789012345678901234567"])
def test_decimals_beyond_the_kits_precision_are_refused_naming_the_field(quantity):
    with pytest.raises(InvalidRequestError) as info:
        Line(id="1", sku="A", quantity=quantity, unit_price=eur("1.00"))
    assert info.value.field == "quantity"


def test_decimals_padded_with_zeros_are_accepted_without_the_padding():
    assert to_decimal("2.500000000000000000") == Decimal("2.5")
    assert len(str(to_decimal("1." + "0" * 5000))) <= MAX_PLACES + 2
    with pytest.raises(InvalidRequestError) as info:
        Money.of("1E-20000", "EUR")
    assert info.value.field == "amount"
    assert Line(id="1", sku="A", quantity=MAX_QUANTITY, unit_price=eur("0.5")).quantity == MAX_QUANTITY
    assert exponent("EUR") == 2


@pytest.mark.parametrize("bad", ["A\u200bB", "A\u202eB", "A\u2028B", "A\x00B", "A\x85B", "A\ufeffB"])
def test_non_printable_unicode_is_refused_in_ids_skus_and_references(bad):
    for build, field in (
        (lambda: Line(id=bad, sku="A", quantity=1, unit_price=eur(1)), "id"),
        (lambda: Line(id="1", sku=bad, quantity=1, unit_price=eur(1)), "sku"),
        (lambda: CashbackSpend(customer_id="c", order_ref=bad, amount=eur(1)), "order_ref"),
    ):
        with pytest.raises(InvalidRequestError) as info:
            build()
        assert info.value.field == field


def test_model_errors_are_kit_errors_naming_the_nested_field():
    with pytest.raises(LoyaltyError) as info:
        Basket.model_validate({"id": "b", "currency": "EUR",
                               "lines": [{"id": "1", "sku": "", "quantity": 1,
                                          "unit_price": {"amount": "1", "currency": "EUR"}}]})
    assert isinstance(info.value, InvalidRequestError) and info.value.field == "lines.0.sku"
    with pytest.raises(InvalidRequestError) as info:
        Order.model_validate_json('{"ref": "o", "currency": "EUR", "lines": []}')
    assert info.value.field == "lines"


# -- the outbox: drop and supersede ----------------------------------------------------------------

def test_outbox_drops_a_pending_order_once_and_never_hands_it_to_a_worker(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    order = _paid_order()
    assert outbox.add(order)
    assert outbox.drop(order.ref, reason="payment declined")
    assert not outbox.drop(order.ref, reason="again")
    assert outbox.claim() == []
    entry = outbox.entry(order.ref)
    assert entry.state == DROPPED and entry.last_reason == "payment declined"
    assert not outbox.drop("unknown", reason="x")
    outbox.close()


def test_outbox_cannot_drop_or_supersede_an_order_in_flight(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    order = _paid_order()
    outbox.add(order)
    changed = order.model_copy(update={"channel": "web"})
    assert outbox.add(changed, supersede=True) and not outbox.add(changed)
    [claimed] = outbox.claim()
    assert claimed.channel == "web"
    assert outbox.in_flight(order.ref)
    assert not outbox.drop(order.ref, reason="payment declined")
    assert not outbox.add(order, supersede=True)
    outbox.close()


def test_a_quote_for_another_basket_is_refused():
    basket = _basket(("1", "10.00", "1"))
    quote = _quote(basket)
    changed = basket.model_copy(update={"lines": (Line(id="1", sku="A", quantity=2, unit_price=eur("10.00")),)})
    for other in (changed, basket.model_copy(update={"id": "b-2"})):
        with pytest.raises(InvalidRequestError) as info:
            Order.from_evaluation("o-1", other, quote)
        assert info.value.field == "evaluation.basket_id"


def test_allocations_follow_a_copy_that_changes_the_lines():
    basket = _basket(("1", "10.00", "1"), ("2", "30.00", "1"))
    order = Order.from_evaluation("o-1", basket, _quote(basket, Discount(target="order", amount=eur("4.00"))))
    assert [a.order_discount for a in order.allocations] == [eur("1.00"), eur("3.00")]
    copy = order.model_copy(update={"lines": (basket.lines[1],),
                                    "discounts": (Discount(target="order", amount=eur("3.00")),)})
    assert [a.line_id for a in copy.allocations] == ["2"] and copy.allocations[0].order_discount == eur("3.00")


@settings(max_examples=100, deadline=None)
@given(quantity=st.decimals(min_value=Decimal("0.001"), max_value=Decimal(50), places=3),
       price=st.integers(1, 10**6), cut=st.fractions(0, 1))
def test_weighed_goods_refunded_in_two_parts_sum_to_the_line(quantity, price, cut):
    basket = Basket(id="b", currency="EUR", lines=[Line(id="w", sku="CHEESE", quantity=quantity,
                                                        unit_price=Money.from_minor_units(price, "EUR"))])
    order = Order.from_evaluation("o", basket, _quote_for(basket))
    first = (Decimal(cut.numerator) / Decimal(cut.denominator) * quantity).quantize(Decimal("0.001"))
    if not 0 < first < quantity:
        return
    one = Reversal(order=order, kind="refund", reference="r1", lines=[RefundLine(line_id="w", quantity=first)])
    two = Reversal(order=order, kind="refund", reference="r2", already_refunded=one.lines,
                   lines=[RefundLine(line_id="w", quantity=quantity - first)])
    assert one.breakdown.goods + two.breakdown.goods == order.allocations[0].net == order.total
    assert one.breakdown.goods.amount >= 0 and two.breakdown.goods.amount >= 0


def _quote_for(basket: Basket) -> Evaluation:
    return Evaluation(engine="t", basket_id=basket.id, currency=basket.currency, subtotal=basket.subtotal)


def test_an_order_queued_by_an_earlier_version_still_loads():
    payload = ('{"ref": "o-1", "currency": "EUR", "total": {"amount": "8.00", "currency": "EUR"},'
               ' "discount_total": {"amount": "2.00", "currency": "EUR"},'
               ' "lines": [{"id": "1", "sku": "A", "quantity": "1", "unit_price": {"amount": "10.00", "currency": "EUR"}}]}')
    order = Order.model_validate_json(payload)
    assert order.discount_total == eur("2.00") and order.total == eur("8.00")


def _allocate_by_fractions(amount: Money, weights: list[Money] | list[Decimal]) -> list[int]:
    """Largest remainder with Fractions, written out plainly: ``allocate`` must match it."""
    values = [Fraction(w.amount if isinstance(w, Money) else w) for w in weights]
    if sum(values) == 0:
        values = [Fraction(1)] * len(values)
    units = amount.minor_units()
    quotas = [abs(units) * v / sum(values) for v in values]
    parts = [q.numerator // q.denominator for q in quotas]
    for i in sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - parts[i]), i))[:abs(units) - sum(parts)]:
        parts[i] += 1
    return [(-p if units < 0 else p) for p in parts]


@settings(max_examples=300)
@given(data=st.data(), currency=st.sampled_from(CURRENCIES))
def test_allocation_is_the_largest_remainder_of_exact_fractions(data, currency):
    weights = data.draw(st.lists(amounts(currency, 0, 10**7), min_size=1, max_size=12))
    amount = Money.from_minor_units(data.draw(st.integers(-10**9, 10**9)), currency)
    parts = allocate(amount, weights)
    assert [p.minor_units() for p in parts] == _allocate_by_fractions(amount, weights)
    assert all(p.currency == currency for p in parts)
    # weights with more places than the currency has
    decimals = [(w.amount / 3).quantize(Decimal("1E-8")) for w in weights]
    assert [p.minor_units() for p in allocate(amount, decimals)] == _allocate_by_fractions(amount, decimals)


@settings(max_examples=150, deadline=None)
@given(order=paid_orders())
def test_the_total_checked_at_construction_is_the_sum_of_the_lazy_allocations(order):
    """Construction checks the total from the discounts without allocating them; the allocations,
    computed on first use, must add up to that very total, and be what validation would build."""
    allocations = order.allocations
    assert order.allocations is allocations  # computed once
    nets = sum((a.net.amount for a in allocations), Decimal(0))
    assert order.total.amount == nets + order.shipping_total.amount
    assert order.discount_total.amount == sum((a.discount_total.amount for a in allocations), Decimal(0))
    for allocation in allocations:
        validated = LineAllocation.model_validate(allocation.model_dump())
        assert validated == allocation and validated.model_fields_set == allocation.model_fields_set
        assert validated.model_dump_json() == allocation.model_dump_json()
        assert allocation.net == allocation.subtotal - allocation.line_discount - allocation.order_discount
    again = Order.model_validate_json(order.model_dump_json())
    assert again == order and again.allocations == allocations


def test_an_order_whose_figures_disagree_is_refused_at_construction():
    lines = (Line(id="1", sku="A", quantity=2, unit_price=eur("10.00")),
             Line(id="2", sku="B", quantity=1, unit_price=eur("5.00")))
    cases = {
        "total": dict(total=eur("26.00")),  # more than the lines
        "discounts.0.line_id": dict(discounts=(Discount(target="line", line_id="9", amount=eur("1.00")),)),
        "discounts.0.amount": dict(discounts=(Discount(target="order", amount=Money.of("1.00", "USD")),)),
    }
    for field, extra in cases.items():
        with pytest.raises(InvalidRequestError) as info:
            Order(ref="o", currency="EUR", lines=lines, **extra)
        assert info.value.field == field
    # a total that is not subtotal - discounts + shipping
    with pytest.raises(InvalidRequestError) as info:
        Order(ref="o", currency="EUR", lines=lines, total=eur("20.00"),
              discounts=(Discount(target="order", amount=eur("4.00")),))
    assert info.value.field == "total"
    # line discounts beyond the line join the order pool; the total follows
    order = Order(ref="o", currency="EUR", lines=lines,
                  discounts=(Discount(target="line", line_id="2", amount=eur("7.00")),))
    assert order.total == eur("18.00")
    assert [a.net for a in order.allocations] == [eur("18.00"), eur("0.00")]
    with pytest.raises(InvalidRequestError) as info:  # discounts beyond the kit's limit, as before
        Order(ref="o", currency="EUR", lines=lines,
              discounts=tuple(Discount(target="order", amount=Money.of(MAX_AMOUNT, "EUR")) for _ in range(2)))
    assert info.value.field == "amount"
