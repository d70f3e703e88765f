"""An order's whole-order checks (``Order._consistent``) against a plain reference.

The kit checks an order's lines and figures with quick paths (sums in C, one look at the limit when
every term has one sign) and walks line by line only to name a fault. ``_ReferenceOrder`` is the same
model with the checks written the plain way (each line, each sum step by step, every step against the
limit): every order, valid or not, must be accepted with the same figures or refused with the same
field and message by both.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import model_validator

from loyaltykit import Basket, InvalidRequestError, Line, Money, Order
from loyaltykit.errors import InvalidDataError
from loyaltykit.models import DiscountTarget, ProductQuery
from loyaltykit.money import MAX_AMOUNT, built, quantize, zero_amount

_SPEND = "spend_cashback"


def _plus(value: Decimal, currency: str) -> Decimal:
    if abs(value) > MAX_AMOUNT:
        Money._exact(value, currency)  # refused as Money arithmetic refuses it
    return value


def _summed(amounts: list[Decimal], currency: str) -> Decimal:
    value = zero_amount(currency)
    for amount in amounts:
        value = _plus(value + amount, currency)
    return value


def _reference_lines(lines: tuple[Line, ...], currency: str) -> None:
    seen: set[str] = set()
    subtotal = Decimal(0)
    for index, line in enumerate(lines):
        if line.unit_price.currency != currency:
            raise ValueError(f"lines.{index}.unit_price: currency {line.unit_price.currency} differs from {currency}")
        if line.id in seen:
            raise ValueError(f"lines.{index}.id: duplicate line id")
        seen.add(line.id)
        subtotal += line.unit_price.amount * line.quantity
        if subtotal > MAX_AMOUNT:
            raise ValueError(f"lines: the subtotal exceeds the kit's limit of {MAX_AMOUNT}")


def _money(amount: Decimal, currency: str) -> Money:
    return built(Money, {"amount": amount, "currency": currency}, {"amount", "currency"})


def _reference_consistent(order: Order) -> None:
    currency, lines, discounts, order_total = order.currency, order.lines, order.discounts, order.total
    _reference_lines(lines, currency)
    for name in ("total", "shipping"):
        value = getattr(order, name)
        if value is None:
            continue
        if value.currency != currency:
            raise ValueError(f"{name}: currency {value.currency} differs from {currency}")
        if value.amount < 0:
            raise ValueError(f"{name}: must not be negative")
    ids = {line.id for line in lines}
    for index, discount in enumerate(discounts):
        if discount.amount.currency != currency:
            raise ValueError(f"discounts.{index}.amount: currency differs from {currency}")
        if discount.line_id is not None and discount.line_id not in ids:
            raise ValueError(f"discounts.{index}.line_id: not a line of the order")
    zero = zero_amount(currency)
    shipping_discounts = _summed([d.amount.amount for d in discounts if d.target is DiscountTarget.SHIPPING], currency)
    shipping_total = zero
    if order.shipping is not None and not order.free_shipping:
        shipping_total = max(order.shipping.amount - shipping_discounts, zero)
    subtotals = [quantize(line.unit_price.amount * line.quantity, currency) for line in lines]
    extra = zero
    if order_total is not None and not discounts:
        subtotal = _summed(subtotals, currency)
        charged = _plus(subtotal + shipping_total, currency)
        extra = _plus(charged - order_total.amount, currency)
        if extra < 0:
            raise ValueError(f"total: more than the lines and shipping ({_money(charged, currency)})")
        if extra > subtotal:
            raise ValueError("total: less than the shipping charge")
    # line discounts stay on their line (capped at its subtotal), the rest is the pool
    own = {line.id: zero for line in lines}
    pool = extra
    for discount in discounts:
        amount = discount.amount.amount
        if discount.target is DiscountTarget.LINE and discount.line_id in own:
            own[discount.line_id] = _plus(own[discount.line_id] + amount, currency)
        elif discount.target is not DiscountTarget.SHIPPING:
            pool = _plus(pool + amount, currency)
    after = []
    for line, subtotal in zip(lines, subtotals, strict=True):
        if own[line.id] > subtotal:
            pool = _plus(pool + (own[line.id] - subtotal), currency)
            own[line.id] = subtotal
        after.append(subtotal - own[line.id])
    whole = _plus(sum(after, zero), currency)
    pool = min(pool, whole)
    goods_net = _plus(sum(after, zero) - pool, currency)
    computed = _plus(goods_net + shipping_total, currency)
    if order_total is None:
        object.__setattr__(order, "total", _money(computed, currency))
    elif type(order_total) is not Money or computed != order_total.amount:
        raise ValueError(f"total: {order_total} differs from subtotal - discounts + shipping "
                         f"({_money(computed, currency)})")
    paid = _summed([r.amount.amount for r in order.receipts
                    if r.operation == _SPEND and r.amount is not None and r.amount.currency == currency], currency)
    if paid > computed:
        raise ValueError(f"receipts: cashback and points pay {_money(paid, currency)}, more than the order's "
                         f"total ({_money(computed, currency)})")


class _ReferenceOrder(Order):
    """``Order`` with its whole-order check written the plain way (no points lines here)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _reference_consistent(self)
        return self


