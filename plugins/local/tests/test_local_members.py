"""Member operations on the embedded engine: enrolment, updates, vouchers earned, tier changes,
the statement and the wallet."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from loyaltykit import CustomerNotFoundError, InvalidRequestError, Order
from loyaltykit.members import Enrolment, StatementEntryKind
from loyaltykit_local.tables import customers, member_profiles
from loyaltykit_local.testing import eur, line

PROGRAM = """
currency = "EUR"

[points]
per_currency_unit = 1

[[tiers]]
name = "bronze"
threshold = 0

[[tiers]]
name = "silver"
threshold = 50

[[offers]]
id = "WELCOME"
kind = "fixed_off_check"
amount = 5
label = "5 off your next order"
valid_days = 30

[[rules]]
id = "welcome-voucher"
label = "Welcome voucher"
when = { first_order = true }
then = { action = "issue_offer", offer = "WELCOME" }
"""


def _order(ref: str, customer_id: str, price: str = "20.00") -> Order:
    return Order(ref=ref, currency="EUR", lines=(line("l1", "BEANS", price),), total=eur(price), customer_id=customer_id)


def _enrol(shop, external_id: str = "shop-42", **extra):
    return shop.loyalty.enrol_member(Enrolment(external_id=external_id, email=f"{external_id}@Example.com", **extra))


def test_enrolment_keeps_profile_and_consents_and_hides_identifiers(make_shop):
    shop = make_shop(PROGRAM)
    result = _enrol(shop, first_name="Ada", last_name="Lovelace", language="en", birth_date="1815-12-10",
                    consents=({"purpose": "marketing_email", "granted": True},
                              {"purpose": "sms", "granted": False}),
                    profile={"favourite": "espresso"})
    assert result.created
    assert shop.loyalty.identify(email="shop-42@example.com").id == result.customer.id
    with shop.store.sqlalchemy_read() as conn:
        row = conn.execute(select(member_profiles).where(member_profiles.c.customer_id == result.customer.id)).one()
        name = conn.execute(select(customers.c.display_name).where(customers.c.id == result.customer.id)).scalar_one()
    assert name == "Ada Lovelace" and row.language == "en" and row.profile == {"favourite": "espresso"}
    assert row.birth_date.date().isoformat() == "1815-12-10"
    assert [(c["purpose"], c["granted"]) for c in row.consents] == [("marketing_email", True), ("sms", False)]
    enrolment = Enrolment(external_id="shop-42", email="shop-42@example.com", first_name="Ada")
    assert "example.com" not in repr(enrolment) and "shop-42" not in repr(enrolment) and "Ada" not in repr(enrolment)


def test_enrolment_validates_before_the_engine(make_shop):
    shop = make_shop(PROGRAM)
    with pytest.raises(InvalidRequestError) as info:
        shop.loyalty.enrol_member({"external_id": "x1", "email": "not-an-email"})
    assert info.value.field == "enrolment.email"
    with pytest.raises(InvalidRequestError) as info:
        _enrol(shop, tier="platinum")
    assert info.value.field == "enrolment.tier"
    assert shop.engine.calls["enrol"] == 1  # the model refused the e-mail; only the tier reached the engine


CHILD = textwrap.dedent("""
    import json, sys
    from loyaltykit import Loyalty, LoyaltySettings
    from loyaltykit_local.adapter import LocalAdapter

    url = sys.argv[1]
    adapter = LocalAdapter({"database_url": url, "busy_timeout_ms": 60000})
    with Loyalty(LoyaltySettings(engine="local"), adapter=adapter, load_entry_points=False) as lk:
        result = lk.enrol_member({"external_id": "shop-race", "email": "race@example.com"})
        print(json.dumps({"id": result.customer.id, "created": result.created}))
