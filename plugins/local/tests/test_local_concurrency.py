"""Races: 100 simultaneous redemptions of one single-use voucher, and concurrent spends."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import func, select

from loyaltykit import (
    BalanceKind,
    CashbackSpend,
    InsufficientBalanceError,
    Order,
    UsageLimitReachedError,
    VoucherAlreadyRedeemedError,
    VoucherRedemption,
)
from loyaltykit_local.tables import redemptions
from loyaltykit_local.testing import HISTORY_RULES, eur, line

PROGRAM = """
[[vouchers]]
code = "ONLY-ONE"
kind = "fixed"
amount = 5

[[vouchers]]
code = "TEN-TIMES"
kind = "fixed"
amount = 1
usage_limit = 10
"""
RACERS = 100


def _race(count, work):
    """Run ``work(i)`` on ``count`` threads released together; return (results, errors)."""
    start = threading.Barrier(count)
    results, errors = [], []

    def one(index):
        start.wait()
        try:
            results.append(work(index))
        except Exception as exc:  # collected and checked by the caller
            errors.append(exc)

    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    return results, errors


def _rows(shop, code):
    with shop.store.sqlalchemy_read() as conn:
        return conn.execute(select(func.count()).select_from(redemptions).where(redemptions.c.code == code)).scalar_one()


def test_threads_one_single_use_voucher_exactly_one_wins(make_shop):
    shop = make_shop(PROGRAM)
    results, errors = _race(RACERS, lambda i: shop.loyalty.redeem_voucher(
        VoucherRedemption(code="ONLY-ONE", order_ref=f"O-{i}")))
    assert len(results) == 1
    assert len(errors) == RACERS - 1 and all(isinstance(e, VoucherAlreadyRedeemedError) for e in errors)
    assert shop.engine.voucher_uses("ONLY-ONE") == 1 and _rows(shop, "ONLY-ONE") == 1


def test_threads_multi_use_voucher_never_exceeds_its_limit(make_shop):
    shop = make_shop(PROGRAM)
    results, errors = _race(40, lambda i: shop.loyalty.redeem_voucher(
        VoucherRedemption(code="TEN-TIMES", order_ref=f"O-{i}")))
    assert len(results) == 10 and all(isinstance(e, UsageLimitReachedError) for e in errors)
    assert shop.engine.voucher_uses("TEN-TIMES") == 10


async def test_async_facade_one_single_use_voucher_exactly_one_wins(make_shop):
    shop = make_shop(PROGRAM)
    async with shop.async_facade() as loyalty:
        outcomes = await asyncio.gather(
            *(loyalty.redeem_voucher(VoucherRedemption(code="ONLY-ONE", order_ref=f"O-{i}")) for i in range(RACERS)),
            return_exceptions=True,
        )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and all(isinstance(e, VoucherAlreadyRedeemedError) for e in lost)
    assert shop.engine.voucher_uses("ONLY-ONE") == 1 and _rows(shop, "ONLY-ONE") == 1


def test_threads_same_key_burns_once(make_shop):
    shop = make_shop(PROGRAM)
    results, errors = _race(30, lambda i: shop.loyalty.redeem_voucher(
        VoucherRedemption(code="TEN-TIMES", order_ref="SAME-ORDER")))
    assert errors == [] and len(results) == 30
    assert sum(not r.receipt.replayed for r in results) == 1
    assert len({r.receipt.engine_ref for r in results}) == 1
    assert shop.engine.voucher_uses("TEN-TIMES") == 1


def test_threads_concurrent_spends_never_overdraw(make_shop):
    shop = make_shop("")
    ann = shop.customer(cashback=eur("20.00"), points=500)
    results, errors = _race(60, lambda i: shop.loyalty.spend_cashback(
        CashbackSpend(customer_id=ann, order_ref=f"O-{i}", amount=eur("1.00"))))
    assert len(results) == 20 and all(isinstance(e, InsufficientBalanceError) for e in errors)
    assert shop.cashback(ann) == eur(0)
    assert sorted(r.remaining.money.amount for r in results) == [Decimal(n) for n in range(20)]


async def test_async_concurrent_point_spends_never_overdraw(make_shop):
    shop = make_shop("")
    ann = shop.customer(points=500)
    async with shop.async_facade() as loyalty:
        outcomes = await asyncio.gather(
            *(loyalty.spend_cashback(CashbackSpend(customer_id=ann, order_ref=f"O-{i}", kind=BalanceKind.POINTS,
                                                   points=Decimal(30))) for i in range(40)),
            return_exceptions=True,
        )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(won) == 16 and all(isinstance(o, InsufficientBalanceError) for o in outcomes if o not in won)
    assert shop.points(ann) == 500 - 16 * 30


HISTORY_PROGRAM = "[points]\nper_currency_unit = 1\n" + HISTORY_RULES


def test_threads_first_orders_of_one_customer_get_each_bonus_once(make_shop):
    # Every racer's transaction waits for the one before it: each must see the orders and grants it
    # committed, or two of them would both take the "first order" and "once" bonuses.
    shop = make_shop(HISTORY_PROGRAM)
    customer = shop.customer()
    racers = 20
    results, errors = _race(racers, lambda i: shop.loyalty.export_orders([Order(
        ref=f"O-{i}", currency="EUR", lines=(line("1", "A", "10"),), total=eur("10"), customer_id=customer)]))
    assert not errors
    earned = sorted(int(report.results[0].points_earned) for report in results)
    assert [report.results[0].status for report in results] == ["accepted"] * racers
    assert earned == [10] * (racers - 1) + [160]
    assert shop.points(customer) == 10 * racers + 150
