"""The ledger: spends, expiry by date, history, and the balance-equals-entries property."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from loyaltykit import (
    BalanceKind,
    CashbackSpend,
    CustomerNotFoundError,
    InsufficientBalanceError,
    InvalidRequestError,
    Order,
    RefundLine,
    Reversal,
)
from loyaltykit_local.ledger import PointsEntry, expired_unrecorded, expiry_for
from loyaltykit_local.program import PointsPolicy
from loyaltykit_local.tables import ledger
from loyaltykit_local.testing import basket, eur, line

EXPIRING = "[points]\nper_currency_unit = 1\nexpire_after_days = 30\n"


def spend(shop, customer_id, *, amount=None, points=None, order_ref="O-1", key=None):
    kind = BalanceKind.POINTS if points is not None else BalanceKind.CASHBACK
    return shop.loyalty.spend_cashback(CashbackSpend(customer_id=customer_id, order_ref=order_ref, kind=kind,
                                                     amount=amount, points=points, idempotency_key=key))


def test_cashback_pays_part_and_then_all_of_what_is_left(make_shop):
    shop = make_shop("")
    ann = shop.customer(cashback=eur("12.00"))
    first = spend(shop, ann, amount=eur("5.00"))
    assert first.remaining.money == eur("7.00") and first.receipt.engine_ref
    spend(shop, ann, amount=eur("7.00"), order_ref="O-2")
    assert shop.cashback(ann) == eur(0)


def test_spend_above_balance_is_refused_and_changes_nothing(make_shop):
    shop = make_shop("")
    ann = shop.customer(identifiers={"email": "ann@example.com"}, cashback=eur("3.00"), points=10)
    with pytest.raises(InsufficientBalanceError) as info:
        spend(shop, ann, amount=eur("3.01"))
    assert "ann@example.com" not in str(info.value) and "3.00 EUR" in str(info.value)
    with pytest.raises(InsufficientBalanceError):
        spend(shop, ann, points=Decimal(11))
    assert shop.cashback(ann) == eur(3) and shop.points(ann) == 10


def test_points_spend_and_whole_points_only(make_shop):
    shop = make_shop("")
    ann = shop.customer(points=100)
    result = spend(shop, ann, points=Decimal(40))
    assert result.kind is BalanceKind.POINTS and result.remaining.points == 60
    with pytest.raises(InvalidRequestError, match="whole points"):
        spend(shop, ann, points=Decimal("1.5"), order_ref="O-2")


def test_spend_is_exactly_once_per_key(make_shop):
    shop = make_shop("")
    ann = shop.customer(cashback=eur(10))
    spend(shop, ann, amount=eur(4))
    again = spend(shop, ann, amount=eur(4))
    assert again.receipt.replayed and shop.cashback(ann) == eur(6)
    spend(shop, ann, amount=eur(4), key="other-key")
    assert shop.cashback(ann) == eur(2)


def test_spend_for_an_unknown_customer(make_shop):
    with pytest.raises(CustomerNotFoundError):
        spend(make_shop(""), "GHOST", amount=eur(1))


def test_cashback_spend_limits_per_transaction(make_shop):
    shop = make_shop("[cashback]\nspend_min = 2\nspend_max = 50\n")
    ann = shop.customer(cashback=eur(100))
    with pytest.raises(InvalidRequestError, match="smallest"):
        spend(shop, ann, amount=eur("1.99"))
    with pytest.raises(InvalidRequestError, match="largest"):
        spend(shop, ann, amount=eur("50.01"))
    spend(shop, ann, amount=eur(50))
    assert shop.cashback(ann) == eur(50)


def test_points_expire_by_date(make_shop, clock):
    shop = make_shop(EXPIRING)
    ann = shop.customer()
    cart = basket(line("1", "A", "100"), customer_id=ann)
    shop.loyalty.export_orders([Order.from_evaluation("O-1", cart, shop.loyalty.evaluate(cart))])
    clock.advance(days=20)
    shop.loyalty.export_orders([Order.from_evaluation("O-2", cart, shop.loyalty.evaluate(cart))])
    assert shop.points(ann) == 200
    spend(shop, ann, points=Decimal(50), order_ref="O-3")  # taken from the lot that expires first
    clock.advance(days=10)  # the first lot (100, 50 of it spent) expires now
    assert shop.points(ann) == 100
    assert shop.loyalty.identify(membership="none") is None
    before = shop.engine.snapshot()
    assert shop.loyalty.evaluate(cart).spendable[0].points == 100
    assert shop.engine.snapshot() == before  # a read reports the expiry without writing it
    assert shop.engine.expire_points() == 50
    history = shop.engine.history(ann)
    assert [(h.entry, h.amount) for h in history if h.balance == "points"] == [
        ("earn", 100), ("earn", 100), ("burn", -50), ("expire", -50)]
    clock.advance(days=30)
    assert shop.points(ann) == 0
    with pytest.raises(InsufficientBalanceError):
        spend(shop, ann, points=Decimal(1), order_ref="O-4")
    assert [h.amount for h in shop.engine.history(ann) if h.entry == "expire"] == [-50, -100]


def test_an_export_records_the_points_expired_since_the_last_recorded_expiry(make_shop, clock):
    shop = make_shop(EXPIRING)
    ann = shop.customer()
    cart = basket(line("1", "A", "100"), customer_id=ann)

    def export(ref: str) -> None:
        shop.loyalty.export_orders([Order.from_evaluation(ref, cart, shop.loyalty.evaluate(cart))])

    def expired() -> list[int]:
        return [h.amount for h in shop.engine.history(ann) if h.entry == "expire"]

    export("O-1")
    export("O-2")
    assert expired() == []  # nothing due yet
    clock.advance(days=31)  # both lots expired, no expiry recorded before
    export("O-3")
    assert expired() == [-200]
    export("O-4")
    assert expired() == [-200]  # nothing more expired since
    clock.advance(days=31)  # the lots of O-3 and O-4 expired after the recorded expiry
    export("O-5")
    assert expired() == [-200, -200]
    assert shop.points(ann) == 100


def test_history_lists_date_order_and_amount(make_shop):
    shop = make_shop("[points]\nper_currency_unit = 2\n[cashback]\nearn_percent = 10\n")
    ann = shop.customer(cashback=eur(5))
    cart = basket(line("1", "A", "10"), line("2", "B", "10"), customer_id=ann)
    order = Order.from_evaluation("O-7", cart, shop.loyalty.evaluate(cart))
    spend(shop, ann, amount=eur(2), order_ref="O-7")
    shop.loyalty.export_orders([order])
    shop.loyalty.reverse(Reversal(order=order, kind="refund", lines=(RefundLine(line_id="2", quantity=1),), reference="R"))
    rows = [(h.balance, h.entry, h.amount, h.order_ref) for h in shop.engine.history(ann)]
    assert rows == [
        ("cashback", "earn", 500, None),
        ("cashback", "burn", -200, "O-7"),
        ("points", "earn", 40, "O-7"),
        ("cashback", "earn", 200, "O-7"),
        ("cashback", "reverse", 100, "O-7"),
        ("points", "reverse", -20, "O-7"),
        ("cashback", "reverse", -100, "O-7"),
    ]
    assert all(h.at == shop.clock.now for h in shop.engine.history(ann))


def test_fifo_expiry_arithmetic():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    soon, later = now - timedelta(days=1), now + timedelta(days=1)
    assert expired_unrecorded([PointsEntry(100, soon), PointsEntry(100, later), PointsEntry(-150)], now) == 0
    assert expired_unrecorded([PointsEntry(100, later), PointsEntry(100, soon), PointsEntry(-50)], now) == 50
    assert expired_unrecorded([PointsEntry(100, None), PointsEntry(30, soon)], now) == 30
    assert expired_unrecorded([PointsEntry(30, soon), PointsEntry(-30)], now) == 0


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("credit"), st.integers(1, 500)),
        st.tuples(st.just("spend"), st.integers(1, 500)),
        st.tuples(st.just("order"), st.integers(1, 300)),
        st.tuples(st.just("refund"), st.integers(0, 10)),
        st.tuples(st.just("wait"), st.integers(1, 20)),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPERATIONS)
def test_balance_is_the_sum_of_entries_and_never_negative(make_shop, operations):
    shop = make_shop(EXPIRING, name=f"prop-{uuid.uuid4().hex}")  # a fresh database per example
    ann = shop.customer()
    orders: list[Order] = []
    refunded: set[str] = set()
    for index, (operation, value) in enumerate(operations):
        if operation == "credit":
            shop.engine.credit(ann, points=value)
        elif operation == "spend":
            with contextlib.suppress(InsufficientBalanceError):
                spend(shop, ann, points=Decimal(value), order_ref=f"S-{index}")
        elif operation == "order":
            cart = basket(line("1", "A", str(value)), line("2", "B", "10"), customer_id=ann)
            order = Order.from_evaluation(f"O-{index}", cart, shop.loyalty.evaluate(cart))
            shop.loyalty.export_orders([order])
            orders.append(order)
        elif operation == "refund" and orders:
            order = orders[value % len(orders)]
            reversal = Reversal(order=order, kind="refund", lines=(RefundLine(line_id="1", quantity=1),),
                                reference=f"R-{index}")
            if order.ref in refunded:  # its one unit came back already: a second refund is refused
                with pytest.raises(InvalidRequestError):
                    shop.loyalty.reverse(reversal)
            else:
                shop.loyalty.reverse(reversal)
                refunded.add(order.ref)
        else:
            shop.clock.advance(days=value)
        shop.engine.expire_points()
        with shop.store.sqlalchemy_read() as conn:
            total = conn.execute(select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
                ledger.c.customer_id == ann, ledger.c.balance == "points")).scalar_one()
        assert shop.points(ann) == total >= 0


@settings(max_examples=200, deadline=None)
@given(days=st.one_of(st.none(), st.integers(1, 400)),
       fixed=st.one_of(st.none(), st.integers(-400, 400)), offset=st.sampled_from([0, 2]))
def test_points_expire_at_the_earlier_of_their_age_and_the_fixed_date(days, fixed, offset):
    credited = datetime(2025, 5, 15, 12, tzinfo=UTC)
    zone = timezone(timedelta(hours=offset))  # the fixed date as the program file wrote it
    on = (credited + timedelta(days=fixed)).astimezone(zone) if fixed is not None else None
    policy = PointsPolicy(per_currency_unit=1, expire_after_days=days, expire_on=on)
    candidates = [credited + timedelta(days=days)] if days is not None else []
    if on is not None and credited < on:
        candidates.append(on)
    assert expiry_for(policy, credited) == (min(candidates) if candidates else None)
    if fixed == days and days is not None:
        assert expiry_for(policy, credited).tzinfo is UTC  # equal dates: the age's, as min() keeps the first
