"""The plugin as a shop meets it: entry points, capabilities, the demo, export reports, parity, PII."""

from __future__ import annotations

import io
import logging
from importlib.metadata import entry_points

import pytest
from rich.console import Console

from loyaltykit import (
    AsyncLoyalty,
    ExportStatus,
    IdentifierKind,
    Loyalty,
    LoyaltySettings,
    Order,
)
from loyaltykit.testing import EngineHarness
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.demo import run as run_demo
from loyaltykit_local.testing import basket, eur, line, make_harness


def test_entry_points_and_capabilities(tmp_path):
    assert entry_points(group="loyaltykit")["local"].load() is LocalAdapter
    assert entry_points(group="loyaltykit.demo")["local"].load() is run_demo
    assert entry_points(group="loyaltykit.harness")["local"].load() is make_harness
    settings = LoyaltySettings(engine="local", engines={"local": {"database_url": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                                                                  "create_schema": True}})
    with Loyalty(settings) as loyalty:
        assert loyalty.engine == "local" and loyalty.adapter.in_process
        caps = loyalty.capabilities
        assert caps.identify_by == frozenset(IdentifierKind)
        assert set(caps.supported()) >= {"evaluate", "wallet_offers", "earn_preview", "price_products",
                                         "redeem_voucher", "spend_cashback", "spend_points", "export_orders",
                                         "cancel", "refund", "partial_refund"}
        assert loyalty.identify(email="nobody@example.com") is None


def test_identify_by_every_kind(make_shop):
    shop = make_shop("")
    ids = {"email": "Ann@Example.com", "phone": "+49 151 2345678", "card": "4000 1234", "membership": "BC-1",
           "external_id": "crm-77"}
    ann = shop.customer(identifiers=ids, tier="gold", segments=["vip"])
    for kind, value in ids.items():
        found = shop.loyalty.identify(**{kind: value})
        assert found is not None and found.id == ann and found.segments == ("vip",)
    assert "Ann" not in repr(found) and "example.com" not in repr(found)


def test_evaluate_changes_nothing(make_shop):
    shop = make_shop('[[rules]]\nid = "g"\nwhen = { not_previously_granted = true }\nthen = { action = "free_gift", sku = "G" }\n'
                     '[[vouchers]]\ncode = "V"\nkind = "fixed"\namount = 1\n')
    ann = shop.customer(points=10)
    before = shop.engine.snapshot()
    shop.loyalty.evaluate(basket(line("1", "A", "10"), customer_id=ann, codes=("V",)))
    assert shop.engine.snapshot() == before


def test_export_reports_each_order(make_shop):
    shop = make_shop('currencies = ["EUR", "USD"]\n[points]\nper_currency_unit = 1\n')
    ann = shop.customer()
    good = Order.from_evaluation("O-1", basket(line("1", "A", "10"), customer_id=ann), None)
    ghost = Order.from_evaluation("O-2", basket(line("1", "A", "10"), customer_id="GHOST"), None)
    guest = Order.from_evaluation("O-3", basket(line("1", "A", "10")), None)
    report = shop.loyalty.export_orders([good, ghost, guest])
    assert [r.status for r in report.results] == [ExportStatus.ACCEPTED, ExportStatus.REJECTED, ExportStatus.ACCEPTED]
    assert report.results[1].error_code == "customer_not_found" and report.results[1].reason
    again = shop.loyalty.export_orders([good, guest])
    assert [r.status for r in again.results] == [ExportStatus.DUPLICATE, ExportStatus.DUPLICATE]
    assert shop.engine.orders_received() == ["O-1", "O-3"] and shop.points(ann) == 10


async def test_sync_and_async_facades_agree(make_shop):
    shop = make_shop('[points]\nper_currency_unit = 1\n[[rules]]\nid = "r"\nthen = { action = "percent_off_order", percent = 10 }\n')
    ann = shop.customer(identifiers={"email": "ann@example.com"})
    cart = basket(line("1", "A", "25"), customer_id=ann)
    sync_quote = shop.loyalty.evaluate(cart)
    async with shop.async_facade() as loyalty:
        assert isinstance(loyalty, AsyncLoyalty)
        assert await loyalty.evaluate(cart) == sync_quote
        assert (await loyalty.identify(email="ann@example.com")) == shop.loyalty.identify(email="ann@example.com")


def test_no_customer_identifiers_in_logs_or_errors(make_shop, caplog):
    shop = make_shop("")
    caplog.set_level(logging.DEBUG)
    shop.customer(identifiers={"email": "secret.person@example.com", "phone": "+4915112345678"})
    shop.loyalty.identify(email="secret.person@example.com")
    shop.loyalty.identify(phone="+4915112345678")
    assert "secret.person" not in caplog.text and "4915112345678" not in caplog.text


def test_harness_satisfies_the_protocol():
    harness = make_harness()
    try:
        assert isinstance(harness, EngineHarness)
        assert harness.sync_transport() is None and harness.async_transport() is None
        with pytest.raises(NotImplementedError):
            harness.expire_token()
        seeded = harness.create_customer(identifiers={"email": "h@example.com"}, cashback=eur(3))
        assert harness.balances(seeded.id).cashback == eur(3)
    finally:
        harness.close()


def test_demo_runs_twice_with_the_same_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo must not leave files in the working directory

    def once() -> str:
        buffer = io.StringIO()
        run_demo(Console(file=buffer, width=120, color_system=None))
        return buffer.getvalue()

    first, second = once(), once()
    assert first == second
    for step in ("Identify", "Evaluate", "Apply a voucher", "cashback", "Place the order", "Export", "Refund",
                 "Final balances"):
        assert step in first
    assert "voucher_not_found" in first and "accepted" in first and "duplicate" in first
    # the points-catalog mug: quoted in beans, paid in beans, 0.00 in money
    assert "paid in beans: line 4 (1 x MUG-CLUB)" in first and "paid in beans: 400 beans (0.00 EUR in money)" in first
    # the member's statement (through the facade) and wallet
    assert "statement of CUST-ANN" in first and "+620 points" in first and "roasted-bonus" in first
    assert "wallet of CUST-ANN" in first and "BEANS-2-ANN" in first
    assert list(tmp_path.iterdir()) == []
