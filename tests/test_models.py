"""Models: JSON round-trips, validation limits, and that bad input never reaches the engine."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from loyaltykit_core_test_helpers import basket_dict

from loyaltykit import (
    Basket,
    CashbackSpend,
    CurrencyMismatchError,
    Evaluation,
    InvalidRequestError,
    Line,
    Money,
    Order,
    Reversal,
    VoucherRedemption,
)
from loyaltykit.models import MAX_CODES, MAX_LINES, MAX_QUANTITY, line_columns
from loyaltykit.money import MAX_AMOUNT, exponent

CURRENCIES = ["EUR", "JPY", "KWD", "USD"]

idents = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")).filter(str.isprintable), min_size=1, max_size=20
).filter(lambda s: s.strip() != "").map(str.strip)
codes = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=1, max_size=12)


@st.composite
def money_in(draw, currency: str, max_value: Decimal = Decimal(10) ** 6) -> Money:
    places = exponent(currency)
    amount = draw(st.decimals(min_value=0, max_value=max_value, places=places, allow_nan=False, allow_infinity=False))
    return Money.of(amount, currency)


@st.composite
def lines(draw, currency: str) -> list[Line]:
    count = draw(st.integers(min_value=1, max_value=6))
    ids = draw(st.lists(idents, min_size=count, max_size=count, unique=True))
    result = []
    for line_id in ids:
        result.append(
            Line(
                id=line_id,
                sku=draw(idents),
                quantity=draw(st.decimals(min_value=Decimal("0.001"), max_value=MAX_QUANTITY, places=3)),
                unit_price=draw(money_in(currency)),
                category=draw(st.none() | idents),
                name=draw(st.none() | st.text(max_size=30)),
                attributes=draw(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3)),
            )
        )
    return result


@st.composite
def baskets(draw) -> Basket:
    currency = draw(st.sampled_from(CURRENCIES))
    return Basket(
        id=draw(idents),
        currency=currency,
        lines=tuple(draw(lines(currency))),
        customer_id=draw(st.none() | idents),
        shipping=draw(st.none() | money_in(currency, Decimal(100))),
        channel=draw(st.none() | idents),
        store_id=draw(st.none() | idents),
        coupon_codes=tuple(draw(st.lists(codes, max_size=4, unique=True))),
        created_at=draw(st.none() | st.datetimes(timezones=st.none() | st.timezones())),
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(basket=baskets())
def test_any_valid_basket_round_trips_through_json(basket):
    again = Basket.model_validate_json(basket.model_dump_json())
    assert again == basket
    assert again.subtotal == basket.subtotal
    # ... and through a plain dict, as a shop sends it.
    assert Basket.model_validate(basket.model_dump(mode="json")) == basket


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(basket=baskets())
def test_any_valid_basket_has_a_subtotal_and_a_degraded_quote(basket):
    expected = sum((line.unit_price.amount * line.quantity for line in basket.lines), Decimal(0))
    assert abs(basket.subtotal.amount - expected) <= Decimal(len(basket.lines)) * Decimal(1).scaleb(-exponent(basket.currency))
    degraded = Evaluation.degraded_for(basket, "shop", "engine_unavailable: down")
    assert degraded.degraded and degraded.total == basket.subtotal + (basket.shipping or Money.zero(basket.currency))
    assert Evaluation.model_validate_json(degraded.model_dump_json()) == degraded


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(basket=baskets())
def test_line_columns_are_what_each_line_says(basket):
    """The column-wise read of a basket's lines (request bodies) gives each line's own figures."""
    columns = line_columns(basket.lines, basket.currency)
    assert columns == (
        [line.id for line in basket.lines], [line.sku for line in basket.lines],
        [line.quantity for line in basket.lines], [line.unit_price.amount for line in basket.lines],
        [line.subtotal.amount for line in basket.lines],
    )
    # the same digits too (exponent included), as a request body writes them
    assert [str(a) for a in columns.subtotals] == [str(line.subtotal.amount) for line in basket.lines]


@given(
    currency=st.sampled_from(CURRENCIES),
    price=st.decimals(min_value=0, max_value=MAX_AMOUNT, places=0),
    quantity=st.decimals(min_value=1, max_value=MAX_QUANTITY, places=0),
    count=st.integers(min_value=1, max_value=MAX_LINES),
)
@settings(max_examples=60)
def test_a_basket_is_either_refused_or_has_a_subtotal(currency, price, quantity, count):
    """Every line within limits can still add up past the kit's amount limit: the basket must then be
    refused at validation (naming the field), never accepted with a subtotal that cannot be computed."""
    line = {"sku": "S", "quantity": str(quantity), "unit_price": {"amount": str(price), "currency": currency}}
    data = {"id": "b", "currency": currency, "lines": [{**line, "id": f"l{i}"} for i in range(count)]}
    try:
        basket = Basket.model_validate(data)
    except InvalidRequestError as exc:
        assert exc.field.startswith("lines")
        return
    assert basket.subtotal.amount == price * quantity * count
    Evaluation.degraded_for(basket, "shop", "down")


def _line(**overrides):
    line = {"id": "l1", "sku": "SKU-1", "quantity": "1", "unit_price": {"amount": "1.00", "currency": "EUR"}}
    line.update(overrides)
    return line


def _with_line(**overrides):
    return basket_dict(lines=[_line(**overrides)])


BAD_BASKETS = {
    "zero quantity": (_with_line(quantity="0"), "lines.0.quantity"),
    "negative quantity": (_with_line(quantity="-1"), "lines.0.quantity"),
    "float quantity": (_with_line(quantity=1.5), "lines.0.quantity"),
    "NaN quantity": (_with_line(quantity="NaN"), "lines.0.quantity"),
    "infinite quantity": (_with_line(quantity="Infinity"), "lines.0.quantity"),
    "quantity over MAX_QUANTITY": (_with_line(quantity=str(MAX_QUANTITY + 1)), "lines.0.quantity"),
    "negative price": (_with_line(unit_price={"amount": "-0.01", "currency": "EUR"}), "lines.0.unit_price"),
    "NaN price": (_with_line(unit_price={"amount": "NaN", "currency": "EUR"}), "lines.0.unit_price.amount"),
    "infinite price": (_with_line(unit_price={"amount": "-Infinity", "currency": "EUR"}), "lines.0.unit_price.amount"),
    "float price": (_with_line(unit_price={"amount": 9.99, "currency": "EUR"}), "lines.0.unit_price.amount"),
    "empty SKU": (_with_line(sku=""), "lines.0.sku"),
    "blank SKU": (_with_line(sku="   "), "lines.0.sku"),
    "SKU with control character": (_with_line(sku="A\x00B"), "lines.0.sku"),
    "unknown basket currency": (basket_dict(currency="XXX"), "currency"),
    "unknown line currency": (_with_line(unit_price={"amount": "1.00", "currency": "EURO"}), "lines.0.unit_price.currency"),
    "mixed currency": (
        basket_dict(lines=[_line(), _line(id="l2", unit_price={"amount": "1.00", "currency": "USD"})]),
        "lines.1.unit_price",
    ),
    "mixed shipping currency": (basket_dict(shipping={"amount": "1.00", "currency": "USD"}), "shipping"),
    "negative shipping": (basket_dict(shipping={"amount": "-1.00", "currency": "EUR"}), "shipping"),
    "duplicate line ids": (basket_dict(lines=[_line(), _line(sku="OTHER")]), "lines.1.id"),
    "no lines": (basket_dict(lines=[]), "lines"),
    "too many lines": (basket_dict(lines=[_line(id=f"l{i}") for i in range(MAX_LINES + 1)]), "lines"),
    "too many coupon codes": (basket_dict(coupon_codes=[f"C{i}" for i in range(MAX_CODES + 1)]), "coupon_codes"),
    "duplicate coupon codes": (basket_dict(coupon_codes=["A", "A"]), "coupon_codes"),
    "empty coupon code": (basket_dict(coupon_codes=[""]), "coupon_codes.0"),
    "empty basket id": (basket_dict(id=""), "id"),
    "unknown field": (basket_dict(discount="everything"), "discount"),
}


@pytest.mark.parametrize("case", sorted(BAD_BASKETS))
def test_invalid_basket_is_refused_naming_the_field_without_an_engine_call(case, make_sync, engine):
    data, field = BAD_BASKETS[case]
    loyalty = make_sync()
    with pytest.raises(InvalidRequestError) as info:
        loyalty.evaluate(copy.deepcopy(data))
    assert info.value.field == f"basket.{field}", str(info.value)
    assert info.value.code in ("invalid_request", "currency_mismatch")
    assert field in str(info.value)
    assert engine.request_count() == 0


@pytest.mark.parametrize("case", ["zero quantity", "mixed currency", "duplicate line ids", "too many lines"])
async def test_invalid_basket_is_refused_by_the_async_facade_too(case, make_async, engine):
    data, field = BAD_BASKETS[case]
    loyalty = make_async()
    with pytest.raises(InvalidRequestError) as info:
        await loyalty.evaluate(copy.deepcopy(data))
    assert info.value.field == f"basket.{field}"
    assert engine.request_count() == 0


def test_valid_basket_passes_the_same_checks(make_sync, engine):
    """The counterpart of the refusals above: the valid baseline does reach the engine."""
    evaluation = make_sync().evaluate(basket_dict())
    assert not evaluation.degraded
    assert engine.request_count("evaluate") == 1


@pytest.mark.parametrize(
    ("call", "payload", "field"),
    [
        ("redeem_voucher", {"code": "", "order_ref": "o1"}, "redemption.code"),
        ("redeem_voucher", {"code": "SAVE5", "order_ref": "o1", "idempotency_key": "has space"}, "redemption.idempotency_key"),
        ("redeem_voucher", {"code": "SAVE5", "order_ref": "o1", "basket": basket_dict(lines=[_line(), _line()])},
         "redemption.basket.lines.1.id"),
        ("spend_cashback", {"customer_id": "m1", "order_ref": "o1", "amount": {"amount": "0", "currency": "EUR"}},
         "spend.amount"),
        ("spend_cashback", {"customer_id": "m1", "order_ref": "o1", "amount": {"amount": "-5", "currency": "EUR"}},
         "spend.amount"),
        ("spend_cashback", {"customer_id": "m1", "order_ref": "o1", "amount": {"amount": 5.0, "currency": "EUR"}},
         "spend.amount.amount"),
        ("identify", {"kind": "email", "value": "not-an-email"}, "identifier"),
    ],
)
def test_invalid_writes_are_refused_naming_the_field(call, payload, field, make_sync, engine):
    loyalty = make_sync()
    with pytest.raises(InvalidRequestError) as info:
        getattr(loyalty, call)(payload)
    assert info.value.field == field, str(info.value)
    assert engine.request_count() == 0


def test_invalid_order_in_export_batch_is_named_and_nothing_is_sent(make_sync, engine):
    good = {"ref": "o1", "currency": "EUR", "lines": [_line()], "total": {"amount": "1.00", "currency": "EUR"}}
    bad = {**good, "ref": "o2", "lines": [_line(), _line()]}
    loyalty = make_sync()
    with pytest.raises(InvalidRequestError) as info:
        loyalty.export_orders([good, bad])
    assert info.value.field == "orders.1.lines.1.id"
    with pytest.raises(InvalidRequestError) as info:
        loyalty.export_orders([good, good])
    assert info.value.field == "orders"
    with pytest.raises(InvalidRequestError) as info:
        loyalty.export_orders([])
    assert info.value.field == "orders"
    assert engine.request_count() == 0


def test_non_mapping_input_is_refused():
    from loyaltykit.facade import coerce

    with pytest.raises(InvalidRequestError) as info:
        coerce(Basket, ["not", "a", "basket"], "basket")
    assert info.value.field == "basket"


def test_currency_not_accepted_by_the_engine_is_refused_before_sending(make_sync, engine):
    usd = basket_dict(currency="USD", lines=[_line(unit_price={"amount": "1.00", "currency": "USD"})])
    with pytest.raises(CurrencyMismatchError) as info:
        make_sync().evaluate(usd)
    assert info.value.field == "currency"
    assert engine.request_count() == 0


def test_models_are_frozen_and_refuse_unknown_fields():
    basket = Basket.model_validate(basket_dict())
    with pytest.raises(InvalidRequestError):
        basket.id = "other"  # type: ignore[misc]
    with pytest.raises(InvalidRequestError):
        VoucherRedemption(code="X", order_ref="o", surprise=True)  # type: ignore[call-arg]


def test_cashback_spend_shape_and_keys():
    spend = CashbackSpend(customer_id="m1", order_ref="o1", amount=Money.of("2.00", "EUR"))
    assert spend.key == "o1:spend:cashback"
    assert VoucherRedemption(code="SAVE5", order_ref="o1").key == "o1:redeem:SAVE5"
    assert VoucherRedemption(code="SAVE5", order_ref="o1", idempotency_key="k-1").key == "k-1"
    with pytest.raises(InvalidRequestError):
        CashbackSpend(customer_id="m1", order_ref="o1", kind="points", amount=Money.of("2.00", "EUR"))


def test_reversal_refuses_lines_not_in_the_order_and_over_refunds():
    order = Order(ref="o1", currency="EUR", lines=(Line.model_validate(_line(quantity="2")),),
                  total=Money.of("2.00", "EUR"))
    with pytest.raises(InvalidRequestError, match=r"lines\.0\.line_id"):
        Reversal(order=order, kind="refund", lines=({"line_id": "nope", "quantity": "1"},))
    with pytest.raises(InvalidRequestError, match=r"lines\.0\.quantity"):
        Reversal(order=order, kind="refund", lines=({"line_id": "l1", "quantity": "3"},))
    partial = Reversal(order=order, kind="refund", lines=({"line_id": "l1", "quantity": "1"},), reference="r1")
    assert not partial.is_full and partial.refunded_fraction() == Decimal("0.5")


def test_shipping_discounts_reduce_shipping_not_the_goods():
    from loyaltykit import Basket, Discount, Evaluation, Line, Money, Order

    eur = lambda v: Money.of(v, "EUR")  # noqa: E731
    basket = Basket(
        id="b", currency="EUR", shipping=eur("5.00"),
        lines=(Line(id="1", sku="A", quantity=2, unit_price=eur("10.00")),),
    )
    quote = Evaluation(
        engine="t", basket_id="b", currency="EUR", subtotal=basket.subtotal,
        discounts=(
            Discount(target="order", amount=eur("2.00")),
            Discount(target="shipping", amount=eur("3.00")),
        ),
    )
    assert quote.discount_total == eur("2.00") and quote.shipping_discount_total == eur("3.00")
    assert quote.total == eur("18.00")
    assert Order.from_evaluation("o", basket, quote).total == eur("20.00")  # 18 goods + 2 shipping
    waived = quote.model_copy(update={"free_shipping": True})
    assert Order.from_evaluation("o", basket, waived).total == eur("18.00")


def test_subtotals_follow_the_lines_of_a_copy():
    """Subtotals are computed once per set of lines; a copy with other lines gets its own."""
    basket = Basket.model_validate(basket_dict())
    first = basket.subtotal
    assert basket.subtotal is first
    line = basket.lines[0]
    more = line.model_copy(update={"quantity": line.quantity + 1})
    assert more.subtotal == line.subtotal + line.unit_price
    copied = basket.model_copy(update={"lines": (more, *basket.lines[1:])})
    assert copied.subtotal == first + line.unit_price
    assert basket.subtotal == first and basket == Basket.model_validate(basket_dict())
    assert "_subtotal_of" not in basket.model_dump()


def test_nested_kit_models_are_validated_once_and_errors_stay_typed() -> None:
    # A custom __init__ on the base would make pydantic call it for every nested model, running
    # each model's checks twice; the base marks it as pydantic's own so validation happens once.
    from pydantic import model_validator

    from loyaltykit import InvalidDataError
    from loyaltykit.money import KitBase

    calls: list[str] = []

    class Inner(KitBase):
        value: int

        @model_validator(mode="after")
        def count(self) -> Inner:
            calls.append("inner")
            return self

    class Outer(KitBase):
        inner: Inner
        items: list[Inner]

    data = {"inner": {"value": 1}, "items": [{"value": 2}, {"value": 3}]}
    Outer(**data)
    assert calls == ["inner"] * 3
    calls.clear()
    Outer.model_validate_json('{"inner": {"value": 1}, "items": [{"value": 2}]}')
    assert calls == ["inner"] * 2
    with pytest.raises(InvalidDataError) as info:
        Outer(inner={"value": "x"}, items=[])
    assert info.value.field == "inner.value"


def test_floats_are_refused_in_any_field_every_time_subclasses_included():
    """The float check is one pass over a model's input; it must refuse a float, or a float
    subclass, in any field (Decimal or not), nested or not, on every call."""

    class Price(float):
        pass

    line = {"id": "1", "sku": "A", "quantity": 1, "unit_price": {"amount": "1.00", "currency": "EUR"}}
    for _ in range(3):
        for bad in (1.5, Price(2.0)):
            with pytest.raises(InvalidRequestError) as info:
                Line.model_validate({**line, "quantity": bad})
            assert info.value.field == "quantity" and "float" in info.value.reason
            with pytest.raises(InvalidRequestError) as info:
                Basket.model_validate({"id": "b", "currency": "EUR", "lines": [line], "created_at": bad})
            assert info.value.field == "created_at"
            with pytest.raises(InvalidRequestError) as info:
                Basket.model_validate({"id": "b", "currency": "EUR", "lines": [{**line, "quantity": bad}]})
            assert info.value.field == "lines.0.quantity"
        assert Line.model_validate(line).quantity == 1


def _eur(value: str) -> Money:
    return Money.of(value, "EUR")


_ORDER_LINES = (Line(id="1", sku="A", quantity=2, unit_price=_eur("10.00")),
                Line(id="2", sku="B", quantity=1, unit_price=_eur("5.00")))
_SPEND = {"operation": "spend_cashback", "engine": "e", "idempotency_key": "k"}
_LIMIT = str(MAX_AMOUNT)
_BEYOND = f"amount exceeds the kit's limit of {MAX_AMOUNT}"
# Lines each within the limit whose rounded subtotals (0.005 -> 0.01) together pass it by a cent.
_ROUNDED_UP = (Line(id="1", sku="A", quantity=1, unit_price=_eur("999999999999.99")),
               Line(id="2", sku="B", quantity="0.5", unit_price=_eur("0.01")),
               Line(id="3", sku="C", quantity="0.5", unit_price=_eur("0.01")))


@pytest.mark.parametrize(("extra", "field", "reason"), [
    ({"total": _eur("30.00")}, "total", "more than the lines and shipping (29.95 EUR)"),
    ({"total": _eur("3.00")}, "total", "less than the shipping charge"),
    ({"total": _eur("20.00"), "discounts": [{"target": "order", "amount": _eur("4.00")}]},
     "total", "20.00 EUR differs from subtotal - discounts + shipping (25.95 EUR)"),
    ({"receipts": [{**_SPEND, "amount": _eur("20.00")}, {**_SPEND, "amount": _eur("10.00")}]},
     "receipts", "cashback and points pay 30.00 EUR, more than the order's total (29.95 EUR)"),
    ({"discounts": [{"target": "shipping", "amount": _eur(_LIMIT)}, {"target": "shipping", "amount": _eur("0.01")}]},
     "amount", _BEYOND),
    ({"receipts": [{**_SPEND, "amount": _eur(_LIMIT)}, {**_SPEND, "amount": _eur("0.01")}]}, "amount", _BEYOND),
    ({"lines": (Line(id="1", sku="A", quantity=1, unit_price=_eur(_LIMIT)),)}, "amount", _BEYOND),
    ({"lines": (Line(id="1", sku="A", quantity=1, unit_price=_eur(_LIMIT)),), "total": _eur("1.00")},
     "amount", _BEYOND),
    ({"lines": _ROUNDED_UP, "shipping": None}, "amount", _BEYOND),
    ({"lines": _ROUNDED_UP, "shipping": None, "total": _eur("1.00")}, "amount", _BEYOND),
    ({"total": _eur("20.00"), "shipping": _eur("5.00"), "currency": "USD"}, "lines.0.unit_price",
     "currency EUR differs from USD"),
])
def test_an_order_is_refused_naming_the_field_and_the_figures(extra, field, reason):
    """Each check of an order's figures: the field it names and the figures its message gives."""
    data = {"ref": "o", "currency": "EUR", "lines": _ORDER_LINES, "shipping": _eur("4.95"), **extra}
    with pytest.raises(InvalidRequestError) as info:
        Order(**data)
    assert (info.value.field, info.value.reason) == (field, reason), str(info.value)


def test_an_order_at_the_limits_is_accepted_with_its_figures():
    lines = (Line(id="1", sku="A", quantity=1, unit_price=_eur("999999999999.98")),
             Line(id="2", sku="B", quantity="0.5", unit_price=_eur("0.01")))  # 0.005 rounds to 0.01
    order = Order(ref="o", currency="EUR", lines=lines, receipts=[{**_SPEND, "amount": _eur("999999999999.99")}])
    assert order.total == _eur("999999999999.99") and str(order.total.amount) == "999999999999.99"
    assert order.total.model_fields_set == {"amount", "currency"} and type(order.total) is Money
    assert order.amount_due == _eur("0.00")
    # the total given is the one computed: accepted, and kept as given
    given_total = Order(ref="o", currency="EUR", lines=lines, total=_eur(_LIMIT), shipping=_eur("0.01"))
    assert given_total.total == _eur(_LIMIT) and [a.net for a in given_total.allocations] == [
        _eur("999999999999.98"), _eur("0.01")]
    assert Order(ref="o", currency="EUR", lines=lines, shipping=_eur("0.01")).total == _eur(_LIMIT)
