"""On a SQLite file a shop's process runs the embedded engine without importing SQLAlchemy: start-up
with the schema check, identify, evaluate, redeem, spend, checkout and export, refund and cancel, the
wallet. (Migrating and seeding, in the shop's deploy step and back office, use SQLAlchemy.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SETUP = """
from loyaltykit_local.demo import demo_program_path, seed
from loyaltykit_local.program import load_program
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store

store = Store(URL)  # migrates
seed(LocalEngine(store, load_program(demo_program_path())))
store.dispose()
"""

SHOP = """
import sys

from loyaltykit import (Basket, CashbackSpend, Line, Loyalty, Money, Order, RefundLine, Reversal, VoucherError,
                        VoucherRedemption)
from loyaltykit.members import WalletQuery

def eur(amount):
    return Money.of(amount, "EUR")

with Loyalty() as loyalty:  # settings from the environment; the schema is checked at start
    assert loyalty.identify(email="nobody@example.com") is None
    ann = loyalty.identify(email="ann@example.com")
    basket = Basket(id="cart-42", currency="EUR", customer_id=ann.id, channel="web", shipping=eur("4.90"), lines=[
        Line(id="1", sku="BEANS-ESPRESSO-1KG", quantity=2, unit_price=eur("18.00"), category="coffee"),
        Line(id="2", sku="BEANS-HOUSE-1KG", quantity=1, unit_price=eur("14.00"), category="coffee"),
        Line(id="3", sku="FILTER-100", quantity=1, unit_price=eur("4.00"), category="accessories"),
        Line(id="4", sku="MUG-CLUB", quantity=1, unit_price=eur("0.00")),
    ], coupon_codes=("WELCOME10",))
    quote = loyalty.evaluate(basket)
    assert not quote.degraded and quote.discounts and quote.points_lines, quote
    try:
        loyalty.redeem_voucher(VoucherRedemption(code="SUMMER99", order_ref="ORD-1", customer_id=ann.id, basket=basket))
        raise AssertionError("an unknown code was accepted")
    except VoucherError:
        pass
    redemption = loyalty.redeem_voucher(VoucherRedemption(code="WELCOME10", order_ref="ORD-1", customer_id=ann.id,
                                                          basket=basket))
    spend = loyalty.spend_cashback(CashbackSpend(customer_id=ann.id, order_ref="ORD-1", amount=eur("5.00"),
                                                 amount_due=quote.total))
    beans = loyalty.spend_cashback(CashbackSpend.for_points_lines(quote, customer_id=ann.id, order_ref="ORD-1"))
    order = Order.from_evaluation("ORD-1", basket, quote, [redemption.receipt, spend.receipt, beans.receipt])
    assert loyalty.export_orders([order]).results[0].status == "accepted"
    assert loyalty.export_orders([order]).results[0].status == "duplicate"
    refund = loyalty.reverse(Reversal(order=order, kind="refund", lines=(RefundLine(line_id="3", quantity=1),),
                                      reference="RMA-7"))
    assert refund.refund is not None

    second = basket.model_copy(update={"id": "cart-43", "coupon_codes": (), "lines": basket.lines[:3]})
    second_quote = loyalty.evaluate(second)
    orders = [Order.from_evaluation(f"ORD-{n}", second, second_quote) for n in range(2, 5)]
    assert [r.status for r in loyalty.export_orders(orders).results] == ["accepted"] * 3  # one transaction
    cancelled = loyalty.reverse(Reversal(order=orders[0], kind="cancel", reference="cancelled"))
    assert cancelled.points_clawed_back > 0
    assert loyalty.wallet(WalletQuery(customer_id=ann.id)).offers
    assert loyalty.identify(email="ann@example.com").points != ann.points

loaded = sorted(name for name in sys.modules if name.split(".")[0] == "sqlalchemy")
print(loaded[:5])
sys.exit(1 if loaded else 0)
"""


def _run(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_a_shop_on_a_sqlite_file_never_imports_sqlalchemy(tmp_path: Path) -> None:
    from loyaltykit_local.demo import demo_program_path

    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    env = {**os.environ, "LOYALTYKIT_ENGINE": "local", "LOYALTYKIT_LOCAL_DATABASE_URL": url,
           "LOYALTYKIT_LOCAL_PROGRAM_FILE": str(demo_program_path())}
    setup = _run(f"URL = {url!r}\n{SETUP}", env, tmp_path)
    assert setup.returncode == 0, setup.stderr[-3000:]
    shop = _run(SHOP, env, tmp_path)
    assert shop.returncode == 0, shop.stdout + shop.stderr[-3000:]


START = """
import json, sys

from loyaltykit import Loyalty

Loyalty().close()
from loyaltykit_local.program import Program, Rule

print(json.dumps({"modules": sorted(name for name in sys.modules if name.split(".")[0] == "sqlalchemy"
                                    or name in ("loyaltykit_local.demo", "loyaltykit_local.report",
                                                "loyaltykit_local.tables", "loyaltykit_local.statements")),
                  "program_validator": Program.__pydantic_complete__, "rule_validator": Rule.__pydantic_complete__}))
"""


def _start(tmp_path: Path, **settings: str) -> dict[str, object]:
    from loyaltykit_local.store import Store

    url = f"sqlite:///{tmp_path / 'start.sqlite3'}"
    store = Store(url, create=False)
    store.migrate()
    store.dispose()
    env = {name: value for name, value in os.environ.items() if name != "LOYALTYKIT_LOCAL_PROGRAM_FILE"}
    env.update(LOYALTYKIT_ENGINE="local", LOYALTYKIT_LOCAL_DATABASE_URL=url, **settings)
    started = _run(START, env, tmp_path)
    assert started.returncode == 0, started.stderr[-3000:]
    loaded: dict[str, object] = json.loads(started.stdout.strip().splitlines()[-1])
    return loaded


def test_a_start_on_the_empty_program_builds_no_program_validator_and_loads_no_admin_module(tmp_path: Path) -> None:
    # what start-up does not need stays unbuilt and unloaded: the program's validators (made when a
    # program is first validated), SQLAlchemy, the schema's tables, reports and the demo
    assert _start(tmp_path) == {"modules": [], "program_validator": False, "rule_validator": False}


def test_a_start_with_a_program_file_validates_it(tmp_path: Path) -> None:
    # the check above is not vacuous: a program file is validated at start, which builds the validator
    from loyaltykit_local.demo import demo_program_path

    loaded = _start(tmp_path, LOYALTYKIT_LOCAL_PROGRAM_FILE=str(demo_program_path()))
    assert loaded["program_validator"] is True and loaded["modules"] == []