def _outcome(model: type[Order], data: dict[str, Any]) -> tuple[Any, ...]:
    try:
        order = model(**data)
    except InvalidDataError as exc:
        return ("refused", exc.field, exc.message)
    total = order.total
    assert total is not None
    return ("accepted", total.amount.as_tuple(), total.currency, order.model_dump(exclude={"total"}))


_PLACED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
_AMOUNTS = st.one_of(
    st.sampled_from(["0", "0.00", "-0.00", "0.01", "1.00", "4.95", "19.99", "999999999999.99", str(MAX_AMOUNT),
                     "500000000000.00", "-1.00"]),
    st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False).map(str),
)


def _price(draw: st.DrawFn, currency: str) -> Money:
    amount = draw(_AMOUNTS)
    if amount.startswith("-") and amount != "-0.00":
        # a negative unit price only comes in built past validation (model_construct): the checks still hold
        return Money.of(amount, currency)
    return Money.of(amount, draw(st.sampled_from([currency, currency, currency, "USD"])))


@st.composite
def order_data(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(st.sampled_from(["EUR", "JPY"]))
    count = draw(st.integers(min_value=1, max_value=5))
    ids = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=count, max_size=count))
    lines = []
    for line_id in ids:
        price = _price(draw, currency)
        quantity = draw(st.sampled_from([Decimal(1), Decimal(2), Decimal("0.5"), Decimal("0.333"), Decimal(10_000)]))
        if price.amount < 0:
            lines.append(Line.model_construct(id=line_id, sku="S", quantity=quantity, unit_price=price))
        else:
            lines.append(Line(id=line_id, sku="S", quantity=quantity, unit_price=price))
    data: dict[str, Any] = {"ref": "o", "currency": currency, "lines": tuple(lines), "placed_at": _PLACED}
    if draw(st.booleans()):
        data["shipping"] = Money.of(draw(st.sampled_from(["0", "4.95", "-1", "999999999999"])), currency)
    if draw(st.booleans()):
        data["free_shipping"] = True
    if draw(st.booleans()):
        data["total"] = _price(draw, currency)
    discounts = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        target = draw(st.sampled_from(["order", "line", "shipping"]))
        discount: dict[str, Any] = {"target": target, "amount": Money.of(draw(_AMOUNTS.filter(
            lambda a: not a.startswith("-"))), draw(st.sampled_from([currency, currency, "USD"])))}
        if target == "line":
            discount["line_id"] = draw(st.sampled_from(["a", "b", "z"]))
        discounts.append(discount)
    if discounts:
        data["discounts"] = discounts
    receipts = []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        receipts.append({"operation": draw(st.sampled_from([_SPEND, "redeem_voucher"])), "engine": "e",
                         "idempotency_key": "k", "amount": _price(draw, currency)})
    if receipts:
        data["receipts"] = receipts
    return data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=order_data())
def test_every_order_gets_the_reference_outcome(data):
    """Accepted with the same total (digits and exponent) and fields, or refused naming the same field
    with the same message, as by the plain checks."""
    assert _outcome(Order, data) == _outcome(_ReferenceOrder, data)


_EUR = "EUR"


def _line(line_id: str, amount: str, quantity: Any = 1, currency: str = _EUR) -> Line:
    return Line(id=line_id, sku="S", quantity=quantity, unit_price=Money.of(amount, currency))


