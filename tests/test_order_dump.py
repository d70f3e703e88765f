"""Reading back an order the kit dumped itself (``order_from_dump``) gives what validation gives.

The outbox reads a payload it proved it wrote (its digest matches) without a validation run. That
order must be indistinguishable from the validated one: the same models, fields, values (Decimal
digits and exponent, datetime zone), the same fields marked set, the same dump. Anything not shaped as
such a dump is not built (None), and is validated in full by the caller.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from pydantic import BaseModel

from loyaltykit import InvalidRequestError, Line, Money, Order, wire
from loyaltykit.models import order_from_dump

_SPEND = "spend_cashback"


def _same(got: Any, expected: Any, path: str = "order") -> None:
    """Deep comparison: same types everywhere, models with the same fields set and the same values."""
    assert type(got) is type(expected), path
    if isinstance(expected, BaseModel):
        assert got.model_fields_set == expected.model_fields_set, path
        assert got.__pydantic_extra__ is None and got.__pydantic_private__ is None, path
        assert list(got.__dict__) == list(expected.__dict__), path
        for name, value in expected.__dict__.items():
            _same(got.__dict__[name], value, f"{path}.{name}")
    elif isinstance(expected, tuple | list):
        assert len(got) == len(expected), path
        for index, (a, b) in enumerate(zip(got, expected, strict=True)):
            _same(a, b, f"{path}.{index}")
    elif isinstance(expected, dict):
        assert list(got) == list(expected), path
        for key, value in expected.items():
            _same(got[key], value, f"{path}.{key}")
    elif isinstance(expected, datetime):
        assert got == expected and repr(got) == repr(expected), path  # the zone too
    else:
        assert got == expected and repr(got) == repr(expected), path  # Decimal: digits and exponent


def _read_back(order: Order) -> tuple[Order, Order]:
    text = order.model_dump_json()
    trusted = order_from_dump(wire.loads(text))
    assert trusted is not None
    return trusted, Order(**wire.loads(text))


def _money(draw: st.DrawFn, currency: str, top: int = 500) -> Money:
    places = 0 if currency == "JPY" else 2
    return Money.of(draw(st.decimals(min_value=0, max_value=top, places=places, allow_nan=False,
                                     allow_infinity=False)), currency)


@st.composite
def orders(draw: st.DrawFn) -> Order:
    currency = draw(st.sampled_from(["EUR", "JPY", "KWD"]))
    count = draw(st.integers(min_value=1, max_value=4))
    lines = []
    for index in range(count):
        price = Money.zero(currency) if index == 0 and draw(st.booleans()) else _money(draw, currency)
        lines.append(Line(
            id=f"l{index}", sku=draw(st.sampled_from(["A", " B ", "ß-1"])),
            quantity=draw(st.sampled_from([1, "2", Decimal("0.125"), Decimal("3.50"), "10000"])),
            unit_price=price, category=draw(st.none() | st.just("coffee")), name=draw(st.none() | st.text(max_size=5)),
            attributes=draw(st.dictionaries(st.sampled_from(["tax", "x"]), st.text(max_size=4), max_size=2)),
        ))
    data: dict[str, Any] = {"ref": "o-1", "currency": currency, "lines": tuple(lines)}
    if draw(st.booleans()):
        data["shipping"] = _money(draw, currency, 20)
    data["free_shipping"] = draw(st.booleans())
    discounts = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        target = draw(st.sampled_from(["order", "line", "shipping"]))
        discount: dict[str, Any] = {"target": target, "amount": _money(draw, currency, 5),
                                    "percent": draw(st.none() | st.just(Decimal("10"))),
                                    "label": draw(st.none() | st.just("ten")), "code": draw(st.none() | st.just("C1"))}
        if target == "line":
            discount["line_id"] = "l0"
        discounts.append(discount)
    data["discounts"] = discounts
    data["free_items"] = draw(st.lists(st.builds(dict, sku=st.just("GIFT"), quantity=st.sampled_from([1, "0.5"])),
                                       max_size=2))
    data["voucher_codes"] = draw(st.lists(st.sampled_from(["C1", "C2"]), max_size=2, unique=True))
    receipts: list[dict[str, Any]] = []
    if lines[0].unit_price.is_zero() and draw(st.booleans()):
        data["points_lines"] = [{"line_id": "l0", "quantity": lines[0].quantity, "points": Decimal(250)}]
        receipts.append({"operation": _SPEND, "engine": "e", "idempotency_key": "k1", "points": Decimal(250),
                         "line_ids": ["l0"], "amount": Money.zero(currency)})
    if draw(st.booleans()):
        receipts.append({"operation": "redeem_voucher", "engine": "e", "idempotency_key": "k2", "code": "C1",
                         "engine_ref": "r", "replayed": draw(st.booleans())})
    data["receipts"] = receipts
    data["customer_id"] = draw(st.none() | st.just("c-1"))
    data["channel"] = draw(st.none() | st.just("web"))
    data["idempotency_key"] = draw(st.none() | st.just("key-1"))
    zone = draw(st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30))]))
    data["placed_at"] = datetime(2026, 3, 4, 5, 6, 7, draw(st.integers(0, 999_999)), tzinfo=zone)
    if draw(st.booleans()):
        with contextlib.suppress(InvalidRequestError):
            data["total"] = Order(**data).total
    try:
        return Order(**data)
    except InvalidRequestError:
        assume(False)
        raise


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(order=orders())
def test_an_order_read_back_from_its_dump_is_the_validated_one(order):
    trusted, validated = _read_back(order)
    _same(trusted, validated)
    assert trusted == validated == order
    assert trusted.model_dump_json() == validated.model_dump_json() == order.model_dump_json()
    assert trusted.allocations == validated.allocations and trusted.amount_due == validated.amount_due


def _dump() -> dict[str, Any]:
    order = Order(ref="o", currency="EUR", lines=(Line(id="1", sku="A", quantity=2, unit_price=Money.of("1.50", "EUR")),),
                  discounts=[{"target": "order", "amount": Money.of("0.50", "EUR")}])
    data = wire.loads(order.model_dump_json())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("change", [
    lambda d: d.pop("channel"),
    lambda d: d.update(note="x"),
    lambda d: d["lines"][0].pop("name"),
    lambda d: d["lines"][0].update(extra="x"),
    lambda d: d["lines"][0]["unit_price"].update(amount=1.5),
    lambda d: d["lines"][0]["unit_price"].update(note="x"),
    lambda d: d["lines"][0].update(quantity="two"),
    lambda d: d["lines"][0].update(id=1),
    lambda d: d.update(lines=[]),
    lambda d: d.update(lines=["x"]),
    lambda d: d.update(total=None),
    lambda d: d.update(placed_at="yesterday"),
    lambda d: d.update(free_shipping="no"),
    lambda d: d["discounts"][0].update(target="everything"),
    lambda d: d["discounts"][0].pop("label"),
    lambda d: d.update(receipts=[{"operation": _SPEND}]),
    lambda d: d.update(voucher_codes=[1]),
])
def test_anything_not_shaped_as_a_dump_is_not_built(change):
    data = _dump()
    assert order_from_dump(_dump()) is not None
    change(data)
    assert order_from_dump(data) is None


@pytest.mark.parametrize("data", [None, [], "order", 3])
def test_a_dump_is_an_object(data):
    assert order_from_dump(data) is None
