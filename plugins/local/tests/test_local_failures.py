"""A broken database is an engine outage in the kit's vocabulary: evaluate fails open, writes raise typed errors."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from loyaltykit import (
    AsyncLoyalty,
    CashbackSpend,
    EngineUnavailableError,
    InvalidRequestError,
    Loyalty,
    LoyaltySettings,
    Order,
    Reversal,
    VoucherRedemption,
)
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.testing import basket, eur, line


@pytest.fixture
def broken(make_shop):
    """A shop whose ledger and customer tables vanished under it (a restored backup, a wrong URL)."""
    shop = make_shop("[points]\nper_currency_unit = 1\n")
    ann = shop.customer(cashback=eur(20))
    with shop.store.sqlalchemy_write() as conn:
        conn.execute(text("DROP TABLE lk_ledger"))
        conn.execute(text("DROP TABLE lk_customers"))
    return shop, ann


def test_evaluate_fails_open_on_a_broken_database(broken):
    shop, ann = broken
    cart = basket(line("1", "A", "10"), customer_id=ann)
    for quote in (shop.loyalty.evaluate(cart), asyncio.run(shop.async_facade().evaluate(cart))):
        assert quote.degraded and "engine_unavailable" in quote.degraded_reason
        assert quote.total == eur(10)


def test_writes_raise_typed_errors_on_a_broken_database(broken):
    shop, ann = broken
    cart = basket(line("1", "A", "10"), customer_id=ann)
    calls = [
        lambda: shop.loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref="O-1", amount=eur(5))),
        lambda: shop.loyalty.redeem_voucher(VoucherRedemption(code="NONE", order_ref="O-1", customer_id=ann)),
        lambda: shop.loyalty.identify(email="ann@example.com"),
    ]
    for call in calls:
        with pytest.raises(EngineUnavailableError) as info:
            call()
        assert info.value.retryable and "lk_" not in info.value.message
    order = Order.from_evaluation("O-1", cart, None)
    with pytest.raises(EngineUnavailableError):
        shop.loyalty.reverse(Reversal(order=order, kind="cancel", exported=False))


def test_a_duplicate_member_is_a_kit_error_without_the_email(make_shop):
    shop = make_shop()
    shop.customer(identifiers={"email": "ann.secret@example.com"})
    with pytest.raises(InvalidRequestError) as info:
        shop.customer(identifiers={"email": "ann.secret@example.com"})
    assert info.value.field == "email"
    assert "ann.secret" not in str(info.value) and "ann.secret" not in repr(info.value)


def test_the_evaluation_budget_holds_in_process(make_shop, monkeypatch):
    """A quote that takes longer than evaluate_budget fails open, as it would over HTTP: the shop
    stops waiting when the budget is spent, and the quote finishes unseen."""
    import threading
    import time

    shop = make_shop("[points]\nper_currency_unit = 1\n")
    ann = shop.customer()
    cart = basket(*(line(str(i), f"SKU-{i}", "1.00") for i in range(500)), customer_id=ann)
    # The engine is held until the shop has given up (a quote can finish within one GIL slice, so
    # a tiny budget alone would race with it).
    release, quoting = threading.Event(), shop.engine.evaluate

    def held(*args, **kwargs):
        release.wait(10)
        return quoting(*args, **kwargs)

    monkeypatch.setattr(shop.engine, "evaluate", held)
    hurried = LoyaltySettings(evaluate_budget=0.05)
    with Loyalty(hurried, adapter=LocalAdapter(engine=shop.engine), load_entry_points=False) as facade:
        started = time.monotonic()
        quote = facade.evaluate(cart)
        waited = time.monotonic() - started
        release.set()
        assert quote.degraded and quote.degraded_reason.startswith("timeout")
        assert quote.total == cart.subtotal
        assert waited < 5  # the budget, not the held engine, ended the wait
    release.clear()
    async_facade = AsyncLoyalty(hurried, adapter=LocalAdapter(engine=shop.engine), load_entry_points=False)

    async def evaluate_then_release():
        quote = await async_facade.evaluate(cart)
        release.set()  # before asyncio.run waits for its worker threads
        return quote

    quote = asyncio.run(evaluate_then_release())
    assert quote.degraded and quote.degraded_reason.startswith("timeout")
    # the same basket with time to spare is quoted in full (a generous budget: not a timing test)
    monkeypatch.undo()
    with Loyalty(LoyaltySettings(evaluate_budget=60), adapter=LocalAdapter(engine=shop.engine),
                 load_entry_points=False) as facade:
        assert not facade.evaluate(cart).degraded


def test_points_have_a_money_value_when_the_program_prices_them(make_shop):
    """With ``points.spend_value`` the quote says what the balance is worth, a points spend pays that
    much (the till deducts it), and a different value stated by the shop is refused before anything moves."""
    from decimal import Decimal

    from loyaltykit import BalanceKind, Order

    shop = make_shop('[points]\nper_currency_unit = 1\nspend_value = { EUR = "0.05" }\n')
    ann = shop.customer(points=400)
    cart = basket(line("1", "A", "30.00"), customer_id=ann)
    quote = shop.loyalty.evaluate(cart)
    points = next(b for b in quote.spendable if b.kind is BalanceKind.POINTS)
    assert points.value == eur("20.00") and points.value_of(Decimal(100)) == eur("5.00")
    with pytest.raises(InvalidRequestError) as info:
        shop.loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref="O-1", kind="points", points=100,
                                                  points_value=eur("9.00"), amount_due=quote.total))
    assert info.value.field == "points_value" and shop.points(ann) == 400
    paid = shop.loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref="O-1", kind="points", points=100,
                                                     points_value=points.value_of(Decimal(100)),
                                                     amount_due=quote.total))
    assert paid.value == eur("5.00") and paid.receipt.amount == eur("5.00")
    unpriced = shop.loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref="O-2", kind="points", points=20))
    assert unpriced.value == eur("1.00"), "without a stated value the program's rate prices the spend"
    order = Order.from_evaluation("O-1", cart, quote, [paid.receipt])
    assert order.amount_due == eur("25.00")