@pytest.mark.parametrize(("lines", "field", "reason"), [
    # each fault is named where the line-by-line walk finds it first, whichever kind comes first
    ((_line("a", "1.00"), _line("a", "1.00", currency="USD")), "lines.1.unit_price", "currency USD differs from EUR"),
    ((_line("a", "1.00"), _line("b", "1.00"), _line("a", "1.00", currency="USD")), "lines.2.unit_price",
     "currency USD differs from EUR"),
    ((_line("a", "1.00"), _line("a", str(MAX_AMOUNT))), "lines.1.id", "duplicate line id"),
    ((_line("a", str(MAX_AMOUNT)), _line("b", "0.01"), _line("b", "1.00")), "lines",
     f"the subtotal exceeds the kit's limit of {MAX_AMOUNT}"),
    ((_line("a", str(MAX_AMOUNT)), _line("b", "0.01", currency="USD")), "lines.1.unit_price",
     "currency USD differs from EUR"),
    ((_line("a", "500000000000.00", 2), _line("b", "0.01")), "lines",
     f"the subtotal exceeds the kit's limit of {MAX_AMOUNT}"),
])
@pytest.mark.parametrize("model", [Basket, Order, ProductQuery])
def test_lines_are_refused_at_their_first_fault(lines, field, reason, model):
    data: dict[str, Any] = {"currency": _EUR}
    if model is ProductQuery:
        data["products"] = lines  # its messages name the lines as a basket's do (as they always have)
    else:
        data.update({"lines": lines, "id" if model is Basket else "ref": "x"})
    with pytest.raises(InvalidRequestError) as info:
        model(**data)
    assert (info.value.field, info.value.reason) == (field, reason)


def test_lines_at_the_limit_together_are_accepted():
    lines = (_line("a", "999999999999.00"), _line("b", "0.50", 2))
    for model in (Basket, Order):
        key = "id" if model is Basket else "ref"
        built_model = model(**{key: "x", "currency": _EUR, "lines": lines})
        assert built_model.subtotal == Money.of(MAX_AMOUNT, _EUR)


@pytest.mark.parametrize("signs", list(itertools.product(["1", "-1"], repeat=3)))
def test_a_sum_is_refused_at_the_first_step_beyond_the_limit(signs):
    """``_summed`` looks once at the whole sum only when every term has one sign."""
    from loyaltykit.models import _summed as summed

    amounts = [Decimal(sign) * Decimal("600000000000.00") for sign in signs]
    running = list(itertools.accumulate(amounts))
    if any(abs(value) > MAX_AMOUNT for value in running):
        with pytest.raises(InvalidRequestError):
            summed(amounts, _EUR)
    else:
        assert summed(amounts, _EUR) == sum(amounts)
    assert summed([], _EUR) == Decimal("0.00") and str(summed([], _EUR)) == "0.00"


def test_orders_given_every_field_share_no_state_through_their_fields_sets():
    """An order read back whole (every field given) and its lines share one fields set per model; the
    models are frozen, and a copy with changes marks them on a set of its own."""
    lines = (_line("a", "1.00"), _line("b", "2.00"))
    stored = Order(ref="o", currency=_EUR, lines=lines).model_dump_json()
    first, second = Order.model_validate_json(stored), Order.model_validate_json(stored)
    every_line_field, every_order_field = set(Line.model_fields), set(Order.model_fields)
    changed = first.lines[0].model_copy(update={"note": "x"})
    order_changed = second.model_copy(update={"note": "x"})
    assert changed.model_fields_set == every_line_field | {"note"}
    assert order_changed.model_fields_set == every_order_field | {"note"}
    for order in (first, second):
        assert order.model_fields_set == every_order_field
        assert [line.model_fields_set for line in order.lines] == [every_line_field] * 2
    with pytest.raises(InvalidRequestError):
        first.lines[1].note = "x"  # type: ignore[attr-defined]
    assert second.lines[1].model_fields_set == every_line_field
    # given some fields only, a model keeps the set of the fields it was given
    assert lines[0].model_fields_set == {"id", "sku", "quantity", "unit_price"}
    assert Order(ref="o", currency=_EUR, lines=lines).model_fields_set == {"ref", "currency", "lines"}