""")


def test_the_same_enrolment_from_several_processes_creates_one_member(make_shop, tmp_path):
    shop = make_shop(PROGRAM, name="race")
    url = str(shop.store.url)
    command = [sys.executable, "-c", CHILD, url]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    outputs = [child.communicate(timeout=120) for child in children]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs if out.strip()]
    assert len(results) == 4, [err[-500:] for _, err in outputs]
    assert sum(r["created"] for r in results) == 1 and len({r["id"] for r in results}) == 1
    with shop.store.sqlalchemy_read() as conn:
        assert conn.execute(select(func.count()).select_from(customers)).scalar_one() == 1


def test_first_order_issues_a_welcome_offer_once_and_it_shows_in_wallet_and_statement(make_shop):
    shop = make_shop(PROGRAM)
    member = _enrol(shop).customer.id
    assert shop.loyalty.wallet(member).offers == ()
    shop.loyalty.export_orders([_order("o-1", member)])
    shop.loyalty.export_orders([_order("o-1", member)])  # a repeat export issues nothing more
    shop.loyalty.export_orders([_order("o-2", member)])  # not a first order any more
    offers = shop.loyalty.wallet(member).offers
    assert len(offers) == 1 and offers[0].amount == eur("5.00") and offers[0].label == "5 off your next order"
    assert offers[0].expires_at == shop.clock.now + timedelta(days=30)
    vouchers = [e for e in shop.loyalty.statement({"customer_id": member}).entries
                if e.kind is StatementEntryKind.VOUCHER]
    assert [(v.rule_id, v.order_ref, v.code) for v in vouchers] == [("welcome-voucher", "o-1", offers[0].code)]
    # usable in another channel: the code redeems once
    redeemed = shop.loyalty.redeem_voucher({"code": offers[0].code, "order_ref": "pos-1", "customer_id": member})
    assert redeemed.discount == eur("5.00")
    assert shop.loyalty.wallet(member).offers == ()


def test_tier_reached_by_an_order_and_assigned_tier_show_in_the_statement(make_shop):
    shop = make_shop(PROGRAM)
    member = _enrol(shop).customer.id
    shop.loyalty.export_orders([_order("o-1", member, "30.00")])
    shop.clock.advance(minutes=1)
    shop.loyalty.export_orders([_order("o-2", member, "30.00")])  # 60 qualifying points: silver
    entries = shop.loyalty.statement({"customer_id": member}).entries
    changes = [(e.tier, e.order_ref) for e in entries if e.kind is StatementEntryKind.TIER_CHANGE]
    assert changes == [("silver", "o-2")]  # bronze (threshold 0) was the member's tier from the start
    with pytest.raises(InvalidRequestError) as info:
        shop.loyalty.update_member({"customer_id": member, "tier": "gold"})
    assert info.value.field == "update.tier"
    unchanged = shop.loyalty.update_member({"customer_id": member, "tier": "bronze"})  # a floor below the earned tier
    assert unchanged.tier == "silver"
    assert len([e for e in shop.loyalty.statement({"customer_id": member}).entries
                if e.kind is StatementEntryKind.TIER_CHANGE]) == 1


def test_statement_window_currency_and_pending_expiry(make_shop):
    shop = make_shop("[points]\nexpire_after_days = 10\n")
    member = shop.customer(points=40, cashback=eur("3.00"))
    start = shop.clock.now
    shop.clock.advance(days=11)  # the opening points expired, but no write recorded it yet
    first = shop.loyalty.statement({"customer_id": member})
    assert first.entries[0].kind is StatementEntryKind.EXPIRE and first.entries[0].points == Decimal(-40)
    assert first.entries[0].id == "expiry-pending"
    window = shop.loyalty.statement({"customer_id": member, "since": start - timedelta(seconds=1),
                                     "until": start + timedelta(seconds=1)})
    assert sorted(e.balance.value for e in window.entries) == ["cashback", "points"]
    usd = shop.loyalty.statement({"customer_id": member, "currency": "USD", "until": start + timedelta(seconds=1)})
    assert [e.balance.value for e in usd.entries] == ["points"]
    cashback = next(e for e in window.entries if e.money is not None)
    assert cashback.money == eur("3.00") and cashback.kind is StatementEntryKind.EARN


def test_a_cursor_belongs_to_its_member(make_shop):
    shop = make_shop(PROGRAM)
    one, two = shop.customer(points=5), shop.customer(points=5)
    shop.engine.credit(one, points=1)
    page = shop.loyalty.statement({"customer_id": one, "page_size": 1})
    assert page.next_cursor is not None
    with pytest.raises(InvalidRequestError) as info:
        shop.loyalty.statement({"customer_id": two, "cursor": page.next_cursor})
    assert info.value.field == "query.cursor"


def test_member_operations_on_an_unknown_member(make_shop):
    shop = make_shop(PROGRAM)
    for call in (lambda: shop.loyalty.wallet("nobody"), lambda: shop.loyalty.statement({"customer_id": "nobody"}),
                 lambda: shop.loyalty.update_member({"customer_id": "nobody", "role": "staff"})):
        with pytest.raises(CustomerNotFoundError):
            call()


def test_issue_offer_needs_a_known_template():
    from loyaltykit import ConfigError
    from loyaltykit_local.program import parse_program

    with pytest.raises(ConfigError) as info:
        parse_program('[[rules]]\nid="r"\nthen={action="issue_offer", offer="NOPE"}', "club.toml")
    assert "NOPE" in str(info.value)


async def test_async_facade_reads_the_statement_and_wallet(make_shop):
    shop = make_shop(PROGRAM)
    member = shop.customer(points=7)
    facade = shop.async_facade()
    statement = await facade.statement({"customer_id": member})
    wallet = await facade.wallet({"customer_id": member})
    assert statement.entries[0].points == Decimal(7) and wallet.offers == ()
    await facade.aclose()


def test_a_tier_is_lost_when_its_points_leave_the_qualifying_period(make_shop):
    shop = make_shop(PROGRAM.replace("per_currency_unit = 1", "per_currency_unit = 1\nqualifying_days = 30"))
    member = _enrol(shop).customer.id
    shop.loyalty.export_orders([_order("o-1", member, "60.00")])  # 60 qualifying points: silver
    assert shop.loyalty.identify(external_id="shop-42").tier == "silver"
    shop.clock.advance(days=20)
    assert shop.engine.expire_points() == 0
    assert [e.tier for e in shop.loyalty.statement({"customer_id": member}).entries
            if e.kind is StatementEntryKind.TIER_CHANGE] == ["silver"]  # still inside the period
    shop.clock.advance(days=11)
    shop.engine.expire_points()  # the nightly job reviews tiers
    assert shop.loyalty.identify(external_id="shop-42").tier == "bronze"
    changes = [(e.tier, e.label) for e in shop.loyalty.statement({"customer_id": member}).entries
               if e.kind is StatementEntryKind.TIER_CHANGE]
    assert changes == [("bronze", "qualifying period: tier reviewed"), ("silver", "tier reached")]
    shop.engine.expire_points()  # nothing new to record
    assert len([e for e in shop.loyalty.statement({"customer_id": member}).entries
                if e.kind is StatementEntryKind.TIER_CHANGE]) == 2
